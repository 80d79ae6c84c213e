"""CoRe composes with optax's wrappers and combinators, and its state is a plain pytree.

Freezing is on wherever it matters (``score_history=2, frozen_fraction=0.25``),
so every combination also runs the per-group top-k selection.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax

STEPS = 6


def make_problem():
  """A small least-squares problem: params, a loss, and per-step batches."""
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {"w": jax.random.normal(k1, (8, 4)), "b": jnp.zeros(4)}
  xs = jax.random.normal(k2, (STEPS, 16, 8))
  ys = jax.random.normal(k3, (STEPS, 16, 4))

  def loss_fn(params, x, y):
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)

  return params, loss_fn, xs, ys


def core_with_freezing(**kwargs):
  return core_optax.core(1e-2, score_history=2, frozen_fraction=0.25, **kwargs)


def train(tx, params, loss_fn, xs, ys, grad_fn=None):
  """Runs ``tx`` over the batches; returns final params, state and every update."""
  grad_fn = grad_fn or jax.grad(loss_fn)

  @jax.jit
  def step(params, state, x, y):
    updates, state = tx.update(grad_fn(params, x, y), state, params)
    return optax.apply_updates(params, updates), state, updates

  state = tx.init(params)
  all_updates = []
  for x, y in zip(xs, ys):
    params, state, updates = step(params, state, x, y)
    all_updates.append(updates)
  return params, state, all_updates


def assert_trees_close(actual, expected, rtol=1e-6, atol=1e-7):
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=rtol, atol=atol),
               actual, expected)


def test_chain_with_clip_by_global_norm_is_core_on_clipped_gradients():
  params, loss_fn, xs, ys = make_problem()
  chained = optax.chain(optax.clip_by_global_norm(0.1), core_with_freezing())
  clip = lambda g: optax.clip_by_global_norm(0.1).update(g, optax.EmptyState())[0]
  clipped_grad = lambda p, x, y: clip(jax.grad(loss_fn)(p, x, y))
  got, _, _ = train(chained, params, loss_fn, xs, ys)
  want, _, _ = train(core_with_freezing(), params, loss_fn, xs, ys, grad_fn=clipped_grad)
  assert_trees_close(got, want)


def test_multisteps_applies_core_to_the_mean_of_k_gradients_once_every_k_steps():
  params, loss_fn, xs, ys = make_problem()
  k = 3
  accumulated = optax.MultiSteps(core_with_freezing(), every_k_schedule=k)
  got, state, updates = train(accumulated, params, loss_fn, xs, ys)
  for i, u in enumerate(updates):  # zero updates except on every k-th micro-step
    is_zero = all(bool(jnp.all(leaf == 0)) for leaf in jax.tree.leaves(u))
    assert is_zero == ((i + 1) % k != 0), i
  assert int(state.inner_opt_state[0].tau) == STEPS // k
  # The same as CoRe on the mean gradient of each window of k batches.
  mean_grad = lambda p, x, y: jax.tree.map(
      lambda *g: sum(g) / k, *[jax.grad(loss_fn)(p, x[j], y[j]) for j in range(k)])
  want, _, _ = train(core_with_freezing(), params, loss_fn,
                     xs.reshape(STEPS // k, k, *xs.shape[1:]),
                     ys.reshape(STEPS // k, k, *ys.shape[1:]), grad_fn=mean_grad)
  assert_trees_close(got, want)


def test_apply_if_finite_skips_a_nan_gradient_without_touching_core_state():
  params, loss_fn, xs, ys = make_problem()
  tx = optax.apply_if_finite(core_with_freezing(), max_consecutive_errors=3)
  nan_at = 2

  def grad_with_a_nan(p, x, y):
    g = jax.grad(loss_fn)(p, x, y)
    poisoned = jnp.all(x == xs[nan_at])  # the batch at step nan_at
    return jax.tree.map(lambda a: jnp.where(poisoned, jnp.nan, a), g)

  got, state, updates = train(tx, params, loss_fn, xs, ys, grad_fn=grad_with_a_nan)
  assert all(bool(jnp.all(u == 0)) for u in jax.tree.leaves(updates[nan_at]))
  assert int(state.total_notfinite) == 1
  keep = np.arange(STEPS) != nan_at
  want, want_state, _ = train(core_with_freezing(), params, loss_fn, xs[keep], ys[keep])
  assert_trees_close(got, want, rtol=0, atol=0)
  assert_trees_close(state.inner_state, want_state, rtol=0, atol=0)


@pytest.mark.parametrize("groups_as", ["callable", "pytree"])
@pytest.mark.parametrize("combinator", ["multi_transform", "partition"])
def test_core_on_one_part_and_adam_on_the_other_as_if_each_ran_alone(combinator, groups_as):
  params, loss_fn, xs, ys = make_problem()
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
  got, _, _ = train(tx, params, loss_fn, xs, ys)

  # The same by hand: CoRe updates {"w"}, Adam updates {"b"}, from the same gradients.
  core_tx, p = alone, params
  core_state, adam_state = core_tx.init({"w": p["w"]}), adam_tx.init({"b": p["b"]})
  for x, y in zip(xs, ys):
    g = jax.grad(loss_fn)(p, x, y)
    u_w, core_state = core_tx.update({"w": g["w"]}, core_state, {"w": p["w"]})
    u_b, adam_state = adam_tx.update({"b": g["b"]}, adam_state, {"b": p["b"]})
    p = optax.apply_updates(p, {**u_w, **u_b})
  assert_trees_close(got, p)


def test_masked_core_updates_the_masked_in_leaves_and_passes_the_rest_through():
  params, loss_fn, xs, ys = make_problem()
  core_tx = core_with_freezing()
  tx = optax.masked(core_tx, {"w": True, "b": False})
  state = tx.init(params)
  g = jax.grad(loss_fn)(params, xs[0], ys[0])
  updates, state = tx.update(g, state, params)
  want_w, _ = core_tx.update({"w": g["w"]}, core_tx.init({"w": params["w"]}), {"w": params["w"]})
  np.testing.assert_array_equal(updates["w"], want_w["w"])
  np.testing.assert_array_equal(updates["b"], g["b"])  # optax.masked leaves others as they came


def test_inject_hyperparams_schedule_on_s_max_equals_the_schedule_given_to_core():
  params, loss_fn, xs, ys = make_problem()
  schedule = optax.linear_schedule(1e-1, 1e-3, transition_steps=STEPS)
  injected = optax.inject_hyperparams(core_optax.core)(
      max_step_size=schedule, score_history=2, frozen_fraction=0.25)
  got, state, _ = train(injected, params, loss_fn, xs, ys)
  want, _, _ = train(core_optax.core(schedule, score_history=2, frozen_fraction=0.25),
                     params, loss_fn, xs, ys)
  assert_trees_close(got, want)
  assert np.isclose(state.hyperparams["max_step_size"], schedule(STEPS - 1))


def test_schedule_free_wraps_core_and_reduces_the_loss():
  """Schedule-free runs CoRe's update on a z sequence and averages; it applies mechanically.

  Its authors ask for the base optimizer's momentum to be off; CoRe's beta1
  (``b1_initial = b1_final = 0``) can be, but its RPROP step-size rule then reads
  signs of raw gradients, so whether the pair trains better is an open question.
  """
  params, loss_fn, xs, ys = make_problem()
  x, y = jnp.stack([xs[0]] * 50), jnp.stack([ys[0]] * 50)  # 50 full-batch steps
  s_max = 1e-2
  tx = optax.contrib.schedule_free(
      core_optax.core(s_max, b1_initial=0.0, b1_final=0.0), learning_rate=s_max)
  trained, state, _ = train(tx, params, loss_fn, x, y)
  eval_params = optax.contrib.schedule_free_eval_params(state, trained)
  assert loss_fn(eval_params, x[0], y[0]) < 0.8 * loss_fn(params, x[0], y[0])


def test_state_is_a_pytree_for_tree_map_device_put_and_donation():
  params, loss_fn, xs, ys = make_problem()
  tx = core_with_freezing()
  _, state, _ = train(tx, params, loss_fn, xs[:3], ys[:3])

  copied = jax.tree.map(jnp.copy, state)
  assert jax.tree.structure(copied) == jax.tree.structure(state)
  assert_trees_close(copied, state, rtol=0, atol=0)
  moved = jax.device_put(state, jax.devices()[0])
  assert_trees_close(moved, state, rtol=0, atol=0)
  as_bf16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16) if a.dtype == jnp.float32 else a, state)
  assert jax.tree.structure(as_bf16) == jax.tree.structure(state)

  def step(params, state, x, y):
    updates, state = tx.update(jax.grad(loss_fn)(params, x, y), state, params)
    return optax.apply_updates(params, updates), state

  want = jax.jit(step)(params, copied, xs[3], ys[3])
  donated_params, donated_state = jax.tree.map(jnp.copy, (params, copied))
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # "Some donated buffers were not usable" fails the test
    got = jax.jit(step, donate_argnums=(0, 1))(donated_params, donated_state, xs[3], ys[3])
  assert_trees_close(got, want, rtol=0, atol=0)
  assert all(leaf.is_deleted() for leaf in jax.tree.leaves(donated_state))


def test_tree_map_params_maps_the_parameter_shaped_state_with_per_group_mappings():
  """optax.tree_map_params (used to derive state shardings) calls init on a leafless placeholder."""
  params, _, _, _ = make_problem()
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
