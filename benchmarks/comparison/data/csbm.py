"""A contextual stochastic block model graph of Cora's shape, in place of Cora.

Cora cannot be downloaded here. This graph has Cora's size and class sizes,
about as many directed edges (mostly within a class, as citations are), and
sparse binary bag-of-words features drawn from class-specific word
distributions mixed with a shared background. It is generated from a fixed
seed, so every run sees the same graph.
"""

from __future__ import annotations

import dataclasses

import numpy as np

CLASS_SIZES = (818, 426, 418, 351, 298, 217, 180)  # Cora's seven classes
N_NODES = sum(CLASS_SIZES)  # 2708
N_EDGES = 5429
N_WORDS = 1433
WORDS_PER_NODE = 18  # Cora: 18.2 ones per row on average
WITHIN_CLASS = 0.81  # fraction of edges inside a class
TOPIC_WORDS = 120  # words each class favours
TOPIC_WEIGHT = 0.2  # share of a node's word distribution from its class topic
SEED = 1433


@dataclasses.dataclass(frozen=True)
class Graph:
  """A directed graph with node features and labels.

  Attributes:
    labels: ``[n_nodes]`` class of each node.
    edges: ``[n_edges, 2]`` directed edges (source, target), no self-loops,
      no duplicates.
    words: ``[n_nodes, max_words]`` indices of each node's words, padded with -1.
  """

  labels: np.ndarray
  edges: np.ndarray
  words: np.ndarray

  def features(self) -> np.ndarray:
    """The dense ``[n_nodes, 1433]`` binary feature matrix."""
    x = np.zeros((len(self.labels), N_WORDS), np.float32)
    rows, cols = np.nonzero(self.words >= 0)
    x[rows, self.words[rows, cols]] = 1.0
    return x


def _edges(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
  """Edges between nodes of heavy-tailed activity, mostly within a class."""
  activity = rng.pareto(2.0, len(labels)) + 1.0
  by_class = [np.flatnonzero(labels == c) for c in range(len(CLASS_SIZES))]
  edges: set[tuple[int, int]] = set()
  while len(edges) < N_EDGES:
    source = rng.choice(len(labels), p=activity / activity.sum())
    if rng.random() < WITHIN_CLASS:
      pool = by_class[labels[source]]
    else:
      pool = np.flatnonzero(labels != labels[source])
    target = rng.choice(pool, p=activity[pool] / activity[pool].sum())
    if target != source:
      edges.add((int(source), int(target)))
  return np.array(sorted(edges), np.int32)


def _words(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
  """Per node a set of distinct words from its class topic plus background."""
  background = 1.0 / np.arange(1, N_WORDS + 1)**0.8  # Zipf-like word frequencies
  background = rng.permutation(background / background.sum())
  topics = np.zeros((len(CLASS_SIZES), N_WORDS))
  for topic in topics:
    favoured = rng.choice(N_WORDS, TOPIC_WORDS, replace=False)
    topic[favoured] = rng.dirichlet(np.ones(TOPIC_WORDS))
  probs = TOPIC_WEIGHT * topics[labels] + (1 - TOPIC_WEIGHT) * background
  counts = np.clip(rng.poisson(WORDS_PER_NODE, len(labels)), 1, None)
  # Weighted sampling without replacement: the largest log p + Gumbel noise.
  order = np.argsort(-(np.log(probs) + rng.gumbel(size=probs.shape)), axis=1)
  words = order[:, :counts.max()].astype(np.int32)
  words[np.arange(counts.max())[None, :] >= counts[:, None]] = -1
  return words


def cora_like_graph(seed: int = SEED) -> Graph:
  """Generates the graph (deterministic for a given seed)."""
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.repeat(np.arange(len(CLASS_SIZES)), CLASS_SIZES))
  return Graph(labels=labels.astype(np.int32), edges=_edges(rng, labels),
               words=_words(rng, labels))
