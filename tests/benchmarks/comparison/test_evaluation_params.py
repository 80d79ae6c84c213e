"""Schedule-free AdamW is evaluated at its averaged parameters, everything else where it trains."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax import contrib

from benchmarks.comparison import optimizers
from benchmarks.comparison import task as task_lib
from benchmarks.comparison.tasks.common import training


def _quadratic(tx, n_epochs=4):
  """One weight, loss (w - 1)^2 per step, two steps per epoch; evaluates w itself."""
  return training.train(
      tx, jnp.arange(2), None,
      init=lambda key, data: jnp.zeros(()),
      batches=lambda key, data: jnp.zeros((2,)),
      loss=lambda params, data, batch, key: (params - 1.0)**2,
      evaluate=lambda params, data: {"w": params},
      n_epochs=n_epochs)["w"]


def _by_hand(tx, n_epochs=4):
  """What the trainer should report: the evaluation parameters after each epoch."""
  params, state, seen = jnp.zeros(()), None, []
  state = tx.init(params)
  for _ in range(n_epochs):
    for _ in range(2):
      grads = jax.grad(lambda p: (p - 1.0)**2)(params)
      updates, state = tx.update(grads, state, params)
      params = optax.apply_updates(params, updates)
    seen.append(task_lib.evaluation_params(tx, params, state))
  return np.asarray(seen)


def test_schedule_free_is_evaluated_at_its_average_and_adam_where_it_trains():
  sf = optimizers.OPTIMIZERS["SF-AdamW"].build(0.1)
  assert isinstance(sf, task_lib.EvaluatedTransformation)
  evaluated = _quadratic(sf)
  np.testing.assert_allclose(evaluated[0], _by_hand(sf), rtol=1e-6)
  trained = _by_hand(contrib.schedule_free_adamw(0.1))  # not an EvaluatedTransformation
  assert not np.allclose(evaluated[0], trained)  # the average is not the training point y
  adam = optimizers.OPTIMIZERS["Adam"].build(0.1)
  np.testing.assert_allclose(_quadratic(adam)[0], _by_hand(adam), rtol=1e-6)


def test_every_optimizer_builds_at_its_default_and_updates_finitely():
  params = {"w": jnp.ones((3,)), "b": jnp.zeros(())}
  grads = {"w": jnp.array([0.1, -0.2, 0.3]), "b": jnp.array(0.5)}
  for name, optimizer in optimizers.OPTIMIZERS.items():
    for regime in ("mini-batch", "intermediate", "full-batch"):
      tx = optimizer.build(optimizer.default[regime])
      updates, _ = tx.update(grads, tx.init(params), params)
      assert all(np.isfinite(u).all() for u in jax.tree.leaves(updates)), name
    assert optimizer.default_source, name
