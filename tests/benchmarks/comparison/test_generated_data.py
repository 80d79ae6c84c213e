"""The generated data sets of SS, TS, SR and MLP: shapes, sizes, determinism."""

import jax
import numpy as np
import pytest

from benchmarks.comparison.data import csbm
from benchmarks.comparison.data import emt
from benchmarks.comparison.data import photos
from benchmarks.comparison.data import sine
from benchmarks.comparison.tasks import ss


@pytest.fixture(scope="module")
def graph():
  return csbm.cora_like_graph()


def test_csbm_has_coras_shape(graph):
  assert graph.labels.shape == (2708,)
  np.testing.assert_array_equal(np.bincount(graph.labels),
                                [818, 426, 418, 351, 298, 217, 180])
  assert graph.edges.shape == (5429, 2)
  source, target = graph.edges.T
  assert np.all(source != target)
  assert len({tuple(e) for e in graph.edges}) == 5429
  within = np.mean(graph.labels[source] == graph.labels[target])
  assert 0.78 < within < 0.84
  x = graph.features()
  assert x.shape == (2708, 1433) and set(np.unique(x)) == {0.0, 1.0}
  assert 17 < x.sum(1).mean() < 19 and x.sum(1).min() >= 1


def test_csbm_is_deterministic(graph):
  again = csbm.cora_like_graph()
  np.testing.assert_array_equal(again.edges, graph.edges)
  np.testing.assert_array_equal(again.words, graph.words)


def test_gcn_split_is_1000_500_1208_and_differs_by_seed():
  data = {"labels": np.zeros(2708, np.int32)}
  a = ss.split(jax.random.key(0), data)
  b = ss.split(jax.random.key(1), data)
  assert a["test"].shape == (1000,) and a["train"].shape == (1208,)
  assert not set(np.asarray(a["test"])) & set(np.asarray(a["train"]))
  assert not np.array_equal(a["test"], b["test"])


def test_gcn_adjacency_is_symmetrically_normalised_with_self_loops():
  arrays = ss.graph_arrays()
  n = 2708
  adj = np.zeros((n, n))
  np.add.at(adj, (arrays["source"], arrays["target"]), arrays["edge_value"])
  a = np.zeros((n, n))
  edges = csbm.cora_like_graph().edges
  a[edges[:, 0], edges[:, 1]] = 1
  a += np.eye(n)
  d = a.sum(1) ** -0.5
  np.testing.assert_allclose(adj, d[:, None] * a * d[None, :], rtol=1e-6)


def test_sine_waves_are_the_examples():
  waves = sine.sine_waves()
  assert waves.shape == (100, 1000) and waves.dtype == np.float64
  np.random.seed(2)  # the example's own generator
  shift = np.random.randint(-80, 80, 100).reshape(100, 1)
  np.testing.assert_array_equal(waves, np.sin((np.arange(1000) + shift) / 1.0 / 20))


def test_photos_pairs_have_the_right_shapes_and_disjoint_sources():
  assert not set(photos.TRAIN_SOURCES) & set(photos.TEST_SOURCES)
  data = photos.super_resolution_data(n_train=6, n_test=3, size=32)
  assert data["train_targets"].shape == (6, 32, 32)
  assert data["train_inputs"].shape == (6, 8, 8)
  assert data["test_inputs"].shape == (3, 8, 8)
  for v in data.values():
    assert v.dtype == np.float32 and 0.0 <= v.min() and v.max() <= 1.0
  again = photos.super_resolution_data(n_train=6, n_test=3, size=32)
  np.testing.assert_array_equal(again["train_targets"], data["train_targets"])


def test_downscaling_averages_constant_blocks():
  targets = np.kron(np.eye(2), np.ones((4, 4)))[None].astype(np.float32)
  small = photos.downscale(np.tile(targets, (1, 4, 4)))
  assert small.shape == (1, 8, 8)
  assert 0.0 <= small.min() and small.max() <= 1.0


def test_emt_cluster_starts_from_32_fcc_sites():
  sites = emt.cluster_positions()
  assert sites.shape == (32, 3)
  distances = np.linalg.norm(sites[:, None] - sites[None], axis=-1)
  nearest = np.sort(distances, axis=1)[:, 1]
  np.testing.assert_allclose(nearest, emt.LATTICE_CONSTANT / np.sqrt(2), rtol=1e-9)
