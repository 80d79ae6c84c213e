"""Times one configuration with its seeds vmapped against a Python loop over seeds."""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import task as task_lib


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def measure(task: task_lib.Task, tx: optax.GradientTransformation, n_seeds: int,
            mode: task_lib.Mode) -> str:
  """Runs ``task`` with ``n_seeds`` seeds in one vmapped program and in a loop, side by side.

  Both variants run once first so that their programs are compiled (and, with the
  persistent compilation cache on, later calls only load them); then each is timed once.

  Returns:
    A one-paragraph summary with both wall times and their ratio.
  """
  seeds = jnp.arange(n_seeds)

  def vmapped():
    return task.run(tx, seeds, mode).errors

  def looped():
    return np.concatenate([task.run(tx, seeds[i:i + 1], mode).errors for i in range(n_seeds)])

  compile_vmapped = _timed(vmapped)
  compile_looped = _timed(lambda: task.run(tx, seeds[:1], mode))
  t_vmapped, t_looped = _timed(vmapped), _timed(looped)
  return (f"{task.name}, {mode} mode, {n_seeds} seeds: vmapped {t_vmapped:.1f} s, Python loop "
          f"{t_looped:.1f} s, speed-up {t_looped / t_vmapped:.2f}x (first calls with compilation: "
          f"vmapped {compile_vmapped:.1f} s, one looped seed {compile_looped:.1f} s).")
