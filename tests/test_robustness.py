"""Failure modes of core_optax: non-finite gradients, misuse, edge cases, determinism.

Policies (README, "Failure modes"):
- Non-finite gradients propagate as in the reference: the affected weights become
  NaN; ``optax.apply_if_finite(core(...), max_consecutive_errors)`` skips such a
  step and leaves weights and the whole state unchanged (test_apply_if_finite.py).
- Misuse fails at once with a ValueError (or a TypeError for a wrong type) that
  names the argument, the value and what is allowed (hyperparameters:
  test_hyperparameters.py; trees, leaves and labels: here).
- Half-precision leaves keep their state in float32.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax
from tests import helpers
from tests.helpers import run_ours
from tests.reference import run_reference

INT32_MAX = np.iinfo(np.int32).max


# Non-finite gradients ------------------------------------------------------------------------


def test_nonfinite_gradients_poison_the_same_weights_as_the_reference(x64):
  rng = np.random.default_rng(0)
  weights = [rng.normal(size=(5,)), rng.normal(size=(3, 2))]

  def grad_fn(step, ws):
    grads = [w - 0.3 for w in ws]
    if step == 4:
      grads[0][1], grads[0][3] = np.nan, np.inf
    if step == 6:
      grads[1][0, 0] = -np.inf
    return grads

  grads, ref = run_reference(weights, grad_fn, 12)
  ours = run_ours(core_optax.core(1e-2), weights, grads)
  for ours_leaf, ref_leaf in zip(ours[-1], ref[-1]):
    np.testing.assert_allclose(ours_leaf, ref_leaf, rtol=1e-9, equal_nan=True)
  assert np.isnan(ours[-1][0]).tolist() == [False, True, False, True, False]
  assert np.isnan(ours[-1][1]).sum() == 1


def test_nonfinite_gradient_poisons_only_its_own_element_of_the_state():
  tx = core_optax.scale_by_core(1e-2, score_history=2)
  params = helpers.wb_params()
  state = tx.init(params)
  for step in range(3):
    _, state = tx.update(helpers.wb_grads(step, params), state)
  _, state = tx.update(helpers.poisoned(helpers.wb_grads(3, params), np.nan), state)
  for tree in (state.g, state.h, state.S):
    assert np.isnan(tree["w"]).tolist() == [[False, True, False], [False, False, False]]
    assert np.all(np.isfinite(tree["b"]))
  assert np.all(np.isfinite(state.s["w"]))  # comparisons with NaN are false: s is kept


# Misuse ---------------------------------------------------------------------------------------


def test_mapping_key_that_labels_no_leaf_of_callable_groups_fails_at_init():
  tx = core_optax.core(1e-3, groups=lambda p: jax.tree.map(lambda _: "all", p),
                       frozen_fraction={"all": 0.1, "typo": 0.2}, score_history=5)
  with pytest.raises(ValueError, match=r"frozen_fraction names group label\(s\) \[\"'typo'\"\] "
                                       r"that label no parameter"):
    tx.init(helpers.wb_params())


def test_mapping_may_name_labels_of_other_parts_inside_multi_transform():
  """Each part of multi_transform sees some groups only; the rest are not typos there.

  As apax builds its optimizer: one CoRe per parameter group inside multi_transform,
  each given the mappings for all groups and a callable ``groups``.
  """
  def by_name(params):  # called on the part: the other part's leaf is an optax.MaskedNode
    return {name: name for name in params}

  kwargs = dict(groups=by_name, score_history=2, weight_decay={"w": 0.1, "b": 0.0},
                frozen_fraction={"w": 0.5, "b": 0.25})
  tx = optax.multi_transform({"w_part": core_optax.core(1e-2, **kwargs),
                              "b_part": core_optax.core(1e-3, **kwargs)},
                             {"w": "w_part", "b": "b_part"})
  # The same by hand: each part alone on its leaf, with its label's values.
  alone = {"w": core_optax.core(1e-2, score_history=2, weight_decay=0.1, frozen_fraction=0.5),
           "b": core_optax.core(1e-3, score_history=2, weight_decay=0.0, frozen_fraction=0.25)}
  params = want = helpers.wb_params()
  state = tx.init(params)
  states = {k: alone[k].init({k: params[k]}) for k in alone}
  for step in range(5):
    updates, state = tx.update(helpers.wb_grads(step, params), state, params)
    params = optax.apply_updates(params, updates)
    grads = helpers.wb_grads(step, want)
    parts = {}
    for k in alone:
      parts[k], states[k] = alone[k].update({k: grads[k]}, states[k], {k: want[k]})
    want = optax.apply_updates(want, {**parts["w"], **parts["b"]})
  assert helpers.bits(params) == helpers.bits(want)
  assert int(jnp.sum(updates["w"] == 0)) == 3  # floor(0.5 * 6) frozen in the "w" part


def test_gradient_tree_that_does_not_match_the_state_names_the_path():
  tx = core_optax.core(1e-3)
  state = tx.init(helpers.wb_params())
  grads = {"w": helpers.wb_params()["w"], "bias": helpers.wb_params()["b"]}
  with pytest.raises(ValueError, match=r"updates does not match the optimizer state: updates has "
                                       r"a leaf at \['bias'\] where the optimizer state has "
                                       r"\['b'\]"):
    tx.update(grads, state, helpers.wb_params())


def test_gradient_leaf_with_another_shape_names_path_and_shapes():
  tx = core_optax.core(1e-3)
  state = tx.init(helpers.wb_params())
  grads = {**helpers.wb_params(), "b": jnp.ones((1,))}  # would broadcast silently
  with pytest.raises(ValueError, match=r"updates\['b'\] has shape \(1,\), but the optimizer "
                                       r"state has shape \(2,\) there"):
    tx.update(grads, state, helpers.wb_params())


def test_params_tree_that_does_not_match_the_updates_names_the_path():
  tx = core_optax.core(1e-3)
  state = tx.init(helpers.wb_params())
  with pytest.raises(ValueError, match=r"params does not match the updates: params has no leaf "
                                       r"at \['w'\]"):
    tx.update(helpers.wb_params(), state, {"b": helpers.wb_params()["b"]})


@pytest.mark.parametrize("leaf", [jnp.arange(3), jnp.array([True, False]), np.int8(3)],
                         ids=["int32", "bool", "int8"])
def test_integer_and_boolean_leaves_fail_clearly(leaf):
  tx = core_optax.core(1e-3)
  with pytest.raises(TypeError, match=r"params\['n'\] is .* of dtype (int|bool).*; CoRe updates "
                                      r"float and complex leaves only.*optax.masked"):
    tx.init({"x": jnp.ones(2), "n": leaf})
  state = tx.init({"x": jnp.ones(2), "n": jnp.ones(np.shape(leaf))})
  with pytest.raises(TypeError, match=r"updates\['n'\] is .* of dtype (int|bool)"):
    tx.update({"x": jnp.ones(2), "n": leaf}, state, {"x": jnp.ones(2), "n": leaf})


def test_python_number_leaves_fail_clearly():
  tx = core_optax.core(1e-3)
  state = tx.init({"x": jnp.ones(2), "y": jnp.asarray(1.0)})
  with pytest.raises(TypeError, match=r"updates\['y'\] is float, not an array; leaves must be "
                                      r"\(JAX or"):
    tx.update({"x": jnp.ones(2), "y": 0.5}, state, {"x": jnp.ones(2), "y": jnp.asarray(1.0)})


def test_integer_leaves_can_be_masked_out():
  params = {"x": jnp.ones(2), "n": jnp.arange(3)}
  is_float = lambda p: jax.tree.map(lambda x: jnp.issubdtype(x.dtype, jnp.floating), p)
  tx = optax.masked(core_optax.core(1e-2), is_float)
  updates, _ = tx.update({"x": jnp.ones(2), "n": jnp.zeros(3, jnp.int32)}, tx.init(params), params)
  assert np.all(np.asarray(updates["x"]) < 0)


# Edge cases -----------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, (), {"a": {}, "b": []}], ids=["dict", "tuple", "nested"])
def test_empty_parameter_tree(params):
  tx = core_optax.core(1e-3, score_history=2, frozen_fraction=0.5)
  state = tx.init(params)
  for _ in range(3):
    updates, state = jax.jit(tx.update)(params, state, params)
  assert updates == params
  assert int(state[0].tau) == 3


def test_zero_size_and_scalar_leaves():
  params = {"empty": jnp.zeros((0, 3)), "scalar": jnp.asarray(2.0), "w": jnp.ones(4)}
  tx = core_optax.core(1e-2, score_history=2, frozen_fraction=0.5)
  state = tx.init(params)
  for step in range(6):
    updates, state = jax.jit(tx.update)(helpers.wb_grads(step, params), state, params)
    params = optax.apply_updates(params, updates)
  assert params["empty"].shape == (0, 3)
  assert params["scalar"].shape == ()
  assert bool(jnp.isfinite(params["scalar"])) and float(params["scalar"]) != 2.0
  # floor(0.5 * 1) = 0: the scalar never freezes; floor(0.5 * 4) = 2 of w are frozen.
  assert float(updates["scalar"]) != 0.0
  assert int(jnp.sum(updates["w"] == 0)) >= 2


def test_zero_size_group_with_frozen_fraction_one():
  tx = core_optax.core(1e-2, score_history=1, frozen_fraction=1.0)
  params = {"empty": jnp.zeros((0,)), "w": jnp.ones(3)}
  state = tx.init(params)
  for step in range(3):
    updates, state = tx.update(helpers.wb_grads(step, params), state, params)
  assert updates["empty"].shape == (0,)


def test_frozen_fraction_one_freezes_everything_after_the_history():
  tx = core_optax.core(1e-2, score_history=3, frozen_fraction=1.0)
  params = helpers.wb_params()
  state = tx.init(params)
  for step in range(6):
    updates, state = jax.jit(tx.update)(helpers.wb_grads(step, params), state, params)
    moved = any(bool(jnp.any(u != 0)) for u in jax.tree.leaves(updates))
    assert moved == (step < 3), step  # tau > t_hist: every weight frozen
    params = optax.apply_updates(params, updates)


@pytest.mark.parametrize("b2", [0.99, None], ids=["adam", "sign"])
def test_counter_near_int32_max_neither_overflows_nor_produces_nan(b2):
  tx = core_optax.core(1e-2, b2=b2, score_history=250, frozen_fraction=0.1)
  params = {"w": jnp.linspace(-1.0, 1.0, 40)}
  state = tx.init(params)
  for step in range(3):
    updates, state = tx.update(helpers.wb_grads(step, params), state, params)
  inner = state[0]
  state = (inner._replace(tau=jnp.asarray(INT32_MAX - 2, jnp.int32)),) + state[1:]
  update = jax.jit(tx.update)
  for step in range(3, 8):
    updates, state = update(helpers.wb_grads(step, params), state, params)
    params = optax.apply_updates(params, updates)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((params, state)))
  assert int(state[0].tau) == INT32_MAX  # saturates (optax.safe_increment)
  assert int(jnp.sum(updates["w"] == 0)) >= 4  # still freezing floor(0.1 * 40) weights


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_tracks_float32_over_1000_steps_with_large_gradients(dtype):
  # Gradients up to ~2000: G^2 overflowed float16 (max 65504) when h was stored in float16.
  rng = np.random.default_rng(0)
  start = rng.uniform(-3, 3, size=32).astype(np.float32)
  centre = rng.uniform(-1, 1, size=32).astype(np.float32)
  curvature = rng.uniform(100, 500, size=32).astype(np.float32)
  tx = core_optax.core(0.05, weight_decay=0.0)

  def train(dtype):
    @jax.jit
    def step(params, state):
      grads = (curvature * (params.astype(jnp.float32) - centre)).astype(dtype)
      updates, state = tx.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    params = jnp.asarray(start, dtype)
    state = tx.init(params)
    for _ in range(1000):
      params, state = step(params, state)
    return np.asarray(params, np.float32), state

  reference, _ = train(jnp.float32)
  ours, state = train(dtype)
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))
  assert state[0].h.dtype == jnp.float32
  np.testing.assert_allclose(reference, centre, atol=1e-3)
  np.testing.assert_allclose(ours, reference, atol=4 * float(jnp.finfo(dtype).eps))


def test_smallest_eps_keeps_a_zero_gradient_at_zero_under_jit():
  # XLA folds the bias correction into sqrt(h) + eps; 1.2e-38 then flushed to 0: 0/0.
  tx = core_optax.core(1.0, eps=1e-30, b1_initial=1 - 2**-24)
  params = {"w": jnp.zeros(3)}
  updates, _ = jax.jit(tx.update)({"w": jnp.zeros(3)}, tx.init(params), params)
  np.testing.assert_array_equal(updates["w"], 0.0)


def test_weight_decay_beyond_the_float16_range_is_applied_in_float32():
  # s_max = 1e-6 allows d up to 1e6, which is inf in float16 (max 65504): inf * 0 = NaN.
  tx = core_optax.core(1e-6, min_step_size=1e-7, weight_decay=5e5)
  params = {"w": jnp.array([0.5, -0.25, 0.0], jnp.float16)}
  state = tx.init(params)
  for step in range(3):
    grads = {"w": jnp.array([1.0, 0.0, -2.0], jnp.float16) * step}
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  assert params["w"].dtype == jnp.float16
  assert bool(jnp.all(jnp.isfinite(params["w"])))


# Determinism ----------------------------------------------------------------------------------

_TRAIN_SCRIPT = textwrap.dedent("""
    import hashlib, jax, jax.numpy as jnp, numpy as np, optax, core_optax
    tx = core_optax.core(1e-2, score_history=3, frozen_fraction=0.3,
                         groups={"w": "layer", "b": "layer"})
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    for step in range(20):
      key = jax.random.fold_in(jax.random.key(7), step)
      grads = jax.tree.map(lambda p: p - 0.3 + jax.random.normal(key, p.shape), params)
      updates, state = update(grads, state, params)
      params = optax.apply_updates(params, updates)
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves((params, state)):
      digest.update(np.asarray(leaf).tobytes())
    print(digest.hexdigest())
""")


def test_training_is_bitwise_reproducible_across_processes():
  runs = [subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT], capture_output=True, text=True,
                         timeout=300, check=True).stdout.strip() for _ in range(2)]
  assert len(runs[0]) == 64
  assert runs[0] == runs[1]


