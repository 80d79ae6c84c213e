"""AlgoPerf's scoring, written for this benchmark's saved runs: targets, time to target,
rulesets and performance profiles.

Following the AlgoPerf rules (MLCommons, "Benchmarking Neural Network Training Algorithms",
Dahl et al. 2023, and the benchmark's documentation):

- **Target.** Per task, from the tuned baselines (AdamW-cos and NAdamW-cos) at the full
  budget: for each baseline, each study (here a seed: every trial of a study shares it) takes
  its best trial's lowest validation error, the baseline's value is the median over studies,
  and the target is the lower of the baselines' values.
- **Time to target** of one run: the steps (and seconds) until its first evaluation at or
  below the target; infinite if it never gets there (a failed, non-finite evaluation never
  counts as reaching it).
- **Self-tuning ruleset**: trial 0 (the defaults) only; an optimizer's time on a task is the
  median over studies.
- **External-tuning ruleset**: every trial of the search; each study takes its fastest trial
  and the optimizer's time is the median over studies of those.
- **Performance profile** of an optimizer: ``rho(tau)``, the fraction of tasks on which its
  time is within a factor ``tau`` of the fastest optimizer's on that task. The benchmark score
  is the area under the profile from ``tau = 1`` to ``tau_max = 4``, divided by
  ``tau_max - 1``: 1 for an optimizer that is fastest everywhere, 0 for one never within 4x.
  A task that no optimizer solves counts as a task every optimizer misses.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

TAU_MAX = 4.0


def evaluations_to_target(errors: np.ndarray, target: float) -> np.ndarray:
  """Per seed, the number of evaluations until the first at or below ``target``.

  Args:
    errors: ``[n_seeds, n_evals]`` validation errors.
    target: the validation target.

  Returns:
    ``[n_seeds]`` counts in ``1 .. n_evals`` (float), ``inf`` where the target is never reached.
  """
  reached = np.asarray(errors, dtype=np.float64) <= target  # NaN compares False.
  first = reached.argmax(axis=1) + 1.0
  return np.where(reached.any(axis=1), first, np.inf)


def study_values(errors_per_trial: Sequence[np.ndarray]) -> np.ndarray:
  """Per study (seed), the best trial's lowest validation error (non-finite ones ignored).

  Args:
    errors_per_trial: one ``[n_seeds, n_evals]`` array per trial, seeds in the same order.

  Returns:
    ``[n_seeds]`` values; ``inf`` for a study whose every evaluation failed.
  """
  minima = [np.where(np.isfinite(e), e, np.inf).min(axis=1) for e in errors_per_trial]
  return np.min(minima, axis=0)


def target(baselines: Mapping[str, Sequence[np.ndarray]]) -> float:
  """The validation target: the best baseline's median over studies of its best trial.

  Args:
    baselines: per baseline optimizer, its trials' ``[n_seeds, n_evals]`` errors.

  Returns:
    The target error.
  """
  return float(min(np.median(study_values(trials)) for trials in baselines.values()))


def self_tuning_time(times: np.ndarray) -> float:
  """The self-tuning ruleset's time: the median over studies of the defaults' run.

  Args:
    times: ``[n_seeds]`` times to target of trial 0 (``inf`` where never reached).
  """
  return float(np.median(times))


def external_tuning_time(times: np.ndarray) -> float:
  """The external-tuning ruleset's time: the median over studies of the fastest trial.

  Args:
    times: ``[n_trials, n_seeds]`` times to target (``inf`` where never reached).
  """
  return float(np.median(np.min(times, axis=0)))


def ratios(times: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
  """Each optimizer's time over the fastest optimizer's, per task (``inf`` where it or every
  optimizer never reached the target).

  Args:
    times: ``{optimizer: {task: time}}``; every optimizer lists the same tasks.
  """
  tasks = list(next(iter(times.values())))
  best = {task: min(t[task] for t in times.values()) for task in tasks}
  return {name: {task: t[task] / best[task] if np.isfinite(best[task]) else np.inf
                 for task in tasks} for name, t in times.items()}


def profile(task_ratios: Mapping[str, float], taus: np.ndarray) -> np.ndarray:
  """``rho(tau)``: the fraction of tasks whose ratio is at most ``tau``, at each of ``taus``."""
  r = np.array(list(task_ratios.values()), dtype=np.float64)
  return (r[None, :] <= np.asarray(taus, dtype=np.float64)[:, None]).mean(axis=1)


def profile_score(task_ratios: Mapping[str, float], tau_max: float = TAU_MAX) -> float:
  """The area under the profile from 1 to ``tau_max``, over ``tau_max - 1`` (exact: a task of
  ratio ``r`` contributes ``max(0, tau_max - r)`` to the area)."""
  r = np.array(list(task_ratios.values()), dtype=np.float64)
  return float(np.mean(np.clip(tau_max - np.maximum(r, 1.0), 0.0, None)) / (tau_max - 1.0))
