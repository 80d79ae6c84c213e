"""Runs (task, optimizer, learning rate) configurations and saves each one as it finishes.

Layout of an output directory::

  run.json                          mode, seeds, tasks, optimizers, command
  tasks/<task>.json                 what the report needs to know about a task
  raw/<task>/<optimizer>/lr=<lr>.npz  errors [n_seeds, n_evals], extras, seeds, wall time

A rerun with the same directory skips every configuration already saved with the same
seeds, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time
from typing import Iterable, Sequence

import jax.numpy as jnp
import numpy as np
import tqdm

from benchmarks.comparison import optimizers as optimizers_lib
from benchmarks.comparison import task as task_lib

DEFAULT_SEEDS: dict[task_lib.Mode, int] = {"quick": 3, "standard": 5, "full": 20}


@dataclasses.dataclass(frozen=True)
class Config:
  """One configuration: all seeds of it train in one program."""

  task: task_lib.Task
  optimizer: optimizers_lib.Optimizer
  learning_rate: float


def plan(tasks: Iterable[task_lib.Task], optimizers: Iterable[optimizers_lib.Optimizer],
         mode: task_lib.Mode) -> list[Config]:
  """Lists the configurations of a run: the grid, or quick mode's recommended rate."""
  optimizers = list(optimizers)
  return [
      Config(task, optimizer, lr)
      for task in tasks
      for optimizer in optimizers
      for lr in ((optimizer.quick_lr[task.regime],) if mode == "quick"
                 else optimizers_lib.LEARNING_RATES)
  ]


def result_path(out: pathlib.Path, task: str, optimizer: str, learning_rate: float) -> pathlib.Path:
  """Where one configuration's results are saved."""
  return out / "raw" / task / optimizer / f"lr={learning_rate:g}.npz"


def _is_done(path: pathlib.Path, seeds: np.ndarray) -> bool:
  if not path.exists():
    return False
  with np.load(path) as saved:
    return np.array_equal(saved["seeds"], seeds)


def _save(path: pathlib.Path, result: task_lib.TaskResult, seeds: np.ndarray,
          learning_rate: float, wall_s: float) -> None:
  """Writes one configuration atomically (a killed run leaves no half-written file)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_suffix(".partial.npz")
  np.savez(partial, errors=np.asarray(result.errors), seeds=seeds, learning_rate=learning_rate,
           wall_s=wall_s, **{f"extra_{name}": np.asarray(value)
                             for name, value in result.extras.items()})
  os.replace(partial, path)


def _write_metadata(out: pathlib.Path, tasks: Sequence[task_lib.Task],
                    optimizers: Sequence[optimizers_lib.Optimizer], mode: task_lib.Mode,
                    seeds: np.ndarray) -> None:
  """Writes run.json (refusing to mix modes or seeds in one directory) and tasks/*.json."""
  run_file = out / "run.json"
  previous = json.loads(run_file.read_text()) if run_file.exists() else None
  if previous and (previous["mode"] != mode or previous["seeds"] != seeds.tolist()):
    raise ValueError(f"{out} holds a {previous['mode']} run with seeds {previous['seeds']}; "
                     f"choose another --out for a {mode} run with seeds {seeds.tolist()}.")

  def union(key: str, items) -> list[str]:
    """Names from earlier runs into this directory, then this run's, in order."""
    return list(dict.fromkeys([*(previous or {}).get(key, []), *(item.name for item in items)]))

  run_file.parent.mkdir(parents=True, exist_ok=True)
  run_file.write_text(json.dumps({
      "mode": mode, "seeds": seeds.tolist(), "tasks": union("tasks", tasks),
      "optimizers": union("optimizers", optimizers),
      "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
  }, indent=2))
  for task in tasks:
    meta = out / "tasks" / f"{task.name}.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({
        "name": task.name, "regime": task.regime, "error_name": task.error_name,
        "failure_error": task.failure_error, "cuts": task.cuts[mode],
    }, indent=2))


def run(out: pathlib.Path, tasks: Sequence[task_lib.Task],
        optimizers: Sequence[optimizers_lib.Optimizer], mode: task_lib.Mode,
        n_seeds: int) -> None:
  """Runs every configuration not yet saved in ``out``, saving each as it finishes.

  Args:
    out: the output directory.
    tasks: the tasks, in the order they run.
    optimizers: the optimizers.
    mode: ``"quick"``, ``"standard"`` or ``"full"``.
    n_seeds: seeds ``0 .. n_seeds - 1``, the same for every configuration.
  """
  seeds = np.arange(n_seeds)
  _write_metadata(out, tasks, optimizers, mode, seeds)
  configs = plan(tasks, optimizers, mode)
  todo = [c for c in configs
          if not _is_done(result_path(out, c.task.name, c.optimizer.name, c.learning_rate), seeds)]
  print(f"{mode} mode: {len(configs)} configurations x {n_seeds} seeds "
        f"({len(configs) - len(todo)} already saved in {out}).", flush=True)
  timed_tasks: set[str] = set()
  bar = tqdm.tqdm(todo, unit="config", dynamic_ncols=True)
  for config in bar:
    name = config.task.name
    bar.set_description(f"{name} {config.optimizer.name} lr={config.learning_rate:g}")
    start = time.perf_counter()
    result = config.task.run(config.optimizer.build(config.learning_rate), jnp.asarray(seeds), mode)
    wall_s = time.perf_counter() - start
    _save(result_path(out, name, config.optimizer.name, config.learning_rate), result, seeds,
          config.learning_rate, wall_s)
    if name not in timed_tasks:
      timed_tasks.add(name)
      n_task = sum(c.task.name == name for c in todo)
      bar.write(f"{name}: first configuration took {wall_s:.0f} s (compilation included); its "
                f"{n_task} configurations: about {n_task * wall_s / 60:.0f} min.")
