"""Freezing (eqs. 5-8): which weights freeze, per group, and the thresholds the state keeps.

Parity with the reference's freezing is in test_parity.py, sharded freezing in
test_sharded_freezing.py.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import core_optax
from core_optax import _freezing
from tests import helpers


def test_group_with_zero_frozen_count_never_freezes():
  # floor(0.1 * 4) = 0 for the bias: it trains exactly as without freezing.
  groups = {"dense": {"kernel": "kernel", "bias": "bias"}, "scale": "scale"}
  freezing = core_optax.core(1e-2, score_history=2, groups=groups,
                             frozen_fraction={"kernel": 0.5, "bias": 0.1, "scale": 0.0})
  plain = core_optax.core(1e-2, score_history=2)
  ours, _ = helpers.train(freezing, helpers.params(), 6)
  reference, _ = helpers.train(plain, helpers.params(), 6)
  np.testing.assert_array_equal(ours["dense"]["bias"], reference["dense"]["bias"])
  assert not np.array_equal(ours["dense"]["kernel"], reference["dense"]["kernel"])


def test_frozen_weights_do_not_move():
  tx = core_optax.scale_by_core(1e-2, score_history=2, frozen_fraction=0.5)
  params = {"w": jnp.arange(8.0)}
  state = tx.init(params)
  for step in range(3):
    updates, state = tx.update(helpers.grads(step, params), state)
  top = np.argsort(-np.asarray(state.S["w"]))[:4]
  updates, _ = tx.update(helpers.grads(3, params), state)
  np.testing.assert_array_equal(np.asarray(updates["w"])[top], 0.0)
  assert np.count_nonzero(np.asarray(updates["w"])) == 4


def test_state_keeps_the_last_two_thresholds_of_each_group():
  groups = {"w": "a", "v": "a", "u": "b"}
  tx = core_optax.scale_by_core(1e-2, score_history=2, frozen_fraction={"a": 0.25, "b": 0.0},
                                groups=groups)
  params = {"w": jnp.arange(300.0), "v": jnp.arange(5.0), "u": jnp.arange(4.0)}
  state = tx.init(params)
  kths = []
  for step in range(5):
    scores = np.concatenate([state.S["w"], state.S["v"]])
    kths.append(np.sort(scores)[::-1][int(0.25 * 305) - 1])
    _, state = tx.update(helpers.grads(step, params), state)
    if step == 2:  # the first update past t_hist
      np.testing.assert_array_equal(state.threshold, [[0.0, kths[2]], [0.0, 0.0]])
  # A column per group, in the order of first leaves ("u" of b, then "v" of a); b
  # freezes nothing and keeps zeros.
  np.testing.assert_array_equal(state.threshold, [[0.0, kths[4]], [0.0, kths[3]]])
  assert kths[4] != kths[3]


def test_threshold_guess_extrapolates_the_last_change():
  guess = lambda last, before: float(_freezing.next_threshold_guess(
      jnp.float32(last), jnp.float32(before)))
  np.testing.assert_allclose(guess(0.99, 1.0), 0.99 * 0.99, rtol=1e-6)  # scores decaying
  np.testing.assert_allclose(guess(-2.0, -1.0), -4.0)
  assert guess(1.0, 0.0) == guess(1.0, -1.0) == 1.0  # no history, or a change of sign
  assert guess(10.0, 1.0) == 20.0 and guess(0.0, 1.0) == 0.0  # at most a factor of 2
