"""``core_optax.frozen_mask``: the weights the next update freezes, read from the state.

The mask is checked against what the update does: with gradients that are never exactly 0,
a weight's update is exactly 0 if and only if eq. 5 froze it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax

T_HIST = 3
STEPS = 10
FRACTIONS = {"kernel": 0.3, "bias": 0.25, "scale": 0.0}


def _by_name(params):
  """``groups``: one group of both kernels, one of both biases, one of the scalar."""
  name = lambda path: str(path[-1].key)  # noqa: E731
  return jax.tree_util.tree_map_with_path(
      lambda path, _: name(path) if name(path) in ("kernel", "bias") else "scale", params)


def _params():
  """Two layers (kernels 8x6 and 6x3, their biases) and a scalar."""
  k1, k2 = jax.random.split(jax.random.key(1))
  return {"dense": {"kernel": jax.random.normal(k1, (8, 6)), "bias": jnp.zeros(6)},
          "head": {"kernel": jax.random.normal(k2, (6, 3)), "bias": jnp.zeros(3)},
          "scale": jnp.asarray(0.5)}


def _grads(step, params):
  """Noisy gradients at least 0.1 from 0, so that an update of exactly 0 means frozen."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.fold_in(jax.random.key(0), step), len(leaves))
  noise = [p + jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]
  return treedef.unflatten([g + jnp.where(g < 0, -0.1, 0.1) for g in noise])


def _mask_of(**settings):
  """``frozen_mask`` with the optimizer's settings, jitted (eager, it retraces its search)."""
  return jax.jit(functools.partial(core_optax.frozen_mask, **settings))


def _trajectory(tx, mask_of, steps=STEPS):
  """Per update: ``mask_of(state before it)``, and the update."""
  params = _params()
  state = tx.init(params)
  update = jax.jit(tx.update)
  out = []
  for step in range(steps):
    mask = mask_of(state)
    updates, state = update(_grads(step, params), state, params)
    assert all(np.all(np.asarray(g) != 0) for g in jax.tree.leaves(_grads(step, params)))
    out.append((mask, updates))
    params = optax.apply_updates(params, updates)
  return out


def _assert_mask_is_the_zero_updates(trajectory):
  frozen_counts = []
  for step, (mask, updates) in enumerate(trajectory):
    assert jax.tree.structure(mask) == jax.tree.structure(updates)
    for m, u in zip(jax.tree.leaves(mask), jax.tree.leaves(updates)):
      assert m.dtype == bool and m.shape == u.shape
      np.testing.assert_array_equal(np.asarray(m), np.asarray(u) == 0, err_msg=f"update {step}")
    frozen_counts.append(sum(int(np.sum(m)) for m in jax.tree.leaves(mask)))
  assert frozen_counts[:T_HIST] == [0] * T_HIST
  assert all(c > 0 for c in frozen_counts[T_HIST:])  # the check is not vacuous
  return frozen_counts


def test_all_false_until_tau_exceeds_t_hist():
  tx = core_optax.core(1e-2, score_history=T_HIST, frozen_fraction=0.3)
  mask_of = _mask_of(score_history=T_HIST, frozen_fraction=0.3)
  params = _params()
  state = tx.init(params)
  update = jax.jit(tx.update)
  for step in range(T_HIST):
    assert int(state[0].tau) == step
    mask = mask_of(state)
    assert jax.tree.structure(mask) == jax.tree.structure(params)
    assert not any(np.any(m) for m in jax.tree.leaves(mask)), step
    _, state = update(_grads(step, params), state, params)
  # The update after t_hist freezes floor(0.3 n) (or a few more, the tie band) per leaf.
  mask = mask_of(state)
  for m, p in zip(jax.tree.leaves(mask), jax.tree.leaves(params)):
    assert np.sum(m) >= int(0.3 * p.size)


def test_equals_the_weights_the_next_update_does_not_move():
  tx = core_optax.core(1e-2, score_history=T_HIST, frozen_fraction=0.3)
  counts = _assert_mask_is_the_zero_updates(_trajectory(
      tx, _mask_of(score_history=T_HIST, frozen_fraction=0.3)))
  # floor(0.3 n) per leaf: 14 + 1 + 5 + 0 + 0.
  assert min(counts[T_HIST:]) >= 20


def test_equals_the_weights_the_next_update_does_not_move_per_group():
  # Each label's group spans both layers; the scalar's group freezes nothing.
  tx = core_optax.core(1e-2, score_history=T_HIST, frozen_fraction=FRACTIONS, groups=_by_name,
                       weight_decay={"kernel": 0.1, "bias": 0.0, "scale": 0.0})
  trajectory = _trajectory(tx, _mask_of(score_history=T_HIST, frozen_fraction=FRACTIONS,
                                        groups=_by_name))
  _assert_mask_is_the_zero_updates(trajectory)
  for mask, _ in trajectory[T_HIST:]:
    kernels = int(np.sum(mask["dense"]["kernel"])) + int(np.sum(mask["head"]["kernel"]))
    biases = int(np.sum(mask["dense"]["bias"])) + int(np.sum(mask["head"]["bias"]))
    assert kernels >= int(0.3 * (48 + 18)) and biases >= int(0.25 * (6 + 3))
    assert not mask["scale"]


def test_none_without_scores():
  tx = core_optax.core(1e-2)
  params = _params()
  state = tx.init(params)
  for step in range(2):
    assert core_optax.frozen_mask(state, score_history=None, frozen_fraction=0.0) is None
    _, state = tx.update(_grads(step, params), state, params)


@pytest.mark.parametrize("tx", [
    optax.adam(1e-3),
    optax.chain(core_optax.scale_by_core(1e-2, score_history=2, frozen_fraction=0.5),
                core_optax.scale_by_core(1e-2, score_history=2, frozen_fraction=0.5)),
], ids=["no CoRe state", "two CoRe states"])
def test_a_state_without_exactly_one_core_state_is_a_clear_error(tx):
  state = tx.init(_params())
  with pytest.raises(ValueError, match="exactly one ScaleByCoreState"):
    core_optax.frozen_mask(state, score_history=2, frozen_fraction=0.5)


def test_finds_core_inside_a_chain_and_runs_under_jit():
  tx = optax.chain(optax.clip_by_global_norm(10.0),
                   core_optax.core(1e-2, score_history=T_HIST, frozen_fraction=FRACTIONS,
                                   groups=_by_name))
  # t_hist traced too, as when the optimizer is built from traced hyperparameters.
  jitted = jax.jit(lambda state, t_hist: core_optax.frozen_mask(
      state, score_history=t_hist, frozen_fraction=FRACTIONS, groups=_by_name))
  trajectory = _trajectory(tx, lambda state: (jitted(state, T_HIST), state))
  _assert_mask_is_the_zero_updates([(mask, updates) for (mask, _), updates in trajectory])
  for (mask, state), _ in trajectory[T_HIST:T_HIST + 2]:  # eager is slow: two states
    eager = core_optax.frozen_mask(state, score_history=T_HIST, frozen_fraction=FRACTIONS,
                                   groups=_by_name)
    for a, b in zip(jax.tree.leaves(mask), jax.tree.leaves(eager), strict=True):
      np.testing.assert_array_equal(a, b)
