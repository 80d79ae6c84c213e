"""Synaptic Intelligence, CoRe's frozen sets read from its state, and the random controls."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.continual import baselines
from benchmarks.continual import freezing
import core_optax


def _si_after_one_task(strength):
  """SI+SGD through a first task of 5 steps on a quadratic, then the boundary update."""
  tx = optax.chain(baselines.add_synaptic_intelligence(strength), optax.sgd(0.1))
  params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(3.0)}
  loss = lambda p: jnp.sum((p["w"] - jnp.array([0.0, 1.0, 2.0]))**2) + p["b"]**2
  state = tx.init(params)
  for _ in range(5):
    updates, state = tx.update(jax.grad(loss)(params), state, params, task_boundary=False)
    params = optax.apply_updates(params, updates)
  return tx, params, state, loss


def test_si_adds_the_gradient_of_its_penalty_after_a_boundary():
  tx, params, state, loss = _si_after_one_task(strength=0.7)
  grads = jax.grad(loss)(params)
  _, state = tx.update(grads, state, params, task_boundary=True)
  # Later in the next task the weights have moved away from the anchor.
  moved = jax.tree.map(lambda p: p + 0.3, params)
  new_grads = jax.grad(loss)(moved)
  si_state = state[0]
  penalized, _ = baselines.add_synaptic_intelligence(0.7).update(new_grads, si_state, moved,
                                                                 task_boundary=False)
  expected = jax.grad(lambda p: baselines.synaptic_intelligence_penalty(si_state, p, 0.7))(moved)
  for leaf in ("w", "b"):
    np.testing.assert_allclose(penalized[leaf] - new_grads[leaf], expected[leaf], rtol=1e-5)
    assert np.all(np.abs(expected[leaf]) > 0)


def test_si_importance_is_the_clipped_path_integral_over_the_squared_change():
  tx, params, state, loss = _si_after_one_task(strength=1.0)
  start = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(3.0)}
  # The path integral of SGD steps sums -G^t (theta^{t+1} - theta^t) over the 5 steps.
  p, path = start, jax.tree.map(jnp.zeros_like, start)
  for _ in range(5):
    g = jax.grad(loss)(p)
    new = jax.tree.map(lambda w, gw: w - 0.1 * gw, p, g)
    path = jax.tree.map(lambda o, gw, a, b: o - gw * (a - b), path, g, new, p)
    p = new
  _, state = tx.update(jax.grad(loss)(params), state, params, task_boundary=True)
  for leaf in ("w", "b"):
    expected = np.maximum(path[leaf], 0) / ((params[leaf] - start[leaf])**2 + 0.1)
    np.testing.assert_allclose(state[0].importance[leaf], expected, rtol=1e-5)
    np.testing.assert_allclose(state[0].anchor[leaf], params[leaf])
    np.testing.assert_array_equal(state[0].path[leaf], 0)


def test_si_without_a_boundary_leaves_the_gradients_alone():
  tx, params, state, loss = _si_after_one_task(strength=10.0)
  grads = jax.grad(loss)(params)
  penalized, _ = tx.update(grads, state, params, task_boundary=False)
  plain, _ = optax.sgd(0.1).update(grads, optax.sgd(0.1).init(params))
  for leaf in ("w", "b"):
    np.testing.assert_array_equal(penalized[leaf], plain[leaf])


@pytest.mark.parametrize("strength, damping", [(-1.0, 0.1), (1.0, 0.0)])
def test_si_rejects_bad_hyperparameters(strength, damping):
  with pytest.raises(ValueError):
    baselines.add_synaptic_intelligence(strength, damping)


def _train(tx, steps, key=0):
  """A few updates on a random regression; returns (per-update masks, per-update updates)."""
  k1, k2, k3 = jax.random.split(jax.random.key(key), 3)
  params = {"a": jax.random.normal(k1, (20, 5)), "b": jax.random.normal(k2, (5,))}
  x = jax.random.normal(k3, (64, 20))
  loss = lambda p: jnp.mean((jnp.tanh(x @ p["a"] + p["b"]) - 0.3)**2)
  state = tx.init(params)
  update, grad = jax.jit(tx.update), jax.jit(jax.grad(loss))
  masks, all_updates = [], []
  for _ in range(steps):
    updates, new_state = update(grad(params), state, params)
    masks.append(jax.tree.leaves(core_optax.frozen_mask(state, score_history=3,
                                                        frozen_fraction=0.2)))
    all_updates.append(jax.tree.leaves(updates))
    params, state = optax.apply_updates(params, updates), new_state
  return masks, all_updates


def test_frozen_mask_is_the_weights_core_did_not_move():
  masks, updates = _train(core_optax.core(1e-2, score_history=3, frozen_fraction=0.2), 8)
  for step, (mask, update) in enumerate(zip(masks, updates)):
    for m, u in zip(mask, update):
      if step < 3:
        assert not np.any(m)
      else:
        assert np.sum(m) >= int(0.2 * m.size) > 0
        assert np.all(np.asarray(u)[np.asarray(m)] == 0)
        assert np.all(np.asarray(u)[~np.asarray(m)] != 0)


@pytest.mark.parametrize("fixed", [True, False])
def test_random_freezing_freezes_floor_p_n_random_weights(fixed):
  tx = freezing.core_with_random_freezing(1e-2, frozen_fraction=0.2, score_history=3,
                                          fixed=fixed)
  masks, updates = _train(tx, 8)
  later = [np.concatenate([np.ravel(m) for m in mask]) for mask in masks[3:]]
  for mask, update in zip(masks[3:], updates[3:]):
    for m, u in zip(mask, update):
      assert np.sum(m) == int(0.2 * m.size)
      assert np.all(np.asarray(u)[np.asarray(m)] == 0)
  same = all(np.array_equal(later[0], m) for m in later[1:])
  assert same == fixed


def test_random_freezing_differs_between_initial_weights():
  tx = freezing.core_with_random_freezing(1e-2, frozen_fraction=0.2, score_history=3,
                                          fixed=True)
  first, _ = _train(tx, 4, key=0)
  second, _ = _train(tx, 4, key=1)
  assert not np.array_equal(first[-1][0], second[-1][0])
