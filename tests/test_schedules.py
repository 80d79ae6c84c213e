"""Step sizes: a schedule of the maximal step size caps them, and they converge."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import core_optax
from tests import helpers


def test_max_step_size_schedule_caps_step_sizes():
  schedule = optax.linear_schedule(1e-1, 1e-3, transition_steps=5)
  tx = core_optax.scale_by_core(schedule, initial_step_size=1e-1)
  state = tx.init(helpers.params())
  for step in range(7):
    _, state = tx.update(helpers.grads(step, helpers.params()), state)
    cap = schedule(step)
    assert max(float(s.max()) for s in jax.tree.leaves(state.s)) <= cap * (1 + 1e-6)


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
