"""Reads of the scores per update by freezing's search, from the state's thresholds or not.

Trains a 64-512-512-10 MLP on scikit-learn's digits (mini-batches of 64) with CoRe and the
stability-plasticity balance (t_hist = 250, p_frozen = 0.1, every leaf its own group). In every
update that freezes weights it runs the exact search of eq. 5's thresholds twice on the same
scores, once from the guess ``core_optax`` makes from the thresholds the state kept, and once
without a guess, and prints how many reads of the scores each made
(``core_optax._search.search``, the search's internal entry point for measurements: every
counting read and every cut to a bracket's extremes reads all searched scores once, weighted by
the searched groups' share of them). Not counted: the copy that packs the scores into blocks
before the first read, the collection of the last few candidates (at most 16 blocks of 128
scores per group), and eq. 8's own read of the scores in the update. The two thresholds are
checked equal.

  python -m benchmarks selection-passes [--steps 600]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import core_optax
from core_optax import _freezing
from core_optax import _search

T_HIST = 250
P_FROZEN = 0.1
SIZES = (64, 512, 512, 10)


def init(key: jax.Array) -> list[dict[str, jax.Array]]:
  keys = jax.random.split(key, len(SIZES) - 1)
  return [{"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)}
          for k, a, b in zip(keys, SIZES[:-1], SIZES[1:])]


def loss(params, x, y):
  for layer in params[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
  logits = x @ params[-1]["w"] + params[-1]["b"]
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--steps", type=int, default=600)


def main(args: argparse.Namespace) -> None:
  x, y = load_digits(return_X_y=True)
  x, y = jnp.asarray(x / 16.0, jnp.float32), jnp.asarray(y)
  tx = core_optax.core(1e-3, score_history=T_HIST, frozen_fraction=P_FROZEN)
  params = init(jax.random.key(0))
  state = tx.init(params)

  @jax.jit
  def step(params, state, xb, yb):
    core_state = state[0]
    scores = [[s] for s in jax.tree.leaves(core_state.S)]
    ks = [int(P_FROZEN * s[0].size) for s in scores]
    guesses = _freezing.next_threshold_guess(*core_state.threshold)
    warm, warm_reads = _search.search(scores, ks, guesses)
    cold, cold_reads = _search.search(scores, ks)
    updates, state = tx.update(jax.grad(loss)(params, xb, yb), state, params)
    same = jnp.all(warm == cold)
    return optax.apply_updates(params, updates), state, warm_reads, cold_reads, same

  rng = np.random.default_rng(0)
  warm, cold = [], []
  for t in range(args.steps):
    batch = rng.choice(len(x), 64)
    params, state, w, c, same = step(params, state, x[batch], y[batch])
    if t > T_HIST:  # the state holds a threshold from the update before
      assert bool(same), f"thresholds differ at update {t + 1}"
      warm.append(float(w))
      cold.append(float(c))
  print(f"{len(warm)} updates with freezing (t_hist {T_HIST}, p_frozen {P_FROZEN}, "
        f"{sum(p.size for p in jax.tree.leaves(params))} weights in {len(jax.tree.leaves(params))} "
        "groups); reads of the scores per update by the search:")
  print("| search starts at | median | mean | max |\n|---|---:|---:|---:|")
  for name, reads in (("thresholds kept in the state (core_optax)", warm),
                       ("no guess", cold)):
    print(f"| {name} | {np.median(reads):.1f} | {np.mean(reads):.2f} | {np.max(reads):.1f} |")
