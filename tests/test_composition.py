"""CoRe composes with optax's wrappers and combinators, and its state is a plain pytree.

Freezing is on wherever it matters (``score_history=2, frozen_fraction=0.25``),
so every combination also runs the per-group top-k selection.
"""

from __future__ import annotations

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax
from tests import helpers


def core_with_freezing(**kwargs):
  return core_optax.core(1e-2, score_history=2, frozen_fraction=0.25, **kwargs)


def test_chain_with_clip_by_global_norm_is_core_on_clipped_gradients():
  params, loss_fn, xs, ys = helpers.least_squares()
  chained = optax.chain(optax.clip_by_global_norm(0.1), core_with_freezing())
  clip = lambda g: optax.clip_by_global_norm(0.1).update(g, optax.EmptyState())[0]
  clipped_grad = lambda p, x, y: clip(jax.grad(loss_fn)(p, x, y))
  got, _, _ = helpers.train_on_batches(chained, params, loss_fn, xs, ys)
  want, _, _ = helpers.train_on_batches(core_with_freezing(), params, loss_fn, xs, ys,
                                        grad_fn=clipped_grad)
  chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-7)


def test_multisteps_applies_core_to_the_mean_of_k_gradients_once_every_k_steps():
  params, loss_fn, xs, ys = helpers.least_squares()
  k = 3
  accumulated = optax.MultiSteps(core_with_freezing(), every_k_schedule=k)
  got, state, updates = helpers.train_on_batches(accumulated, params, loss_fn, xs, ys)
  for i, u in enumerate(updates):  # zero updates except on every k-th micro-step
    is_zero = all(bool(jnp.all(leaf == 0)) for leaf in jax.tree.leaves(u))
    assert is_zero == ((i + 1) % k != 0), i
  assert int(state.inner_opt_state[0].tau) == helpers.BATCHES // k
  # The same as CoRe on the mean gradient of each window of k batches.
  mean_grad = lambda p, x, y: jax.tree.map(
      lambda *g: sum(g) / k, *[jax.grad(loss_fn)(p, x[j], y[j]) for j in range(k)])
  windows = helpers.BATCHES // k
  want, _, _ = helpers.train_on_batches(core_with_freezing(), params, loss_fn,
                                        xs.reshape(windows, k, *xs.shape[1:]),
                                        ys.reshape(windows, k, *ys.shape[1:]), grad_fn=mean_grad)
  chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("groups_as", ["callable", "pytree"])
@pytest.mark.parametrize("combinator", ["multi_transform", "partition"])
def test_core_on_one_part_and_adam_on_the_other_as_if_each_ran_alone(combinator, groups_as):
  params, loss_fn, xs, ys = helpers.least_squares()
  # Inside a partition CoRe sees only its part (optax.MaskedNode elsewhere): a
  # callable is called on that part; a pytree of labels for all parameters loses
  # the labels of the other part, and mappings may still name them.
  if groups_as == "callable":
    core_tx = alone = core_with_freezing(groups=lambda p: jax.tree.map(lambda _: "weights", p))
  else:
    core_tx = core_optax.core(1e-2, score_history=2, groups={"w": "weights", "b": "biases"},
                              frozen_fraction={"weights": 0.25, "biases": 0.5},
                              weight_decay={"weights": 0.1, "biases": 0.0})
    alone = core_with_freezing(groups={"w": "weights"})
  adam_tx = optax.adam(1e-2)
  tx = getattr(optax, combinator)({"core": core_tx, "adam": adam_tx}, {"w": "core", "b": "adam"})
  got, _, _ = helpers.train_on_batches(tx, params, loss_fn, xs, ys)

  # The same by hand: CoRe updates {"w"}, Adam updates {"b"}, from the same gradients.
  core_tx, p = alone, params
  core_state, adam_state = core_tx.init({"w": p["w"]}), adam_tx.init({"b": p["b"]})
  for x, y in zip(xs, ys):
    g = jax.grad(loss_fn)(p, x, y)
    u_w, core_state = core_tx.update({"w": g["w"]}, core_state, {"w": p["w"]})
    u_b, adam_state = adam_tx.update({"b": g["b"]}, adam_state, {"b": p["b"]})
    p = optax.apply_updates(p, {**u_w, **u_b})
  chex.assert_trees_all_close(got, p, rtol=1e-6, atol=1e-7)


def test_masked_core_updates_the_masked_in_leaves_and_passes_the_rest_through():
  params, loss_fn, xs, ys = helpers.least_squares()
  core_tx = core_with_freezing()
  tx = optax.masked(core_tx, {"w": True, "b": False})
  state = tx.init(params)
  g = jax.grad(loss_fn)(params, xs[0], ys[0])
  updates, state = tx.update(g, state, params)
  want_w, _ = core_tx.update({"w": g["w"]}, core_tx.init({"w": params["w"]}), {"w": params["w"]})
  np.testing.assert_array_equal(updates["w"], want_w["w"])
  np.testing.assert_array_equal(updates["b"], g["b"])  # optax.masked leaves others as they came


