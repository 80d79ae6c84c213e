"""ViT-FMNIST: a small vision transformer classifying Fashion-MNIST.

Model (:mod:`.common.transformer`): the 28x28 image cut into 16 patches of 7x7 pixels, each
projected linearly to the width, learned positions, pre-LN blocks with bidirectional
self-attention and a GELU MLP, a final LayerNorm, the mean over patches (global average
pooling instead of a class token, as small ViTs often do) and a linear head to 10 classes.
Pixels in [0, 1] normalised with Fashion-MNIST's training mean and standard deviation (0.2860,
0.3530), as in ICF. Training: mean cross-entropy over mini-batches of 64 images drawn from a
fixed subset of the training images, a fresh shuffle every evaluation interval. Validation:
error rate (1 - accuracy) on a fixed subset of the 10,000 test images (Fashion-MNIST has no
separate validation set), every ``steps / evaluations`` steps; the cross-entropy is recorded
next to it.

Sizes (our choice, to fit two CPU cores; see :data:`SIZES`): standard mode is width 64, 2
blocks of 4 heads (about 105 k parameters); full mode width 128, 4 blocks, every image.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison import task as task_lib
from benchmarks.comparison.data import fashion_mnist
from benchmarks.comparison.tasks.common import training
from benchmarks.comparison.tasks.common import transformer

PATCH = 7
N_CLASSES = 10
NORMALISATION = (0.2860, 0.3530)


@dataclasses.dataclass(frozen=True)
class Budget:
  """Model, data and steps of one mode."""

  size: transformer.Size
  n_train: int
  n_validation: int
  batch: int
  steps: int
  evaluations: int  # evenly spaced; the last after the last step.


SIZES: dict[task_lib.Mode, Budget] = {
    "quick": Budget(transformer.Size(32, 1, 2), n_train=2048, n_validation=256, batch=32,
                    steps=60, evaluations=6),
    "standard": Budget(transformer.Size(64, 2, 4), n_train=20000, n_validation=2000, batch=64,
                       steps=400, evaluations=16),
    "full": Budget(transformer.Size(128, 4, 4), n_train=60000, n_validation=10000, batch=128,
                   steps=5000, evaluations=50),
}


def patches(images: jax.Array) -> jax.Array:
  """``[batch, 28, 28]`` images to ``[batch, 16, 49]`` rows of 7x7 patches, row by row."""
  n, side = images.shape[0], images.shape[1] // PATCH
  x = images.reshape(n, side, PATCH, side, PATCH).transpose(0, 1, 3, 2, 4)
  return x.reshape(n, side * side, PATCH * PATCH)


class ViT(nn.Module):
  """Images ``[batch, 28, 28]`` to class logits ``[batch, 10]``."""

  size: transformer.Size

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = nn.Dense(self.size.width, kernel_init=transformer.INIT, name="patch_embed")(
        patches(images))
    x = transformer.Transformer(self.size, causal=False, name="transformer")(x)
    return nn.Dense(N_CLASSES, kernel_init=transformer.INIT, name="head")(x.mean(axis=1))


def _functions(budget: Budget):
  """The task's functions for :func:`training.train`, made once per mode (they are the keys
  of its cache of compiled programs)."""
  model = ViT(budget.size)
  steps_per_evaluation = budget.steps // budget.evaluations

  def init(key, data):
    del data
    return model.init(key, jnp.zeros((1, 28, 28)))

  def batches(key, data):
    n_train = data["y_train"].shape[0]
    order = jax.random.permutation(key, n_train)[:steps_per_evaluation * budget.batch]
    return order.reshape(steps_per_evaluation, budget.batch)

  def loss(params, data, batch, key):
    del key
    logits = model.apply(params, data["x_train"][batch])
    return optax.softmax_cross_entropy_with_integer_labels(logits, data["y_train"][batch]).mean()

  def evaluate(params, data):
    logits = model.apply(params, data["x_validation"])
    labels = data["y_validation"]
    return {"error": jnp.mean(logits.argmax(-1) != labels),
            "nll": optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()}

  return init, batches, loss, evaluate


_FUNCTIONS = {mode: _functions(budget) for mode, budget in SIZES.items()}


@functools.cache
def data(mode: task_lib.Mode) -> dict[str, jax.Array]:
  """This mode's fixed training and validation subsets, normalised."""
  images, budget = fashion_mnist.load(), SIZES[mode]
  assert budget.steps // budget.evaluations * budget.batch <= budget.n_train
  shuffle = np.random.default_rng(0)
  train = shuffle.permutation(len(images.y_train))[:budget.n_train]
  validation = shuffle.permutation(len(images.y_test))[:budget.n_validation]
  mean, std = NORMALISATION
  return {"x_train": jnp.asarray((images.x_train[train] - mean) / std),
          "y_train": jnp.asarray(images.y_train[train]),
          "x_validation": jnp.asarray((images.x_test[validation] - mean) / std),
          "y_validation": jnp.asarray(images.y_test[validation])}


def run(tx: optax.GradientTransformation, seeds: jax.Array,
        mode: task_lib.Mode) -> task_lib.TaskResult:
  init, batches, loss, evaluate = _FUNCTIONS[mode]
  metrics = training.train(tx, seeds, data(mode), init=init, batches=batches, loss=loss,
                           evaluate=evaluate, n_epochs=SIZES[mode].evaluations)
  return task_lib.TaskResult(errors=metrics["error"], extras={"nll": metrics["nll"]})


def _cut(mode: task_lib.Mode) -> str:
  b = SIZES[mode]
  return (f"width {b.size.width}, {b.size.depth} blocks of {b.size.heads} heads, 7x7 patches, "
          f"{b.n_train} training and {b.n_validation} validation images (from the test set), "
          f"batches of {b.batch}, {b.steps} steps, {b.evaluations} evaluations")


TASK = task_lib.Task(
    name="ViT-FMNIST",
    regime="mini-batch",
    error_name="validation error rate",
    run=run,
    cuts={mode: _cut(mode) for mode in SIZES},
    n_steps={mode: b.steps // b.evaluations * b.evaluations for mode, b in SIZES.items()},
)
