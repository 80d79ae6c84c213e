"""Selection of the weights to freeze: the top-n_frozen importance scores (eq. 5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

TIE_TOLERANCE = 0.999999
"""The reference freezes every score ``>= TIE_TOLERANCE * threshold``.

With ties (or near ties) this freezes slightly more than ``k`` weights, and with a
negative threshold it can freeze fewer: ``core-optimizer`` 1.1.0 does both, and so
do we.
"""


def kth_largest(scores: jax.Array, k: int | jax.Array) -> jax.Array:
  """The ``k``-th largest entry of the 1-D array ``scores``.

  Args:
    scores: 1-D real array.
    k: ``1 <= k <= scores.size``; a Python int, or a traced integer (for
      example a frozen fraction under ``optax.inject_hyperparams``), in which
      case values of ``k`` outside that range are clipped into it.

  Returns:
    A scalar of ``scores.dtype``.
  """
  if isinstance(k, int):
    return jax.lax.top_k(scores, k)[0][k - 1]
  index = scores.size - jnp.clip(k, 1, scores.size)
  return jnp.sort(scores)[index]


def frozen_mask(scores: jax.Array, threshold: jax.Array) -> jax.Array:
  """Where eq. 5 sets the plasticity factor P to 0, given the group's threshold."""
  return scores >= TIE_TOLERANCE * threshold
