"""Plain-JAX layers initialised the way PyTorch initialises them.

``torch.nn.Linear`` and ``torch.nn.Conv2d`` draw weights and biases from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Kaiming-uniform with a = sqrt(5) reduces to
that bound for the weights); Flax's defaults differ, so the tasks build their
parameters here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]


def torch_uniform(key: jax.Array, shape: tuple[int, ...], fan_in: int,
                  dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default for weights and biases."""
  bound = 1.0 / fan_in**0.5
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def init_linear(key: jax.Array, n_in: int, n_out: int,
                dtype: jnp.dtype = jnp.float32) -> Params:
  """A ``torch.nn.Linear(n_in, n_out)``: kernel ``[n_in, n_out]`` and bias."""
  k_w, k_b = jax.random.split(key)
  return {"w": torch_uniform(k_w, (n_in, n_out), n_in, dtype),
          "b": torch_uniform(k_b, (n_out,), n_in, dtype)}


def linear(params: Params, x: jax.Array) -> jax.Array:
  """Applies a linear layer to the last axis of ``x``."""
  return x @ params["w"] + params["b"]
