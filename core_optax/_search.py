"""The exact ``k``-th largest value of each group of leaves, sharding-aware.

This module holds the general search; CoRe's freezing policy (eq. 5's tie band,
masks and warm start) lives in :mod:`core_optax._freezing`. Internal API: tests
and studies (``benchmarks/studies``) call :func:`search`, the optimizer
:func:`kth_largest`.

Values are compared as unsigned integer keys with the floats' order
(:func:`keys`). The search keeps, per group, a bracket of keys ``[lo, hi)``
with ``#(>= lo) >= k > #(>= hi)`` and narrows it in steps:

1. **Pack** (:func:`pack`). The values of the leaves that are whole on every
   device (:func:`is_local`) are copied once per search into one matrix of
   ``BLOCK``-value blocks, each block one group's, so that any number of leaves
   costs one reduction per read; every read computes their keys from it.
   Sharded leaves are read in their own shape and sharding: their counts are
   all-reduced, never their values.
2. **Count** (:func:`_count`). One read counts, per block, the keys at or above
   ``RUNGS`` thresholds ("rungs") of the block's group at once: each key adds 1
   to the 8-bit field of its rung in two words, which sum over a block without
   overflow. The first read puts the rungs on a ladder around a guess
   (:func:`ladder`); later reads where the ``k``-th key lies if keys spread
   evenly over the bracket (:func:`interpolated_rungs`), or outward from a
   bracket's only known end. The bracket becomes the gap between two rungs that
   holds the ``k``-th key.
3. **Cut** (:func:`_extremes`). After a count that barely narrowed a bracket (a
   tie, a tight cluster), one read cuts every bracket to its smallest and
   largest key; without a guess, the first read is a cut.
4. **Collect** (:func:`_collect`). Once every local group's bracket holds at
   most ``COLLECT`` keys, those keys are gathered from their blocks and ranked:
   exact, reading only those blocks. Groups with sharded leaves count on until
   their bracket is one key wide (each device would otherwise have to send its
   candidates). A group is done when ``hi == lo + 1``: ``lo`` is then its
   ``k``-th largest key (ties count with multiplicity).
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

BLOCK = 128
"""Keys per block of the packed matrix: a block's counts fit the 8-bit fields of a read."""

RUNGS = 8
"""Thresholds per group counted in one read: two 32-bit words of four 8-bit fields each.

XLA:CPU sums the fields of a block as elementwise adds of halves, which it
vectorises; a row reduction of each rung's comparisons it does not, and counting
the rungs one by one was several times slower. ``python -m benchmarks
selection-passes`` records the reads per update
(``benchmarks/results/studies/selection_passes.md``).
"""

COLLECT = 16
"""A local group's bracket is collected once it holds at most this many keys.

Collecting gathers one block per candidate, so it reads ``COLLECT * BLOCK`` keys
per group at most: small against a read of all scores for all but tiny groups.
"""

FIRST_SPREAD = 13
"""The first read's rungs lie at ``guess`` times ``1 + z 2**-FIRST_SPREAD`` for the
ladder's ``z`` (:data:`_LADDER`).

The next threshold's guess (:func:`core_optax._freezing.next_threshold_guess`)
typically misses by about this much in training, so the ladder's inner gaps hold
few keys; ``benchmarks/results/studies/selection_passes.md`` has the reads.
"""

_LADDER = (-8.0, -2.0, -0.5, 0.0, None, 0.5, 2.0, 8.0)
"""Rungs of the first read, in units of ``2**-FIRST_SPREAD`` of the guess; ``None`` is the
key just above the guess's, so that an answer equal to the guess (a threshold that stays,
ties, a threshold of 0) ends the search in one read."""

_SPREAD = (-3.0, -1.5, -0.6, -0.2, 0.2, 0.6, 1.5, 3.0)
"""Rungs of later reads, in standard deviations of the ``k``-th key's position."""


def key_dtype(dtype: jnp.dtype) -> type:
  """The unsigned integer type of :func:`keys` of ``dtype`` values."""
  if jnp.promote_types(dtype, jnp.float32) == jnp.float64:
    return jnp.uint64
  return jnp.uint32


