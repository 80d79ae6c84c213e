"""Selection of the weights to freeze: the top-n_frozen importance scores (eq. 5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

TIE_TOLERANCE = 0.999999
"""The reference freezes every score ``>= TIE_TOLERANCE * threshold``.

With ties (or near ties) this freezes slightly more than ``k`` weights, and with a
negative threshold it can freeze fewer: ``core-optimizer`` 1.1.0 does both, and so
do we.
"""


_TOP_K_MAX_SIZE = 256
"""Groups up to this size (with a static ``k``) use ``lax.top_k``; it is faster there."""

_ROW_MAX_SIZE = 1 << 15
"""Groups up to this size are searched as rows of padded key matrices, many at once."""

_CHUNK = 1 << 22
"""Counts are float32 sums of ``b * b <= 4`` per score: exact for up to 2**22 scores."""

_PIECE = 24
"""Bits of an integer key that a float32 holds exactly."""

_SNAP = 4
"""When at most this many scores lie in a bracket, jump to its largest key."""


def _key_dtype(dtype: jnp.dtype) -> tuple[type, int]:
  if jnp.promote_types(dtype, jnp.float32) == jnp.float64:
    return jnp.uint64, 64
  return jnp.uint32, 32


def _keys(x: jax.Array) -> jax.Array:
  """Unsigned integers with the order of the floats ``x``; -0.0 gets the key of 0.0.

  Integer comparisons of keys are exact where float comparisons are not (CPUs
  may treat subnormals as zero), and make the search space a range of integers.
  Every key of a non-NaN float is above 0, which pads the key matrices.
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


class _Rows(NamedTuple):
  """Small groups as the rows of one matrix of keys, padded with 0 (below all keys)."""

  keys: jax.Array  # [groups, padded size]
  sizes: tuple[int, ...]

  def bounds(self):
    padded = jnp.where(self.keys == 0, ~jnp.zeros_like(self.keys), self.keys)
    return jnp.min(padded, axis=1), jnp.max(self.keys, axis=1) + 1

  def count(self, c1, c2, needed):
    del needed  # one pass does all rows
    return _count(self.keys, c1[:, None], c2[:, None], axis=1)

  def max_piece(self, hi, found, mask, needed, shift, ones):
    del needed
    return (_max_piece(self.keys, hi[:, None], found[:, None], mask[:, None], shift, ones, 1),)


class _Group(NamedTuple):
  """One large group; its keys are computed from its leaves in every pass."""

  parts: tuple[jax.Array, ...]
  sizes: tuple[int]

  def bounds(self):
    low = jnp.min(jnp.stack([p.min() for p in self.parts]))
    high = jnp.max(jnp.stack([p.max() for p in self.parts]))
    return _keys(low)[None], _keys(high)[None] + 1  # may miss subnormals: counts check

  def count(self, c1, c2, needed):
    def count():
      chunks = [p[i:i + _CHUNK] for p in self.parts for i in range(0, p.size, _CHUNK)]
      counts = [_count(_keys(chunk), c1[0], c2[0], axis=None) for chunk in chunks]
      return tuple(sum(n)[None] for n in zip(*counts))
    return jax.lax.cond(needed[0], count, lambda: (jnp.zeros([1], jnp.int32),) * 2)

  def max_piece(self, hi, found, mask, needed, shift, ones):
    def max_piece():
      pieces = [_max_piece(_keys(p), hi[0], found[0], mask[0], shift, ones, None) for p in self.parts]
      return jnp.max(jnp.stack(pieces))[None]
    return (jax.lax.cond(needed[0], max_piece, lambda: jnp.zeros([1], jnp.float32)),)


