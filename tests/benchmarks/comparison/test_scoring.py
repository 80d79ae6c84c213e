"""Equations 19-22 against values computed by hand."""

import numpy as np
import pytest

from benchmarks.comparison import scoring


def test_seed_minima_take_the_minimum_over_evaluations_and_penalise_failed_seeds():
  errors = np.array([[3.0, 2.0, 4.0], [np.nan, 1.0, 1.0], [5.0, np.inf, 0.5], [5.0, 5.0, 5.0],
                     [2e3, 3e3, 4e3]])
  np.testing.assert_array_equal(scoring.seed_minima(errors, 1000.0),
                                [2.0, 1000.0, 1000.0, 5.0, 1000.0])


def test_accuracy_scores_follow_equations_19_and_20():
  scores = scoring.accuracy_scores({"a": 2.0, "b": 4.0}, {"a": 0.2, "b": 1.0})
  assert scores["a"] == pytest.approx((1.0, 2.0 / 2.0**2 * 0.2))  # (1, 0.1)
  assert scores["b"] == pytest.approx((0.5, 2.0 / 4.0**2 * 1.0))  # (0.5, 0.125)


def test_overall_scores_follow_equations_21_and_22():
  overall = scoring.overall_scores({
      "T1": {"a": (1.0, 0.1), "b": (0.5, 0.125)},
      "T2": {"a": (0.8, 0.3), "b": (1.0, 0.4)},
  })
  assert overall["a"] == pytest.approx((0.9, np.sqrt(0.1**2 + 0.3**2) / 2))  # (0.9, 0.1581)
  assert overall["b"] == pytest.approx((0.75, np.sqrt(0.125**2 + 0.4**2) / 2))  # (0.75, 0.2095)
