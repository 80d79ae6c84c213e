"""Training over a sequence of stages, every seed of a configuration in one vmapped program.

A stage is a set of training examples, a batch size and a number of epochs; an epoch
shuffles the stage's examples into batches, takes one optimizer step per batch and then
evaluates the model on every test set of the scenario. The first update of every stage
after the first is told ``task_boundary=True`` (Synaptic Intelligence consolidates there;
the other optimizers ignore it). For optimizers that freeze, every update also records
how many weights it froze (:func:`core_optax.frozen_mask` of the state it starts from) and
how many of those were frozen at the stage's reference update, the first one that froze
weights in the stage, from which the report measures the frozen fraction and how long the
frozen set persists.

The stages run in one ``lax.scan``, so a configuration compiles one training step and
one evaluation however many stages it has; stages of different sizes (the growing
protocol) are padded to the largest, padded examples weighing 0 in the loss. The
optimizer is built inside the program from hyperparameters passed as its arguments, so
the configurations of a step-size (or strength) grid share one compiled program through
the persistent compilation cache.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import core_optax

Data = Any
Init = Callable[[jax.Array], optax.Params]
# loss(params, data, batch, weights) -> the weighted mean training loss of example indices.
Loss = Callable[[optax.Params, Data, jax.Array, jax.Array], jax.Array]
# evaluate(params, data) -> {metric: [n_test_sets]}.
Evaluate = Callable[[optax.Params, Data], dict[str, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of training.

  Attributes:
    train: indices of the stage's training examples.
    n_epochs: passes over them.
    batch_size: examples per update (the remainder of an epoch's shuffle is dropped).
  """

  train: np.ndarray
  n_epochs: int
  batch_size: int

  @property
  def steps_per_epoch(self) -> int:
    return len(self.train) // self.batch_size

  @property
  def n_updates(self) -> int:
    return self.n_epochs * self.steps_per_epoch


@dataclasses.dataclass(frozen=True)
class Freezing:
  """How to read a freezing optimizer's selection: ``p_frozen`` and ``t_hist``."""

  frozen_fraction: float
  score_history: int


@dataclasses.dataclass(frozen=True)
class Trained:
  """What one configuration produced, for all seeds.

  Attributes:
    metrics: ``{metric: [n_seeds, n_evals, n_test_sets]}``, one evaluation per epoch.
    frozen: ``[n_seeds, n_updates]`` weights frozen per update (``None`` without freezing).
    persisting: ``[n_seeds, n_updates]`` of those, how many were frozen at the stage's
      reference update too (0 before it).
    reference: ``[n_seeds, n_updates]`` weights frozen at the stage's reference update.
  """

  metrics: dict[str, np.ndarray]
  frozen: np.ndarray | None = None
  persisting: np.ndarray | None = None
  reference: np.ndarray | None = None


def _stacked(stages: Sequence[Stage]) -> dict[str, jax.Array]:
  """The stages as arrays, training sets padded to the longest (with index 0)."""
  shapes = {(s.n_epochs, s.steps_per_epoch) for s in stages}
  if len(shapes) != 1:
    raise ValueError(f"stages must share epochs and updates per epoch, got {sorted(shapes)}.")
  longest = max(len(s.train) for s in stages)
  return {"train": jnp.asarray(np.stack([np.pad(s.train, (0, longest - len(s.train)))
                                         for s in stages])),
          "n_train": jnp.asarray([len(s.train) for s in stages]),
          "batch_size": jnp.asarray([s.batch_size for s in stages]),
          "boundary": jnp.arange(len(stages)) > 0}


