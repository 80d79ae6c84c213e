"""The ``state_dtype`` option: ``g`` and ``s`` in lower precision, ``h`` and ``S`` in float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax


def _state_bytes_per_weight(state, params) -> float:
  """Bytes of the parameter-shaped state (g, h, s, S) per weight (tau and threshold are few)."""
  n = sum(p.size for p in jax.tree.leaves(params))
  core_state = state[0]
  trees = (core_state.g, core_state.h, core_state.s, core_state.S)
  return sum(x.nbytes for x in jax.tree.leaves(trees)) / n


@pytest.mark.parametrize("freezing, expected_bytes", [(False, 8), (True, 12)])
def test_bfloat16_state_keeps_its_dtypes_and_saves_memory(freezing, expected_bytes):
  params = {"w": jnp.ones((8, 16)), "b": jnp.zeros((16,))}
  kwargs = dict(score_history=10, frozen_fraction=0.1) if freezing else {}
  tx = core_optax.core(1e-2, state_dtype=jnp.bfloat16, **kwargs)
  state = tx.init(params)
  update = jax.jit(tx.update)
  for _ in range(3):
    updates, new_state = update(jax.tree.map(jnp.ones_like, params), state, params)
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)
    state = new_state
  core_state = state[0]
  lean = jax.tree.leaves((core_state.g, core_state.s))
  assert {x.dtype for x in lean} == {jnp.dtype(jnp.bfloat16)}
  assert {x.dtype for x in jax.tree.leaves(core_state.h)} == {jnp.dtype(jnp.float32)}
  assert jax.tree.map(lambda x: x.dtype, updates) == jax.tree.map(lambda x: x.dtype, params)
  assert _state_bytes_per_weight(state, params) == expected_bytes


def test_bfloat16_state_follows_the_float32_trajectory_closely():
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.normal(size=(64,)), jnp.float32)

  def run(state_dtype):
    tx = core_optax.core(0.1, state_dtype=state_dtype)
    params = jnp.zeros(64)
    state = tx.init(params)

    @jax.jit
    def step(params, state):
      grads = jax.grad(lambda p: jnp.sum((p - target) ** 2))(params)
      updates, state = tx.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    for _ in range(300):
      params, state = step(params, state)
    return params

  full, lean = run(None), run(jnp.bfloat16)
  assert float(jnp.max(jnp.abs(full - target))) < 1e-5
  np.testing.assert_allclose(lean, full, atol=1e-5)
