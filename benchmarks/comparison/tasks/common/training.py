"""Epoch-based training of one model per seed, all seeds vmapped.

Used by SR, SS, TS and MLP. A task supplies the pieces; this module runs
``n_epochs`` epochs of optimizer steps and evaluates after each epoch, vmapped
over seeds. The data travel as jit arguments (not as constants folded into
the programs) and are shared by all seeds.

A step is two programs, as in the image tasks (:mod:`.image`): the gradients, which depend
on the task alone, and the update, which depends on the optimizer alone; a Python loop drives
them over the steps and epochs. The task's programs (initialisation, epoch plan, gradients,
evaluation) are compiled once per task and shape and kept for every optimizer after the
first (in this process, and across runs in the persistent compilation cache); only the
optimizer's small programs compile per optimizer. One program of everything compiled the
task's model again for every optimizer, most of quick mode's time.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

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


def full_batch(key: jax.Array, data: Data) -> jax.Array:
  """:data:`Batches` of full-batch tasks: one step per epoch, whose loss reads its data
  itself (the batch is unused)."""
  del key, data
  return jnp.zeros((1,))


class _TaskPrograms(NamedTuple):
  """The compiled, seed-vmapped programs of a task that no optimizer enters."""

  start: Callable  # (seeds, data, n_epochs) -> (params, data keys, epoch keys).
  plan: Callable  # (epoch keys, epoch, data keys, data) -> (batches, step keys).
  grads: Callable  # (params, data keys, data, batches, step keys, step) -> grads.
  evaluate: Callable  # (params, data keys, data) -> metrics.


@functools.lru_cache(maxsize=16)
def _task_programs(init: Init, batches: Batches, loss: Loss, evaluate: Evaluate,
                   per_seed: PerSeed | None) -> _TaskPrograms:
  """Builds the task's programs; kept while the same task runs again with another optimizer.

  Each seed's data (``per_seed``) is derived again inside every program from the seed's
  data key, which is cheap and keeps the shared data unbatched.
  """

  def seed_data(k_data, data):
    return data if per_seed is None else per_seed(k_data, data)

  @functools.partial(jax.jit, static_argnames="n_epochs")
  def start(seeds, data, n_epochs):
    def one_seed(seed):
      k_init, k_data, k_train = jax.random.split(jax.random.key(seed), 3)
      return (init(k_init, seed_data(k_data, data)), k_data,
              jax.random.split(k_train, n_epochs))
    return jax.vmap(one_seed)(seeds)

  @jax.jit
  @functools.partial(jax.vmap, in_axes=(0, None, 0, None))
  def plan(epoch_keys, epoch, k_data, data):
    k_batches, k_steps = jax.random.split(epoch_keys[epoch])
    epoch_batches = batches(k_batches, seed_data(k_data, data))
    n_steps = jax.tree.leaves(epoch_batches)[0].shape[0]
    return epoch_batches, jax.random.split(k_steps, n_steps)

  @jax.jit
  @functools.partial(jax.vmap, in_axes=(0, 0, None, 0, 0, None))
  def grads(params, k_data, data, epoch_batches, step_keys, step):
    batch = jax.tree.map(lambda leaf: leaf[step], epoch_batches)
    return jax.grad(loss)(params, seed_data(k_data, data), batch, step_keys[step])

  @jax.jit
  @functools.partial(jax.vmap, in_axes=(0, 0, None))
  def evaluate_seeds(params, k_data, data):
    return evaluate(params, seed_data(k_data, data))

  return _TaskPrograms(start, plan, grads, evaluate_seeds)


def train(tx: optax.GradientTransformation, seeds: jax.Array, data: Data, *,
          init: Init, batches: Batches, loss: Loss, evaluate: Evaluate,
          n_epochs: int, per_seed: PerSeed | None = None) -> dict[str, np.ndarray]:
  """Trains one model per seed with ``tx`` and evaluates after every epoch.

  Seeds differ in initial weights, data order, dropout and whatever
  ``per_seed`` derives from the seed. Pass module-level functions, not lambdas: the task's
  compiled programs are kept by function (see :func:`_task_programs`).

  Returns:
    Each metric of ``evaluate`` as an array ``[n_seeds, n_epochs]``.
  """
  task = _task_programs(init, batches, loss, evaluate, per_seed)
  init_optimizer = jax.jit(jax.vmap(tx.init))

  @jax.jit
  @jax.vmap
  def apply(grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  if isinstance(tx, task_lib.EvaluatedTransformation):
    evaluation_params = jax.jit(jax.vmap(functools.partial(task_lib.evaluation_params, tx)))
  else:
    evaluation_params = lambda params, opt_state: params

  params, k_data, epoch_keys = task.start(jnp.asarray(seeds), data, n_epochs=n_epochs)
  opt_state = init_optimizer(params)
  history = []
  for epoch in range(n_epochs):
    epoch_batches, step_keys = task.plan(epoch_keys, epoch, k_data, data)
    for step in range(step_keys.shape[1]):
      grads = task.grads(params, k_data, data, epoch_batches, step_keys, step)
      params, opt_state = apply(grads, opt_state, params)
    history.append(task.evaluate(evaluation_params(params, opt_state), k_data, data))
  return {name: np.stack([np.asarray(h[name]) for h in history], axis=1) for name in history[0]}