def train(make_tx: Callable[[Any], optax.GradientTransformationExtraArgs], hyperparameters: Any,
          seeds: jax.Array, data: Data, *, init: Init, loss: Loss, evaluate: Evaluate,
          stages: Sequence[Stage], frozen: Freezing | None = None) -> Trained:
  """Trains one model per seed through ``stages``, evaluating after every epoch.

  Seeds differ in initial weights and batch order; the data (passed to the program as
  an argument, shared by the seeds) and the stages are the same for all.

  Args:
    make_tx: ``make_tx(hyperparameters)`` returns the optimizer (traced hyperparameters);
      its ``update`` gets ``task_boundary`` as an extra argument.
    hyperparameters: a pytree of numbers, passed to the program as arrays.
    seeds: ``[n_seeds]`` ints.
    data: a pytree of arrays that ``loss`` and ``evaluate`` index.
    init: ``init(key)`` returns initial parameters.
    loss: the weighted training loss of a batch.
    evaluate: the test metrics on every test set.
    stages: the stages, in order; they must share ``n_epochs`` and ``steps_per_epoch``.
    frozen: how ``tx`` freezes, to record its frozen sets; ``None`` records nothing.

  Returns:
    The :class:`Trained` metrics.

  Raises:
    ValueError: for stages of different epochs or updates per epoch.
  """
  schedule = _stacked(stages)
  n_epochs, n_steps = stages[0].n_epochs, stages[0].steps_per_epoch
  max_batch = max(s.batch_size for s in stages)

  def step(carry, xs, data, stage, tx):
    params, opt_state, reference, have_reference = carry
    order, index = xs
    batch = jax.lax.dynamic_slice(order, (index * stage["batch_size"],), (max_batch,))
    weights = (jnp.arange(max_batch) < stage["batch_size"]).astype(jnp.float32)
    grads = jax.grad(loss)(params, data, batch, weights)
    boundary = stage["boundary"] & stage["first_epoch"] & (index == 0)
    updates, new_state = tx.update(grads, opt_state, params, task_boundary=boundary)
    out = {}
    if frozen is not None:
      masks = jax.tree.leaves(core_optax.frozen_mask(  # what this update froze
          opt_state, score_history=frozen.score_history, frozen_fraction=frozen.frozen_fraction))
      count = sum(jnp.sum(m) for m in masks)
      take = ~have_reference & (count > 0)
      reference = [jnp.where(take, m, r) for m, r in zip(masks, reference)]
      have_reference = have_reference | take
      out = {"frozen": count,
             "persisting": sum(jnp.sum(m & r) for m, r in zip(masks, reference)),
             "reference": sum(jnp.sum(r) for r in reference)}
    return (optax.apply_updates(params, updates), new_state, reference, have_reference), out

  def epoch(carry, xs, data, stage, tx):
    key, first_epoch = xs
    valid = jnp.arange(stage["train"].shape[0]) < stage["n_train"]
    shuffle = jnp.where(valid, jax.random.uniform(key, valid.shape), 2.0)
    order = stage["train"][jnp.argsort(shuffle)]  # the stage's examples first, shuffled
    order = jnp.concatenate([order, jnp.zeros(max_batch, order.dtype)])  # room to slice
    stage = {**stage, "first_epoch": first_epoch}
    carry, per_step = jax.lax.scan(lambda c, i: step(c, (order, i), data, stage, tx), carry,
                                   jnp.arange(n_steps))
    return carry, (evaluate(carry[0], data), per_step)

  def one_stage(carry, xs, data, tx):
    stage, key = xs
    params, opt_state = carry
    reference = [jnp.zeros(x.shape, bool) for x in jax.tree.leaves(params)]
    (params, opt_state, _, _), out = jax.lax.scan(
        lambda c, x: epoch(c, x, data, stage, tx),
        (params, opt_state, reference, jnp.asarray(False)),
        (jax.random.split(key, n_epochs), jnp.arange(n_epochs) == 0))
    return (params, opt_state), out

  def one_seed(seed, data, hyperparameters):
    tx = make_tx(hyperparameters)
    k_init, k_train = jax.random.split(jax.random.key(seed))
    params = init(k_init)
    _, (metrics, per_step) = jax.lax.scan(
        lambda c, x: one_stage(c, x, data, tx), (params, tx.init(params)),
        (schedule, jax.random.split(k_train, len(stages))))
    # [stages, epochs, ...] -> [evaluations, ...] and [updates].
    return (jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), metrics),
            jax.tree.map(lambda x: x.reshape(-1), per_step))

  hyperparameters = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hyperparameters)
  metrics, per_step = jax.jit(jax.vmap(one_seed, in_axes=(0, None, None)))(
      jnp.asarray(seeds), data, hyperparameters)
  metrics = {name: np.asarray(value) for name, value in metrics.items()}
  if frozen is None:
    return Trained(metrics)
  return Trained(metrics, *(np.asarray(per_step[k]) for k in ("frozen", "persisting",
                                                              "reference")))
