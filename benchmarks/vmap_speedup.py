"""Times one configuration with its seeds vmapped against a Python loop over seeds."""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison import task as task_lib


def _timed(fn) -> tuple[float, float]:
  """Wall and process CPU seconds of ``fn()`` (CPU time is steadier on a shared machine)."""
  wall, cpu = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - wall, time.process_time() - cpu


def measure(task: task_lib.Task, tx: optax.GradientTransformation, n_seeds: int,
            mode: task_lib.Mode) -> str:
  """Runs ``task`` with ``n_seeds`` seeds in one vmapped program and in a loop, side by side.

  Both variants run once first so that their programs are compiled (and, with the
  persistent compilation cache on, later calls only load them); then each is timed once.

  Returns:
    A one-paragraph summary with both wall and CPU times and their ratios.
  """
  seeds = jnp.arange(n_seeds)

  def vmapped():
    return task.run(tx, seeds, mode).errors

  def looped():
    return np.concatenate([task.run(tx, seeds[i:i + 1], mode).errors for i in range(n_seeds)])

  compile_vmapped, _ = _timed(vmapped)
  compile_looped, _ = _timed(lambda: task.run(tx, seeds[:1], mode))
  (wall_vmapped, cpu_vmapped), (wall_looped, cpu_looped) = _timed(vmapped), _timed(looped)
  return (f"{task.name}, {mode} mode, {n_seeds} seeds: vmapped {wall_vmapped:.1f} s wall / "
          f"{cpu_vmapped:.1f} s CPU, Python loop {wall_looped:.1f} s wall / {cpu_looped:.1f} s CPU; "
          f"speed-up of vmapping {wall_looped / wall_vmapped:.2f}x wall, "
          f"{cpu_looped / cpu_vmapped:.2f}x CPU (first calls, with compilation: vmapped "
          f"{compile_vmapped:.1f} s, "
          f"one looped seed {compile_looped:.1f} s wall).")
