"""What the four image tasks share: torch-style layers and the seed-vmapped training program.

A task here is a Flax model with a training loss and test sums, a data loader, and a
:class:`Budget` per mode. :func:`make_task` turns them into a
:class:`benchmarks.comparison.task.Task` whose ``run`` trains all seeds together: one compiled
training step and one compiled test step, ``vmap``-ped over the seeds, driven over shuffled
mini-batches of 64 and epochs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison import task as task_lib
from benchmarks.comparison.data import images

Params = Any

BATCH_SIZE = 64
TEST_BATCH_SIZE = 1000


def torch_uniform(fan_in: int) -> nn.initializers.Initializer:
  """PyTorch's Linear/Conv initialiser: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_dense(features: int, fan_in: int) -> nn.Dense:
  """``nn.Dense`` initialised like ``torch.nn.Linear(fan_in, features)``."""
  return nn.Dense(features, kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in))


class TorchConv(nn.Module):
  """A valid 2-d convolution initialised like ``torch.nn.Conv2d(in_features, features, kernel)``.

  It is computed as a sum of ``kernel**2`` shifted matrix products rather than with
  ``lax.conv``: under ``vmap`` over seeds, each seed has its own kernel, which turns
  ``lax.conv`` into a grouped convolution that XLA:CPU runs about 2x slower than this sum.

  Attributes:
    features: output channels.
    in_features: input channels (the fan-in is ``in_features * kernel**2``).
    kernel: kernel height and width.
  """

  features: int
  in_features: int
  kernel: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    init = torch_uniform(self.in_features * self.kernel**2)
    k = self.param("kernel", init, (self.kernel, self.kernel, self.in_features, self.features))
    bias = self.param("bias", init, (self.features,))
    height, width = x.shape[1] - self.kernel + 1, x.shape[2] - self.kernel + 1
    return bias + sum(x[:, i:i + height, j:j + width, :] @ k[i, j]
                      for i in range(self.kernel) for j in range(self.kernel))


