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

_EXACT_SPAN = 1 << 24
"""Brackets are cut only while their offsets ``key - lo`` are exact in float32."""

_SNAP = 4
"""When at most this many scores lie in a bracket, cut it to its smallest and largest key."""

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


_BLOCK = 1 << 17
"""Passes read key matrices in blocks of at most this many keys: a block and its
comparisons then stay in cache. (Chunks of scores are larger, as their loops run on
the host: there each iteration costs more than the cache saves.)"""


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

  ``keys`` has shape ``[rows, columns]``, ``rows * columns <= _CHUNK`` for
  scores and ``<= _BLOCK`` for a key matrix; the full blocks run in a loop, so
  that their temporaries share memory, and a narrower remainder follows.
  """
  to_keys = _keys if source.scores else lambda keys: keys
  size = _CHUNK if source.scores else _BLOCK
  acc = init
  for array in source.arrays:
    array = array.reshape(1, -1) if source.scores else array
    rows, width = array.shape
    cols = min(width, max(1, size // rows))

    def block(i, acc, array=array, cols=cols):
      return combine(acc, fn(to_keys(jax.lax.dynamic_slice_in_dim(array, i * cols, cols, axis=1))))

    acc = jax.lax.fori_loop(0, width // cols, block, acc)
    if width % cols:
      acc = combine(acc, fn(to_keys(array[:, width - width % cols:])))
  return acc


def _count(source: _Keys, c1: jax.Array, c2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per row, ``(#keys >= c1, #keys >= c2)`` for ``c1 <= c2``, in one pass over the keys.

  ``b = [key >= c1] + [key >= c2]`` gives both counts from ``sum(b)`` and
  ``sum(b * b)``: float sums (exact: at most ``4 * _CHUNK < 2**24`` per block;
  key-matrix blocks, ``_BLOCK``, are smaller),
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


def _extreme_offsets(source: _Keys, lo, hi) -> jax.Array:
  """Per row, the largest offsets ``key - lo`` (row 0) and ``hi - 1 - key`` (row 1) of the
  keys in ``[lo, hi)`` as floats, exact for brackets of at most ``_EXACT_SPAN`` keys."""
  def offsets(keys):
    inside = (keys >= lo[:, None]) & (keys < hi[:, None])
    largest = lambda offset: jnp.max(jnp.where(inside, offset.astype(jnp.float32), -1), axis=1)
    return jnp.stack([largest(keys - lo[:, None]), largest(hi[:, None] - 1 - keys)])
  return _fold(source, offsets, jnp.maximum, jnp.full([2, source.rows], -1, jnp.float32))


def _extremes(source: _Keys, top: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per row, the smallest key that is not padding (0) and the largest key.

  ``top`` is the largest key of the key dtype, above every key (NaN's is ``top - 1``).
  """
  def extremes(keys):
    return jnp.min(jnp.where(keys == 0, top, keys), axis=1), jnp.max(keys, axis=1)

  init = (jnp.full([source.rows], top), jnp.zeros([source.rows], top.dtype))
  return _fold(source, extremes, lambda a, b: (jnp.minimum(a[0], b[0]), jnp.maximum(a[1], b[1])),
               init)


class _Bracket(NamedTuple):
  """Per row of keys, ``[lo, hi)`` with ``#(>= lo) = c_lo >= k > c_hi = #(>= hi)``, and how
  the last count moved it."""

  lo: jax.Array
  hi: jax.Array
  c_lo: jax.Array
  c_hi: jax.Array
  margin: jax.Array  # of the next interpolated thresholds, as a fraction of the bracket
  density: jax.Array  # keys counted between the last thresholds per unit of key (0: none)
  width: jax.Array  # c2 - c1 of the last count, as a float
  moved: jax.Array  # the last count: 0 put the k-th key between its thresholds, 1 above, -1 below


