"""Running the comparison on many cores and machines: processes, listing, sharding, and Ray.

``python -m benchmarks run`` takes, next to its request (mode, tasks, optimizers, seeds):

- ``--jobs N``: train the configurations in N worker processes of this machine (no Ray).
  A worker lives for the whole run, so each task's model compiles once per worker; the
  configurations go to whichever worker is free, in the request's order, and the driver
  saves each result as it returns. Each worker uses XLA's default thread pool.

- ``--list``: print the request's configurations, one id per line
  (``<task>/<optimizer>/lr=<setting>``, stable: the same request lists the same ids in the
  same order), and exit.
- ``--shard I/N``: run only the I-th of N disjoint slices (every N-th configuration from
  the I-th, so that each slice gets a share of every task). For a SLURM job array,
  ``--array=1-N`` and ``--shard $SLURM_ARRAY_TASK_ID/N``. ``report`` merges the shards'
  directories.
- ``--ray ADDRESS``: train the configurations as Ray tasks (``local`` starts a one-machine
  cluster, ``auto`` joins the one this machine belongs to, anything else is passed to
  ``ray.init(address=...)``). Each task is a fresh worker process that trains one
  configuration's vmapped seeds with ``--cpus-per-task`` CPUs and ``--gpus-per-task`` GPUs;
  the driver saves each result as it returns, so a rerun resumes as a sequential run does.
  The workers import this repository from the driver's path and share its compilation
  cache directory, so on several machines both must be on a shared file system.

Ray comes with the ``cluster`` extra (``pip install '.[cluster]'``); nothing else imports it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import multiprocessing
import pathlib
import re
from typing import Callable, Sequence

import jax
import numpy as np

from benchmarks.comparison import runner
from benchmarks.comparison import task as task_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
"""The repository: Ray workers import ``benchmarks`` from here."""


def parse_shard(text: str) -> tuple[int, int]:
  """Parses ``I/N`` (1 <= I <= N) for ``--shard``.

  Raises:
    argparse.ArgumentTypeError: for anything else.
  """
  match = re.fullmatch(r"(\d+)/(\d+)", text)
  if not match:
    raise argparse.ArgumentTypeError(f"expected I/N, e.g. 2/8, got {text!r}")
  index, count = int(match[1]), int(match[2])
  if not 1 <= index <= count:
    raise argparse.ArgumentTypeError(f"shard {text} does not exist: I/N needs 1 <= I <= N")
  return index, count


def parse_jobs(text: str) -> int:
  """Parses a positive number of worker processes for ``--jobs``.

  Raises:
    argparse.ArgumentTypeError: for anything else.
  """
  if not text.isdigit() or int(text) < 1:
    raise argparse.ArgumentTypeError(f"expected a number of processes >= 1, got {text!r}")
  return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds ``--jobs``, ``--list``, ``--shard``, ``--ray``, ``--cpus-per-task`` and
  ``--gpus-per-task``."""
  parser.add_argument("--jobs", type=parse_jobs, default=1, metavar="N",
                      help="train in N worker processes of this machine (default 1: this "
                      "process); --quick --jobs 2 uses both cores of a 2-core machine")
  parser.add_argument("--list", action="store_true", help="print the configurations' ids, one "
                      "per line (of the shard, with --shard), and exit")
  parser.add_argument("--shard", type=parse_shard, default=(1, 1), metavar="I/N",
                      help="run the I-th of N disjoint slices of the configurations (1-based)")
  parser.add_argument("--ray", metavar="ADDRESS", help="run the configurations as Ray tasks: "
                      "'local', 'auto' or a cluster address (needs the cluster extra)")
  parser.add_argument("--cpus-per-task", type=float, default=1.0,
                      help="CPUs Ray reserves per configuration (default 1)")
  parser.add_argument("--gpus-per-task", type=float, default=0.0,
                      help="GPUs Ray reserves per configuration (default 0)")


