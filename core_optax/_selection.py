"""Selection of the weights to freeze: the top-n_frozen importance scores (eq. 5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

_MIN_WIDTH = 2 * _TOP_K_MAX_SIZE
"""Narrowest row of a key matrix."""

_PIECE = 24
"""Bits of an integer key that a float32 holds exactly."""

_SNAP = 4
"""When at most this many scores lie in a bracket, jump to its largest key."""

_CHUNK = 1 << 19
"""Passes read at most this many keys at a time, in a loop over blocks.

Groups of at least this many scores are read from their scores, chunk by chunk.
XLA:CPU gives a computation's temporaries fresh memory on every call, and above
about 32 MB pays a page fault per 4 kB touched: a count over 1e7 keys took
13.1 ms with its comparisons as one temporary (9767 page faults per count) and
2.5 ms in chunks of ``2**19`` (53 faults; ``python -m
benchmarks.chunked_reductions``). Such groups are never laid out as key
matrices; their keys are computed from the scores in every chunk.
"""


def _key_dtype(dtype: jnp.dtype) -> tuple[type, int]:
  if jnp.promote_types(dtype, jnp.float32) == jnp.float64:
    return jnp.uint64, 64
  return jnp.uint32, 32


def _keys(x: jax.Array) -> jax.Array:
  """Unsigned integers with the order of the floats ``x``; -0.0 gets the key of 0.0.

  Integer comparisons of keys are exact where float comparisons are not (CPUs
  may treat subnormals as zero), and make the search space a range of integers.
  Every key is above 0, which pads the key matrices. Every NaN, whatever its
  sign bit (x86 makes 0/0 a negative NaN), gets the key ``2**width - 2``,
  above +inf, as ``torch.topk`` ranks NaN above every number.
  """
  utype, width = _key_dtype(x.dtype)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # exact for float16/bfloat16
  bits = jax.lax.bitcast_convert_type(x, utype)
  sign = utype(1 << (width - 1))
  keys = jnp.where(bits >= sign, ~bits, bits | sign)  # negatives reversed, below positives
  keys = jnp.where(keys == ~sign, sign, keys)  # ~sign is the key of -0.0
  return jnp.where(jnp.isnan(x), ~utype(1), keys)


def _value(key: jax.Array, dtype: jnp.dtype) -> jax.Array:
  """Inverse of :func:`_keys`."""
  utype, width = _key_dtype(dtype)
  sign = utype(1 << (width - 1))
  bits = jnp.where(key >= sign, key ^ sign, ~key)
  ftype = jnp.float64 if width == 64 else jnp.float32
  return jax.lax.bitcast_convert_type(bits, ftype).astype(dtype)


class _Keys(NamedTuple):
  """Rows of keys: one key matrix, or one row: a group's scores (``scores=True``).

  A group read from its scores (one or more arrays) has its keys computed
  anew in every pass, never held all at once.
  """

  arrays: tuple[jax.Array, ...]
  scores: bool = False

  @property
  def rows(self) -> int:
    return 1 if self.scores else self.arrays[0].shape[0]


def _fold(source: _Keys, fn: Callable, combine: Callable, init):
  """``combine`` of ``fn(keys)`` over blocks of columns of ``source``'s keys.

  ``keys`` has shape ``[rows, columns]``, ``rows * columns <= _CHUNK``; the
  full blocks run in a loop, so that their temporaries share memory, and a
  narrower remainder follows.
  """
  to_keys = _keys if source.scores else lambda keys: keys
  acc = init
  for array in source.arrays:
    array = array.reshape(1, -1) if source.scores else array
    rows, width = array.shape
    cols = min(width, max(1, _CHUNK // rows))

    def block(i, acc, array=array, cols=cols):
      return combine(acc, fn(to_keys(jax.lax.dynamic_slice_in_dim(array, i * cols, cols, axis=1))))

    acc = jax.lax.fori_loop(0, width // cols, block, acc)
    if width % cols:
      acc = combine(acc, fn(to_keys(array[:, width - width % cols:])))
  return acc


def _count(source: _Keys, c1: jax.Array, c2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per row, ``(#keys >= c1, #keys >= c2)`` for ``c1 <= c2``, in one pass over the keys.

  ``b = [key >= c1] + [key >= c2]`` gives both counts from ``sum(b)`` and
  ``sum(b * b)``: float sums (exact: at most ``4 * _CHUNK < 2**24`` per block),
  which are fast on every backend and under sharding become all-reduces of a
  few numbers.
  """
  def sums(keys):
    b = (keys >= c1[:, None]).astype(jnp.uint8) + (keys >= c2[:, None]).astype(jnp.uint8)
    # Materialising the bytes lets XLA:CPU vectorise the float sums.
    b = jax.lax.optimization_barrier(b).astype(jnp.float32)
    return jnp.sum(b, axis=1).astype(jnp.int32), jnp.sum(b * b, axis=1).astype(jnp.int32)

  zeros = jnp.zeros([source.rows], jnp.int32)
  s1, s2 = _fold(source, sums, lambda a, b: (a[0] + b[0], a[1] + b[1]), (zeros, zeros))
  n2 = (s2 - s1) // 2
  return s1 - n2, n2