def _search(source: _Keys, utype: type, k: jax.Array, sizes: np.ndarray,
            first: tuple[jax.Array, jax.Array] | None,
            live: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """The ``k[j]``-th largest key of every row ``j`` of ``source``, of dtype ``utype``.

  For every row, keeps a bracket ``[lo, hi)`` of keys with
  ``#(>= lo) >= k > #(>= hi)``, at first from the row's smallest and largest
  key (``sizes[j]`` keys that are not padding), or, given ``first``, from all
  keys ``[1, 2**width - 1)`` (no pass: padding is 0 and NaN's key is
  ``2**width - 2``); and narrows it by counting the keys above two thresholds
  per pass: ``first`` if given; after a count that put the ``k``-th key
  between its thresholds, around the position interpolated in the bracket,
  with a margin that shrinks while such guesses hit and grows when they miss;
  after a count that missed, at half and twice the distance that the density
  of keys between its thresholds extrapolates from the bracket's near end. A
  bracket with at most ``_SNAP`` keys that spans at most ``_EXACT_SPAN`` keys
  is cut to its smallest and largest key (float maxima of their offsets, one
  pass), which ends the search for the row if the ``k``-th key is one of
  them; cuts wait until every row that is not done has such a bracket. A row
  is done when ``hi == lo + 1``: ``lo`` is then a key of the row, the
  ``k``-th largest one. The rows advance together, in one loop that runs as
  many passes as the slowest row needs. Rows that are not ``live`` start
  done, at NaN's key.

  Returns:
    The keys, and the number of passes over ``source``: counts, cuts and extremes.
  """
  def smallest_and_largest(lo, hi):
    """Per row, the smallest and largest key in ``[lo, hi)``: one pass."""
    up, down = _extreme_offsets(source, lo, hi).astype(utype)
    return hi - 1 - down, lo + up

  def count(b: _Bracket, c1, c2):
    """``b`` after one pass that counts the keys above ``c1 <= c2``."""
    n1, n2 = _count(source, c1, c2)
    searching = b.hi - b.lo > 1  # finished rows keep their bracket
    above, below = searching & (n2 >= k), searching & (n1 < k)
    inside = searching & ~above & ~below
    spread = (c2 - c1).astype(jnp.float32)
    return _Bracket(
        lo=jnp.where(above, c2, jnp.where(inside, c1, b.lo)),
        hi=jnp.where(below, c1, jnp.where(inside, c2, b.hi)),
        c_lo=jnp.where(above, n2, jnp.where(inside, n1, b.c_lo)),
        c_hi=jnp.where(below, n1, jnp.where(inside, n2, b.c_hi)),
        margin=jnp.clip(jnp.where(inside, b.margin / 4, b.margin * 4), 2.0**-12, 0.5),
        density=jnp.where(searching & (spread > 0), (n1 - n2) / jnp.maximum(spread, 1), b.density),
        width=jnp.where(searching, spread, b.width),
        moved=above.astype(jnp.int32) - below.astype(jnp.int32),
    )

  def thresholds(b: _Bracket):
    """The next count's ``c1 <= c2`` inside every bracket (see above)."""
    span = b.hi - b.lo
    fspan = span.astype(jnp.float32)
    at = (b.c_lo - k + 0.5) / (b.c_lo - b.c_hi).astype(jnp.float32)  # linear in keys
    # After a miss: the k-th key's distance from the bracket's near end at the density of keys
    # between the last thresholds, but at least their spread (so that misses in a row widen the
    # thresholds' spread at least 3-fold each).
    ahead = jnp.where(b.moved > 0, b.c_lo - k + 0.5, k - b.c_hi - 0.5)
    distance = jnp.maximum(ahead / jnp.maximum(b.density, 1e-30), jnp.maximum(b.width, 1))
    up = distance / jnp.maximum(fspan, 1)  # as a fraction of the bracket
    interpolate = (b.moved == 0) | (up >= 0.5)  # extrapolations beyond the bracket are no help
    f1 = jnp.where(interpolate, at - b.margin, jnp.where(b.moved > 0, up / 2, 1 - 2 * up))
    f2 = jnp.where(interpolate, at + b.margin, jnp.where(b.moved > 0, 2 * up, 1 - up / 2))

    def point(f):
      offset = (fspan * jnp.clip(f, 0, 1)).astype(utype)
      return b.lo + jnp.clip(offset, 1, jnp.maximum(span, 2) - 1)

    return point(f1), point(f2)

  def body(state):
    b, step, reads = state
    # Cuts wait until every row left has few keys: a cut reads all rows, like a count.
    searching = b.hi - b.lo > 1
    few = (b.c_lo - b.c_hi <= _SNAP) & (b.hi - b.lo <= _EXACT_SPAN)
    snap = searching & jnp.all(~searching | few)
    low, high, passes = jax.lax.cond(
        jnp.any(snap), lambda lo, hi: (*smallest_and_largest(lo, hi), jnp.int32(1)),
        lambda lo, hi: (lo, hi - 1, jnp.int32(0)), b.lo, b.hi)
    rank = k - b.c_hi  # of the k-th key among the bracket's c_lo - c_hi keys
    is_high, is_low = rank == 1, (rank == b.c_lo - b.c_hi) | (low == high)
    b = b._replace(lo=jnp.where(snap, jnp.where(is_high, high, low), b.lo),
                   hi=jnp.where(snap, jnp.where(is_high | ~is_low, high, low) + 1, b.hi))
    # A cut bracket that is not done counts at its inner keys next: its extremes' multiplicities.
    c1, c2 = thresholds(b)
    c1, c2 = jnp.where(snap, b.lo + 1, c1), jnp.where(snap, b.hi - 1, c2)
    if first is not None:
      guess = (step == 0) & ~snap
      c1, c2 = jnp.where(guess, first[0], c1), jnp.where(guess, first[1], c2)
    b, counted = jax.lax.cond(jnp.any(b.hi - b.lo > 1), lambda b: (count(b, c1, c2), jnp.int32(1)),
                              lambda b: (b, jnp.int32(0)), b)
    return b, step + 1, reads + passes + counted

  if first is None:  # integer extremes are exact (float min/max may ignore subnormals)
    lo, hi = _extremes(source, top=~utype(0))
    hi = hi + 1
  else:
    lo, hi = jnp.ones(k.shape, utype), jnp.full(k.shape, ~utype(0))
  if live is not None:
    lo, hi = jnp.where(live, lo, ~utype(1)), jnp.where(live, hi, ~utype(0))
  zeros = jnp.zeros(k.shape, jnp.float32)
  init = _Bracket(lo, hi, jnp.asarray(sizes, jnp.int32), jnp.zeros(k.shape, jnp.int32),
                  margin=jnp.full(k.shape, 2.0**-4, jnp.float32), density=zeros, width=zeros,
                  moved=jnp.zeros(k.shape, jnp.int32))
  b, _, reads = jax.lax.while_loop(lambda s: jnp.any(s[0].hi - s[0].lo > 1), body,
                                   (init, jnp.int32(0), jnp.int32(first is None)))
  return b.lo, reads


def kth_largest(groups: Sequence[Sequence[jax.Array]], ks: Sequence[int | jax.Array],
                guesses: Sequence[jax.Array] | None = None,
                needed: Sequence[jax.Array] | None = None) -> list[jax.Array]:
  """The ``ks[j]``-th largest score of every group ``j``, exactly (eq. 5's thresholds).

  Groups are searched by counting (see :func:`_search`): the keys of groups
  under ``_CHUNK`` scores are laid out as the rows of a few matrices (one per
  row width, at most 1/8 padding with 0, below every key), larger groups are
  read from their scores; each matrix and each larger group then has its own
  loop of passes that count keys above thresholds, so that the extra passes
  of small groups cost little; no sort and no host callback (sharded scores
  are gathered). Groups of up to ``_TOP_K_MAX_SIZE`` scores with a static
  ``k`` use ``lax.top_k`` instead. Ties count with multiplicity, and -0.0
  equals 0.0, as in a float sort.

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
  """:func:`kth_largest`, and how many passes over the scores it made (for measurements).

  A pass over a key matrix or a large group counts in proportion to its share
  of the searched scores: the result is in whole passes over all of them.
  """
  passes = jnp.float32(0)
  groups = [[_replicated(s) for s in group] for group in groups]
  out = [None] * len(groups)
  sizes = np.array([sum(s.size for s in group) for group in groups])
  # key dtype: row width (None: read from the scores): [(group index, k)]
  searched = {jnp.uint32: {}, jnp.uint64: {}}
  for j, (group, k, n) in enumerate(zip(groups, ks, sizes.tolist())):
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
  searched_size = sum(sizes[j] for by_width in searched.values()
                      for members in by_width.values() for j, _ in members)
  for utype, by_width in searched.items():
    parts = [(_Keys((jnp.stack([_padded_keys(groups[j], width) for j, _ in members]),)), members)
             for width, members in by_width.items() if width is not None]
    parts += [(_Keys(tuple(groups[j]), scores=True), [(j, k)]) for j, k in by_width.get(None, [])]
    for source, members in parts:  # a loop each: the passes of small groups cost little
      slots = [j for j, _ in members]
      first = None if guesses is None else _around([guesses[j] for j in slots],
                                                    groups[slots[0]][0].dtype)
      live = None if needed is None else jnp.stack([jnp.asarray(needed[j], bool) for j in slots])
      k = jnp.stack([jnp.asarray(k, jnp.int32) for _, k in members])
      keys, reads = _search(source, utype, k, sizes[slots], first, live)
      passes += reads * float(sizes[slots].sum() / searched_size)
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
