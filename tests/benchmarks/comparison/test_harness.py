"""Runner and report on a fake task: saving, resuming, learning-rate choice, tables, figures."""

import json

import numpy as np
import pytest

from benchmarks.comparison import optimizers
from benchmarks.comparison import report
from benchmarks.comparison import runner
from benchmarks.comparison import task as task_lib

CALLS = []


def _fake_run(tx, seeds, mode):
  """Errors that depend on the optimizer through its first update of a unit parameter."""
  del mode
  one = np.ones(1, np.float32)
  updates, _ = tx.update(one, tx.init(one), one)
  step = float(np.abs(np.asarray(updates)).sum())
  CALLS.append(step)
  errors = 1.0 / (1.0 + step) + 0.01 * np.asarray(seeds)[:, None] * np.ones((1, 3))
  errors[:, 0] += 1.0
  if step > 0.5:
    errors[0, 1] = np.nan  # a failed seed
  return task_lib.TaskResult(errors=errors, extras={"accuracy": 1.0 - errors})


FAKE = task_lib.Task(name="FAKE", regime="full-batch", error_name="fake error", run=_fake_run,
                     cuts={"quick": "fake cut", "standard": "fake cut", "full": "no cuts"},
                     failure_error=10.0)
OPTIMIZERS = [optimizers.OPTIMIZERS["SGD"], optimizers.OPTIMIZERS["CoRe"]]


def test_quick_mode_runs_the_defaults_and_standard_the_grid_too():
  # SGD's default is torch's docstring example 0.1, CoRe's the paper's full-batch s_max 1.
  assert [c.learning_rate for c in runner.plan([FAKE], OPTIMIZERS, "quick")] == [1e-1, 1.0]
  assert len(runner.plan([FAKE], OPTIMIZERS, "standard")) == 2 * len(optimizers.LEARNING_RATES)


def test_run_saves_every_configuration_and_a_rerun_resumes(tmp_path):
  CALLS.clear()
  runner.run(tmp_path, [FAKE], OPTIMIZERS, "standard", n_seeds=2)
  assert len(CALLS) == 10
  assert runner.result_path(tmp_path, "FAKE", "CoRe", 1e-2).exists()
  runner.run(tmp_path, [FAKE], OPTIMIZERS, "standard", n_seeds=2)
  assert len(CALLS) == 10
  assert json.loads((tmp_path / "run.json").read_text())["seeds"] == [0, 1]


def test_report_picks_the_best_rate_scores_and_draws(tmp_path):
  runner.run(tmp_path, [FAKE], OPTIMIZERS, "standard", n_seeds=2)
  text = report.build([tmp_path])
  _, reports = report.load(tmp_path)
  outcomes = reports["FAKE"].outcomes["tuned"]
  # SGD's first update is lr itself: the largest rate without a failed seed (0.1) wins.
  assert outcomes["SGD"].learning_rate == 0.1
  assert outcomes["SGD"].n_failed == 0
  np.testing.assert_allclose(outcomes["SGD"].minima, [1 / 1.1, 1 / 1.1 + 0.01])
  assert reports["FAKE"].scores["tuned"]["CoRe"][0] <= 1.0
  assert max(a for a, _ in reports["FAKE"].scores["tuned"].values()) == 1.0
  assert "| optimizer | FAKE | A-bar |" in text and "fake cut" in text
  for name in ("scores.md", "scores.csv", "min_errors.csv", "task_scores.png",
               "overall_scores.png", "convergence_FAKE.png"):
    assert (tmp_path / "report" / name).exists(), name


def _unsolved_run(tx, seeds, mode):
  """An RL-like task nobody solves: the error stays at the cap while the reward grows."""
  del tx, mode
  n = len(seeds)
  return task_lib.TaskResult(errors=np.full((n, 4), 100.0),
                             extras={"running_reward": np.tile(np.arange(4.0), (n, 1))})


