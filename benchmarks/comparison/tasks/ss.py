"""SS: a two-layer graph convolutional network (PyTorch examples, gcn/main.py).

GraphConv 1433 -> 16, ReLU, dropout 0.5, GraphConv 16 -> 7, log-softmax;
xavier-normal kernels, no bias. Features row-normalised; adjacency
D^-1/2 (I + A) D^-1/2 of the directed citations with row-sum degrees. Per seed
a random permutation splits the nodes: test the first 1000, validation the next
500, training the remaining 1208. Full batch: one optimizer step per epoch,
mean NLL over the training nodes. Runs on the Cora-shaped CSBM graph of
:mod:`benchmarks.comparison.data.csbm` (Cora is not available offline).

Both products are sparse: the features through their word indices, the
adjacency through its edge list.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison.data import csbm
from benchmarks.comparison.task import Mode
from benchmarks.comparison.task import Task
from benchmarks.comparison.task import TaskResult
from benchmarks.comparison.tasks.common import training

HIDDEN = 16
DROPOUT = 0.5
N_TEST, N_VAL = 1000, 500
N_EPOCHS: dict[Mode, int] = {"quick": 50, "standard": 200, "full": 200}


@functools.cache
def graph_arrays() -> dict[str, np.ndarray]:
  """The graph as sparse arrays: features by word, normalised adjacency by edge."""
  graph = csbm.cora_like_graph()
  n = len(graph.labels)
  rows, slots = np.nonzero(graph.words >= 0)
  counts = np.bincount(rows, minlength=n)
  loops = np.arange(n, dtype=np.int32)
  source = np.concatenate([graph.edges[:, 0], loops])
  target = np.concatenate([graph.edges[:, 1], loops])
  degree = np.bincount(source, minlength=n).astype(np.float32)  # row sums of I + A
  return {
      "labels": graph.labels,
      "word_node": rows.astype(np.int32),
      "word": graph.words[rows, slots],
      "word_value": (1.0 / counts[rows]).astype(np.float32),  # row-normalised
      "source": source,
      "target": target,
      "edge_value": (degree[source]**-0.5 * degree[target]**-0.5).astype(np.float32),
  }


def propagate(data, h: jax.Array) -> jax.Array:
  """``D^-1/2 (I + A) D^-1/2 @ h``."""
  messages = data["edge_value"][:, None] * h[data["target"]]
  return jax.ops.segment_sum(messages, data["source"], num_segments=h.shape[0])


def log_probs(params: optax.Params, data, key: jax.Array | None) -> jax.Array:
  """Class log-probabilities of every node; dropout only when ``key`` is given."""
  n = data["labels"].shape[0]
  xw = jax.ops.segment_sum(data["word_value"][:, None] * params["gc1"][data["word"]],
                           data["word_node"], num_segments=n)  # features @ kernel
  h = jax.nn.relu(propagate(data, xw))
  if key is not None:
    keep = jax.random.bernoulli(key, 1 - DROPOUT, h.shape)
    h = jnp.where(keep, h / (1 - DROPOUT), 0.0)
  return jax.nn.log_softmax(propagate(data, h @ params["gc2"]))


def nll(log_p: jax.Array, labels: jax.Array, nodes: jax.Array) -> jax.Array:
  return -jnp.mean(jnp.take_along_axis(log_p[nodes], labels[nodes, None], axis=1))


def init(key: jax.Array, data) -> optax.Params:
  del data
  k1, k2 = jax.random.split(key)
  xavier = jax.nn.initializers.glorot_normal()
  return {"gc1": xavier(k1, (csbm.N_WORDS, HIDDEN)),
          "gc2": xavier(k2, (HIDDEN, len(csbm.CLASS_SIZES)))}


def split(key: jax.Array, data):
  """This seed's split: test, validation and training nodes."""
  order = jax.random.permutation(key, data["labels"].shape[0])
  return {**data, "test": order[:N_TEST], "train": order[N_TEST + N_VAL:]}


def loss(params: optax.Params, data, batch, key: jax.Array) -> jax.Array:
  del batch
  return nll(log_probs(params, data, key), data["labels"], data["train"])


def evaluate(params: optax.Params, data) -> dict[str, jax.Array]:
  log_p = log_probs(params, data, None)
  test = data["test"]
  correct = jnp.argmax(log_p[test], axis=1) == data["labels"][test]
  return {"nll": nll(log_p, data["labels"], test), "accuracy": jnp.mean(correct)}


def run(tx: optax.GradientTransformation, seeds: jax.Array, mode: Mode) -> TaskResult:
  metrics = training.train(
      tx, seeds, jax.tree.map(jnp.asarray, graph_arrays()),
      init=init, batches=training.full_batch, loss=loss,
      evaluate=evaluate, n_epochs=N_EPOCHS[mode], per_seed=split)
  return TaskResult(errors=metrics["nll"], extras={"accuracy": metrics["accuracy"]})


TASK = Task(
    name="SS-csbm",
    regime="full-batch",
    error_name="test NLL",
    run=run,
    cuts={
        "quick": "50 epochs (paper: 200); Cora replaced by a Cora-shaped CSBM graph",
        "standard": "Cora replaced by a Cora-shaped CSBM graph",
        "full": "Cora replaced by a Cora-shaped CSBM graph",
    },
    n_steps=dict(N_EPOCHS),  # one full-batch step per epoch.
)
