"""The continual-learning metrics: accuracy matrix, forgetting, smoothness, frozen sets.

All functions take per-seed arrays and return per-seed values (means and standard
deviations over seeds are the report's business), except :func:`smoothness_error`,
which pools the seeds as the paper does.
"""

from __future__ import annotations

import numpy as np


def stage_ends(stage_epochs: np.ndarray) -> np.ndarray:
  """Index of the last evaluation of every stage (one evaluation per epoch)."""
  return np.cumsum(stage_epochs) - 1


def after_each_stage(values: np.ndarray, stage_epochs: np.ndarray) -> np.ndarray:
  """``R[seed, i, j]``: the metric on test set ``j`` after stage ``i``.

  Args:
    values: ``[n_seeds, n_evals, n_test_sets]``.
    stage_epochs: epochs (evaluations) per stage.
  """
  return values[:, stage_ends(stage_epochs), :]


def average_accuracy(matrix: np.ndarray) -> np.ndarray:
  """Mean accuracy over all tasks after the last one: ``mean_j R[T, j]``."""
  return matrix[:, -1, :].mean(axis=1)


def backward_transfer(matrix: np.ndarray) -> np.ndarray:
  """``mean_{j < T} (R[T, j] - R[j, j])``: negative when earlier tasks are forgotten."""
  n = matrix.shape[1]
  return np.mean([matrix[:, -1, j] - matrix[:, j, j] for j in range(n - 1)], axis=0)


def plasticity(matrix: np.ndarray) -> np.ndarray:
  """``mean_j R[j, j]``: the accuracy on each task right after learning it."""
  return np.mean([matrix[:, j, j] for j in range(matrix.shape[1])], axis=0)


def smoothness_error(errors: np.ndarray) -> tuple[float, float]:
  """The paper's error that is sensitive to smoothness (section 3, for the lMLP).

  The mean of every seed's error at every seed's best evaluation (``n_seeds^2`` values:
  the paper's 400 for 20 runs), and their standard deviation. A run whose error jumps
  around its minimum scores worse than one that stays near it.

  Args:
    errors: ``[n_seeds, n_evals]`` test errors.
  """
  best = np.argmin(np.where(np.isfinite(errors), errors, np.inf), axis=1)
  pooled = errors[:, best]
  return float(np.mean(pooled)), float(np.std(pooled))


def persistence(persisting: np.ndarray, reference: np.ndarray, stage_updates: np.ndarray,
                lags: tuple[int, ...] = (1, 10, 100)) -> dict[str, float]:
  """How long frozen sets persist: the fraction of the weights frozen at each stage's
  reference update (its first that froze any) still frozen ``lag`` updates later and at
  the stage's last update; the mean over seeds and stages where the lag fits.

  Args:
    persisting: ``[n_seeds, n_updates]`` weights frozen now and at the reference update.
    reference: ``[n_seeds, n_updates]`` weights frozen at the reference update (0 before).
    stage_updates: updates per stage.
    lags: the lags to report.

  Returns:
    ``{"1": ..., "10": ..., "100": ..., "end": ...}``, NaN where no stage had the lag.
  """
  out: dict[str, list[float]] = {str(lag): [] for lag in lags} | {"end": []}
  bounds = np.concatenate([[0], np.cumsum(stage_updates)])
  for seed in range(persisting.shape[0]):
    for start, end in zip(bounds[:-1], bounds[1:]):
      started = np.flatnonzero(reference[seed, start:end] > 0)
      if not len(started):
        continue
      first = start + started[0]
      fraction = persisting[seed] / np.maximum(reference[seed], 1)
      for lag in lags:
        if first + lag < end:
          out[str(lag)].append(fraction[first + lag])
      out["end"].append(fraction[end - 1])
  return {k: float(np.mean(v)) if v else float("nan") for k, v in out.items()}