@dataclasses.dataclass(frozen=True)
class ImageModel:
  """A model written for one seed and one batch.

  Attributes:
    init: ``init(key, x) -> params`` for an example batch ``x``.
    train_loss: ``train_loss(params, x, y, mask, key) -> loss``; ``mask`` is 0 for the
      padding that fills the last, smaller batch of an epoch.
    test_sums: ``test_sums(params, x, y, key) -> {metric: sum over the batch}``; the key
      ``"error"`` is the scored test error, the others are reported extras.
  """

  init: Callable[[jax.Array, jax.Array], Params]
  train_loss: Callable[[Params, jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]
  test_sums: Callable[[Params, jax.Array, jax.Array, jax.Array], Mapping[str, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Budget:
  """The data and epochs one mode trains on: the first images of a fixed shuffle."""

  n_train: int
  n_test: int
  epochs: int


def describe_cuts(budget: Budget, full: Budget, data_note: str = "") -> str:
  """Says in one sentence how ``budget`` is cut relative to ``full``."""
  parts = []
  if budget.epochs < full.epochs:
    parts.append(f"{budget.epochs} of {full.epochs} epochs")
  if budget.n_train < full.n_train:
    parts.append(f"{budget.n_train} of {full.n_train} training images")
  if budget.n_test < full.n_test:
    parts.append(f"{budget.n_test} of {full.n_test} test images")
  sentence = ", ".join(parts) if parts else "no cuts"
  return f"{sentence}{data_note}"


class _ModelPrograms(NamedTuple):
  """The compiled, seed-vmapped programs of a training run that no optimizer enters."""

  init: Callable
  epoch_plan: Callable
  grads: Callable
  test_sums: Callable


@functools.lru_cache(maxsize=4)
def _model_programs(model: ImageModel, image_shape: tuple[int, ...], n_train: int,
                    n_test: int) -> _ModelPrograms:
  """Builds the model's jitted, seed-vmapped programs, kept for every optimizer of a task.

  A step is two programs: the gradients, which depend on the model alone, and the update,
  which depends on the optimizer alone (:func:`_programs`). The model's programs (the
  expensive compilations) are then compiled once per model and shape, kept in this process
  for every optimizer and loaded from the persistent cache for the task that shares the
  model (AED-digits and AEF, ICD-digits and ICF); the optimizer's are small. The batch comes
  gathered (`_gather`) for the same reason: the gradients do not depend on the size of the
  training set.
  """
  n_batches = -(-n_train // BATCH_SIZE)
  n_test_batches = n_test // _test_batch(n_test)

  @jax.jit
  @jax.vmap
  def init(seed):
    init_key, run_key = jax.random.split(jax.random.key(seed))
    return model.init(init_key, jnp.zeros((1, *image_shape))), run_key

  @jax.jit
  @functools.partial(jax.vmap, in_axes=(0, None))
  def epoch_plan(run_key, epoch):
    order_key, step_key, test_key = jax.random.split(jax.random.fold_in(run_key, epoch), 3)
    order = jnp.concatenate([jax.random.permutation(order_key, n_train),
                             jnp.zeros(n_batches * BATCH_SIZE - n_train, jnp.int32)])
    return (order.reshape(n_batches, BATCH_SIZE), jax.random.split(step_key, n_batches),
            jax.random.split(test_key, n_test_batches))

  grads = jax.jit(jax.vmap(jax.grad(model.train_loss), in_axes=(0, 0, 0, None, 0)))
  test_sums = jax.jit(jax.vmap(model.test_sums, in_axes=(0, None, None, 0)))
  return _ModelPrograms(init, epoch_plan, grads, test_sums)


class _Programs(NamedTuple):
  """The compiled, seed-vmapped pieces of one training run."""

  init: Callable
  epoch_plan: Callable
  train_step: Callable
  test_sums: Callable


def _programs(model: ImageModel, tx: optax.GradientTransformation, image_shape: tuple[int, ...],
              n_train: int, n_test: int) -> _Programs:
  """The model's programs (:func:`_model_programs`) and the optimizer's around them."""
  shared = _model_programs(model, image_shape, n_train, n_test)
  init_optimizer = jax.jit(jax.vmap(tx.init))

  def init(seeds):
    params, run_key = shared.init(seeds)
    return params, init_optimizer(params), run_key

  @functools.partial(jax.jit, donate_argnums=(1, 2))
  @jax.vmap
  def apply(grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  def train_step(params, opt_state, x, y, batch_mask, key):
    return apply(shared.grads(params, x, y, batch_mask, key), opt_state, params)

  def evaluated_test_sums(params, opt_state, x, y, key):
    return model.test_sums(task_lib.evaluation_params(tx, params, opt_state), x, y, key)

  # An optimizer that evaluates elsewhere than at its trained parameters has a test program
  # of its own; every other one shares the model's.
  if isinstance(tx, task_lib.EvaluatedTransformation):
    test_sums = jax.jit(jax.vmap(evaluated_test_sums, in_axes=(0, 0, None, None, 0)))
  else:
    test_sums = lambda params, opt_state, x, y, key: shared.test_sums(params, x, y, key)

  return _Programs(init, shared.epoch_plan, train_step, test_sums)


@jax.jit
def _gather(x: jax.Array, y: jax.Array, indices: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Every seed's batch: ``x[indices]``, ``y[indices]`` for ``indices`` of shape [seeds, batch]."""
  return x[indices], y[indices]


def _test_batch(n_test: int) -> int:
  return TEST_BATCH_SIZE if n_test % TEST_BATCH_SIZE == 0 else n_test


def _train(model: ImageModel, tx: optax.GradientTransformation, epochs: int, seeds: jax.Array,
           x_train: jax.Array, y_train: jax.Array, x_test: jax.Array,
           y_test: jax.Array) -> dict[str, np.ndarray]:
  """Trains one model per seed, all seeds vmapped; returns ``{metric: [seeds, epochs]}``.

  The seeds share one compiled training step and one compiled test step, which a Python
  loop drives over epochs and batches. (A ``lax.scan`` over the batches would make it one
  program, but XLA:CPU runs the convolutions inside a loop body about 10x slower.)
  """
  n_train, n_test = x_train.shape[0], x_test.shape[0]
  programs = _programs(model, tx, x_train.shape[1:], n_train, n_test)
  test_batch = _test_batch(n_test)
  n_batches = -(-n_train // BATCH_SIZE)
  mask = (jnp.arange(n_batches * BATCH_SIZE) < n_train).reshape(n_batches, BATCH_SIZE)

  params, opt_state, run_key = programs.init(seeds)
  history = []
  for epoch in range(epochs):
    order, step_keys, test_keys = programs.epoch_plan(run_key, epoch)
    for b in range(n_batches):
      params, opt_state = programs.train_step(params, opt_state,
                                              *_gather(x_train, y_train, order[:, b]), mask[b],
                                              step_keys[:, b])
    sums = [programs.test_sums(params, opt_state, x_test[i * test_batch:(i + 1) * test_batch],
                               y_test[i * test_batch:(i + 1) * test_batch], test_keys[:, i])
            for i in range(n_test // test_batch)]
    history.append({name: sum(s[name] for s in sums) / n_test for name in sums[0]})
  return {name: np.stack([np.asarray(h[name]) for h in history], axis=1) for name in history[0]}


def make_task(*, name: str, regime: task_lib.Regime, error_name: str, model: ImageModel,
              load: Callable[[], images.ImageData], budgets: Mapping[task_lib.Mode, Budget],
              normalisation: tuple[float, float] | None = None, data_note: str = "",
              failure_error: float | None = None) -> task_lib.Task:
  """Builds a task that trains ``model`` on the images from ``load``.

  Args:
    name: the task's name in tables.
    regime: its batch regime.
    error_name: what ``test_sums()["error"]`` measures.
    model: the model and its losses.
    load: returns the full data set.
    budgets: data and epochs per mode; ``budgets["full"]`` is the paper's protocol.
    normalisation: ``(mean, std)`` applied to the images before training, or ``None``.
    data_note: appended to every mode's cuts, e.g. to name a substitute data set.
    failure_error: the error that replaces failed runs (see :class:`Task`).

  Returns:
    The task.
  """

  @functools.cache
  def subset(mode: task_lib.Mode) -> tuple[jax.Array, ...]:
    data, budget = load(), budgets[mode]
    shuffle = np.random.default_rng(0)
    train = shuffle.permutation(len(data.y_train))[:budget.n_train]
    test = shuffle.permutation(len(data.y_test))[:budget.n_test]
    mean, std = normalisation or (0.0, 1.0)
    return tuple(jnp.asarray(a) for a in (
        (data.x_train[train, ..., None] - mean) / std, data.y_train[train],
        (data.x_test[test, ..., None] - mean) / std, data.y_test[test]))

  def run(tx: optax.GradientTransformation, seeds: jax.Array,
          mode: task_lib.Mode) -> task_lib.TaskResult:
    metrics = _train(model, tx, budgets[mode].epochs, jnp.asarray(seeds), *subset(mode))
    return task_lib.TaskResult(errors=metrics.pop("error"), extras=metrics)

  cuts = {mode: describe_cuts(budget, budgets["full"], data_note)
          for mode, budget in budgets.items()}
  return task_lib.Task(name=name, regime=regime, error_name=error_name, run=run, cuts=cuts,
                       failure_error=failure_error)