def _count(keys, c1, c2, axis):
  """``(#keys >= c1, #keys >= c2)`` for ``c1 <= c2``, in one pass over the keys.

  ``b = [key >= c1] + [key >= c2]`` gives both counts from ``sum(b)`` and
  ``sum(b * b)``. Reductions of small floats are fast on every backend, and
  under sharding they become all-reduces of a few numbers.
  """
  b = (keys >= c1).astype(jnp.uint8) + (keys >= c2).astype(jnp.uint8)
  # Materialising the bytes lets XLA:CPU vectorise the float sums (~5x).
  b = jax.lax.optimization_barrier(b).astype(jnp.float32)
  s1 = jnp.sum(b, axis=axis).astype(jnp.int32)
  s2 = jnp.sum(b * b, axis=axis).astype(jnp.int32)
  n2 = (s2 - s1) // 2
  return s1 - n2, n2


def _max_piece(keys, hi, found, mask, shift, ones, axis):
  """Largest ``(key >> shift) & ones`` over keys ``< hi`` that match ``found`` on ``mask``."""
  ok = (keys < hi) & (keys & mask == found)
  return jnp.max(jnp.where(ok, ((keys >> shift) & ones).astype(jnp.float32), -1), axis=axis)


def _search(blocks: list[_Rows | _Group], k: jax.Array, utype: type) -> jax.Array:
  """The key of the ``k[j]``-th largest score of every group ``j``, by counting.

  For every group, keeps a bracket ``[lo, hi)`` of keys with
  ``#(>= lo) >= k > #(>= hi)`` and narrows it with two thresholds per pass:
  around the interpolated position of the ``k``-th score, with a margin that
  shrinks while the guesses hit and grows when they miss. With at most
  ``_SNAP`` scores left, the thresholds jump to the largest key in the bracket
  (found exactly as float maxima of its 24-bit pieces). A group is done when
  ``hi == lo + 1``: ``lo`` is then a score's key, the ``k``-th largest one. All
  groups advance together, in one loop: it runs as many passes as the slowest
  group needs (10 to 15 on smooth scores, at most about 70).
  """
  width = jnp.iinfo(utype).bits
  cuts = np.cumsum([len(b.sizes) for b in blocks])[:-1]

  def per_block(method, *vectors, **scalars):
    pieces = [jnp.split(v, cuts) for v in vectors]
    outs = [getattr(b, method)(*(p[i] for p in pieces), **scalars) for i, b in enumerate(blocks)]
    return tuple(jnp.concatenate(x) for x in zip(*outs))

  def largest_keys_below(hi, snap):
    found = mask = jnp.zeros_like(hi)
    for shift in range(width - _PIECE, -_PIECE, -_PIECE):
      ones = utype((1 << (_PIECE + min(shift, 0))) - 1)
      shift = utype(max(shift, 0))
      (best,) = per_block("max_piece", hi, found, mask, snap, shift=shift, ones=ones)
      found, mask = found | (best.astype(utype) << shift), mask | (ones << shift)
    return found

  def thresholds(lo, hi, c_lo, c_hi, margin):
    span = hi - lo
    at = (c_lo - k + 0.5) / (c_lo - c_hi).astype(jnp.float32)  # linear in keys

    def point(f):
      offset = (span.astype(jnp.float32) * jnp.clip(f, 0, 1)).astype(utype)
      return lo + jnp.clip(offset, 1, jnp.maximum(span, 2) - 1)

    snap = (c_lo - c_hi <= _SNAP) & (span > 1)
    top = jax.lax.cond(jnp.any(snap), largest_keys_below, lambda hi, _: hi, hi, snap)
    return jnp.where(snap, top, point(at - margin)), jnp.where(snap, top + 1, point(at + margin))

  def body(state):
    lo, hi, c_lo, c_hi, margin, step = state
    c1, c2 = jax.lax.cond(step == 0, lambda *_: per_block("bounds"), thresholds,
                          lo, hi, c_lo, c_hi, margin)
    searching = hi - lo > 1  # finished groups skip their passes and keep their bracket
    n1, n2 = per_block("count", c1, c2, searching)
    above, inside = searching & (n2 >= k), searching & (n1 >= k) & (n2 < k)
    below = searching & (n1 < k)
    lo, c_lo = jnp.where(above, c2, jnp.where(inside, c1, lo)), jnp.where(above, n2, jnp.where(inside, n1, c_lo))
    hi, c_hi = jnp.where(below, c1, jnp.where(inside, c2, hi)), jnp.where(below, n1, jnp.where(inside, n2, c_hi))
    margin = jnp.clip(jnp.where(inside, margin / 4, margin * 4), 2.0**-12, 0.5)
    return lo, hi, c_lo, c_hi, margin, step + 1

  sizes = np.array([n for b in blocks for n in b.sizes], np.int32)
  init = (jnp.zeros(sizes.shape, utype), jnp.full(sizes.shape, jnp.iinfo(utype).max, utype),
          jnp.asarray(sizes), jnp.zeros(sizes.shape, jnp.int32), jnp.full(sizes.shape, 2.0**-4),
          jnp.int32(0))
  return jax.lax.while_loop(lambda s: jnp.any(s[1] - s[0] > 1), body, init)[0]


