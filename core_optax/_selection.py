"""Selection of the weights to freeze: the top-n_frozen importance scores (eq. 5)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

TIE_TOLERANCE = 0.999999
"""The reference freezes every score ``>= TIE_TOLERANCE * threshold``.

With ties (or near ties) this freezes slightly more than ``k`` weights, and with a
negative threshold it can freeze fewer: ``core-optimizer`` 1.1.0 does both, and so
do we.
"""


_TOP_K_MAX_SIZE = 256
"""Groups up to this size (with a static ``k``) use ``lax.top_k``; it is faster there."""

_CHUNK = 1 << 22
"""Counts are float32 sums of ``b * b <= 4`` per score: exact for up to 2**22 scores."""

_PIECE = 24
"""Bits of an integer key that a float32 holds exactly."""

_SNAP = 4
"""When at most this many scores lie in the bracket, jump to its largest key."""


def _key_dtype(dtype: jnp.dtype) -> tuple[type, int]:
  if jnp.promote_types(dtype, jnp.float32) == jnp.float64:
    return jnp.uint64, 64
  return jnp.uint32, 32


def _keys(x: jax.Array) -> jax.Array:
  """Unsigned integers with the order of the floats ``x``; -0.0 gets the key of 0.0.

  Integer comparisons of keys are exact where float comparisons are not (CPUs
  may treat subnormals as zero), and make the search space a range of integers.
  """
  utype, width = _key_dtype(x.dtype)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # exact for float16/bfloat16
  bits = jax.lax.bitcast_convert_type(x, utype)
  sign = utype(1 << (width - 1))
  keys = jnp.where(bits >= sign, ~bits, bits | sign)  # negatives reversed, below positives
  return jnp.where(keys == ~sign, sign, keys)  # ~sign is the key of -0.0


def _value(key: jax.Array, dtype: jnp.dtype) -> jax.Array:
  """Inverse of :func:`_keys`."""
  utype, width = _key_dtype(dtype)
  sign = utype(1 << (width - 1))
  bits = jnp.where(key >= sign, key ^ sign, ~key)
  ftype = jnp.float64 if width == 64 else jnp.float32
  return jax.lax.bitcast_convert_type(bits, ftype).astype(dtype)


def _chunks(parts: list[jax.Array]) -> list[jax.Array]:
  return [p[i:i + _CHUNK] for p in parts for i in range(0, p.size, _CHUNK)]


def _count_at_least(parts: list[jax.Array], c1: jax.Array, c2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(#keys >= c1, #keys >= c2)`` for ``c1 <= c2``, in one pass over the scores.

  ``b = [key >= c1] + [key >= c2]`` gives both counts from ``sum(b)`` and
  ``sum(b * b)``. Reductions of small floats are fast on every backend, and
  under sharding they become all-reduces of scalars.
  """
  s1 = s2 = jnp.zeros([], jnp.int32)
  for part in _chunks(parts):
    keys = _keys(part)
    b = (keys >= c1).astype(jnp.uint8) + (keys >= c2).astype(jnp.uint8)
    # Materialising the bytes lets XLA:CPU vectorise the float sums (~5x).
    b = jax.lax.optimization_barrier(b).astype(jnp.float32)
    s1 += jnp.sum(b).astype(jnp.int32)
    s2 += jnp.sum(b * b).astype(jnp.int32)
  n2 = (s2 - s1) // 2
  return s1 - n2, n2


def _max_key_below(parts: list[jax.Array], hi: jax.Array) -> jax.Array:
  """The largest key ``< hi``, exactly: float maxima of its 24-bit pieces, high first."""
  utype, width = _key_dtype(parts[0].dtype)
  found = mask = utype(0)
  for shift in range(width - _PIECE, -_PIECE, -_PIECE):
    bits = _PIECE + min(shift, 0)
    shift = utype(max(shift, 0))
    ones = utype((1 << bits) - 1)
    best = jnp.float32(-1)
    for part in parts:
      keys = _keys(part)
      piece = ((keys >> shift) & ones).astype(jnp.float32)
      best = jnp.maximum(best, jnp.max(jnp.where((keys < hi) & (keys & mask == found), piece, -1)))
    found |= best.astype(utype) << shift
    mask |= ones << shift
  return found


