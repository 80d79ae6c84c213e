"""The pre-LayerNorm transformer of LM-fortunes and ViT-FMNIST, in Flax linen.

Written the way the small GPT and ViT examples write it (nanoGPT, the Flax ViT example):
``x + attention(LayerNorm(x))`` then ``x + MLP(LayerNorm(x))``, the MLP ``width -> 4 width ->
width`` with GELU, one fused query-key-value projection and one output projection (both 2-d
kernels, so Muon treats every weight matrix as a matrix), learned position embeddings, a final
LayerNorm. Weights and embeddings start from N(0, 0.02) and biases at zero, as in GPT-2.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

INIT = nn.initializers.normal(0.02)


@dataclasses.dataclass(frozen=True)
class Size:
  """A transformer's size.

  Attributes:
    width: the residual stream's width.
    depth: the number of blocks.
    heads: attention heads (``width`` must be a multiple).
  """

  width: int
  depth: int
  heads: int


class Block(nn.Module):
  """One pre-LN block: causal or bidirectional self-attention, then the GELU MLP."""

  size: Size
  causal: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    batch, length, width = x.shape
    heads = self.size.heads
    qkv = nn.Dense(3 * width, kernel_init=INIT, name="qkv")(nn.LayerNorm(name="ln_attention")(x))
    q, k, v = jnp.split(qkv.reshape(batch, length, 3 * heads, width // heads), 3, axis=2)
    attended = jax.nn.dot_product_attention(q, k, v, is_causal=self.causal)
    x = x + nn.Dense(width, kernel_init=INIT, name="out")(attended.reshape(batch, length, width))
    h = nn.Dense(4 * width, kernel_init=INIT, name="mlp_in")(nn.LayerNorm(name="ln_mlp")(x))
    return x + nn.Dense(width, kernel_init=INIT, name="mlp_out")(nn.gelu(h))


class Transformer(nn.Module):
  """Blocks over embedded tokens plus learned positions, then the final LayerNorm.

  Takes ``[batch, length, width]`` embeddings (the task embeds characters or patches) and
  returns the same shape.
  """

  size: Size
  causal: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    positions = self.param("positions", INIT, (x.shape[1], self.size.width))
    x = x + positions
    for i in range(self.size.depth):
      x = Block(self.size, self.causal, name=f"block_{i}")(x)
    return nn.LayerNorm(name="ln_final")(x)


def n_parameters(params) -> int:
  """The number of scalars in a parameter tree."""
  return sum(leaf.size for leaf in jax.tree.leaves(params))
