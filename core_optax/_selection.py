"""Selection of the weights to freeze: the top-n_frozen importance scores (eq. 5).

The threshold of every group is found by counting: each pass over the scores
reduces every leaf, in its own shape and sharding, to a few numbers per group
(how many keys lie above two thresholds), so that with sharded scores XLA
makes an all-reduce of O(groups) numbers and never gathers, reshapes or
all-to-alls the scores. :func:`kth_largest` is what the optimizer calls;
:func:`search` is the internal entry point for measurements (it also says how
many passes the search made).
"""

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
do we. Measured by ``python -m benchmarks tie-band`` (an MLP on digits, p_frozen =
0.1): at most 67 weights over ``k`` = 1638 in a 16,384-weight leaf (10.41% frozen)
and 401 over 6553 in a 65,536-weight one (10.61%).

Scores are never negative, so a threshold of 0 freezes the whole group. That happens
when fewer than ``k`` of its weights have a positive score once freezing starts
(weights that got no gradient in the first ``score_history`` updates: embedding rows
not yet seen, inputs that are always 0). A frozen weight's score only decays, so the
group then stays frozen, and weights that get gradients later never learn. The
reference does this too (eq. 5's top-``k`` would freeze ``k`` weights). Such
parameters want a ``frozen_fraction`` of 0 in their own group (``groups``).
"""

_TOP_K_MAX_SIZE = 256
"""Unsharded groups up to this size (with a static ``k``) use ``lax.top_k``; it is faster."""

_CHUNK = 1 << 19
"""Unsharded leaves of at least this many scores are read in chunks of this size.

XLA:CPU vectorises a float sum of a materialised array, not a reduction fused
with its comparisons, and gives temporaries above about 32 MB fresh pages on
every call: a count over 1e7 keys in chunks of ``2**19`` took 2.5 and 7.5 ms in
two runs, in one fused reduction 13.1 and 24 ms, with 10,000 page faults per count
(``python -m benchmarks chunked-reductions``). Sharded leaves are never chunked:
a slice of a sharded array would move data.
"""

_SNAP = 4
"""When at most this many scores lie in a bracket, cut it to its smallest and largest key."""

_FIRST_SPREAD = 13
"""A guess is counted at ``guess * (1 +- 2**-_FIRST_SPREAD)``.

In training, :func:`next_threshold_guess` misses the threshold by a relative
3e-5 to 1.3e-4 (median; 90th percentile 1.6e-4 to 7e-4) per group of the
64-512-512-10 MLP of ``python -m benchmarks selection-passes``. ``2**-13``
brackets the answer in 85% of the updates of its largest group (262144 scores,
about 600 of them in the bracket) and 50-70% of the others'; a wider window
leaves more scores to narrow down, which costs more passes than the misses
(mean passes per update: 6.2 at ``2**-13``, 6.4 at ``2**-12``, 6.7 at ``2**-11``).
"""

_MARGIN = 0.75
"""Interpolated thresholds lie this many standard deviations either side of the
``k``-th key's interpolated position.

With its ``m`` keys spread uniformly, the key at a fraction ``f`` of a bracket
has a position of standard deviation ``sqrt(f (1 - f) / m)`` of the bracket.
A tight pair leaves few keys when it brackets the key, and a miss costs about
one count of extrapolation (mean passes per update with ``2**-12`` windows:
6.4 at 0.75, 6.5 at 1, 7.8 at 1.5, 9.9 at 2).
"""


def _key_dtype(dtype: jnp.dtype) -> type:
  if jnp.promote_types(dtype, jnp.float32) == jnp.float64:
    return jnp.uint64
  return jnp.uint32


def _keys(x: jax.Array) -> jax.Array:
  """Unsigned integers with the order of the floats ``x``; -0.0 gets the key of 0.0.

  Integer comparisons of keys are exact where float comparisons are not (CPUs
  may treat subnormals as zero), and make the search space a range of integers.
  Every key is above 0. Every NaN, whatever its sign bit (x86 makes 0/0 a
  negative NaN), gets the key ``2**width - 2``, above +inf, as ``torch.topk``
  ranks NaN above every number. Elementwise: ``x``'s shape and sharding stay.
  """
  utype = _key_dtype(x.dtype)
  width = jnp.iinfo(utype).bits
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # exact for float16/bfloat16
  bits = jax.lax.bitcast_convert_type(x, utype)
  sign = utype(1 << (width - 1))
  keys = jnp.where(bits >= sign, ~bits, bits | sign)  # negatives reversed, below positives
  keys = jnp.where(keys == ~sign, sign, keys)  # ~sign is the key of -0.0
  return jnp.where(jnp.isnan(x), ~utype(1), keys)


def _value(key: jax.Array, dtype: jnp.dtype) -> jax.Array:
  """Inverse of :func:`_keys`."""
  utype = _key_dtype(dtype)
  sign = utype(1 << (jnp.iinfo(utype).bits - 1))
  bits = jnp.where(key >= sign, key ^ sign, ~key)
  ftype = jnp.float64 if utype == jnp.uint64 else jnp.float32
  return jax.lax.bitcast_convert_type(bits, ftype).astype(dtype)


def _is_local(x: jax.Array) -> bool:
  """Whether ``x`` is whole on every device, so that reshapes and slices move no data.

  True for arrays on a mesh of one device and for arrays replicated over Explicit
  mesh axes. With Auto axes XLA decides the sharding after tracing: such arrays
  count as sharded. An array that names no mesh is local if this process has one
  device. The mesh decides, not this process's devices, so that a step compiled
  ahead of time for a slice (``jax.jit(step).lower(...)`` with shardings on a
  topology's devices) counts in place from a one-device process too.
  """
  sharding = jax.typeof(x).sharding
  mesh = sharding.mesh
  if not mesh.axis_names:
    return jax.device_count() == 1
  explicit = all(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types)
  return mesh.size == 1 or (explicit and all(a is None for a in sharding.spec))


class _Scores(NamedTuple):
  """The groups searched together: their leaves, and each leaf's row (group)."""

  leaves: tuple[jax.Array, ...]
  rows_of: tuple[int, ...]
  rows: int

  def reduce(self, fn: Callable, combine: Callable, init) -> tuple[jax.Array, ...]:
    """Per row ``j``, ``combine`` of ``fn(keys, j)`` over the row's leaves, stacked over rows.

    ``fn`` maps keys of any shape to a tuple of scalars (a reduction over all
    axes), and ``init`` is such a tuple. Local leaves of at least ``_CHUNK``
    scores are read in chunks, in a loop; other leaves are reduced in their own
    shape and sharding (under sharding: a local reduction and an all-reduce of
    scalars).
    """
    acc = [init] * self.rows
    for leaf, j in zip(self.leaves, self.rows_of):
      acc[j] = combine(acc[j], _chunked(leaf, lambda keys, j=j: fn(keys, j), combine, init))
    return tuple(jnp.stack(column) for column in zip(*acc))


def _chunked(leaf: jax.Array, fn: Callable, combine: Callable, init):
  """``combine`` of ``fn(keys)`` over chunks of ``leaf``'s keys, or ``fn`` of all of them."""
  if leaf.size < _CHUNK or not _is_local(leaf):
    return fn(_keys(leaf))
  flat = leaf.ravel()

  def chunk(i, acc):
    return combine(acc, fn(_keys(jax.lax.dynamic_slice_in_dim(flat, i * _CHUNK, _CHUNK))))

  acc = jax.lax.fori_loop(0, flat.size // _CHUNK, chunk, init)
  if flat.size % _CHUNK:
    acc = combine(acc, fn(_keys(flat[flat.size - flat.size % _CHUNK:])))
  return acc


def _add(a, b):
  return tuple(x + y for x, y in zip(a, b))


def _count(scores: _Scores, c1: jax.Array, c2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per row, ``(#keys >= c1, #keys >= c2)`` for ``c1 <= c2``: one pass.

  ``b = [key >= c1] + [key >= c2]`` gives both counts from ``sum(b)`` and
  ``sum(b * b)``: float sums of the materialised bytes, which XLA:CPU
  vectorises, exact while ``4 * keys.size < 2**24`` (chunks and small
  leaves); larger (sharded) leaves are summed in int32, exact for any size.
  """
  def sums(keys, j):
    b = (keys >= c1[j]).astype(jnp.uint8) + (keys >= c2[j]).astype(jnp.uint8)
    if 4 * keys.size >= 1 << 24:
      b = b.astype(jnp.int32)
      return jnp.sum(b), jnp.sum(b * b)
    # Materialising the bytes lets XLA:CPU vectorise the float sums.
    b = jax.lax.optimization_barrier(b).astype(jnp.float32)
    return jnp.sum(b).astype(jnp.int32), jnp.sum(b * b).astype(jnp.int32)

  zero = jnp.zeros([], jnp.int32)
  s1, s2 = scores.reduce(sums, _add, (zero, zero))
  n2 = (s2 - s1) // 2
  return s1 - n2, n2


def _max(a, b):
  return tuple(jnp.maximum(x, y) for x, y in zip(a, b))


def _smallest_and_largest(scores: _Scores, lo: jax.Array, hi: jax.Array,
                          utype: type) -> tuple[jax.Array, jax.Array]:
  """Per row, the smallest and largest key in ``[lo, hi)`` (``hi - 1``, ``lo`` if none): one pass.

  Integer maxima of ``key`` and of ``~key`` (the minimum), exact for every key.
  """
  def extremes(keys, j):
    inside = (keys >= lo[j]) & (keys < hi[j])
    return jnp.max(jnp.where(inside, ~keys, ~(hi[j] - 1))), jnp.max(jnp.where(inside, keys, lo[j]))

  init = (jnp.zeros([], utype), jnp.zeros([], utype))
  low, high = scores.reduce(extremes, _max, init)
  return ~low, high


class _Bracket(NamedTuple):
  """Per row, ``[lo, hi)`` with ``#(>= lo) = c_lo >= k > c_hi = #(>= hi)``, and how
  the last count moved it."""

  lo: jax.Array
  hi: jax.Array
  c_lo: jax.Array
  c_hi: jax.Array
  density: jax.Array  # keys counted between the last thresholds per unit of key (0: none)
  width: jax.Array  # c2 - c1 of the last count, as a float
  moved: jax.Array  # the last count: 0 put the k-th key between its thresholds, 1 above, -1 below


def _narrow(b: _Bracket, k: jax.Array, c1, c2, n1, n2) -> _Bracket:
  """``b`` after a count of ``n1 = #(>= c1)`` and ``n2 = #(>= c2)`` keys."""
  searching = b.hi - b.lo > 1  # finished rows keep their bracket
  above, below = searching & (n2 >= k), searching & (n1 < k)
  inside = searching & ~above & ~below
  spread = (c2 - c1).astype(jnp.float32)
  return _Bracket(
      lo=jnp.where(above, c2, jnp.where(inside, c1, b.lo)),
      hi=jnp.where(below, c1, jnp.where(inside, c2, b.hi)),
      c_lo=jnp.where(above, n2, jnp.where(inside, n1, b.c_lo)),
      c_hi=jnp.where(below, n1, jnp.where(inside, n2, b.c_hi)),
      density=jnp.where(searching & (spread > 0), (n1 - n2) / jnp.maximum(spread, 1), b.density),
      width=jnp.where(searching, spread, b.width),
      moved=above.astype(jnp.int32) - below.astype(jnp.int32),
  )


def _thresholds(b: _Bracket, k: jax.Array, utype: type) -> tuple[jax.Array, jax.Array]:
  """The next count's ``c1 <= c2`` inside every bracket.

  After a count that put the ``k``-th key between its thresholds: ``_MARGIN``
  standard deviations either side of the position interpolated in the bracket.
  After a count that missed: at half and twice the distance that the density
  of keys between its thresholds extrapolates from the bracket's near end (at
  least their spread, so that misses in a row widen the spread at least 3-fold
  each), or, if no key lay between them, at 2 and 8 times their spread.
  """
  span = b.hi - b.lo
  fspan = span.astype(jnp.float32)
  m = (b.c_lo - b.c_hi).astype(jnp.float32)
  at = (b.c_lo - k + 0.5) / m  # linear in keys
  margin = _MARGIN * jnp.sqrt(jnp.maximum(m * at * (1 - at), 1)) / m
  ahead = jnp.where(b.moved > 0, b.c_lo - k + 0.5, k - b.c_hi - 0.5)
  width = jnp.maximum(b.width, 1)
  distance = jnp.where(b.density > 0, jnp.maximum(ahead / jnp.maximum(b.density, 1e-30), width),
                       4 * width)
  up = distance / jnp.maximum(fspan, 1)  # as a fraction of the bracket
  interpolate = (b.moved == 0) | (up >= 0.5)  # extrapolations beyond the bracket are no help
  f1 = jnp.where(interpolate, at - margin, jnp.where(b.moved > 0, up / 2, 1 - 2 * up))
  f2 = jnp.where(interpolate, at + margin, jnp.where(b.moved > 0, 2 * up, 1 - up / 2))

  def point(f):
    offset = (fspan * jnp.clip(f, 0, 1)).astype(utype)
    return b.lo + jnp.clip(offset, 1, jnp.maximum(span, 2) - 1)

  return point(f1), point(f2)


def _search(scores: _Scores, utype: type, k: jax.Array, sizes: np.ndarray,
            first: tuple[jax.Array, jax.Array] | None,
            live: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """The ``k[j]``-th largest key of every row ``j`` of ``scores``, of dtype ``utype``.

  For every row, keeps a bracket ``[lo, hi)`` of keys with
  ``#(>= lo) >= k > #(>= hi)``, at first from the row's smallest and largest
  key (one pass), or, given ``first``, from all keys ``[1, 2**width - 1)``
  (no pass: every key is above 0 and NaN's is ``2**width - 2``); and narrows
  it by counting the keys above two thresholds per pass (:func:`_thresholds`,
  ``first`` in the first pass). A bracket with at most ``_SNAP`` keys is cut
  to its smallest and largest key (one pass), which ends the search for the
  row if the ``k``-th key is one of them; cuts wait until every row that is
  not done has such a bracket. A row is done when ``hi == lo + 1``: ``lo`` is
  then a key of the row, the ``k``-th largest one. All rows advance together
  in one loop; every pass is one reduction per leaf, so that the loop's
  condition depends only on all-reduced (identical) counts. Rows that are not
  ``live`` start done, at NaN's key.

  Returns:
    The keys, and the number of passes over the scores: counts, cuts and extremes.
  """
  def body(state):
    b, step, passes = state
    searching = b.hi - b.lo > 1
    few = b.c_lo - b.c_hi <= _SNAP
    snap = searching & jnp.all(~searching | few)
    low, high, cut = jax.lax.cond(
        jnp.any(snap), lambda lo, hi: (*_smallest_and_largest(scores, lo, hi, utype), jnp.int32(1)),
        lambda lo, hi: (lo, hi - 1, jnp.int32(0)), b.lo, b.hi)
    rank = k - b.c_hi  # of the k-th key among the bracket's c_lo - c_hi keys
    is_high, is_low = rank == 1, (rank == b.c_lo - b.c_hi) | (low == high)
    b = b._replace(lo=jnp.where(snap, jnp.where(is_high, high, low), b.lo),
                   hi=jnp.where(snap, jnp.where(is_high | ~is_low, high, low) + 1, b.hi))
    # A cut bracket that is not done counts at its inner keys next: its extremes' multiplicities.
    c1, c2 = _thresholds(b, k, utype)
    c1, c2 = jnp.where(snap, b.lo + 1, c1), jnp.where(snap, b.hi - 1, c2)
    if first is not None:
      guess = (step == 0) & ~snap
      c1, c2 = jnp.where(guess, first[0], c1), jnp.where(guess, first[1], c2)
    b, counted = jax.lax.cond(
        jnp.any(b.hi - b.lo > 1), lambda b: (_narrow(b, k, c1, c2, *_count(scores, c1, c2)),
                   jnp.int32(1)),
        lambda b: (b, jnp.int32(0)), b)
    return b, step + 1, passes + cut + counted

  if first is None:
    lo, hi = _smallest_and_largest(scores, jnp.ones(k.shape, utype), jnp.full(k.shape, ~utype(0)),
                                   utype)
    hi = hi + 1
  else:
    lo, hi = jnp.ones(k.shape, utype), jnp.full(k.shape, ~utype(0))
  if live is not None:
    lo, hi = jnp.where(live, lo, ~utype(1)), jnp.where(live, hi, ~utype(0))
  zeros = jnp.zeros(k.shape, jnp.float32)
  init = _Bracket(lo, hi, jnp.asarray(sizes, jnp.int32), jnp.zeros(k.shape, jnp.int32),
                  density=zeros, width=zeros, moved=jnp.zeros(k.shape, jnp.int32))
  b, _, passes = jax.lax.while_loop(lambda s: jnp.any(s[0].hi - s[0].lo > 1), body,
                                    (init, jnp.int32(0), jnp.int32(first is None)))
  return b.lo, passes


class Selection(NamedTuple):
  """What :func:`search` found.

  Attributes:
    thresholds: per group, its ``k``-th largest score (a scalar of its dtype).
    passes: how many passes over the searched scores the search made (counts,
      cuts and extremes), a float32 scalar: the passes of each key dtype's loop
      weighted by its share of the searched scores. ``lax.top_k`` groups make none.
  """

  thresholds: list[jax.Array]
  passes: jax.Array


def search(groups: Sequence[Sequence[jax.Array]], ks: Sequence[int | jax.Array],
           guesses: Sequence[jax.Array] | None = None,
           needed: Sequence[jax.Array] | None = None) -> Selection:
  """:func:`kth_largest`, and how many passes over the scores it made.

  Internal API for tests and studies (``benchmarks/studies``): the arguments
  are those of :func:`kth_largest`. The optimizer calls :func:`kth_largest`,
  where XLA drops the unused pass count.
  """
  out = [None] * len(groups)
  sizes = np.array([sum(s.size for s in group) for group in groups])
  searched = {jnp.uint32: [], jnp.uint64: []}  # key dtype: [(group index, k)]
  for j, (group, k, n) in enumerate(zip(groups, ks, sizes.tolist())):
    if isinstance(k, int) and n <= _TOP_K_MAX_SIZE and all(map(_is_local, group)):
      out[j] = _value(_top_k_key(group, k), group[0].dtype)
      if needed is not None:
        out[j] = jnp.where(needed[j], out[j], jnp.nan)
    else:
      searched[_key_dtype(group[0].dtype)].append((j, jnp.clip(k, 1, n)))
  total = max(sum(int(sizes[j]) for members in searched.values() for j, _ in members), 1)
  passes = jnp.float32(0)
  for utype, members in searched.items():
    if not members:
      continue
    slots = [j for j, _ in members]
    scores = _Scores(tuple(s for j in slots for s in groups[j]),
                     tuple(row for row, j in enumerate(slots) for _ in groups[j]), len(slots))
    first = None if guesses is None else _around([guesses[j] for j in slots], utype)
    live = None if needed is None else jnp.stack([jnp.asarray(needed[j], bool) for j in slots])
    k = jnp.stack([jnp.asarray(k, jnp.int32) for _, k in members])
    keys, reads = _search(scores, utype, k, sizes[slots], first, live)
    passes += reads * float(sizes[slots].sum() / total)
    for row, j in enumerate(slots):
      out[j] = _value(keys[row], groups[j][0].dtype)
  return Selection(out, passes)


def kth_largest(groups: Sequence[Sequence[jax.Array]], ks: Sequence[int | jax.Array],
                guesses: Sequence[jax.Array] | None = None,
                needed: Sequence[jax.Array] | None = None) -> list[jax.Array]:
  """The ``ks[j]``-th largest score of every group ``j``, exactly (eq. 5's thresholds).

  Groups are searched by counting (see :func:`_search`), all groups of a key
  dtype in one loop of passes; each pass reduces every leaf in its own shape
  and sharding to a few numbers, so sharded scores are never gathered (XLA
  all-reduces the counts). Unsharded groups of up to ``_TOP_K_MAX_SIZE``
  scores with a static ``k`` use ``lax.top_k`` instead. Ties count with
  multiplicity, and -0.0 equals 0.0, as in a float sort; NaN ranks highest.

  Args:
    groups: every group's scores, as a sequence of real arrays of any shapes
      and shardings (the leaves of the group) and one float dtype.
    ks: per group, ``1 <= k <= size``: a Python int, or a traced integer (for
      example a frozen fraction under ``optax.inject_hyperparams``), which is
      clipped into that range.
    guesses: per group, a scalar near the answer (see
      :func:`next_threshold_guess`), or ``None`` to start from the scores'
      extremes. The first pass then counts at ``guess * (1 +- 2**-13)``; a
      bad guess costs passes, never exactness.
    needed: per group, a boolean scalar, or ``None`` for all: groups that are
      not needed are not searched and get NaN. Under ``vmap`` a ``lax.cond``
      around the selection runs its branch for every member; while no member
      needs any group, the search then makes no passes.

  Returns:
    Per group, a scalar of the scores' dtype.
  """
  return search(groups, ks, guesses, needed).thresholds


def next_threshold_guess(last: jax.Array, before: jax.Array) -> jax.Array:
  """Where the search for this update's threshold starts, per group.

  Scores drift smoothly from update to update (frozen weights' scores, for
  one, decay by ``1 - 1/t_hist``, eq. 8), and so does the threshold: the
  last threshold, scaled by its last change (by at most a factor of 2). A
  bad guess costs passes of the selection, never exactness.

  Args:
    last: the threshold of the last update that froze weights (0 before one).
    before: the threshold of the one before it (0 before one).

  Returns:
    The guess, of ``last``'s shape and dtype.
  """
  ratio = jnp.where(last * before > 0, last / jnp.where(before == 0, 1, before), 1)
  return last * jnp.clip(ratio, 0.5, 2)


def _around(guesses: Sequence[jax.Array], utype: type) -> tuple[jax.Array, jax.Array]:
  """Per guess, the keys ``c1 <= c2`` at a relative distance of about ``2**-_FIRST_SPREAD``."""
  dtype = jnp.float64 if utype == jnp.uint64 else jnp.float32
  keys = jnp.stack([_keys(jnp.asarray(guess, dtype)) for guess in guesses])
  half = utype(1 << (jnp.finfo(dtype).nmant - _FIRST_SPREAD))
  top = ~utype(0)
  return jnp.where(keys > half, keys - half, 1), jnp.where(keys < top - half, keys + half, top)


def _top_k_key(group: Sequence[jax.Array], k: int) -> jax.Array:
  """The ``k``-th largest key of an unsharded group by ``lax.top_k`` (on signed integers)."""
  keys = jnp.concatenate([_keys(s.ravel()) for s in group])
  utype = keys.dtype.type
  width = jnp.iinfo(utype).bits
  itype = jnp.int64 if width == 64 else jnp.int32
  sign = utype(1 << (width - 1))
  top = jax.lax.top_k(jax.lax.bitcast_convert_type(keys ^ sign, itype), k)[0][k - 1]
  return jax.lax.bitcast_convert_type(top, utype) ^ sign


def frozen_mask(scores: jax.Array, threshold: jax.Array) -> jax.Array:
  """Where eq. 5 sets the plasticity factor P to 0, given the group's threshold."""
  return scores >= TIE_TOLERANCE * threshold