def _search(parts: list[jax.Array], k: jax.Array) -> jax.Array:
  """The key of the ``k``-th largest score, by counting (radix/interpolation search).

  Keeps a bracket ``[lo, hi)`` of keys with ``#(>= lo) >= k > #(>= hi)`` and
  narrows it with two thresholds per pass: around the interpolated position of
  the ``k``-th score, with a margin that shrinks while the guesses hit and
  grows when they miss. With at most ``_SNAP`` scores left, ``hi`` jumps to
  the largest key in the bracket. Ends when ``hi == lo + 1``: ``lo`` is then a
  score's key, and the ``k``-th largest one.
  """
  utype, width = _key_dtype(parts[0].dtype)
  n = sum(p.size for p in parts)
  bounds = (_keys(jnp.min(jnp.stack([p.min() for p in parts]))),
            _keys(jnp.max(jnp.stack([p.max() for p in parts]))) + 1)

  def guess(lo, hi, c_lo, c_hi, margin):
    span = hi - lo
    at = (c_lo - k + 0.5) / (c_lo - c_hi).astype(jnp.float32)  # linear in keys
    def point(f):
      offset = (span.astype(jnp.float32) * jnp.clip(f, 0, 1)).astype(utype)
      return lo + jnp.clip(offset, utype(1), span - 1)
    return point(at - margin), point(at + margin)

  def snap(lo, hi, c_lo, c_hi, margin):
    del lo, c_lo, c_hi, margin
    top = _max_key_below(parts, hi)
    return top, top + 1

  def body(state):
    lo, hi, c_lo, c_hi, margin, step = state
    c1, c2 = jax.lax.cond(
        step == 0, lambda *_: bounds,  # first pass: the extremes (min/max may ignore subnormals)
        lambda *a: jax.lax.cond(c_lo - c_hi <= _SNAP, snap, guess, *a),
        lo, hi, c_lo, c_hi, margin)
    n1, n2 = _count_at_least(parts, c1, c2)
    above, inside = n2 >= k, (n1 >= k) & (n2 < k)
    lo, c_lo = jnp.where(above, c2, jnp.where(inside, c1, lo)), jnp.where(above, n2, jnp.where(inside, n1, c_lo))
    hi, c_hi = jnp.where(above, hi, jnp.where(inside, c2, c1)), jnp.where(above, c_hi, jnp.where(inside, n2, n1))
    margin = jnp.clip(jnp.where(inside, margin / 4, margin * 4), 2.0**-12, 0.5)
    return lo, hi, c_lo, c_hi, margin, step + 1

  init = (utype(0), utype((1 << width) - 1), jnp.int32(n), jnp.int32(0), jnp.float32(2.0**-4),
          jnp.int32(0))
  return jax.lax.while_loop(lambda s: s[1] - s[0] > 1, body, init)[0]


def kth_largest(scores: jax.Array | Sequence[jax.Array], k: int | jax.Array) -> jax.Array:
  """The ``k``-th largest of ``scores``, exactly (eq. 5's threshold).

  Large groups are searched by counting (see :func:`_search`): a few fused
  passes over the scores, no sort, no gather, no host callback; small groups
  with a static ``k`` use ``lax.top_k``. Ties count with multiplicity, and -0.0
  equals 0.0 as in a float sort.

  Args:
    scores: the group's scores: one real array or a sequence of them (the
      leaves of a group), of any shapes and one float dtype.
    k: ``1 <= k <= size``; a Python int, or a traced integer (for example a
      frozen fraction under ``optax.inject_hyperparams``), in which case values
      of ``k`` outside that range are clipped into it.

  Returns:
    A scalar of the scores' dtype.
  """
  parts = [s.ravel() for s in (scores if isinstance(scores, Sequence) else [scores])]
  n = sum(p.size for p in parts)
  if isinstance(k, int) and n <= _TOP_K_MAX_SIZE:
    return jax.lax.top_k(jnp.concatenate(parts), k)[0][k - 1]
  k = jnp.clip(jnp.asarray(k, jnp.int32), 1, n)
  return _value(_search(parts, k), parts[0].dtype)


def frozen_mask(scores: jax.Array, threshold: jax.Array) -> jax.Array:
  """Where eq. 5 sets the plasticity factor P to 0, given the group's threshold."""
  return scores >= TIE_TOLERANCE * threshold
