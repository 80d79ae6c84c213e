"""--list, --shard, --jobs and --ray: stable ids, disjoint shards that merge, worker processes
and Ray equal to a run in this process."""

import argparse
import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
from jax.experimental.compilation_cache import compilation_cache as jax_cache
import numpy as np
import pytest

from benchmarks import __main__ as cli
from benchmarks.comparison import cluster
from benchmarks.comparison import optimizers
from benchmarks.comparison import report
from benchmarks.comparison import runner
from benchmarks.comparison import task as task_lib
from benchmarks.comparison.tasks import TASKS

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _fake_run(tx, seeds, mode):
  """Errors that depend on the optimizer through its first update of a unit parameter."""
  del mode
  one = np.ones(1, np.float32)
  step = float(np.abs(np.asarray(tx.update(one, tx.init(one), one)[0])).sum())
  return task_lib.TaskResult(errors=1.0 / (1.0 + step) + 0.01 * np.asarray(seeds)[:, None]
                             + np.zeros((1, 3)))


FAKE = task_lib.Task(name="FAKE", regime="mini-batch", error_name="fake error", run=_fake_run,
                     cuts={m: "fake cut" for m in ("quick", "standard", "full")},
                     failure_error=10.0)
SOME = [optimizers.OPTIMIZERS[n] for n in ("SGD", "Adam", "CoRe", "Prodigy")]


def _saved(out: pathlib.Path) -> dict[str, dict[str, np.ndarray]]:
  """Every saved configuration's arrays but its timings, by path under raw/."""
  arrays = {}
  for path in sorted((out / "raw").rglob("*.npz")):
    with np.load(path) as saved:
      arrays[str(path.relative_to(out / "raw"))] = {
          k: v for k, v in saved.items() if k not in ("wall_s", "compile_s")}
  return arrays


def _assert_same(a: dict, b: dict) -> None:
  assert a.keys() == b.keys()
  for name in a:
    assert a[name].keys() == b[name].keys(), name
    for key in a[name]:
      np.testing.assert_array_equal(a[name][key], b[name][key], err_msg=f"{name} {key}")


def test_ids_are_unique_and_stable_and_name_the_files(tmp_path):
  plan = runner.plan([FAKE, TASKS["SS-csbm"]], SOME, "standard")
  ids = [c.id for c in plan]
  assert len(set(ids)) == len(ids)
  assert ids == [c.id for c in runner.plan([FAKE, TASKS["SS-csbm"]], SOME, "standard")]
  assert "SS-csbm/Prodigy/lr=10" in ids and "FAKE/CoRe/lr=0.001" in ids
  config = plan[0]
  assert runner.result_path(tmp_path, config.task.name, config.optimizer.name,
                            config.learning_rate) == tmp_path / "raw" / f"{config.id}.npz"


def test_list_prints_one_id_per_line_of_the_shard(capsys):
  cli.main(["run", "--list", "--standard", "--tasks", "SS-csbm", "--optimizers", "Adam", "DoG",
            "--shard", "2/3"])
  listed = capsys.readouterr().out.split()
  whole = [c.id for c in runner.plan([TASKS["SS-csbm"]], [optimizers.OPTIMIZERS["Adam"],
                                                           optimizers.OPTIMIZERS["DoG"]],
                                      "standard")]
  assert listed == whole[1::3]


@pytest.mark.parametrize("text", ["4/3", "0/3", "3", "a/b", "1/0", "-1/2"])
def test_a_shard_that_does_not_exist_is_refused_clearly(text, capsys):
  with pytest.raises(argparse.ArgumentTypeError):
    cluster.parse_shard(text)
  with pytest.raises(SystemExit):
    cli.main(["run", "--list", "--shard", text])
  assert "--shard" in capsys.readouterr().err
  with pytest.raises(ValueError, match="does not exist"):
    runner.shard(runner.plan([FAKE], SOME, "quick"), 4, 3)


def test_three_shards_are_disjoint_and_together_equal_the_whole_run(tmp_path):
  plan = runner.plan([FAKE], SOME, "standard")
  shards = [runner.shard(plan, i, 3) for i in (1, 2, 3)]
  ids = [c.id for s in shards for c in s]
  assert sorted(ids) == sorted(c.id for c in plan) and len(set(ids)) == len(ids)

  runner.run(tmp_path / "whole", [FAKE], SOME, "standard", n_seeds=2)
  for i in (1, 2, 3):
    runner.run(tmp_path / f"shard{i}", [FAKE], SOME, "standard", n_seeds=2, shard_of=(i, 3))
  merged = {}
  for i in (1, 2, 3):
    merged.update(_saved(tmp_path / f"shard{i}"))
  _assert_same(merged, _saved(tmp_path / "whole"))

  def tables(text: str) -> str:
    """All but the line of commands and the table of wall times."""
    scores, times = text.split("\n", 1)[1].split("Wall time of a configuration")
    return scores + times.split("Default settings")[1]
  whole = report.build([tmp_path / "whole"])
  shards_report = report.build([tmp_path / f"shard{i}" for i in (1, 2, 3)], tmp_path / "merged")
  assert tables(shards_report) == tables(whole)


def test_report_refuses_two_directories_with_different_results_for_one_configuration(tmp_path):
  runner.run(tmp_path / "a", [FAKE], SOME[:1], "quick", n_seeds=2)
  runner.run(tmp_path / "b", [FAKE], SOME[:1], "quick", n_seeds=2)
  report.load(tmp_path / "a", tmp_path / "b")  # the same results twice merge
  path = runner.result_path(tmp_path / "b", "FAKE", "SGD", 0.1)
  with np.load(path) as saved:
    arrays = dict(saved)
  np.savez(path, **{**arrays, "errors": arrays["errors"] + 1.0})
  with pytest.raises(ValueError, match="differs between"):
    report.load(tmp_path / "a", tmp_path / "b")