def _ray():
  try:
    import ray  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise SystemExit("--ray needs Ray: pip install '.[cluster]'") from error
  return ray


def _train_in_worker(task: str, optimizer: str, learning_rate: float, seeds: np.ndarray,
                     mode: task_lib.Mode, cache_dir: str | None) -> runner.Trained:
  """What a worker runs: one configuration, looked up by name in the registries."""
  # pylint: disable=import-outside-toplevel
  from benchmarks.comparison import optimizers as optimizers_lib
  from benchmarks.comparison.modern import optimizers as modern_optimizers
  from benchmarks.comparison.tasks import TASKS
  if cache_dir:
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  registry = {**optimizers_lib.OPTIMIZERS, **modern_optimizers.OPTIMIZERS}  # distinct names
  config = runner.Config(TASKS[task], registry[optimizer], learning_rate)
  return runner.train(config, seeds, mode)


@dataclasses.dataclass(frozen=True)
class RayExecutor:
  """Trains configurations as Ray tasks (a :data:`runner.Execute`).

  Attributes:
    address: ``"local"``, ``"auto"`` or a cluster address; ignored when this process is
      already connected to Ray (``ray.init`` was called).
    cpus_per_task: CPUs per configuration.
    gpus_per_task: GPUs per configuration.
  """

  address: str
  cpus_per_task: float = 1.0
  gpus_per_task: float = 0.0

  def __call__(self, configs: Sequence[runner.Config], seeds: np.ndarray, mode: task_lib.Mode,
               save_one: Callable[[runner.Config, runner.Trained], None]) -> None:
    ray = _ray()
    if not ray.is_initialized():
      ray.init(address=None if self.address == "local" else self.address)
    train = ray.remote(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_calls=1,
                       runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})(_train_in_worker)
    cache_dir = jax.config.jax_compilation_cache_dir
    pending = {train.remote(c.task.name, c.optimizer.name, c.learning_rate, seeds, mode,
                            cache_dir): c for c in configs}
    while pending:
      done, _ = ray.wait(list(pending), num_returns=1)
      for ref in done:
        save_one(pending.pop(ref), ray.get(ref))


@dataclasses.dataclass(frozen=True)
class ProcessExecutor:
  """Trains configurations in ``jobs`` worker processes of this machine (a
  :data:`runner.Execute`).

  The workers are spawned (not forked: JAX is already running here), keep their compiled
  programs for the whole run, and share this process's compilation cache directory. A
  failing configuration stops the run with its error; what finished before is saved.
  """

  jobs: int

  def __call__(self, configs: Sequence[runner.Config], seeds: np.ndarray, mode: task_lib.Mode,
               save_one: Callable[[runner.Config, runner.Trained], None]) -> None:
    cache_dir = jax.config.jax_compilation_cache_dir
    with concurrent.futures.ProcessPoolExecutor(
        self.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
      pending = {pool.submit(_train_in_worker, c.task.name, c.optimizer.name, c.learning_rate,
                             seeds, mode, cache_dir): c for c in configs}
      try:
        for future in concurrent.futures.as_completed(pending):
          save_one(pending[future], future.result())
      except BaseException:
        pool.shutdown(cancel_futures=True)
        raise


def executor(args: argparse.Namespace) -> runner.Execute:
  """The executor the command line asks for: Ray with ``--ray``, worker processes with
  ``--jobs`` above 1, else this process.

  Raises:
    SystemExit: for ``--ray`` with ``--jobs`` (Ray sizes its workers with
      ``--cpus-per-task``).
  """
  if args.ray is not None:
    if args.jobs != 1:
      raise SystemExit(f"--jobs {args.jobs} and --ray {args.ray}: choose one (Ray runs as many "
                       "configurations at once as its CPUs allow; see --cpus-per-task).")
    return RayExecutor(args.ray, args.cpus_per_task, args.gpus_per_task)
  return runner.run_sequentially if args.jobs == 1 else ProcessExecutor(args.jobs)
