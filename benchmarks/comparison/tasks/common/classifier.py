"""The convolutional classifier of PyTorch's ``mnist`` example, used by ICD and ICF."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks.comparison.tasks.common import image


class Classifier(nn.Module):
  """conv 32, conv 64, max-pool, dropout 0.25, dense 128, dropout 0.5, dense 10."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = nn.relu(image.TorchConv(32, 1, 3)(x))
    x = nn.relu(image.TorchConv(64, 32, 3)(x))
    x = x.reshape(x.shape[0], 12, 2, 12, 2, 64).max((2, 4))  # 2x2 max-pool, fast on CPU.
    x = nn.Dropout(0.25, deterministic=not train)(x)
    x = nn.relu(image.torch_dense(128, 9216)(x.reshape(x.shape[0], 9216)))
    x = nn.Dropout(0.5, deterministic=not train)(x)
    return jax.nn.log_softmax(image.torch_dense(10, 128)(x))


def _init(key: jax.Array, x: jax.Array):
  return Classifier().init(key, x, train=False)


def _train_loss(params, x, y, mask, key):
  log_probs = Classifier().apply(params, x, train=True, rngs={"dropout": key})
  nll = -jnp.take_along_axis(log_probs, y[:, None], axis=-1)[:, 0]
  return (nll * mask).sum() / mask.sum()


def _test_sums(params, x, y, key):
  del key
  log_probs = Classifier().apply(params, x, train=False)
  nll = -jnp.take_along_axis(log_probs, y[:, None], axis=-1)[:, 0]
  return {"error": nll.sum(), "accuracy": (log_probs.argmax(-1) == y).sum().astype(jnp.float32)}


MODEL = image.ImageModel(init=_init, train_loss=_train_loss, test_sums=_test_sums)