def _max_piece(source: _Keys, lo, hi, found, mask, shift, ones) -> jax.Array:
  """Per row, the largest ``(offset >> shift) & ones`` of the offsets ``key - lo``
  of keys in ``[lo, hi)`` that match ``found`` on ``mask`` (-1 if none does)."""
  def piece(keys):
    offset = keys - lo[:, None]
    ok = (keys >= lo[:, None]) & (keys < hi[:, None]) & (offset & mask[:, None] == found[:, None])
    return jnp.max(jnp.where(ok, ((offset >> shift) & ones).astype(jnp.float32), -1), axis=1)
  return _fold(source, piece, jnp.maximum, jnp.full([source.rows], -1, jnp.float32))


def _extremes(source: _Keys, top: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per row, the smallest key that is not padding (0) and the largest key.

  ``top`` is the largest key of the key dtype, above every key (NaN's is ``top - 1``).
  """
  def extremes(keys):
    return jnp.min(jnp.where(keys == 0, top, keys), axis=1), jnp.max(keys, axis=1)

  init = (jnp.full([source.rows], top), jnp.zeros([source.rows], top.dtype))
  return _fold(source, extremes, lambda a, b: (jnp.minimum(a[0], b[0]), jnp.maximum(a[1], b[1])),
               init)


def _search(sources: list[_Keys], utype: type, k: jax.Array, sizes: np.ndarray,
            first: tuple[jax.Array, jax.Array] | None,
            live: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """The ``k[j]``-th largest key of every row ``j`` of the ``sources``, of dtype ``utype``.

  For every row, keeps a bracket ``[lo, hi)`` of keys with
  ``#(>= lo) >= k > #(>= hi)``, at first from the row's smallest and largest
  key (``sizes[j]`` keys that are not padding), or, given ``first``, from all
  keys ``[1, 2**width - 1)`` (no pass: padding is 0 and NaN's key is
  ``2**width - 2``); and narrows it with two thresholds per pass: ``first``
  if given, then around the interpolated position of the ``k``-th key, with a
  margin that shrinks while the guesses hit and grows when they miss. With at
  most ``_SNAP`` keys left, the thresholds jump to the largest key in the
  bracket (its offset from ``lo`` found exactly as float maxima of 24-bit
  pieces: one pass while the brackets span at most ``2**24`` keys). A row is
  done when ``hi == lo + 1``: ``lo`` is then a key of the row, the ``k``-th
  largest one. All rows advance together, in one loop that runs as many
  passes as the slowest row needs (``python -m benchmarks.selection_passes``
  gives the counts). Rows that are not ``live`` start done, at NaN's key.

  Returns:
    The keys, and the number of passes over the keys: counts, maxima and extremes.
  """
  width = jnp.iinfo(utype).bits
  cuts = np.cumsum([source.rows for source in sources])[:-1]

  def per_source(fn, *vectors, **scalars):
    pieces = [jnp.split(v, cuts) for v in vectors]
    outs = [fn(source, *(p[i] for p in pieces), **scalars) for i, source in enumerate(sources)]
    return jax.tree.map(lambda *x: jnp.concatenate(x), *outs)

  def largest_keys_below(lo, hi, span):
    """Per row, the largest key in ``[lo, hi)``, and the passes it took."""
    found, mask, reads = jnp.zeros_like(hi), jnp.zeros_like(hi), jnp.int32(0)
    for shift in reversed(range(0, width, _PIECE)):  # offsets' pieces, highest first
      ones, at = utype((1 << min(_PIECE, width - shift)) - 1), utype(shift)

      def piece(found, mask, reads, at=at, ones=ones):
        best = per_source(_max_piece, lo, hi, found, mask, shift=at, ones=ones)
        found = found | (jnp.maximum(best, 0).astype(utype) << at)
        return found, mask | (ones << at), reads + 1

      if shift:  # a piece above every span is 0 in every offset: no pass for it
        found, mask, reads = jax.lax.cond(jnp.any((span - 1) >> at > 0), piece,
                                          lambda *state: state, found, mask, reads)
      else:
        found, mask, reads = piece(found, mask, reads)
    return lo + found, reads

  def thresholds(lo, hi, c_lo, c_hi, margin):
    span = hi - lo
    at = (c_lo - k + 0.5) / (c_lo - c_hi).astype(jnp.float32)  # linear in keys

    def point(f):
      offset = (span.astype(jnp.float32) * jnp.clip(f, 0, 1)).astype(utype)
      return lo + jnp.clip(offset, 1, jnp.maximum(span, 2) - 1)

    snap = (c_lo - c_hi <= _SNAP) & (span > 1)
    top, reads = jax.lax.cond(jnp.any(snap), largest_keys_below,
                              lambda lo, hi, span: (hi, jnp.int32(0)), lo, hi, jnp.where(snap, span, 1))
    return (jnp.where(snap, top, point(at - margin)), jnp.where(snap, top + 1, point(at + margin)),
            reads)

  def body(state):
    lo, hi, c_lo, c_hi, margin, step, reads = state
    if first is None:
      c1, c2, extra = thresholds(lo, hi, c_lo, c_hi, margin)
    else:
      c1, c2, extra = jax.lax.cond(step == 0, lambda *_: (*first, jnp.int32(0)), thresholds,
                                   lo, hi, c_lo, c_hi, margin)
    n1, n2 = per_source(_count, c1, c2)
    searching = hi - lo > 1  # finished rows keep their bracket
    above, inside = searching & (n2 >= k), searching & (n1 >= k) & (n2 < k)
    below = searching & (n1 < k)
    lo, c_lo = jnp.where(above, c2, jnp.where(inside, c1, lo)), jnp.where(above, n2, jnp.where(inside, n1, c_lo))
    hi, c_hi = jnp.where(below, c1, jnp.where(inside, c2, hi)), jnp.where(below, n1, jnp.where(inside, n2, c_hi))
    margin = jnp.clip(jnp.where(inside, margin / 4, margin * 4), 2.0**-12, 0.5)
    return lo, hi, c_lo, c_hi, margin, step + 1, reads + extra + 1

  if first is None:  # integer extremes are exact (float min/max may ignore subnormals)
    lo, hi = per_source(_extremes, top=~utype(0))
    hi = hi + 1
  else:
    lo, hi = jnp.ones(k.shape, utype), jnp.full(k.shape, ~utype(0))
  if live is not None:
    lo, hi = jnp.where(live, lo, ~utype(1)), jnp.where(live, hi, ~utype(0))
  init = (lo, hi, jnp.asarray(sizes, jnp.int32), jnp.zeros(k.shape, jnp.int32),
          jnp.full(k.shape, 2.0**-4, jnp.float32), jnp.int32(0), jnp.int32(first is None))
  final = jax.lax.while_loop(lambda s: jnp.any(s[1] - s[0] > 1), body, init)
  return final[0], final[-1]


def kth_largest(groups: Sequence[Sequence[jax.Array]], ks: Sequence[int | jax.Array],
                guesses: Sequence[jax.Array] | None = None,
                needed: Sequence[jax.Array] | None = None) -> list[jax.Array]:
  """The ``ks[j]``-th largest score of every group ``j``, exactly (eq. 5's thresholds).

  Groups are searched together by counting (see :func:`_search`): the keys of
  groups under ``_CHUNK`` scores are laid out as the rows of a few matrices
  (one per row width, at most 1/8 padding with 0, below every key), larger
  groups are read from their scores; then passes count keys above thresholds;
  no sort and no host callback (sharded scores are gathered). Groups of up to
  ``_TOP_K_MAX_SIZE`` scores with a static ``k`` use ``lax.top_k`` instead.
  Ties count with multiplicity, and -0.0 equals 0.0, as in a float sort.

  Args:
    groups: every group's scores, as a sequence of real arrays of any shapes
      (the leaves of the group) and one float dtype.
    ks: per group, ``1 <= k <= size``: a Python int, or a traced integer (for
      example a frozen fraction under ``optax.inject_hyperparams``), which is
      clipped into that range.
    guesses: per group, a scalar near the answer (for example last step's
      threshold: importance scores change little between steps), or ``None``
      to start from the scores' extremes. The first pass then counts at
      ``guess * (1 +- 2**-10)``; a bad guess costs passes, never exactness.
    needed: per group, a boolean scalar, or ``None`` for all: groups that are
      not needed are not searched and get NaN. Under ``vmap`` a ``lax.cond``
      around the selection runs its branch for every member; while no member
      needs any group, the search then makes no passes.

  Returns:
    Per group, a scalar of the scores' dtype.
  """
  return kth_largest_and_passes(groups, ks, guesses, needed)[0]


def kth_largest_and_passes(
    groups: Sequence[Sequence[jax.Array]], ks: Sequence[int | jax.Array],
    guesses: Sequence[jax.Array] | None = None,
    needed: Sequence[jax.Array] | None = None) -> tuple[list[jax.Array], jax.Array]:
  """:func:`kth_largest`, and how many passes over the scores it made (for measurements)."""
  passes = jnp.int32(0)
  groups = [[_replicated(s) for s in group] for group in groups]
  out = [None] * len(groups)
  # key dtype: row width (None: read from the scores): [(group index, k)]
  searched = {jnp.uint32: {}, jnp.uint64: {}}
  for j, (group, k) in enumerate(zip(groups, ks)):
    n = sum(s.size for s in group)
    if isinstance(k, int) and n <= _TOP_K_MAX_SIZE:
      out[j] = _value(_top_k_key(_padded_keys(group, n), k), group[0].dtype)
      if needed is not None:
        out[j] = jnp.where(needed[j], out[j], jnp.nan)
      continue
    if n >= _CHUNK:
      width = None
    else:
      unit = 1 << max(n.bit_length() - 4, 0)  # widths 8..15 units: at most 1/8 padding
      width = max(-(-n // unit) * unit, _MIN_WIDTH)
    searched[_key_dtype(group[0].dtype)[0]].setdefault(width, []).append((j, jnp.clip(k, 1, n)))
  for utype, by_width in searched.items():
    if not by_width:
      continue
    parts = [(_Keys((jnp.stack([_padded_keys(groups[j], width) for j, _ in members]),)), members)
             for width, members in by_width.items() if width is not None]
    parts += [(_Keys(tuple(groups[j]), scores=True), [(j, k)]) for j, k in by_width.get(None, [])]
    sources = [source for source, _ in parts]
    slots = [j for _, members in parts for j, _ in members]
    ks_ = jnp.stack([jnp.asarray(k, jnp.int32) for _, members in parts for _, k in members])
    sizes = np.array([sum(s.size for s in groups[j]) for j in slots])
    first = None if guesses is None else _around([guesses[j] for j in slots], groups[slots[0]][0].dtype)
    live = None if needed is None else jnp.stack([jnp.asarray(needed[j], bool) for j in slots])
    keys, n_passes = _search(sources, utype, ks_, sizes, first, live)
    passes += n_passes
    for slot, j in enumerate(slots):
      out[j] = _value(keys[slot], groups[j][0].dtype)
  return out, passes


def _around(guesses: Sequence[jax.Array], dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
  """Per guess, the keys ``c1 <= c2`` at a relative distance of about ``2**-10`` on either side."""
  dtype = jnp.promote_types(dtype, jnp.float32)
  keys = jnp.stack([_keys(jnp.asarray(guess, dtype)) for guess in guesses])
  half = keys.dtype.type(1 << (jnp.finfo(dtype).nmant - 10))
  top = ~keys.dtype.type(0)
  return (jnp.where(keys > half, keys - half, 1),
          jnp.where(keys < top - half, keys + half, top))


def _top_k_key(keys: jax.Array, k: int) -> jax.Array:
  """The ``k``-th largest of unsigned ``keys`` by ``lax.top_k`` (on signed integers of their order)."""
  utype, width = keys.dtype.type, jnp.iinfo(keys.dtype).bits
  itype = jnp.int64 if width == 64 else jnp.int32
  sign = utype(1 << (width - 1))
  top = jax.lax.top_k(jax.lax.bitcast_convert_type(keys ^ sign, itype), k)[0][k - 1]
  return jax.lax.bitcast_convert_type(top, utype) ^ sign


def _replicated(scores: jax.Array) -> jax.Array:
  """Scores sharded over Explicit mesh axes, gathered onto every device.

  A group's keys are laid out as rows of one matrix, a reshape that Explicit
  sharding rejects; with Auto axes XLA inserts the same all-gather itself.
  """
  if any(axis is not None for axis in jax.typeof(scores).sharding.spec):
    return jax.sharding.reshard(scores, jax.sharding.PartitionSpec())
  return scores


def _padded_keys(group: Sequence[jax.Array], width: int) -> jax.Array:
  keys = jnp.concatenate([_keys(s.ravel()) for s in group])
  return jnp.pad(keys, (0, width - keys.size))


def frozen_mask(scores: jax.Array, threshold: jax.Array) -> jax.Array:
  """Where eq. 5 sets the plasticity factor P to 0, given the group's threshold."""
  return scores >= TIE_TOLERANCE * threshold
