"""CoRe in a process where 64-bit floats are on globally, as apax and jax-md set it.

Not collected by the main suite (no ``test_`` prefix): ``tests/test_x64.py`` runs
this module with pytest in a fresh process, because ``jax_enable_x64`` is a global
flag that must be set before anything is traced. With it on, Python numbers and
``optax.inject_hyperparams``' arrays default to float64, so these tests check that
float32 parameters still get float32 updates and state, and that float64 parameters
match the reference implementation (float64, relative 1e-9), with groups, freezing
and injected hyperparameters.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import chex  # noqa: E402  (after the flag, as a client sets it)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

import core_optax  # noqa: E402
from tests import helpers  # noqa: E402
from tests.reference import run_reference  # noqa: E402

GROUPS = {"p00": "layer", "p01": "layer", "p02": "head"}
SHAPES = [(4, 6), (6,), (3,)]


def test_x64_is_on_in_this_process():
  assert jnp.asarray(1.0).dtype == jnp.float64


def _dtypes(tree):
  return jax.tree.map(lambda x: x.dtype, tree)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("injected", [False, True], ids=["core", "inject_hyperparams"])
def test_updates_and_state_keep_the_parameters_dtype(dtype, injected):
  kwargs = dict(score_history=2, frozen_fraction={"a": 0.25, "b": 0.5},
                groups={"dense": {"kernel": "a", "bias": "b"}, "scale": "a"})
  factory = optax.inject_hyperparams(core_optax.core) if injected else core_optax.core
  tx = factory(1e-2, **kwargs)
  params = helpers.params(dtype)
  state = tx.init(params)
  update = jax.jit(tx.update)
  for step in range(4):
    updates, new_state = update(helpers.grads(step, params), state, params)
    assert _dtypes(updates) == _dtypes(params)
    assert _dtypes(new_state) == _dtypes(state)
    params, state = optax.apply_updates(params, updates), new_state
  core_state = (state.inner_state if injected else state)[0]
  assert core_state.tau.dtype == jnp.int32
  assert {x.dtype for x in jax.tree.leaves((core_state.g, core_state.h, core_state.s,
                                             core_state.S, core_state.threshold))} == {
      jnp.dtype(dtype)}
  assert any(bool(jnp.any(u == 0)) for u in jax.tree.leaves(updates))  # some are frozen


@pytest.mark.parametrize("b2", [0.99, None], ids=["adam", "sign"])
def test_injected_core_equals_core(b2):
  kwargs = dict(b2=b2, score_history=3, frozen_fraction=0.25,
                groups={"dense": {"kernel": "a", "bias": "b"}, "scale": "a"})
  plain = core_optax.core(1e-2, **kwargs)
  injected = optax.inject_hyperparams(core_optax.core)(1e-2, **kwargs)
  for dtype in (jnp.float32, jnp.float64):
    want, want_state = helpers.train(plain, helpers.params(dtype), 5)
    got, got_state = helpers.train(injected, helpers.params(dtype), 5)
    assert jax.tree.structure(got_state.inner_state) == jax.tree.structure(want_state)
    chex.assert_trees_all_close(got, want, rtol=1e-5 if dtype == jnp.float32 else 1e-12)
    chex.assert_trees_all_close(got_state.inner_state, want_state,
                                rtol=1e-5 if dtype == jnp.float32 else 1e-12)


@pytest.mark.parametrize("injected", [False, True], ids=["core", "inject_hyperparams"])
@pytest.mark.parametrize("b2", [0.99, -1.0], ids=["adam", "sign"])
def test_float64_matches_the_reference_with_groups_and_freezing(b2, injected):
  rng = np.random.default_rng(0)
  weights = [rng.normal(size=s) for s in SHAPES]
  centres = [rng.normal(size=s) for s in SHAPES]
  noise = np.random.default_rng(1)

  def grad_fn(step, ws):
    del step
    return [w - c + 0.5 * noise.normal(size=w.shape) for w, c in zip(ws, centres)]

  # The reference's groups are its tensors: one tensor of the concatenated layer and one head.
  layer = [np.concatenate([weights[0].ravel(), weights[1]]), weights[2]]

  def layer_grad_fn(step, ws):
    parts = [ws[0][:24].reshape(4, 6), ws[0][24:], ws[1]]
    g = grad_fn(step, parts)
    return [np.concatenate([g[0].ravel(), g[1]]), g[2]]

  grads, ref = run_reference(layer, layer_grad_fn, 60, score_history=10, frozen=[0.2, 0.4],
                             step_sizes=(1e-6, 0.1), weight_decay=[0.1, 0.3],
                             betas=(0.7375, 0.8125, 250.0, b2))
  factory = optax.inject_hyperparams(core_optax.core) if injected else core_optax.core
  tx = factory(0.1, b2=None if b2 < 0 else b2, score_history=10, groups=GROUPS,
               frozen_fraction={"layer": 0.2, "head": 0.4},
               weight_decay={"layer": 0.1, "head": 0.3})
  split = [[g[0][:24].reshape(4, 6), g[0][24:], g[1]] for g in grads]
  ours = helpers.run_ours(tx, weights, split)
  for step, (a, b) in enumerate(zip(ours, ref)):
    assert all(x.dtype == np.float64 for x in a)
    np.testing.assert_allclose(np.concatenate([a[0].ravel(), a[1]]), b[0], rtol=1e-9,
                               atol=1e-12, err_msg=f"layer after update {step + 1}")
    np.testing.assert_allclose(a[2], b[1], rtol=1e-9, atol=1e-12,
                               err_msg=f"head after update {step + 1}")
  frozen = np.abs(ref[-1][0] - ref[-2][0]) == 0
  assert frozen.sum() >= int(0.2 * 30)  # freezing was active in the compared run
