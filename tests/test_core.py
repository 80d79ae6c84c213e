"""Unit tests of core_optax.core: groups, state, schedules, freezing, presets.

Hyperparameter checks are in test_hyperparameters.py, jit = eager in test_properties.py,
inject_hyperparams in test_inject_hyperparams.py.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax
from core_optax import _freezing
from tests import helpers


def test_groups_tree_that_does_not_match_params_names_the_path():
  tx = core_optax.core(1e-3, groups={"dense": {"kernel": "k", "bias_typo": "b"}, "scale": "s"})
  with pytest.raises(ValueError, match=r"groups has no label for the parameter at "
                     r"\['dense'\]\['bias'\]"):
    tx.init(helpers.params())
  tx = core_optax.core(1e-3, groups={"dense": {"kernel": "k", "bias": "b", "extra": "e"},
                                     "scale": "s"})
  with pytest.raises(ValueError, match=r"groups has a label at \['dense'\]\['extra'\], where "
                     r"the parameters have no leaf"):
    tx.init(helpers.params())


def test_callable_groups_labels_from_params():
  def by_kind(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "bias" if "bias" in jax.tree_util.keystr(path) else "other", params)

  tx = core_optax.core(1e-3, groups=by_kind, weight_decay={"bias": 0.0, "other": 0.1})
  params, _ = helpers.train(tx, helpers.params(), 3)
  assert jnp.all(jnp.isfinite(params["dense"]["bias"]))
  with pytest.raises(ValueError, match=r"weight_decay has no value for group label\(s\)"):
    core_optax.core(1e-3, groups=by_kind, weight_decay={"bias": 0.0}).init(helpers.params())


def test_params_required_when_weight_decay_is_on():
  tx = core_optax.core(1e-3)
  state = tx.init(helpers.params())
  with pytest.raises(ValueError, match=r"weight decay needs the parameters"):
    tx.update(helpers.grads(0, helpers.params()), state)


def test_params_not_required_without_weight_decay():
  tx = core_optax.core(1e-3, weight_decay=0.0)
  updates, _ = tx.update(helpers.grads(0, helpers.params()), tx.init(helpers.params()))
  chex.assert_trees_all_equal_shapes_and_dtypes(updates, helpers.params())


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.complex64])
def test_state_follows_leaf_dtypes_but_at_least_float32_and_counter_is_int32(dtype):
  params = helpers.params(dtype)
  tx = core_optax.scale_by_core(1e-3, score_history=10)
  state = tx.init(params)
  state_dtype = jnp.promote_types(dtype, jnp.float32)  # h ~ G^2 overflows float16
  for tree in (state.g, state.h, state.s, state.S):
    chex.assert_trees_all_equal_shapes_and_dtypes(
        tree, jax.tree.map(lambda p: p.astype(state_dtype), params))
  assert state.tau.dtype == jnp.int32
  _, new_state = jax.jit(tx.update)(helpers.grads(0, params), state)
  chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)


def test_float64_state(x64):
  params = helpers.params(jnp.float64)
  state = core_optax.scale_by_core(1e-3).init(params)
  chex.assert_trees_all_equal_shapes_and_dtypes(state.g, params)


def test_complex_step_sizes_start_at_s0_for_both_parts():
  state = core_optax.scale_by_core(1e-3, initial_step_size=2e-3).init(
      {"z": jnp.zeros(3, jnp.complex64)})
  np.testing.assert_allclose(state.s["z"], (2e-3 + 2e-3j) * np.ones(3), rtol=1e-6)


def test_no_h_in_sign_mode_and_no_scores_without_history():
  state = core_optax.scale_by_core(1e-3, b2=None).init(helpers.params())
  assert state.h is None and state.S is None
  state = core_optax.scale_by_core(1e-3, score_history=250).init(helpers.params())
  assert state.h is not None and state.S is not None


def test_counter_saturates_at_int32_max():
  tx = core_optax.scale_by_core(1e-3)
  state = tx.init(helpers.params())._replace(tau=jnp.asarray(np.iinfo(np.int32).max, jnp.int32))
  updates, state = tx.update(helpers.grads(0, helpers.params()), state)
  assert int(state.tau) == np.iinfo(np.int32).max
  assert all(jnp.all(jnp.isfinite(u)) for u in jax.tree.leaves(updates))


def test_extra_args_are_accepted():
  tx = core_optax.core(1e-3)
  params = helpers.params()
  tx.update(helpers.grads(0, params), tx.init(params), params, loss=jnp.ones([]))


def test_max_step_size_schedule_caps_step_sizes():
  schedule = optax.linear_schedule(1e-1, 1e-3, transition_steps=5)
  tx = core_optax.scale_by_core(schedule, initial_step_size=1e-1)
  state = tx.init(helpers.params())
  for step in range(7):
    _, state = tx.update(helpers.grads(step, helpers.params()), state)
    cap = schedule(step)
    assert max(float(s.max()) for s in jax.tree.leaves(state.s)) <= cap * (1 + 1e-6)


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


def test_recommended_settings():
  assert core_optax.MAX_STEP_SIZE == {"mini-batch": 1e-3, "intermediate": 1e-2, "full-batch": 1.0}
  tx = core_optax.recommended("full-batch", stability_plasticity=True)
  state = tx.init(helpers.params())
  assert state[0].S is not None
  with pytest.raises(ValueError, match="regime must be one of"):
    core_optax.recommended("huge-batch")


def test_converges_on_a_quadratic():
  target = {"a": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([[0.5]])}
  params = jax.tree.map(jnp.zeros_like, target)
  tx = core_optax.core(0.1, weight_decay=0.0)
  state = tx.init(params)
  loss = lambda p: sum(jnp.sum((x - y) ** 2) for x, y in zip(jax.tree.leaves(p),
                                                             jax.tree.leaves(target)))
  for _ in range(300):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  assert float(loss(params)) < 1e-4

