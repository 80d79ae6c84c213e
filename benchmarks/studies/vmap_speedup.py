"""Times one configuration of the comparison with its seeds vmapped against a Python loop.

  python -m benchmarks vmap-speedup [--task AEF] [--optimizer CoRe] [--seeds 5] [--mode quick]
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison import optimizers as optimizers_lib
from benchmarks.comparison import task as task_lib
from benchmarks.comparison.tasks import TASKS
from benchmarks.studies.timing import timed


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

  compile_vmapped, _ = timed(vmapped)
  compile_looped, _ = timed(lambda: task.run(tx, seeds[:1], mode))
  (wall_vmapped, cpu_vmapped), (wall_looped, cpu_looped) = timed(vmapped), timed(looped)
  return (f"{task.name}, {mode} mode, {n_seeds} seeds: vmapped {wall_vmapped:.1f} s wall / "
          f"{cpu_vmapped:.1f} s CPU, Python loop {wall_looped:.1f} s wall / "
          f"{cpu_looped:.1f} s CPU; "
          f"speed-up of vmapping {wall_looped / wall_vmapped:.2f}x wall, "
          f"{cpu_looped / cpu_vmapped:.2f}x CPU (first calls, with compilation: vmapped "
          f"{compile_vmapped:.1f} s, "
          f"one looped seed {compile_looped:.1f} s wall).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--task", choices=list(TASKS), default="AEF")
  parser.add_argument("--optimizer", choices=list(optimizers_lib.OPTIMIZERS), default="CoRe")
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--mode", choices=["quick", "standard", "full"], default="quick")


def main(args: argparse.Namespace) -> None:
  optimizer = optimizers_lib.OPTIMIZERS[args.optimizer]
  task = TASKS[args.task]
  print(measure(task, optimizer.build(optimizer.quick_lr[task.regime]), args.seeds, args.mode))
