"""Runs the continual-learning scenarios and saves each configuration as it finishes.

Per scenario, in order (all seeds of a configuration in one vmapped program):

1. **Step sizes** on the first stage only: every optimizer (or the one it is ``tune_as``,
   when the first stage ends before freezing starts, so that they coincide there) trains
   stage 1 at each step size of the grid; the one with the lowest mean final error on
   stage 1's test set wins. Quick mode takes each optimizer's ``quick_lr`` instead.
2. **SI's strength** on the first two stages only (its penalty is zero before the first
   boundary, so the first stage alone cannot choose it): Adam+SI at Adam's step size, the
   strength of the grid with the lowest mean final error over the two stages' test sets.
   Both selections use the first ``TUNING_SEEDS`` seeds (to save time).
3. **The runs**: every optimizer through all stages.

Layout of an output directory::

  run.json                                    kind "continual", mode, seeds, scenarios,
                                              cuts, every command that wrote here
  raw/_tuning/<tuning>/<optimizer>/lr=<lr>.npz  stage-1 runs of the step-size grid
  raw/_si/<scenario>/c=<c>.npz                 stage-1-2 runs of SI's strength grid
  raw/<scenario>/<optimizer>.npz               the runs: metrics, freezing records, choices

A rerun with the same directory skips every file already saved with the same seeds and
number of evaluations (so a changed budget reruns what it changes), and records its command
after the earlier ones in ``run.json``; the cuts of the scenarios it runs replace theirs
(:mod:`benchmarks.run_directory` saves the files and merges ``run.json``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Sequence

import jax
import numpy as np

from benchmarks import run_directory
from benchmarks.comparison.task import Mode
from benchmarks.continual import optimizers as optimizers_lib
from benchmarks.continual import scenarios as scenarios_lib
from benchmarks.continual import training

KIND = "continual"
"""``run.json``'s ``kind``: how ``python -m benchmarks report`` recognises these runs."""

DEFAULT_SEEDS: dict[Mode, int] = {"quick": 3, "standard": 10, "full": 20}
LEARNING_RATES: dict[Mode, tuple[float, ...] | None] = {
    "quick": None, "standard": (1e-3, 1e-2, 1e-1), "full": (1e-4, 1e-3, 1e-2, 1e-1, 1.0)}
SI_STRENGTHS: dict[Mode, tuple[float, ...]] = {
    "quick": (1.0, 100.0), "standard": (0.1, 1.0, 10.0, 100.0, 1000.0),
    "full": (0.1, 1.0, 10.0, 100.0, 1000.0)}
TUNING_SEEDS = 3
QUICK_OPTIMIZERS = ("Adam", "CoRe", "CoRe p=0.1", "Adam+SI")
"""Quick mode's subset (it compiles every configuration; freezing CoRe takes longest)."""


def file_name(name: str) -> str:
  """An optimizer's name as a file name."""
  return name.replace(" ", "_")


def _is_done(path: pathlib.Path, seeds: np.ndarray, n_evals: int) -> bool:
  """Whether ``path`` holds these seeds' runs of this length (a changed budget reruns)."""
  if not path.exists():
    return False
  with np.load(path) as saved:
    metric = next(k for k in saved.files if k.startswith("metric_"))
    return np.array_equal(saved["seeds"], seeds) and saved[metric].shape[1] == n_evals


def _final_error(scenario: scenarios_lib.Scenario, saved: dict[str, np.ndarray],
                 n_tests: int) -> float:
  """Mean over seeds of the last evaluation's error, averaged over the first test sets."""
  metrics = {k[len("metric_"):]: v for k, v in saved.items() if k.startswith("metric_")}
  error = scenario.error(metrics)[:, -1, :n_tests].mean(axis=1)
  return float(np.mean(error)) if np.all(np.isfinite(error)) else float("inf")


def _train_and_save(path, scenario, optimizer, learning_rate, context, seeds, mode,
                    n_stages=None, **extra) -> dict[str, np.ndarray]:
  """Trains one configuration (unless saved) and returns what is saved."""
  stages = scenario.setup(mode).stages[:n_stages]
  if not _is_done(path, seeds, sum(stage.n_epochs for stage in stages)):
    frozen = (training.Freezing(optimizer.frozen_fraction, context.score_history)
              if optimizer.score_history else None)
    start = time.perf_counter()
    make_tx = lambda h: optimizer.build(
        h["learning_rate"], dataclasses.replace(context, si_strength=h["si_strength"]))
    trained = scenarios_lib.run(
        scenario, make_tx, {"learning_rate": learning_rate, "si_strength": context.si_strength},
        seeds, mode, n_stages=n_stages, frozen=frozen)
    wall_s = time.perf_counter() - start
    records = {} if frozen is None else {"frozen": trained.frozen,
                                         "persisting": trained.persisting,
                                         "reference": trained.reference}
    run_directory.save(path, seeds=seeds, learning_rate=learning_rate, wall_s=wall_s,
          **{f"metric_{k}": v for k, v in trained.metrics.items()}, **records, **extra)
    print(f"  {'/'.join(path.parts[-3:])}: {wall_s:.0f} s", flush=True)
  return run_directory.load(path)


