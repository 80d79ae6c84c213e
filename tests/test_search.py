"""The exact search of eq. 5's threshold against a plain sort, on adversarial scores."""

from __future__ import annotations

import functools

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import ml_dtypes
import numpy as np
import pytest

from core_optax import _freezing
from core_optax import _groups
from core_optax import _search

F32 = np.finfo(np.float32)
SPECIAL = [0.0, -0.0, 1.0, -1.0, F32.max, -F32.max, F32.tiny, -F32.tiny, F32.smallest_subnormal,
           -F32.smallest_subnormal, 3 * F32.smallest_subnormal, np.inf, -np.inf, 1e-30, 1e30]
# Group sizes: one score, less than a block, two blocks, blocks and a rest, large groups.
SIZES = [1, 7, 256, 300, 5000, 40_000]
SETTINGS = hypothesis.settings(max_examples=15, deadline=None, derandomize=True,
                               suppress_health_check=[hypothesis.HealthCheck.too_slow])


def _cast(x, dtype) -> np.ndarray:
  with np.errstate(over="ignore"):  # extremes of float32 become +-inf in float16
    return np.asarray(x, np.float64).astype(dtype)


def scores(n: int, dtype) -> st.SearchStrategy[np.ndarray]:
  """Scores with ties, all-equal runs, signed zeros, subnormals and extremes (no NaN)."""
  finfo = np.finfo(dtype) if dtype != ml_dtypes.bfloat16 else ml_dtypes.finfo(dtype)
  pool = st.sampled_from([_cast(v, dtype) for v in SPECIAL])
  values = st.one_of(
      pool,
      st.floats(-float(finfo.max), float(finfo.max), allow_nan=False, width=64).map(
          lambda v: _cast(v, dtype)),
      st.integers(-3, 3).map(lambda v: np.asarray(v, dtype)),
  )
  fill = st.one_of(st.just(0.0), st.just(-0.0), st.just(1.5), st.floats(-1, 1, width=32))
  return st.tuples(hnp.arrays(np.float64, n, elements=st.floats(-1, 1, width=32)),
                   st.lists(st.tuples(st.integers(0, n - 1), values), max_size=min(n, 64)),
                   fill, st.booleans()).map(lambda a: _mix(n, dtype, *a))


def _mix(n, dtype, smooth, specials, fill, constant):
  x = _cast(np.full(n, fill) if constant else smooth * 10.0 ** (8 * smooth), dtype)
  for i, v in specials:
    x[i] = v
  return x


def reference_kth(x: np.ndarray, k: int) -> np.float64:
  return np.sort(x.astype(np.float64), kind="stable")[::-1][k - 1]


@functools.cache
def selector(static_k: tuple[int, ...] | None):
  if static_k is None:
    return jax.jit(_search.kth_largest)
  return jax.jit(lambda groups: _search.kth_largest(groups, list(static_k)))


def select(groups, ks, static):
  groups = [[jnp.asarray(p) for p in g] for g in groups]
  if static:
    return [np.float64(v) for v in selector(tuple(ks))(groups)]
  return [np.float64(v) for v in selector(None)(groups, [jnp.int32(k) for k in ks])]


@pytest.mark.parametrize("n", SIZES)
@SETTINGS
@hypothesis.given(data=st.data())
def test_kth_largest_equals_sort(n, data):
  x = data.draw(scores(n, np.float32))
  k = data.draw(st.integers(1, n))
  static = n <= 256 and data.draw(st.booleans())
  (got,) = select([[x]], [k], static)
  assert got == reference_kth(x, k)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64])
