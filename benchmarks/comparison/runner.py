"""Runs (task, optimizer, setting) configurations and saves each one as it finishes.

Layout of an output directory::

  run.json                          mode, seeds, tasks, optimizers, the commands that ran
  tasks/<task>.json                 what the report needs to know about a task
  raw/<task>/<optimizer>/lr=<lr>.npz  errors [n_seeds, n_evals], extras, seeds, wall and
                                    compilation time

A configuration's id, ``<task>/<optimizer>/lr=<lr>``, names its file and is stable: the same
request lists the same configurations in the same order. A rerun with the same directory
skips every configuration already saved with the same seeds, so an interrupted run resumes
where it stopped, whichever way it ran (sequentially here, as a shard, or on Ray).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import time
from typing import Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from benchmarks import run_directory
from benchmarks.comparison import optimizers as optimizers_lib
from benchmarks.comparison import task as task_lib

DEFAULT_SEEDS: dict[task_lib.Mode, int] = {"quick": 3, "standard": 5, "full": 20}


@dataclasses.dataclass(frozen=True)
class Config:
  """One configuration: all seeds of it train in one program."""

  task: task_lib.Task
  optimizer: optimizers_lib.Optimizer
  learning_rate: float

  @property
  def id(self) -> str:
    """``<task>/<optimizer>/lr=<lr>``: stable, unique in a run, and its file's path in raw/."""
    return f"{self.task.name}/{self.optimizer.name}/lr={self.learning_rate:g}"


@dataclasses.dataclass(frozen=True)
class Trained:
  """What training one configuration gives the driver to save."""

  result: task_lib.TaskResult
  wall_s: float  # training and evaluation, compilation included.
  compile_s: float  # tracing, lowering and compiling (or loading from the cache).


Execute = Callable[[Sequence[Config], np.ndarray, task_lib.Mode, Callable[[Config, Trained], None]],
                   None]
"""``execute(configs, seeds, mode, save)`` trains every configuration and calls ``save`` on
each one as it finishes, in any order."""


def plan(tasks: Iterable[task_lib.Task], optimizers: Iterable[optimizers_lib.Optimizer],
         mode: task_lib.Mode) -> list[Config]:
  """Lists the configurations of a run: quick mode the defaults, the other modes the grid too."""
  optimizers = list(optimizers)
  return [
      Config(task, optimizer, setting)
      for task in tasks
      for optimizer in optimizers
      for setting in optimizer.settings(task.regime, tuned=mode != "quick")
  ]


def shard(configs: Sequence[Config], index: int, count: int) -> list[Config]:
  """The ``index``-th (1-based) of ``count`` disjoint slices, every ``count``-th configuration.

  Round robin spreads each task's configurations over all slices, so slices cost about the
  same. Together the slices are ``configs``.

  Raises:
    ValueError: unless ``1 <= index <= count``.
  """
  if not 1 <= index <= count:
    raise ValueError(f"Shard {index}/{count} does not exist: shards are 1/{count} .. "
                     f"{count}/{count}.")
  return list(configs[index - 1::count])


def result_path(out: pathlib.Path, task: str, optimizer: str, learning_rate: float) -> pathlib.Path:
  """Where one configuration's results are saved."""
  return out / "raw" / task / optimizer / f"lr={learning_rate:g}.npz"


def is_done(out: pathlib.Path, config: Config, seeds: np.ndarray) -> bool:
  """Whether ``config`` is saved in ``out`` with these seeds."""
  path = result_path(out, config.task.name, config.optimizer.name, config.learning_rate)
  if not path.exists():
    return False
  with np.load(path) as saved:
    return np.array_equal(saved["seeds"], seeds)


@contextlib.contextmanager
def _compile_seconds() -> Iterator[list[float]]:
  """Sums JAX's tracing, lowering and compilation events (cache loads included) while open."""
  total = [0.0]

  def listen(event: str, duration: float, **_) -> None:
    if event.startswith("/jax/core/compile/"):
      total[0] += duration

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    yield total
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)