def test_schedule_free_wraps_core_and_reduces_the_loss():
  """Schedule-free runs CoRe's update on a z sequence and averages; it applies mechanically.

  Its authors ask for the base optimizer's momentum to be off; CoRe's beta1
  (``b1_initial = b1_final = 0``) can be, but its RPROP step-size rule then reads
  signs of raw gradients, so whether the pair trains better is an open question.
  """
  params, loss_fn, xs, ys = helpers.least_squares()
  x, y = jnp.stack([xs[0]] * 50), jnp.stack([ys[0]] * 50)  # 50 full-batch steps
  s_max = 1e-2
  tx = optax.contrib.schedule_free(
      core_optax.core(s_max, b1_initial=0.0, b1_final=0.0), learning_rate=s_max)
  trained, state, _ = helpers.train_on_batches(tx, params, loss_fn, x, y)
  eval_params = optax.contrib.schedule_free_eval_params(state, trained)
  assert loss_fn(eval_params, x[0], y[0]) < 0.8 * loss_fn(params, x[0], y[0])


def test_state_is_a_pytree_of_arrays_for_tree_map_device_put_and_donation():
  params, loss_fn, xs, ys = helpers.least_squares()
  tx = core_with_freezing()
  _, state, _ = helpers.train_on_batches(tx, params, loss_fn, xs[:3], ys[:3])

  # tree.map, device_put and donation reach every array of the state, fresh from init
  # or trained: each is a leaf, and each leaf is a jax.Array (no numpy array or Python
  # number hidden in the state).
  for tree in (tx.init(params), state):
    core_state = tree[0]
    arrays = [core_state.tau, core_state.threshold,
              *jax.tree.leaves((core_state.g, core_state.h, core_state.s, core_state.S))]
    leaves = jax.tree.leaves(tree)
    assert [type(leaf) for leaf in leaves if not isinstance(leaf, jax.Array)] == []
    assert {id(leaf) for leaf in leaves} == {id(x) for x in arrays}
  copied = jax.tree.map(jnp.copy, state)
  chex.assert_trees_all_close(copied, state, rtol=0, atol=0)
  moved = jax.device_put(state, jax.devices()[0])
  assert all(leaf.devices() == {jax.devices()[0]} for leaf in jax.tree.leaves(moved))
  chex.assert_trees_all_close(moved, state, rtol=0, atol=0)

  # A state cast leaf by leaf (to bfloat16, say, for storage) stays in those dtypes:
  # update stores what it computes in the dtypes of the state it is given.
  as_bf16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16) if a.dtype == jnp.float32 else a, state)
  assert state[0].h["w"].dtype == jnp.float32 and as_bf16[0].h["w"].dtype == jnp.bfloat16
  _, new_state = jax.jit(tx.update)(jax.grad(loss_fn)(params, xs[3], ys[3]), as_bf16, params)
  assert jax.tree.map(lambda a: a.dtype, new_state) == jax.tree.map(lambda a: a.dtype, as_bf16)

  def step(params, state, x, y):
    updates, state = tx.update(jax.grad(loss_fn)(params, x, y), state, params)
    return optax.apply_updates(params, updates), state

  want = jax.jit(step)(params, copied, xs[3], ys[3])
  donated_params, donated_state = jax.tree.map(jnp.copy, (params, copied))
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # "Some donated buffers were not usable" fails the test
    got = jax.jit(step, donate_argnums=(0, 1))(donated_params, donated_state, xs[3], ys[3])
  chex.assert_trees_all_close(got, want, rtol=0, atol=0)
  assert all(leaf.is_deleted() for leaf in jax.tree.leaves(donated_state))


def test_tree_map_params_maps_the_parameter_shaped_state_with_per_group_mappings():
  """optax.tree_map_params (used to derive state shardings) calls init on a leafless placeholder."""
  params, _, _, _ = helpers.least_squares()
  tx = core_optax.core(1e-2, weight_decay={"kernel": 0.1, "bias": 0.0}, score_history=2,
                       frozen_fraction={"kernel": 0.25, "bias": 0.0},
                       groups={"w": "kernel", "b": "bias"})
  state = tx.init(params)
  names = optax.tree_map_params(tx, lambda _, name: name, state, {"w": "W", "b": "B"},
                                transform_non_params=lambda _: None)
  core_state = names[0]
  for field in (core_state.g, core_state.h, core_state.s, core_state.S):
    assert field == {"w": "W", "b": "B"}
  assert core_state.tau is None