@SETTINGS
@hypothesis.given(data=st.data())
def test_kth_largest_equals_sort_in_every_dtype(dtype, data):
  with jax.enable_x64(dtype == np.float64):
    x = data.draw(scores(3000, dtype))
    k = data.draw(st.integers(1, x.size))
    (got,) = select([[x]], [k], static=False)
    assert got == reference_kth(x, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@SETTINGS
@hypothesis.given(data=st.data())
def test_any_guess_gives_the_exact_answer(dtype, data):
  """A guess (last step's threshold) only decides where the search starts."""
  with jax.enable_x64(dtype == np.float64):
    x = data.draw(scores(5000, dtype))
    k = data.draw(st.integers(1, x.size))
    near = reference_kth(x, k) * data.draw(st.sampled_from([1.0, 1.001, 0.99, -1.0, 2.0]))
    guess = data.draw(st.one_of(st.just(near), st.sampled_from([*SPECIAL, np.nan])))
    (got,) = jax.jit(_search.kth_largest)([[jnp.asarray(x)]], [jnp.int32(k)],
                                          jnp.asarray([guess], dtype))
    assert np.float64(got) == reference_kth(x, k)


@SETTINGS
@hypothesis.given(data=st.data())
def test_groups_spanning_leaves_are_selected_together(data):
  shapes = [(40, 50), (7,), (3, 3, 3), (40_000,), (300,)]
  leaves = [data.draw(scores(int(np.prod(s)), np.float32)).reshape(s) for s in shapes]
  groups = [leaves[:3], leaves[3:4], leaves[4:], leaves[1:2]]
  flat = [np.concatenate([p.ravel() for p in g]) for g in groups]
  ks = [data.draw(st.integers(1, f.size)) for f in flat]
  assert select(groups, ks, static=False) == [reference_kth(f, k) for f, k in zip(flat, ks)]


@SETTINGS
@hypothesis.given(data=st.data())
def test_leaves_of_very_different_sizes_on_block_boundaries_are_searched_together(data):
  """Leaves of 1 to 40,000 scores, ending inside, at and just past 128-key blocks."""
  shapes = [(1,), (127,), (128,), (129,), (2, 128), (40_000,), (3, 3, 3), (255,)]
  leaves = [data.draw(scores(int(np.prod(s)), np.float32)).reshape(s) for s in shapes]
  groups = [leaves[:3], leaves[3:6], leaves[6:], leaves[1:2], leaves[0:1]]
  flat = [np.concatenate([p.ravel() for p in g]) for g in groups]
  ks = [data.draw(st.integers(1, f.size)) for f in flat]
  guesses = data.draw(st.none() | st.just([reference_kth(f, k) * 1.001 for f, k in zip(flat, ks)]))
  got = jax.jit(_search.kth_largest)(
      [[jnp.asarray(p) for p in g] for g in groups], [jnp.int32(k) for k in ks],
      None if guesses is None else jnp.asarray(guesses, jnp.float32))
  assert [np.float64(v) for v in got] == [reference_kth(f, k) for f, k in zip(flat, ks)]


@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("n", [1, 300, 40_000])
def test_k_equal_to_group_size_selects_the_minimum(n, static):
  x = np.random.default_rng(n).normal(size=n).astype(np.float32)
  (got,) = select([[x]], [n], static)
  assert got == x.min()


def test_traced_k_out_of_range_is_clipped():
  x = np.arange(1000, dtype=np.float32)
  assert select([[x], [x]], [0, 5000], static=False) == [999.0, 0.0]


@pytest.mark.parametrize("n", [7, 5000])
@SETTINGS
@hypothesis.given(data=st.data())
def test_frozen_mask_equals_the_mask_of_a_plain_sort(n, data):
  """Eq. 5 with the tie band, from the policy's select, against a sort; k = 0 freezes none."""
  x = np.abs(data.draw(scores(n, np.float32)))  # scores are never negative
  fraction = data.draw(st.sampled_from([0.0, 1 / n, 0.1, 0.5, 1.0]))
  k = int(fraction * n)
  partition = _groups.as_grouping(None)({"w": x})
  frozen, _, _ = jax.jit(lambda s, p: _freezing.select(
      partition, p, {"w": s}, jnp.zeros([2, 1]), jnp.int32(5), 2))(jnp.asarray(x),
                                                                  jnp.float32(fraction))
  # The band is a float comparison in XLA (which may flush subnormals): same op, sorted k-th.
  band = jax.jit(lambda x, kth: x >= _freezing.TIE_TOLERANCE * kth)
  want = band(jnp.asarray(x), jnp.sort(jnp.asarray(x))[n - k]) if k else np.zeros(n, bool)
  np.testing.assert_array_equal(frozen[0], want)


@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("n", [7, 300, 5000])
def test_nan_ranks_above_every_number_as_in_torch_topk(n, static):
  """NaN scores (x86 makes 0/0 a NaN with the sign bit set) rank highest, as in the reference."""
  import torch  # imported here: the reference's ordering is what this test compares with

  rng = np.random.default_rng(n)
  x = rng.normal(size=n).astype(np.float32)
  nans = rng.choice(n, size=max(2, n // 10), replace=False)
  x[nans[0::2]], x[nans[1::2]] = np.nan, -np.nan
  assert np.signbit(x[nans]).any() and not np.signbit(x[nans]).all()
  for k in sorted({1, nans.size, nans.size + 1, n}):
    want = torch.topk(torch.from_numpy(x), k).values[-1].item()
    (got,) = select([[x]], [k], static)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [200, 5000])
def test_groups_not_needed_cost_no_reads_even_under_vmap(n):
  """Under vmap the optimizer's cond runs the search for every member; idle ones skip it."""
  x = jnp.asarray(np.random.default_rng(n).normal(size=n), jnp.float32)
  k = n // 10

  @jax.jit
  @jax.vmap
  def run(need):
    (value,), reads = _search.search([[x]], [k], jnp.zeros(1), need[None])
    return value, reads

  values, reads = run(jnp.array([False, False]))
  assert np.isnan(values).all() and not np.asarray(reads).any()
  values, reads = run(jnp.array([True, False]))
  assert values[0] == reference_kth(np.asarray(x), k) and np.isnan(values[1])
  assert int(reads[0]) > 0 and int(reads[1]) == 0


@pytest.mark.parametrize("copies", [1, 5, 3000])
@pytest.mark.parametrize("guess_is_answer", [True, False])
def test_ties_at_the_threshold_end_the_search_quickly(copies, guess_is_answer):
  """Many equal scores at the k-th (a threshold of 0 with many zero scores, say): a guess
  equal to the answer ends the search in one read; otherwise a cut to the crowded keys'
  extremes ends it within a few."""
  rng = np.random.default_rng(copies)
  x = np.concatenate([rng.uniform(1, 2, 20_000), np.full(copies, 0.5),
                      rng.uniform(0, 0.4, 20_000)]).astype(np.float32)
  k = 20_000 + (copies + 1) // 2
  guess = 0.5 if guess_is_answer else 0.45
  (got,), reads = jax.jit(_search.search)([[jnp.asarray(x)]], [k], jnp.float32([guess]))
  assert np.float64(got) == 0.5
  assert int(reads) <= (1 if guess_is_answer else 4), int(reads)


@pytest.mark.parametrize("relative_miss", [0.0, 3e-5, -1.2e-4, 2e-4])
def test_a_guess_within_its_ladder_needs_at_most_two_reads(relative_miss):
  """A 262,144-score group: the first read's ladder brackets the k-th key among a few
  hundred keys, and a second read leaves few enough to collect."""
  x = np.random.default_rng(0).lognormal(size=262_144).astype(np.float32)
  k = 26_214
  answer = reference_kth(x, k)
  (got,), reads = jax.jit(_search.search)([[jnp.asarray(x)]], [k],
                                          jnp.float32([answer * (1 + relative_miss)]))
  assert np.float64(got) == answer
  assert int(reads) <= 2, int(reads)


def test_a_guess_near_the_answer_saves_reads():
  x = jnp.asarray(np.random.default_rng(0).lognormal(size=200_000), jnp.float32)
  k = 20_000
  answer = reference_kth(np.asarray(x), k)
  run = jax.jit(_search.search)
  (cold,), cold_reads = run([[x]], [k])
  (warm,), warm_reads = run([[x]], [k], jnp.float32([answer * 1.001]))
  assert np.float64(cold) == np.float64(warm) == answer
  assert int(warm_reads) < int(cold_reads), (int(warm_reads), int(cold_reads))


@pytest.mark.parametrize("axis_type, spec, devices, local", [
    (jax.sharding.AxisType.Auto, P(), 8, False),  # Auto: XLA shards it after tracing
    (jax.sharding.AxisType.Explicit, P("m"), 8, False),
    (jax.sharding.AxisType.Explicit, P(), 8, True),  # replicated: whole on every device
    (jax.sharding.AxisType.Auto, P(), 1, True),
])
def test_whether_scores_are_local_depends_on_their_mesh_not_on_this_process(
    axis_type, spec, devices, local):
  """A step compiled ahead of time for a slice, from a process with one device.

  With ``jax.device_count() == 1`` deciding, scores on an 8-device mesh would count
  as local and be packed into a matrix of blocks, which makes XLA gather them.
  """
  mesh = jax.sharding.AbstractMesh((devices,), ("m",), axis_types=(axis_type,))
  scores = jax.ShapeDtypeStruct((1 << 21,), jnp.float32,
                                sharding=jax.sharding.NamedSharding(mesh, spec))
  seen = []

  def run(s):
    seen.append(_search.is_local(s))
    return _search.kth_largest([[s]], [1000])[0]

  jaxpr = str(jax.jit(run).trace(scores).jaxpr)
  assert jax.device_count() == 1 and seen == [local]
  assert ("gather" in jaxpr.split("while")[-1]) == local  # only local groups are collected
