"""``optax.apply_if_finite(core(...))`` skips a non-finite step as if it never happened.

Without the wrapper a NaN or infinite gradient element poisons its weight and its
state for good, as in the reference (tests/test_robustness.py). With it, a step
with any non-finite gradient leaves the weights and CoRe's whole state (``tau``,
``g``, ``h``, ``s``, ``S``, ``threshold``) bitwise unchanged, eagerly, under jit
and on every device under pmap.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax
from tests import helpers

INT32_MAX = np.iinfo(np.int32).max


def _skipping(tx):
  return optax.apply_if_finite(tx, max_consecutive_errors=INT32_MAX)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, "leaf"])
def test_apply_if_finite_leaves_weights_and_whole_state_bitwise_unchanged(bad, jit):
  tx = _skipping(core_optax.core(1e-2, score_history=2, frozen_fraction=0.5))
  update = jax.jit(tx.update) if jit else tx.update
  params = helpers.wb_params()
  state = tx.init(params)
  for step in range(4):
    updates, state = update(helpers.wb_grads(step, params), state, params)
    params = optax.apply_updates(params, updates)
  grads = helpers.poisoned(helpers.wb_grads(4, params), np.nan if bad == "leaf" else bad,
                    whole_leaf=bad == "leaf")
  updates, new_state = update(grads, state, params)
  new_params = optax.apply_updates(params, updates)
  assert helpers.bits(new_params) == helpers.bits(params)
  assert helpers.bits(new_state.inner_state) == helpers.bits(state.inner_state)  # tau, g, h, s, S
  assert int(new_state.total_notfinite) == 1


def test_skipped_step_is_as_if_it_never_happened():
  tx = _skipping(core_optax.core(1e-2, score_history=2, frozen_fraction=0.5))
  update = jax.jit(tx.update)

  def train(bad_steps):
    params = helpers.wb_params()
    state = tx.init(params)
    for step in range(8):
      grads = helpers.wb_grads(step, params)
      if step in bad_steps:
        updates, state = update(helpers.poisoned(grads, np.nan), state, params)
        params = optax.apply_updates(params, updates)
      updates, state = update(grads, state, params)
      params = optax.apply_updates(params, updates)
    return params, state.inner_state

  assert helpers.bits(train(bad_steps={1, 5})) == helpers.bits(train(bad_steps=set()))


_PMAP_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax, core_optax
    assert jax.local_device_count() == 2
    tx = optax.apply_if_finite(core_optax.core(1e-2, score_history=2, frozen_fraction=0.5),
                               max_consecutive_errors=2**31 - 1)

    def step(grads, state, params):
      grads = jax.lax.pmean(grads, "devices")  # one verdict for all replicas
      updates, state = tx.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    step = jax.pmap(step, axis_name="devices")
    replicate = lambda tree: jax.tree.map(lambda x: jnp.stack([x, x]), tree)
    params = replicate({"w": jnp.arange(6.0).reshape(2, 3) / 4 - 0.5})
    state = jax.pmap(tx.init)(params)
    rng = np.random.default_rng(0)
    for _ in range(3):
      params, state = step({"w": jnp.asarray(rng.normal(size=(2, 2, 3)), jnp.float32)},
                           state, params)
    grads = rng.normal(size=(2, 2, 3)).astype(np.float32)
    grads[1, 0, 2] = np.nan  # on the second device only
    new_params, new_state = step({"w": jnp.asarray(grads)}, state, params)
    bits = lambda t: [np.asarray(x).tobytes() for x in jax.tree.leaves(t)]
    assert bits(new_params) == bits(params), "weights moved"
    assert bits(new_state.inner_state) == bits(state.inner_state), "state changed"
    assert new_state.total_notfinite.tolist() == [1, 1]
    print("skipped on both devices")
""")


def test_apply_if_finite_skips_on_every_device_under_pmap():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", _PMAP_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "skipped on both devices" in result.stdout


def test_apply_if_finite_skips_a_nan_gradient_without_touching_core_state():
  params, loss_fn, xs, ys = helpers.least_squares()
  core_tx = core_optax.core(1e-2, score_history=2, frozen_fraction=0.25)
  tx = optax.apply_if_finite(core_tx, max_consecutive_errors=3)
  nan_at = 2

  def grad_with_a_nan(p, x, y):
    g = jax.grad(loss_fn)(p, x, y)
    poisoned = jnp.all(x == xs[nan_at])  # the batch at step nan_at
    return jax.tree.map(lambda a: jnp.where(poisoned, jnp.nan, a), g)

  got, state, updates = helpers.train_on_batches(tx, params, loss_fn, xs, ys,
                                                 grad_fn=grad_with_a_nan)
  assert all(bool(jnp.all(u == 0)) for u in jax.tree.leaves(updates[nan_at]))
  assert int(state.total_notfinite) == 1
  keep = np.arange(helpers.BATCHES) != nan_at
  want, want_state, _ = helpers.train_on_batches(core_tx, params, loss_fn, xs[keep], ys[keep])
  chex.assert_trees_all_close(got, want, rtol=0, atol=0)
  chex.assert_trees_all_close(state.inner_state, want_state, rtol=0, atol=0)