def kth_largest(groups: Sequence[Sequence[jax.Array]], ks: Sequence[int | jax.Array]) -> list[jax.Array]:
  """The ``ks[j]``-th largest score of every group ``j``, exactly (eq. 5's thresholds).

  Groups are searched together by counting (see :func:`_search`): a few fused
  passes over the scores, no sort, no gather, no host callback. Groups of up to
  ``_TOP_K_MAX_SIZE`` scores with a static ``k`` use ``lax.top_k`` instead. Ties
  count with multiplicity, and -0.0 equals 0.0, as in a float sort.

  Args:
    groups: every group's scores, as a sequence of real arrays of any shapes
      (the leaves of the group) and one float dtype.
    ks: per group, ``1 <= k <= size``: a Python int, or a traced integer (for
      example a frozen fraction under ``optax.inject_hyperparams``), which is
      clipped into that range.

  Returns:
    Per group, a scalar of the scores' dtype.
  """
  out = [None] * len(groups)
  searched = {jnp.uint32: [], jnp.uint64: []}  # key dtype: [(group index, flat parts, k)]
  for j, (group, k) in enumerate(zip(groups, ks)):
    parts = tuple(s.ravel() for s in group)
    n = sum(p.size for p in parts)
    if isinstance(k, int) and n <= _TOP_K_MAX_SIZE:
      out[j] = jax.lax.top_k(jnp.concatenate(parts), k)[0][k - 1]
    else:
      searched[_key_dtype(parts[0].dtype)[0]].append((j, parts, jnp.clip(k, 1, n)))
  for utype, entries in searched.items():
    if not entries:
      continue
    rows, blocks, order = {}, [], []
    for j, parts, _ in entries:
      n = sum(p.size for p in parts)
      if n > _ROW_MAX_SIZE:
        blocks.append(_Group(parts, (n,)))
        order.append([j])
      else:  # one matrix per power-of-2 padded size: at most 2x padding
        rows.setdefault(max(1 << (n - 1).bit_length(), 2 * _TOP_K_MAX_SIZE), []).append((j, parts))
    for width, members in rows.items():
      keys = [jnp.pad(jnp.concatenate([_keys(p) for p in parts]), (0, width - sum(p.size for p in parts)))
              for _, parts in members]
      blocks.append(_Rows(jnp.stack(keys), tuple(sum(p.size for p in parts) for _, parts in members)))
      order.append([j for j, _ in members])
    ks_of = {j: k for j, _, k in entries}
    slots = [j for js in order for j in js]
    keys = _search(blocks, jnp.stack([jnp.asarray(ks_of[j], jnp.int32) for j in slots]), utype)
    for slot, j in enumerate(slots):
      out[j] = _value(keys[slot], groups[j][0].dtype)
  return out


def frozen_mask(scores: jax.Array, threshold: jax.Array) -> jax.Array:
  """Where eq. 5 sets the plasticity factor P to 0, given the group's threshold."""
  return scores >= TIE_TOLERANCE * threshold