# Ray: the real registries (workers look tasks and optimizers up by name), on the cheapest task.
TINY = ["--quick", "--tasks", "SS-csbm", "--seeds", "2"]


# The tiny grid that worker processes and Ray tasks must save bit for bit as this process does.
GRID = ([TASKS["SS-csbm"]], [optimizers.OPTIMIZERS[n] for n in ("Adam", "SF-AdamW")])


@contextlib.contextmanager
def _cache_in(path: pathlib.Path):
  """Compiled programs go to and come from ``path``, here and in the workers (they get this
  process's directory), until the end; then JAX's cache settings are as they were."""
  before = (jax.config.jax_compilation_cache_dir,
            jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax_cache.reset_cache()  # JAX opens its cache once per process: make this one use ``path``
  try:
    yield
  finally:
    jax.config.update("jax_compilation_cache_dir", before[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
    jax_cache.reset_cache()


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
  """The compilation cache of this module's runs of GRID."""
  return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="module")
def sequential(programs, tmp_path_factory):
  """What a run of GRID in this process saves (once for the module); it leaves its compiled
  programs in ``programs`` for the workers."""
  out = tmp_path_factory.mktemp("here")
  with _cache_in(programs):
    runner.run(out, *GRID, "quick", n_seeds=2)
  return _saved(out)


@pytest.fixture
def compilation_cache(programs):
  """The sequential run's compilation cache for this test (the workers get it too)."""
  with _cache_in(programs):
    yield


@pytest.fixture(scope="module")
def ray_cluster():
  """A 2-CPU Ray cluster of this process for the module's Ray tests, started once: its address.
  Shut down at the end (never ``ray stop``: that would stop a user's own cluster)."""
  ray = pytest.importorskip("ray", reason="the cluster extra is not installed")
  ray.init(num_cpus=2, include_dashboard=False)
  try:
    yield ray.get_runtime_context().gcs_address
  finally:
    ray.shutdown()


def test_worker_processes_save_what_the_sequential_run_saves_bit_for_bit(tmp_path, sequential,
                                                                       compilation_cache):
  # As for Ray below: the workers load the sequential run's programs from the shared cache.
  runner.run(tmp_path / "jobs", *GRID, "quick", n_seeds=2, execute=cluster.ProcessExecutor(2))
  _assert_same(_saved(tmp_path / "jobs"), sequential)
  assert len(_saved(tmp_path / "jobs")) == 2


@pytest.mark.parametrize("argv, message", [
    (["--jobs", "0"], "argument --jobs: expected a number of processes >= 1, got '0'"),
    (["--jobs", "two"], "argument --jobs: expected a number of processes >= 1, got 'two'"),
    (["--jobs", "2", "--ray", "local"], "--jobs 2 and --ray local: choose one")])
def test_a_bad_number_of_jobs_is_refused_clearly(argv, message, capsys, tmp_path):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["run", *TINY, "--out", str(tmp_path), *argv])
  assert message in capsys.readouterr().err + str(exit_info.value.code)
  assert not (tmp_path / "raw").exists()


def test_ray_tasks_save_what_the_sequential_run_saves_bit_for_bit(tmp_path, ray_cluster,
                                                                  sequential, compilation_cache):
  # The workers load the sequential run's programs from the cache: what is compared is the
  # harness (lookup by name, transfer, saving), not two compilations of one program.
  runner.run(tmp_path / "ray", *GRID, "quick", n_seeds=2,
             execute=cluster.RayExecutor(ray_cluster))
  _assert_same(_saved(tmp_path / "ray"), sequential)
  assert len(_saved(tmp_path / "ray")) == 2


def test_a_killed_ray_driver_restarted_loses_and_duplicates_nothing(tmp_path, ray_cluster):
  names = ["SGD", "Adam", "Lion"]
  command = [sys.executable, "-m", "benchmarks", "run", *TINY, "--optimizers", *names,
             "--out", str(tmp_path)]
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  # The killed driver joins a running cluster (--ray ADDRESS), which outlives it as a real one
  # would; the rerun starts a cluster of its own (--ray local).
  driver = subprocess.Popen([*command, "--ray", ray_cluster], cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + 90
  while not list((tmp_path / "raw").rglob("lr=*[0-9].npz")) and time.monotonic() < deadline:
    time.sleep(0.2)
  os.killpg(driver.pid, signal.SIGKILL)  # the driver (Ray then ends its tasks)
  driver.wait()
  first = {p: p.stat().st_mtime_ns for p in (tmp_path / "raw").rglob("lr=*[0-9].npz")}
  assert 1 <= len(first) < len(names), "the driver was killed before or after the whole run"

  rerun = subprocess.run([*command, "--ray", "local"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=240, check=True)
  assert f"({len(first)} already saved in" in rerun.stdout
  saved = sorted((tmp_path / "raw").rglob("*.npz"))
  assert [p.name for p in saved if "partial" in p.name] == []
  assert sorted(str(p.relative_to(tmp_path / "raw")).removesuffix(".npz") for p in saved) == \
      sorted(c.id for c in runner.plan([TASKS["SS-csbm"]],
                                       [optimizers.OPTIMIZERS[n] for n in names], "quick"))
  assert all(p.stat().st_mtime_ns == mtime for p, mtime in first.items())
