"""Why the freezing selection reads large groups in chunks: one count over 1e7 scores, two ways.

Counts the 1e7 float32 numbers at or above 0.5, (i) as one ``sum`` over all comparisons,
and (ii) as the selection does for unsharded leaves: a ``lax.fori_loop`` over chunks of
``CHUNK`` numbers (the value of ``core_optax._selection._CHUNK``), each chunk's comparisons
materialised as bytes and summed as floats.
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

N = 10_000_000
REPS = 20
CHUNK = 1 << 19


def whole(x: jax.Array) -> jax.Array:
  return jnp.sum((x >= 0.5).astype(jnp.int32))


def _count(x: jax.Array) -> jax.Array:
  ones = jax.lax.optimization_barrier((x >= 0.5).astype(jnp.uint8))
  return jnp.sum(ones.astype(jnp.float32)).astype(jnp.int32)  # exact: CHUNK < 2**24


def chunked(x: jax.Array) -> jax.Array:
  chunk = lambda i, acc: acc + _count(jax.lax.dynamic_slice_in_dim(x, i * CHUNK, CHUNK))
  total = jax.lax.fori_loop(0, x.size // CHUNK, chunk, jnp.int32(0))
  return total + _count(x[x.size - x.size % CHUNK:])


def add_arguments(parser: argparse.ArgumentParser) -> None:
  del parser  # no options


def main(args: argparse.Namespace) -> None:
  del args
  x = jnp.asarray(np.random.default_rng(0).uniform(size=N), jnp.float32)
  print(f"count of x >= 0.5 over {N:.0e} float32 numbers ({jax.devices()[0].platform}); "
        f"chunks of {CHUNK} numbers")
  print("| count | ms (median) | minor page faults per count | result |\n|---|---:|---:|---:|")
  for name, fn in (("one sum over all comparisons", whole), ("in chunks, in a loop", chunked)):
    run = jax.jit(fn)
    result = int(jax.block_until_ready(run(x)))
    count = lambda run=run: jax.block_until_ready(run(x))
    seconds, faults = time_interleaved({name: count}, REPS)[name]
    print(f"| {name} | {seconds * 1e3:.2f} | {faults:.0f} | {result} |")
