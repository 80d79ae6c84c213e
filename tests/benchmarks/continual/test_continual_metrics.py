"""The continual-learning metrics on hand-made numbers."""

import numpy as np

from benchmarks.continual import metrics


def _matrix():
  # Two seeds, three tasks; R[seed, after task i, on task j].
  return np.array([[[0.9, 0.1, 0.1], [0.6, 0.8, 0.1], [0.5, 0.7, 0.9]],
                   [[0.8, 0.1, 0.1], [0.8, 0.9, 0.1], [0.7, 0.9, 0.6]]])


def test_accuracy_matrix_rows_are_the_last_epoch_of_each_stage():
  values = np.arange(2 * 6 * 3, dtype=float).reshape(2, 6, 3)
  matrix = metrics.after_each_stage(values, np.array([2, 3, 1]))
  np.testing.assert_array_equal(matrix, values[:, [1, 4, 5], :])


def test_average_accuracy_backward_transfer_and_plasticity():
  matrix = _matrix()
  np.testing.assert_allclose(metrics.average_accuracy(matrix), [0.7, 0.7333333])
  # Seed 0: ((0.5 - 0.9) + (0.7 - 0.8)) / 2; seed 1: ((0.7 - 0.8) + (0.9 - 0.9)) / 2.
  np.testing.assert_allclose(metrics.backward_transfer(matrix), [-0.25, -0.05])
  np.testing.assert_allclose(metrics.plasticity(matrix), [0.8666667, 0.7666667])


def test_smoothness_error_pools_every_seed_at_every_seeds_best_epoch():
  errors = np.array([[3.0, 1.0, 2.0], [1.0, 5.0, 4.0]])
  mean, std = metrics.smoothness_error(errors)
  pooled = [1.0, 3.0, 5.0, 1.0]  # epochs 1 and 0 of both seeds
  assert np.isclose(mean, np.mean(pooled)) and np.isclose(std, np.std(pooled))


def test_a_jumpy_run_scores_worse_than_a_smooth_one_with_the_same_minimum():
  smooth = np.array([[2.0, 1.1, 1.0, 1.05], [2.0, 1.0, 1.1, 1.05]])
  jumpy = np.array([[2.0, 3.0, 1.0, 3.0], [2.0, 1.0, 3.0, 3.0]])
  assert metrics.smoothness_error(smooth)[0] < metrics.smoothness_error(jumpy)[0]


def test_persistence_follows_each_stages_first_frozen_set():
  # One seed, two stages of 4 updates; freezing from update 1 of stage 1, 4 weights.
  reference = np.array([[0, 4, 4, 4, 4, 4, 4, 4]])
  persisting = np.array([[0, 4, 2, 1, 4, 3, 3, 2]])
  kept = metrics.persistence(persisting, reference, np.array([4, 4]), lags=(1, 2))
  assert kept["1"] == np.mean([2 / 4, 3 / 4])
  assert kept["2"] == np.mean([1 / 4, 3 / 4])
  assert kept["end"] == np.mean([1 / 4, 2 / 4])