def keys(x: jax.Array) -> jax.Array:
  """Unsigned integers with the order of the floats ``x``; -0.0 gets the key of 0.0.

  Integer comparisons of keys are exact where float comparisons are not (CPUs
  may treat subnormals as zero). Every key is above 0. Every NaN, whatever its
  sign bit (x86 makes 0/0 a negative NaN), gets the key ``2**width - 2``, above
  +inf, as ``torch.topk`` ranks NaN above every number. Elementwise: ``x``'s
  shape and sharding stay.
  """
  utype = key_dtype(x.dtype)
  width = jnp.iinfo(utype).bits
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # exact for float16/bfloat16
  bits = jax.lax.bitcast_convert_type(x, utype)
  sign = utype(1 << (width - 1))
  k = jnp.where(bits >= sign, ~bits, bits | sign)  # negatives reversed, below positives
  k = jnp.where(k == ~sign, sign, k)  # ~sign is the key of -0.0
  return jnp.where(jnp.isnan(x), ~utype(1), k)


def value(key: jax.Array, dtype: jnp.dtype) -> jax.Array:
  """Inverse of :func:`keys`, as ``dtype``."""
  utype = key.dtype.type
  sign = utype(1 << (jnp.iinfo(utype).bits - 1))
  bits = jnp.where(key >= sign, key ^ sign, ~key)
  ftype = jnp.float64 if utype == jnp.uint64 else jnp.float32
  return jax.lax.bitcast_convert_type(bits, ftype).astype(dtype)


def is_local(x: jax.Array) -> bool:
  """Whether ``x`` is whole on every device, so that reshapes and slices move no data.

  True for arrays on a mesh of one device and for arrays replicated over Explicit
  mesh axes. With Auto axes XLA decides the sharding after tracing: such arrays
  count as sharded. An array that names no mesh is local if this process has one
  device. The mesh decides, not this process's devices, so that a step compiled
  ahead of time for a slice (``jax.jit(step).lower(...)`` with shardings on a
  topology's devices) searches in place from a one-device process too.
  """
  sharding = jax.typeof(x).sharding
  mesh = sharding.mesh
  if not mesh.axis_names:
    return jax.device_count() == 1
  explicit = all(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types)
  return mesh.size == 1 or (explicit and all(a is None for a in sharding.spec))


class _Layout(NamedTuple):
  """Where the values of the groups searched together lie (static, numpy).

  Attributes:
    packed: ``(row, member, shape)`` of the local leaves (member: the leaf's index
      in its group), in the packed matrix's order.
    sharded: ``(row, member)`` of the other leaves.
    block_row: the row (group) of every block of the packed matrix.
    block_start: every row's first block (0 for rows without blocks).
    real: how many values of every block are the row's (the rest is padding).
    sizes: every row's number of values.
    collectable: rows without sharded leaves.
  """

  packed: tuple[tuple[int, int, tuple[int, ...]], ...]
  sharded: tuple[tuple[int, int], ...]
  block_row: np.ndarray
  block_start: np.ndarray
  real: np.ndarray
  sizes: np.ndarray
  collectable: np.ndarray


class Blocks(NamedTuple):
  """The groups of one key dtype, their local leaves packed into one matrix.

  Attributes:
    values: ``[blocks, BLOCK]``: the local leaves' values, flattened in order and
      each padded with 0 to whole blocks, in the groups' dtype promoted to float32.
    sharded: the other leaves, as they are.
    layout: where which leaf lies.
    groups: the indices of these groups among all groups searched.
  """

  values: jax.Array
  sharded: tuple[jax.Array, ...]
  layout: _Layout
  groups: np.ndarray


