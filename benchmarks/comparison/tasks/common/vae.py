"""The variational auto-encoder of PyTorch's ``vae`` example, used by AED and AEF."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks.comparison.tasks.common import image

LATENT = 20
HIDDEN = 400
PIXELS = 784
LOG_CLAMP = -100.0  # torch's binary_cross_entropy clamps log(p) and log(1 - p) at -100.


class VAE(nn.Module):
  """784 -> 400 -> (mu, logvar) in 20 -> 400 -> 784 logits."""

  @nn.compact
  def __call__(self, x: jax.Array, key: jax.Array) -> tuple[jax.Array, ...]:
    h = nn.relu(image.torch_dense(HIDDEN, PIXELS)(x.reshape(x.shape[0], PIXELS)))
    mu = image.torch_dense(LATENT, HIDDEN)(h)
    logvar = image.torch_dense(LATENT, HIDDEN)(h)
    z = mu + jax.random.normal(key, mu.shape) * jnp.exp(0.5 * logvar)
    h = nn.relu(image.torch_dense(HIDDEN, LATENT)(z))
    return image.torch_dense(PIXELS, HIDDEN)(h), mu, logvar


def _summed_losses(params, x: jax.Array, key: jax.Array) -> jax.Array:
  """Per image: binary cross-entropy summed over pixels plus the KL divergence."""
  logits, mu, logvar = VAE().apply(params, x, key)
  target = x.reshape(x.shape[0], PIXELS)
  log_p = jnp.maximum(jax.nn.log_sigmoid(logits), LOG_CLAMP)
  log_not_p = jnp.maximum(jax.nn.log_sigmoid(-logits), LOG_CLAMP)
  bce = -(target * log_p + (1.0 - target) * log_not_p).sum(-1)
  kl = -0.5 * (1.0 + logvar - mu**2 - jnp.exp(logvar)).sum(-1)
  return bce + kl


def _init(key: jax.Array, x: jax.Array):
  init_key, sample_key = jax.random.split(key)
  return VAE().init(init_key, x, sample_key)


def _train_loss(params, x, y, mask, key):
  del y
  return (_summed_losses(params, x, key) * mask).sum()


def _test_sums(params, x, y, key):
  del y
  return {"error": _summed_losses(params, x, key).sum()}


MODEL = image.ImageModel(init=_init, train_loss=_train_loss, test_sums=_test_sums)
