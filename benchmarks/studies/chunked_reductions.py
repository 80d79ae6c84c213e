"""Why the freezing selection reads large groups in chunks: one count over 1e7 scores, two ways.

Counts the keys (the selection's order-preserving integers) of 1e7 float32 numbers at or
above the key of 0.5, (i) as one ``sum`` over all comparisons, and (ii) with the selection's
own ``_fold``: a ``lax.fori_loop`` over chunks of ``core_optax._selection._CHUNK`` numbers.
Prints the median time per count and the minor page faults per count. XLA:CPU gives the
comparisons of (i) a temporary of their own, in fresh memory on every call: the page faults
of touching it cost more than the count itself.

  python -m benchmarks chunked-reductions
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.studies.timing import time_interleaved
from core_optax import _selection

N = 10_000_000
REPS = 20


HALF = _selection._keys(jnp.float32(0.5))


def whole(x: jax.Array) -> jax.Array:
  return jnp.sum((_selection._keys(x) >= HALF).astype(jnp.float32))


def chunked(x: jax.Array) -> jax.Array:
  count = lambda keys: jnp.sum((keys >= HALF).astype(jnp.float32), axis=1)
  return _selection._fold(_selection._Keys((x,), scores=True), count, jnp.add, jnp.zeros([1]))[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
  del parser  # no options


def main(args: argparse.Namespace) -> None:
  del args
  x = jnp.asarray(np.random.default_rng(0).uniform(size=N), jnp.float32)
  print(f"count of x >= 0.5 over {N:.0e} float32 numbers ({jax.devices()[0].platform}); "
        f"chunks of {_selection._CHUNK} numbers")
  print("| count | ms (median) | minor page faults per count | result |\n|---|---:|---:|---:|")
  for name, fn in (("one sum over all comparisons", whole), ("in chunks, in a loop", chunked)):
    run = jax.jit(fn)
    result = int(jax.block_until_ready(run(x)))
    count = lambda run=run: jax.block_until_ready(run(x))
    seconds, faults = time_interleaved({name: count}, REPS)[name]
    print(f"| {name} | {seconds * 1e3:.2f} | {faults:.0f} | {result} |")