def _layout(groups: Sequence[Sequence[jax.Array]]) -> _Layout:
  packed, sharded, block_row, real = [], [], [], []
  block_start = np.zeros(len(groups), np.int32)
  for row, group in enumerate(groups):
    block_start[row] = len(block_row)
    for member, leaf in enumerate(group):
      if is_local(leaf):
        packed.append((row, member, tuple(leaf.shape)))
        block_row += [row] * -(-leaf.size // BLOCK)
        real += [BLOCK] * (leaf.size // BLOCK) + ([leaf.size % BLOCK] if leaf.size % BLOCK else [])
      else:
        sharded.append((row, member))
  has_sharded = np.zeros(len(groups), bool)
  has_sharded[[row for row, _ in sharded]] = True
  return _Layout(tuple(packed), tuple(sharded), np.asarray(block_row, np.int32), block_start,
                 np.asarray(real, np.int32),
                 np.array([sum(math.prod(leaf.shape) for leaf in g) for g in groups], np.int64),
                 ~has_sharded)


def pack(groups: Sequence[Sequence[jax.Array]]) -> tuple[Blocks, ...]:
  """The groups' values, one :class:`Blocks` per key dtype: the search's input.

  The local leaves' values are copied once into the matrix (one kernel, whatever
  the number of leaves); every read of the search computes their keys from it.
  """
  by_key: dict[type, list[int]] = {}
  for j, group in enumerate(groups):
    by_key.setdefault(key_dtype(group[0].dtype), []).append(j)
  out = []
  for members in by_key.values():
    chosen = [groups[j] for j in members]
    layout = _layout(chosen)
    dtype = jnp.result_type(jnp.float32, *(g[0].dtype for g in chosen))
    parts = [jnp.pad(chosen[row][m].ravel().astype(dtype), (0, -chosen[row][m].size % BLOCK))
             for row, m, _ in layout.packed]
    values = (jnp.concatenate(parts).reshape(-1, BLOCK) if parts
              else jnp.zeros([0, BLOCK], dtype))
    # Written once, read by every count: XLA must not recompute it inside the loop.
    values = jax.lax.optimization_barrier(values)
    out.append(Blocks(values, tuple(chosen[row][m] for row, m in layout.sharded), layout,
                      np.asarray(members)))
  return tuple(out)


def _bucket(k: jax.Array, rungs: Sequence[jax.Array]) -> jax.Array:
  """How many of the ``RUNGS`` rungs are at or below each key (0 to ``RUNGS``), uint32."""
  return sum((k >= r).astype(jnp.uint32) for r in rungs)


def _block_counts(packed: jax.Array, rungs: jax.Array, block_row: np.ndarray) -> jax.Array:
  """Per block, ``#(keys >= rungs[row, t])`` for the block's row: ``[blocks, RUNGS]`` int32.

  Rung ``t`` (sorted ascending) is counted as field ``t % 4`` of word ``t // 4``:
  a key adds 1 to the field of its bucket (the highest rung at or below it),
  and the fields of a block's keys are summed as halves of halves.
  """
  r = rungs[block_row]
  b = _bucket(packed, [r[:, t:t + 1] for t in range(RUNGS)])
  words = []
  for w in range(RUNGS // 4):
    inside = (b > 4 * w) & (b <= 4 * w + 4)
    field = jnp.where(inside, jnp.left_shift(jnp.uint32(1), 8 * (b - 4 * w - 1) % 32), 0)
    words.append(_halve(field, jnp.add))
  per_bucket = jnp.stack([(words[t // 4] >> (8 * (t % 4))) & 0xFF for t in range(RUNGS)], axis=1)
  # Keys at or above rung t are those in buckets t + 1 and higher.
  return jax.lax.associative_scan(jnp.add, per_bucket.astype(jnp.int32), reverse=True, axis=1)


def _leaf_counts(leaf: jax.Array, rungs: jax.Array) -> jax.Array:
  """``#(keys >= rungs[t])`` over a leaf in its own shape and sharding: ``[RUNGS]`` int32."""
  # A histogram of the keys' buckets, in the leaf's own shape: one index per key, and XLA
  # all-reduces RUNGS + 1 counts. (Separate sums per rung made XLA:CPU write an array per rung.)
  b = _bucket(keys(leaf), list(rungs)).astype(jnp.int32)
  mesh = jax.typeof(leaf).sharding.mesh
  explicit = any(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types)
  replicated = ({"out_sharding": jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())}
                if explicit else {})
  per_bucket = jnp.zeros(RUNGS + 1, jnp.int32).at[b].add(1, **replicated)
  return jnp.cumsum(per_bucket[::-1])[::-1][1:]


def _halve(x: jax.Array, op) -> jax.Array:
  """``op``-reduction over the last axis (a power of 2) as ``op`` of halves: vectorised."""
  while x.shape[-1] > 1:
    half = x.shape[-1] // 2
    x = op(x[..., :half], x[..., half:])
  return x[..., 0]


def _count(blocks: Blocks, rungs: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One read: per block and per row, ``#(keys >= rungs[row, t])`` (int32, ``[.., RUNGS]``)."""
  layout = blocks.layout
  block = _block_counts(_packed_keys(blocks), rungs, layout.block_row)
  counts = jax.ops.segment_sum(block, layout.block_row, len(layout.sizes),
                               indices_are_sorted=True)
  for leaf, (row, _) in zip(blocks.sharded, layout.sharded):
    counts = counts.at[row].add(_leaf_counts(leaf, rungs[row]))
  return block, counts


def _extremes(blocks: Blocks, lo: jax.Array, hi: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One read: per row, the smallest and largest key in ``[lo, hi)`` (0 if it holds none)."""
  block_row = blocks.layout.block_row

  def largest(k, lo, hi):  # of keys and of their complements (the smallest)
    inside = (k >= lo) & (k < hi)
    return jnp.where(inside, ~k, 0), jnp.where(inside, k, 0)

  low, high = largest(_packed_keys(blocks), lo[block_row][:, None], hi[block_row][:, None])
  rows = lo.shape[0]
  low = jax.ops.segment_max(_halve(low, jnp.maximum), block_row, rows, indices_are_sorted=True)
  high = jax.ops.segment_max(_halve(high, jnp.maximum), block_row, rows, indices_are_sorted=True)
  low, high = jnp.maximum(low, 0), jnp.maximum(high, 0)  # rows without blocks
  for leaf, (row, _) in zip(blocks.sharded, blocks.layout.sharded):
    small, large = largest(keys(leaf), lo[row], hi[row])
    low, high = low.at[row].max(jnp.max(small)), high.at[row].max(jnp.max(large))
  return ~low, high


class _Bracket(NamedTuple):
  """Per row ``[lo, hi)`` with ``c_lo = #(>= lo) >= k > c_hi = #(>= hi)``; per block the
  same counts (``block_lo``, ``block_hi``)."""

  lo: jax.Array
  hi: jax.Array
  c_lo: jax.Array
  c_hi: jax.Array
  block_lo: jax.Array
  block_hi: jax.Array


def ladder(guess_keys: jax.Array, dtype: jnp.dtype) -> jax.Array:
  """The first read's rungs around the keys of the guesses: ``[rows, RUNGS]``."""
  utype = guess_keys.dtype.type
  unit = 1 << (jnp.finfo(dtype).nmant - FIRST_SPREAD)  # key units of 2**-FIRST_SPREAD
  offsets = np.array([1 if z is None else round(z * unit) for z in _LADDER], np.int64)
  low = jnp.asarray(np.maximum(-offsets, 0).astype(utype))
  high = jnp.asarray(np.maximum(offsets, 0).astype(utype))
  g = guess_keys[:, None]
  top = ~utype(0)
  down = jnp.where(g > low, g - low, 1)
  up = jnp.where(g < top - high, g + high, top)
  return jnp.where(offsets < 0, down, jnp.where(offsets > 0, up, g))


def interpolated_rungs(b: _Bracket, k: jax.Array, ftype: type) -> jax.Array:
  """Offsets from ``lo`` of rungs around where the ``k``-th key lies if the bracket's keys
  spread evenly: ``[rows, RUNGS]``, floats.

  ``_SPREAD`` standard deviations of its position (binomial, over the bracket's
  ``m`` keys) either side of the interpolated position; the outermost rungs at
  most half the bracket away, so that the bracket at least halves per read
  whatever the keys' distribution.
  """
  span = (b.hi - b.lo).astype(ftype)
  m = (b.c_lo - b.c_hi).astype(ftype)
  f = (b.c_lo - k + 0.5).astype(ftype) / m  # the k-th key's position from lo, as a fraction
  sigma = jnp.sqrt(jnp.maximum(m * f * (1 - f), 1)) / m
  z = jnp.asarray(_SPREAD, ftype)
  fractions = f[:, None] + sigma[:, None] * z
  fractions = fractions.at[:, 0].min(0.5).at[:, -1].max(0.5)
  return jnp.clip(fractions, 0, 1) * span[:, None]


def _rungs(b: _Bracket, k: jax.Array, first: jax.Array | None, ftype: type) -> jax.Array:
  """The next read's rungs inside every bracket (``lo < rung < hi`` where ``hi - lo > 1``),
  sorted."""
  utype = b.lo.dtype.type
  span = b.hi - b.lo
  if first is None:
    # Below 2**bits as a float too, so that the conversion cannot overflow.
    real = np.dtype(ftype).type
    cap = np.nextafter(real(2.0 ** jnp.iinfo(utype).bits), real(0))
    offsets = jnp.minimum(interpolated_rungs(b, k, ftype), cap).astype(utype)
    offsets = jnp.minimum(offsets, span[:, None] - 1)
    rungs = b.lo[:, None] + offsets
    # A bracket still open on one side (the k-th key lies beyond every rung so far on
    # that side) is searched outward from its known end, at doubling distances.
    unit = utype(1 << (jnp.finfo(ftype).nmant - FIRST_SPREAD))
    steps = jnp.asarray([16 << i for i in range(RUNGS)], utype) * unit
    top = ~utype(0)
    up = jnp.where(b.lo[:, None] < top - steps, b.lo[:, None] + steps, top)
    down = jnp.where(b.hi[:, None] > steps, b.hi[:, None] - steps, 1)
    open_up = (b.hi == top) & (b.lo > 1)
    open_down = (b.lo == 1) & (b.hi < top)
    rungs = jnp.where(open_up[:, None], up, jnp.where(open_down[:, None], down, rungs))
  else:
    rungs = first
  rungs = jnp.clip(rungs, b.lo[:, None] + 1, jnp.maximum(b.hi, b.lo + 2)[:, None] - 1)
  # Few keys wide: every key but lo is a rung, and this read ends the search.
  narrow = b.lo[:, None] + jnp.minimum(jnp.arange(1, RUNGS + 1, dtype=utype),
                                       jnp.maximum(span, 2)[:, None] - 1)
  rungs = jnp.where((span <= RUNGS + 1)[:, None], narrow, rungs)
  return jnp.sort(rungs, axis=1)


def _narrow(b: _Bracket, k: jax.Array, rungs: jax.Array, counts: jax.Array,
            block_counts: jax.Array, block_row: np.ndarray) -> _Bracket:
  """``b`` after counting ``counts[row, t] = #(>= rungs[row, t])``: the gap of rungs that
  holds the ``k``-th key."""
  searching = b.hi - b.lo > 1
  n = jnp.sum(counts >= k[:, None], axis=1)  # rungs at or below the k-th key (a prefix)
  raise_lo = searching & (n > 0)
  lower_hi = searching & (n < RUNGS)
  i_lo, i_hi = jnp.maximum(n - 1, 0), jnp.minimum(n, RUNGS - 1)

  def pick(x, i):
    return jnp.take_along_axis(x, i[..., None], axis=-1)[..., 0]

  return _Bracket(
      lo=jnp.where(raise_lo, pick(rungs, i_lo), b.lo),
      hi=jnp.where(lower_hi, pick(rungs, i_hi), b.hi),
      c_lo=jnp.where(raise_lo, pick(counts, i_lo), b.c_lo),
      c_hi=jnp.where(lower_hi, pick(counts, i_hi), b.c_hi),
      block_lo=jnp.where(raise_lo[block_row], pick(block_counts, i_lo[block_row]), b.block_lo),
      block_hi=jnp.where(lower_hi[block_row], pick(block_counts, i_hi[block_row]), b.block_hi),
  )


def _collect(packed: jax.Array, b: _Bracket, k: jax.Array, collecting: jax.Array,
             layout: _Layout) -> jax.Array:
  """Per collecting row, the ``k``-th largest key among the ``<= COLLECT`` keys of its bracket.

  The ``i``-th key of a row's bracket is found from the prefix sums of the blocks'
  bracket counts: its block is gathered, and the key picked by its rank in the block.
  """
  m_block = jnp.where(collecting[layout.block_row], b.block_lo - b.block_hi, 0)
  # Scans, not jnp.cumsum: XLA:CPU lowers that to a reduce-window, quadratic in its length.
  ends = jax.lax.associative_scan(jnp.add, m_block)
  starts = ends - m_block
  i = jnp.arange(COLLECT, dtype=jnp.int32)
  wanted = starts[layout.block_start][:, None] + i  # global ranks of the row's keys
  block = jnp.minimum(jnp.searchsorted(ends, wanted, side="right"), packed.shape[0] - 1)
  rank = wanted - starts[block]
  candidates = packed[block]  # [rows, COLLECT, BLOCK]
  inside = (candidates >= b.lo[:, None, None]) & (candidates < b.hi[:, None, None])
  position = jax.lax.associative_scan(jnp.add, inside.astype(jnp.int32), axis=-1)
  hit = inside & (position == rank[..., None] + 1)
  found = jnp.max(jnp.where(hit, candidates, 0), axis=-1)
  found = jnp.where(i < (b.c_lo - b.c_hi)[:, None], found, 0)  # 0 is below every key
  ranked = jnp.sort(found, axis=1)[:, ::-1]
  r = jnp.clip(k - b.c_hi - 1, 0, COLLECT - 1)
  return jnp.take_along_axis(ranked, r[:, None], axis=1)[:, 0]


def _packed_keys(blocks: Blocks) -> jax.Array:
  """:func:`keys` of the packed values; padding gets the key 0, below every key."""
  real = jnp.arange(BLOCK) < jnp.asarray(blocks.layout.real)[:, None]
  return jnp.where(real, keys(blocks.values), 0)


def _search(blocks: Blocks, k: jax.Array, guess: jax.Array | None,
            live: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The ``k[row]``-th largest key of every row (group), and how many counting reads it took."""
  layout = blocks.layout
  dtype = blocks.values.dtype
  utype = key_dtype(dtype)
  ftype = jnp.float64 if utype == jnp.uint64 else jnp.float32
  rows = len(layout.sizes)
  top = ~utype(0)  # above every key: NaN's is top - 1
  init = _Bracket(
      lo=jnp.where(live, utype(1), top - 1),  # groups not searched are done, at NaN
      hi=jnp.full([rows], top),
      c_lo=jnp.asarray(layout.sizes.astype(np.int32)), c_hi=jnp.zeros([rows], jnp.int32),
      block_lo=jnp.asarray(layout.real), block_hi=jnp.zeros(layout.real.shape, jnp.int32))
  first = None if guess is None else ladder(keys(guess.astype(dtype)), dtype)
  collectable = jnp.asarray(layout.collectable)

  def unfinished(state):
    b = state[0]
    searching = b.hi - b.lo > 1
    few = b.c_lo - b.c_hi <= COLLECT
    return jnp.any(searching & ~(collectable & few))

  def count(b, reads):
    rungs = _rungs(b, k, first, ftype) if first is None else jax.lax.cond(
        reads == 0, lambda: _rungs(b, k, first, ftype), lambda: _rungs(b, k, None, ftype))
    block, counts = _count(blocks, rungs)
    new = _narrow(b, k, rungs, counts, block, layout.block_row)
    # Keys that a count barely told apart (a tie, or a cluster narrower than its gaps) ...
    stuck = (b.hi - b.lo > 1) & (4 * (new.c_lo - new.c_hi) > 3 * (b.c_lo - b.c_hi))
    return new, stuck

  def cut(b, reads):
    # ... are cut to their smallest and largest key: the counts at both stay.
    low, high = _extremes(blocks, b.lo, b.hi)
    searching = b.hi - b.lo > 1
    return b._replace(lo=jnp.where(searching, low, b.lo),
                      hi=jnp.where(searching, high + 1, b.hi)), jnp.zeros_like(searching)

  def read(state):
    b, stuck, reads = state
    b, stuck = jax.lax.cond(jnp.any(stuck), cut, count, b, reads)
    return b, stuck, reads + 1

  # Without a guess, the first read cuts every bracket to its group's extremes.
  b, _, reads = jax.lax.while_loop(unfinished, read,
                                   (init, jnp.full([rows], guess is None), jnp.int32(0)))
  collecting = (b.hi - b.lo > 1) & collectable
  if layout.packed:
    found = jnp.where(collecting, _collect(_packed_keys(blocks), b, k, collecting, layout), b.lo)
  else:
    found = b.lo
  return found, reads


class Selection(NamedTuple):
  """What :func:`search` found.

  Attributes:
    thresholds: per group, its ``k``-th largest value, as an array of the groups'
      common float dtype (float32, or float64 where a group is float64).
    reads: how many reads over the values the search made (counts and cuts): the
      reads of each key dtype's search weighted by its share of the searched
      values, a float32 scalar. Packing the values before the first read is not
      counted, nor is the collection, which reads at most ``COLLECT`` blocks per
      group.
  """

  thresholds: jax.Array
  reads: jax.Array


def search(groups: Sequence[Sequence[jax.Array]] | tuple[Blocks, ...],
           k: jax.typing.ArrayLike | Sequence, guess: jax.typing.ArrayLike | None = None,
           needed: jax.typing.ArrayLike | None = None) -> Selection:
  """:func:`kth_largest`, and how many reads over the values it made.

  ``groups`` may also be what :func:`pack` made of them, for a caller that reads
  the packed values too (CoRe's freezing masks).
  """
  blocks = groups if groups and isinstance(groups[0], Blocks) else pack(groups)
  n = sum(len(b.groups) for b in blocks)
  sizes = np.zeros(n, np.int64)
  for b in blocks:
    sizes[b.groups] = b.layout.sizes
  k = jnp.stack([jnp.asarray(x, jnp.int32) for x in k]) if isinstance(k, Sequence) else k
  k = jnp.clip(jnp.asarray(k, jnp.int32), 1, jnp.asarray(np.maximum(sizes, 1).astype(np.int32)))
  live = jnp.ones(n, bool) if needed is None else jnp.asarray(needed, bool)
  dtype = jnp.result_type(*(b.values.dtype for b in blocks))
  out = jnp.full(n, jnp.nan, dtype)
  reads = jnp.float32(0)
  for b in blocks:
    g = None if guess is None else jnp.asarray(guess)[b.groups]
    found, count = _search(b, k[b.groups], g, live[b.groups])
    out = out.at[b.groups].set(value(found, b.values.dtype).astype(dtype))
    reads += count * np.float32(sizes[b.groups].sum() / max(sizes.sum(), 1))
  return Selection(out, reads)


def kth_largest(groups: Sequence[Sequence[jax.Array]], k: jax.typing.ArrayLike | Sequence,
                guess: jax.typing.ArrayLike | None = None,
                needed: jax.typing.ArrayLike | None = None) -> jax.Array:
  """The ``k[j]``-th largest value of every group ``j``, exactly.

  Ties count with multiplicity and -0.0 equals 0.0, as in a float sort; NaN
  ranks highest. Sharded leaves are never gathered: each read all-reduces
  ``RUNGS + 1`` counts per sharded leaf. All groups of a key dtype are searched in
  one loop of reads.

  Args:
    groups: every group's values, as a sequence of real arrays of any shapes and
      shardings (the leaves of the group) and one float dtype.
    k: per group, ``1 <= k <= size``, a sequence of ints or an int array (traced
      values, for example a frozen fraction under ``optax.inject_hyperparams``,
      are clipped into that range).
    guess: per group, a value near the answer (an array), or ``None`` to start
      from the whole range of keys. A bad guess costs reads, never exactness.
    needed: per group, whether to search it (a bool array), or ``None`` for all.
      Groups that are not needed are not read and get NaN; while no group is
      needed the search makes no reads (under ``vmap``, where a ``lax.cond``
      around it runs for every member, too).

  Returns:
    Per group, its ``k``-th largest value: a float32 array (float64 where a group
    is float64), exact in every group's dtype.
  """
  return search(groups, k, guess, needed).thresholds