def _write_metadata(out: pathlib.Path, scenarios: Sequence[scenarios_lib.Scenario],
                    mode: Mode, seeds: np.ndarray) -> None:
  """Writes run.json: the scenarios' names and cuts (this run's replace earlier ones)."""
  run_directory.write_run_json(out, mode=mode, seeds=seeds, kind=KIND,
                               names={"scenarios": [s.name for s in scenarios]},
                               merged={"cuts": {s.name: s.cuts[mode] for s in scenarios}})


def optimizers_of(scenario: scenarios_lib.Scenario,
                  mode: Mode) -> list[optimizers_lib.Optimizer]:
  """The optimizers a scenario runs in ``mode``."""
  return [optimizers_lib.OPTIMIZERS[name] for name in scenario.optimizers
          if mode != "quick" or name in QUICK_OPTIMIZERS]


def run_scenario(out: pathlib.Path, scenario: scenarios_lib.Scenario, mode: Mode,
                 seeds: np.ndarray) -> None:
  """Selects step sizes and SI's strength, then runs every optimizer (see the module)."""
  setup = scenario.setup(mode)
  t_hist = setup.score_history
  shared = setup.stages[0].n_updates <= t_hist  # freezing starts after stage 1
  context = optimizers_lib.Context(score_history=t_hist)
  n_tests_first = 1
  leaves = jax.tree.leaves(setup.init(jax.random.key(0)))
  chosen: dict[str, float] = {}

  def learning_rate(optimizer: optimizers_lib.Optimizer) -> float:
    base = optimizers_lib.OPTIMIZERS[optimizer.tuning_name if shared else optimizer.name]
    if LEARNING_RATES[mode] is None:
      return base.quick_lr[scenario.regime]
    if base.name not in chosen:
      errors = {}
      for lr in LEARNING_RATES[mode]:
        path = (out / "raw" / "_tuning" / scenario.tuning / file_name(base.name) /
                f"lr={lr:g}.npz")
        saved = _train_and_save(path, scenario, base, lr, context, seeds[:TUNING_SEEDS], mode,
                                n_stages=1)
        errors[lr] = _final_error(scenario, saved, n_tests_first)
      chosen[base.name] = min(errors, key=errors.get)
    return chosen[base.name]

  optimizers = optimizers_of(scenario, mode)
  strength = 0.0
  if any(o.si for o in optimizers):
    si = next(o for o in optimizers if o.si)
    lr = learning_rate(si)
    errors = {}
    for c in SI_STRENGTHS[mode]:
      path = out / "raw" / "_si" / scenario.name / f"c={c:g}.npz"
      saved = _train_and_save(path, scenario, si, lr,
                              optimizers_lib.Context(t_hist, si_strength=c),
                              seeds[:TUNING_SEEDS], mode, n_stages=2, si_strength=c)
      errors[c] = _final_error(scenario, saved, 2)
    strength = min(errors, key=errors.get)

  nominal = {o.name: sum(int(o.frozen_fraction * x.size) for x in leaves) for o in optimizers}
  for optimizer in optimizers:
    _train_and_save(
        out / "raw" / scenario.name / f"{file_name(optimizer.name)}.npz", scenario, optimizer,
        learning_rate(optimizer), optimizers_lib.Context(t_hist, si_strength=strength), seeds,
        mode, name=optimizer.name, si_strength=strength if optimizer.si else np.nan,
        score_history=t_hist, frozen_fraction=optimizer.frozen_fraction,
        n_weights=sum(x.size for x in leaves), n_frozen_nominal=nominal[optimizer.name],
        stage_updates=[s.n_updates for s in setup.stages],
        stage_epochs=[s.n_epochs for s in setup.stages], shared_tuning=shared)


def run(out: pathlib.Path, scenarios: Sequence[scenarios_lib.Scenario], mode: Mode,
        n_seeds: int) -> None:
  """Runs every scenario into ``out``, skipping what is saved there.

  Args:
    out: the output directory.
    scenarios: the scenarios, in the order they run.
    mode: ``"quick"``, ``"standard"`` or ``"full"``.
    n_seeds: seeds ``0 .. n_seeds - 1``, the same for every configuration.
  """
  seeds = np.arange(n_seeds)
  _write_metadata(out, scenarios, mode, seeds)
  for scenario in scenarios:
    print(f"{scenario.name} ({mode}, {n_seeds} seeds): {scenario.cuts[mode]}", flush=True)
    start = time.perf_counter()
    run_scenario(out, scenario, mode, seeds)
    print(f"{scenario.name}: {time.perf_counter() - start:.0f} s", flush=True)