def test_extras_of_a_seed_stuck_at_its_minimum_are_from_its_last_evaluation(tmp_path):
  unsolved = task_lib.Task(name="UNSOLVED", regime="full-batch", error_name="episodes",
                           run=_unsolved_run, cuts={m: "" for m in ("quick", "standard", "full")},
                           failure_error=100.0)
  runner.run(tmp_path, [unsolved], OPTIMIZERS[:1], "quick", n_seeds=2)
  report.build([tmp_path])
  _, reports = report.load(tmp_path)
  sgd = reports["UNSOLVED"].outcomes["defaults"]["SGD"]
  np.testing.assert_array_equal(sgd.extras["running_reward"], [3, 3])


def test_runs_of_one_mode_and_seeds_are_reported_together(tmp_path):
  other = task_lib.Task(name="OTHER", regime="mini-batch", error_name="other error",
                        run=_fake_run, cuts=FAKE.cuts, failure_error=10.0)
  runner.run(tmp_path / "a", [FAKE], OPTIMIZERS, "quick", n_seeds=2)
  runner.run(tmp_path / "b", [other], OPTIMIZERS, "quick", n_seeds=2)
  text = report.build([tmp_path / "a", tmp_path / "b"],
                      tmp_path / "both")
  assert "| optimizer | FAKE | OTHER | A-bar |" in text
  assert (tmp_path / "both" / "overall_scores.png").exists()
  runner.run(tmp_path / "c", [other], OPTIMIZERS, "quick", n_seeds=3)
  with pytest.raises(ValueError, match="same mode and seeds"):
    report.load(tmp_path / "a", tmp_path / "c")
  with pytest.raises(ValueError, match="needs a report_dir"):
    report.build([tmp_path / "a", tmp_path / "b"])


def test_defaults_track_is_the_default_setting_and_tuning_never_scores_lower(tmp_path):
  some = [optimizers.OPTIMIZERS[n] for n in ("SGD", "Adam", "CoRe", "Prodigy")]
  runner.run(tmp_path, [FAKE], some, "standard", n_seeds=2)
  text = report.build([tmp_path])
  _, reports = report.load(tmp_path)
  fake = reports["FAKE"]
  assert fake.outcomes["defaults"]["SGD"].learning_rate == 0.1  # torch's docstring example
  assert fake.outcomes["defaults"]["CoRe"].learning_rate == 1.0  # the paper's full-batch s_max
  assert fake.outcomes["defaults"]["Prodigy"].learning_rate == 1.0
  assert sorted({c.learning_rate for c in runner.plan([FAKE], some[3:], "standard")}) == \
      [0.1, 1.0, 10.0]
  for name in fake.scores["tuned"]:
    assert fake.scores["tuned"][name][0] >= fake.scores["defaults"][name][0]
  assert max(a for a, _ in fake.scores["tuned"].values()) == 1.0
  for heading in ("### Defaults-only", "### Tuned", "### Tuning gap", "Budget:", "Wall time"):
    assert heading in text


def test_budget_counts_the_seeds_whose_best_evaluation_is_the_last(tmp_path):
  # _fake_run's errors fall from the first evaluation and are flat after it; seed 0 of a step
  # over 0.5 has a NaN and failed: no seed's first minimum is its last evaluation.
  runner.run(tmp_path, [FAKE], OPTIMIZERS, "quick", n_seeds=2)
  _, reports = report.load(tmp_path)
  assert reports["FAKE"].outcomes["defaults"]["SGD"].best_is_last.tolist() == [False, False]
  improving = task_lib.Task(name="IMPROVING", regime="full-batch", error_name="e",
                            run=lambda tx, seeds, mode: task_lib.TaskResult(
                                errors=np.tile([3.0, 2.0, 1.0], (len(seeds), 1))),
                            cuts=FAKE.cuts, failure_error=10.0)
  runner.run(tmp_path / "b", [improving], OPTIMIZERS, "quick", n_seeds=2)
  _, reports = report.load(tmp_path / "b")
  assert reports["IMPROVING"].outcomes["defaults"]["CoRe"].best_is_last.tolist() == [True, True]
