"""Smoke tests of the continual-learning scenarios, the runner and the report (quick mode)."""

import json

import numpy as np
import pytest

from benchmarks import __main__ as cli
from benchmarks import run_directory
from benchmarks.continual import optimizers as optimizers_lib
from benchmarks.continual import report
from benchmarks.continual import runner
from benchmarks.continual import scenarios
from benchmarks.continual import training


def test_growing_potential_trains_on_all_seen_data_and_records_its_frozen_sets():
  scenario = scenarios.SCENARIOS["potential-growing"]
  setup = scenario.setup("quick")
  seen = set()
  for stage in setup.stages:
    assert stage.steps_per_epoch == 10  # batches of 10% of the data seen so far
    assert len(set(stage.train.tolist())) == len(stage.train)
    assert seen <= set(stage.train.tolist())
    seen = set(stage.train.tolist())
  n = setup.data["energies"].shape[0]
  assert len(np.setdiff1d(np.arange(n), sorted(seen))) == n // scenarios.TEST_EVERY
  assert setup.score_history == setup.stages[0].n_updates
  optimizer = optimizers_lib.OPTIMIZERS["CoRe p=0.1"]
  context = optimizers_lib.Context(setup.score_history)
  trained = scenarios.run(
      scenario, lambda h: optimizer.build(h["lr"], context), {"lr": 1e-2}, np.arange(2),
      "quick", frozen=training.Freezing(0.1, setup.score_history))
  n_evals = sum(s.n_epochs for s in setup.stages)
  assert trained.metrics["force_rmse"].shape == (2, n_evals, 3)
  assert np.all(np.isfinite(trained.metrics["loss"]))
  first = setup.stages[0].n_updates
  assert np.all(trained.frozen[:, :first] == 0)
  assert np.all(trained.frozen[:, first:] >= 0.09 * 2502)  # floor(0.1 n) of every big leaf
  assert np.all(trained.persisting <= trained.reference)


def test_runner_selects_resumes_and_reports_permuted_digits(tmp_path, monkeypatch):
  monkeypatch.setattr(runner, "QUICK_OPTIMIZERS", ("Adam+SI",))
  monkeypatch.setitem(runner.SI_STRENGTHS, "quick", (10.0,))
  monkeypatch.setitem(scenarios._DIGITS, "quick", (5, 64, 32, 1))  # 2 updates per task
  scenario = scenarios.SCENARIOS["permuted-digits"]
  runner.run(tmp_path, [scenario], "quick", n_seeds=2)
  saved = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.npz"))
  assert saved == ["raw/_si/permuted-digits/c=10.npz", "raw/permuted-digits/Adam+SI.npz"]
  before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")}
  runner.run(tmp_path, [scenario], "quick", n_seeds=2)  # resumes: nothing to do
  assert before == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")}
  with np.load(tmp_path / "raw/permuted-digits/Adam+SI.npz") as si:
    assert si["metric_accuracy"].shape == (2, 5, 5)
    assert float(si["learning_rate"]) == 1e-3 and float(si["si_strength"]) == 10.0
  text = report.build(tmp_path)
  assert "| Adam+SI | 0.001, c=10 |" in text and "backward transfer" in text
  assert (tmp_path / "report" / "earlier_permuted-digits.png").exists()
  numbers = json.loads((tmp_path / "report" / "results.json").read_text())
  assert 0 <= numbers["permuted-digits"]["Adam+SI"]["average_accuracy"] <= 1
  # `python -m benchmarks report DIR` recognises the run.
  cli.main(["report", str(tmp_path), "--to", str(tmp_path / "again")])
  assert (tmp_path / "again" / "results.md").read_text() == text.replace(
      str(tmp_path / "report"), str(tmp_path / "again"))


def test_runner_refuses_a_directory_of_another_mode(tmp_path):
  scenario = scenarios.SCENARIOS["permuted-digits"]
  runner._write_metadata(tmp_path, [scenario], "quick", np.arange(2))
  with pytest.raises(ValueError, match="choose another --out"):
    runner._write_metadata(tmp_path, [scenario], "standard", np.arange(2))


def test_runner_reruns_a_changed_budget_and_records_every_command(tmp_path, monkeypatch):
  path = tmp_path / "raw" / "x.npz"
  run_directory.save(path, seeds=np.arange(2), metric_accuracy=np.zeros((2, 5, 1)))
  assert runner._is_done(path, np.arange(2), 5)
  assert not runner._is_done(path, np.arange(2), 10)  # more epochs: rerun
  assert not runner._is_done(path, np.arange(3), 5)
  scenario = scenarios.SCENARIOS["permuted-digits"]
  monkeypatch.setattr("sys.argv", ["benchmarks", "continual", "--quick"])
  runner._write_metadata(tmp_path, [scenario], "quick", np.arange(2))
  monkeypatch.setitem(scenario.cuts, "quick", "a new budget")
  monkeypatch.setattr("sys.argv", ["benchmarks", "continual", "--quick", "--out", "here"])
  runner._write_metadata(tmp_path, [scenario], "quick", np.arange(2))
  meta = json.loads((tmp_path / "run.json").read_text())
  assert meta["commands"] == ["python -m benchmarks continual --quick",
                              "python -m benchmarks continual --quick --out here"]
  assert meta["cuts"]["permuted-digits"] == "a new budget"


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
def test_full_mode_is_well_formed_and_at_least_as_long_as_standard(name, monkeypatch):
  # Without building the full data (1000 structures' Jacobians): the potentials' setup is
  # captured where it would featurise the picks.
  captured = {}

  def capture(picks, n_standardise, stages, tests):
    captured.update(picks=picks, stages=stages, tests=tests)
    return scenarios.Setup(None, None, None, None, tuple(stages))

  monkeypatch.setattr(scenarios, "_potential_setup", capture)
  scenario = scenarios.SCENARIOS[name]
  standard = scenario.setup("standard")
  full = scenario.setup("full")  # captured last
  assert len(full.stages) == len(standard.stages) == len(scenario.stage_names)
  for big, small in zip(full.stages, standard.stages):
    assert big.n_updates >= small.n_updates and len(big.train) >= len(small.train)
  if scenario.kind == "potential":
    picks, tests = captured["picks"], np.concatenate(captured["tests"])
    assert len(np.unique(picks)) == len(picks)  # no structure twice
    train = np.unique(np.concatenate([s.train for s in full.stages]))
    assert np.intersect1d(train, tests).size == 0
    assert train.max() < len(picks) and tests.max() < len(picks)
    assert picks.max() < len(scenarios.emt.load().energies)
  else:
    n = full.data["x"].shape[0] // len(full.stages)
    for t, stage in enumerate(full.stages):
      assert np.all(stage.train // n == t) and len(stage.train) == n - scenarios.N_DIGITS_TEST


def test_the_cli_runs_full_mode(monkeypatch, tmp_path):
  calls = []
  monkeypatch.setattr(runner, "run", lambda out, scenarios_, mode, n: calls.append((mode, n)))
  monkeypatch.setattr(report, "build", lambda out: "")
  cli.main(["continual", "--full", "--out", str(tmp_path)])
  assert calls == [("full", runner.DEFAULT_SEEDS["full"])]