def train(config: Config, seeds: np.ndarray, mode: task_lib.Mode) -> Trained:
  """Trains one configuration's seeds and times it."""
  with _compile_seconds() as compile_s:
    start = time.perf_counter()
    tx = task_lib.for_run(config.optimizer.build(config.learning_rate), config.task, mode)
    result = config.task.run(tx, jnp.asarray(seeds), mode)
    wall_s = time.perf_counter() - start
  return Trained(result, wall_s, compile_s[0])


def save(out: pathlib.Path, config: Config, seeds: np.ndarray, trained: Trained) -> None:
  """Writes one configuration (atomically: see :mod:`benchmarks.run_directory`)."""
  path = result_path(out, config.task.name, config.optimizer.name, config.learning_rate)
  run_directory.save(path, errors=np.asarray(trained.result.errors), seeds=seeds,
                     learning_rate=config.learning_rate, wall_s=trained.wall_s,
                     compile_s=trained.compile_s,
                     **{f"extra_{name}": np.asarray(value)
                        for name, value in trained.result.extras.items()})


def run_sequentially(configs: Sequence[Config], seeds: np.ndarray, mode: task_lib.Mode,
                     save_one: Callable[[Config, Trained], None]) -> None:
  """Trains the configurations one after another in this process (an :data:`Execute`)."""
  for config in configs:
    save_one(config, train(config, seeds, mode))


def _write_metadata(out: pathlib.Path, tasks: Sequence[task_lib.Task],
                    optimizers: Sequence[optimizers_lib.Optimizer], mode: task_lib.Mode,
                    seeds: np.ndarray) -> None:
  """Writes run.json (refusing to mix modes or seeds in one directory) and tasks/*.json."""
  run_directory.write_run_json(out, mode=mode, seeds=seeds, names={
      "tasks": [t.name for t in tasks], "optimizers": [o.name for o in optimizers]})
  for task in tasks:
    meta = out / "tasks" / f"{task.name}.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({
        "name": task.name, "regime": task.regime, "error_name": task.error_name,
        "failure_error": task.failure_error, "cuts": task.cuts[mode],
    }, indent=2))


def run(out: pathlib.Path, tasks: Sequence[task_lib.Task],
        optimizers: Sequence[optimizers_lib.Optimizer], mode: task_lib.Mode,
        n_seeds: int, *, shard_of: tuple[int, int] = (1, 1),
        execute: Execute = run_sequentially) -> None:
  """Runs every configuration of the request (or of its shard) not yet saved in ``out``.

  Args:
    out: the output directory.
    tasks: the tasks, in the order they run.
    optimizers: the optimizers.
    mode: ``"quick"``, ``"standard"`` or ``"full"``.
    n_seeds: seeds ``0 .. n_seeds - 1``, the same for every configuration.
    shard_of: ``(index, count)``: run only that slice of the configurations (see
      :func:`shard`).
    execute: how the configurations are trained; each is saved as soon as it returns.
  """
  seeds = np.arange(n_seeds)
  configs = shard(plan(tasks, optimizers, mode), *shard_of)
  _write_metadata(out, tasks, optimizers, mode, seeds)
  todo = [c for c in configs if not is_done(out, c, seeds)]
  part = "" if shard_of == (1, 1) else f" in shard {shard_of[0]}/{shard_of[1]}"
  print(f"{mode} mode: {len(configs)} configurations{part} x {n_seeds} seeds "
        f"({len(configs) - len(todo)} already saved in {out}).", flush=True)
  timed_tasks: set[str] = set()
  bar = tqdm.tqdm(total=len(todo), unit="config", dynamic_ncols=True)

  def save_one(config: Config, trained: Trained) -> None:
    save(out, config, seeds, trained)
    bar.set_description(config.id)
    bar.update()
    name = config.task.name
    if name not in timed_tasks:
      timed_tasks.add(name)
      n_task = sum(c.task.name == name for c in todo)
      bar.write(f"{name}: first configuration took {trained.wall_s:.0f} s "
                f"({trained.compile_s:.0f} s compiling); its {n_task} configurations: about "
                f"{n_task * trained.wall_s / 60:.0f} min of one worker.")

  execute(todo, seeds, mode, save_one)
  bar.close()
