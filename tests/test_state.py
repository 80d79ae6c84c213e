"""The optimizer state (dtypes, counter, which moments exist) and the update's arguments.

Hyperparameter checks are in test_hyperparameters.py, jit = eager in properties_suite.py,
inject_hyperparams in test_inject_hyperparams.py, ``state_dtype`` in test_state_dtype.py.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import core_optax
from tests import helpers


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
