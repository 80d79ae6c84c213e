"""Epoch-based training of one model per seed, all seeds in one jit program.

Used by SR, SS, TS and MLP. A task supplies the pieces; this module runs
``n_epochs`` epochs of optimizer steps and evaluates after each epoch, vmapped
over seeds. The data travel as jit arguments (not as constants folded into
the program) and are shared by all seeds.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison import task as task_lib

Data = Any
# init(key, data) -> params.
Init = Callable[[jax.Array, Data], optax.Params]
# batches(key, data) -> a pytree whose leaves have a leading [n_steps] axis:
# what one epoch's optimizer steps see (e.g. shuffled indices).
Batches = Callable[[jax.Array, Data], Any]
# loss(params, data, batch, key) -> scalar training loss of one step.
Loss = Callable[[optax.Params, Data, Any, jax.Array], jax.Array]
# evaluate(params, data) -> named scalar test metrics.
Evaluate = Callable[[optax.Params, Data], dict[str, jax.Array]]
# per_seed(key, data) -> the data one seed trains on (e.g. its own split).
PerSeed = Callable[[jax.Array, Data], Data]


def train(tx: optax.GradientTransformation, seeds: jax.Array, data: Data, *,
          init: Init, batches: Batches, loss: Loss, evaluate: Evaluate,
          n_epochs: int, per_seed: PerSeed | None = None) -> dict[str, np.ndarray]:
  """Trains one model per seed with ``tx`` and evaluates after every epoch.

  Seeds differ in initial weights, data order, dropout and whatever
  ``per_seed`` derives from the seed.

  Returns:
    Each metric of ``evaluate`` as an array ``[n_seeds, n_epochs]``.
  """

  def one_seed(seed, data):
    k_init, k_data, k_train = jax.random.split(jax.random.key(seed), 3)
    if per_seed is not None:
      data = per_seed(k_data, data)
    params = init(k_init, data)

    def step(carry, batch_and_key):
      params, opt_state = carry
      batch, key = batch_and_key
      grads = jax.grad(loss)(params, data, batch, key)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    def epoch(carry, key):
      k_batches, k_steps = jax.random.split(key)
      epoch_batches = batches(k_batches, data)
      n_steps = jax.tree.leaves(epoch_batches)[0].shape[0]
      carry, _ = jax.lax.scan(
          step, carry, (epoch_batches, jax.random.split(k_steps, n_steps)))
      return carry, evaluate(task_lib.evaluation_params(tx, *carry), data)

    _, metrics = jax.lax.scan(epoch, (params, tx.init(params)),
                              jax.random.split(k_train, n_epochs))
    return metrics

  metrics = jax.jit(jax.vmap(one_seed, in_axes=(0, None)))(jnp.asarray(seeds), data)
  return {name: np.asarray(value) for name, value in metrics.items()}
