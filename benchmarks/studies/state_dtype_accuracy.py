"""Accuracy cost of ``state_dtype=jnp.bfloat16`` (``g`` and ``s`` in bfloat16) on a small task.

An MLP (64-128-128-10) classifies scikit-learn's 8x8 digits (1497 training, 300
test images), mini-batches of 32, 40 epochs, CoRe with the paper's mini-batch
settings (s_max = 1e-3), with and without freezing (t_hist = 250, p_frozen =
0.1), five seeds each; float32 state against bfloat16 ``g`` and ``s``.

  python -m benchmarks state-dtype-accuracy
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sklearn.datasets
import sklearn.model_selection

import core_optax

EPOCHS, BATCH, SEEDS, WIDTH = 40, 32, 5, 128


def data():
  digits = sklearn.datasets.load_digits()
  x = (digits.data / 16.0).astype(np.float32)
  return sklearn.model_selection.train_test_split(
      x, digits.target.astype(np.int32), test_size=300, stratify=digits.target, random_state=0)


def init(key):
  sizes = [64, WIDTH, WIDTH, 10]
  keys = jax.random.split(key, len(sizes) - 1)
  return [{"w": jax.random.normal(k, (a, b)) * (2 / a) ** 0.5, "b": jnp.zeros(b)}
          for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def logits(params, x):
  for layer in params[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
  return x @ params[-1]["w"] + params[-1]["b"]


def loss(params, x, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


def train(tx, seed, x_train, y_train, x_test, y_test):
  params = init(jax.random.PRNGKey(seed))
  state = tx.init(params)

  @jax.jit
  def epoch(params, state, order):
    def step(carry, idx):
      params, state = carry
      grads = jax.grad(loss)(params, x_train[idx], y_train[idx])
      updates, state = tx.update(grads, state, params)
      return (optax.apply_updates(params, updates), state), None
    batches = order[: len(order) // BATCH * BATCH].reshape(-1, BATCH)
    return jax.lax.scan(step, (params, state), batches)[0]

  rng = np.random.default_rng(seed)
  for _ in range(EPOCHS):
    params, state = epoch(params, state, jnp.asarray(rng.permutation(len(x_train))))
  accuracy = float((logits(params, x_test).argmax(-1) == y_test).mean())
  return accuracy, float(loss(params, x_train, y_train))


def add_arguments(parser: argparse.ArgumentParser) -> None:
  del parser  # no options


def main(args: argparse.Namespace) -> None:
  del args
  x_train, x_test, y_train, y_test = map(jnp.asarray, data())
  print("| freezing | state | test accuracy (mean +- std) | final training loss |")
  print("|---|---|---:|---:|")
  for freezing in (False, True):
    kwargs = dict(score_history=250, frozen_fraction=0.1) if freezing else {}
    for name, dtype in (("float32", None), ("bfloat16 g, s", jnp.bfloat16)):
      tx = core_optax.core(1e-3, state_dtype=dtype, **kwargs)
      runs = np.array([train(tx, seed, x_train, y_train, x_test, y_test) for seed in range(SEEDS)])
      print(f"| {'on' if freezing else 'off'} | {name} | {runs[:, 0].mean():.4f} +- "
            f"{runs[:, 0].std():.4f} | {runs[:, 1].mean():.4f} |", flush=True)
