"""Accuracy scores of the paper, equations 19-22.

Per seed the minimum test error over evaluations (early stopping) is taken; a seed whose
errors contain a non-finite value failed and scores the task's failure error instead (our
reading of the task contract), and no seed scores worse than the failure error (a finite
run that never gets below it failed too). Mean and standard deviation (``ddof=0``) of the per-seed
minima give ``E_min`` and ``dE_min`` of an optimizer on a task.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def seed_minima(errors: np.ndarray, failure_error: float) -> np.ndarray:
  """Minimum over evaluations per seed, at most ``failure_error``; failed seeds get it.

  Args:
    errors: ``[n_seeds, n_evals]`` test errors.
    failure_error: the error of a failed seed.

  Returns:
    ``[n_seeds]`` minimum test errors.
  """
  errors = np.asarray(errors, dtype=np.float64)
  failed = ~np.isfinite(errors).all(axis=1)
  return np.minimum(np.where(failed[:, None], failure_error, errors).min(axis=1), failure_error)


def accuracy_scores(mean_errors: Mapping[str, float], std_errors: Mapping[str, float],
                    best: float | None = None) -> dict[str, tuple[float, float]]:
  """Equations 19 and 20: ``A_i(k)`` and ``dA_i(k)`` of every optimizer ``k`` on one task.

  Args:
    mean_errors: ``E_min`` per optimizer, the mean over seeds of the minimum test error.
    std_errors: ``dE_min`` per optimizer, its standard deviation over seeds.
    best: the reference error, ``min_k E_min(k)`` by default; another comparison's best (the
      tuned track's, for the defaults-only track) puts two comparisons on one scale.

  Returns:
    ``{optimizer: (A, dA)}`` with ``A = best / E_min(k)`` and
    ``dA = best / E_min(k)^2 * dE_min(k)``.
  """
  best = min(mean_errors.values()) if best is None else best
  return {
      name: (best / mean, best / mean**2 * std_errors[name])
      for name, mean in mean_errors.items()
  }


def overall_scores(
    task_scores: Mapping[str, Mapping[str, tuple[float, float]]]
) -> dict[str, tuple[float, float]]:
  """Equations 21 and 22: the mean accuracy score over tasks and its uncertainty.

  Args:
    task_scores: ``{task: {optimizer: (A, dA)}}``; every task must score the same optimizers.

  Returns:
    ``{optimizer: (A_bar, dA_bar)}`` with ``A_bar = mean_i A_i`` and
    ``dA_bar = sqrt(sum_i dA_i^2) / N_tasks``.
  """
  tasks = list(task_scores.values())
  n_tasks = len(tasks)
  return {
      name: (sum(scores[name][0] for scores in tasks) / n_tasks,
             np.sqrt(sum(scores[name][1]**2 for scores in tasks)) / n_tasks)
      for name in tasks[0]
  }
