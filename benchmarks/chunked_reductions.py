"""Why the freezing selection reads large groups in chunks: one count over 1e7 scores, two ways.

Counts ``#(x >= c)`` over 1e7 float32 numbers (i) as one ``sum`` over all comparisons, and
(ii) in a ``lax.fori_loop`` over chunks of ``core_optax._selection._CHUNK`` numbers, as
``core_optax``'s selection does, and prints the median time per count and the minor page
faults per count. XLA:CPU gives the comparisons of (i) a temporary of their own, in fresh
memory on every call: the page faults of touching it cost more than the count itself.

  python -m benchmarks.chunked_reductions
"""

from __future__ import annotations

import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from core_optax import _selection

N = 10_000_000
REPS = 20


def whole(x: jax.Array) -> jax.Array:
  return jnp.sum((x >= 0.5).astype(jnp.float32))


def chunked(x: jax.Array) -> jax.Array:
  chunk = _selection._CHUNK
  rows = x.reshape(1, -1)

  def count(i, total):
    block = jax.lax.dynamic_slice_in_dim(rows, i * chunk, chunk, axis=1)
    return total + jnp.sum((block >= 0.5).astype(jnp.float32))

  total = jax.lax.fori_loop(0, x.size // chunk, count, jnp.float32(0))
  return total + whole(x[x.size - x.size % chunk:])


def main() -> None:
  x = jnp.asarray(np.random.default_rng(0).uniform(size=N), jnp.float32)
  print(f"count of x >= 0.5 over {N:.0e} float32 numbers ({jax.devices()[0].platform}); "
        f"chunks of {_selection._CHUNK} numbers")
  print("| count | ms (median) | minor page faults per count | result |\n|---|---:|---:|---:|")
  for name, fn in (("one sum over all comparisons", whole), ("in chunks, in a loop", chunked)):
    run = jax.jit(fn)
    result = int(jax.block_until_ready(run(x)))
    times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(REPS):
      start = time.perf_counter()
      jax.block_until_ready(run(x))
      times.append(time.perf_counter() - start)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / REPS
    print(f"| {name} | {np.median(times) * 1e3:.2f} | {faults:.0f} | {result} |")


if __name__ == "__main__":
  main()
