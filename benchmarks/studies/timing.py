"""What the studies share to time optimizer steps: fixed problems, jitted steps, medians.

- The timed problem: trees of leaf shapes (:func:`mlp_shapes`, :func:`small_leaves_shapes`),
  fixed parameters and gradients (:func:`arrays`), and importance scores near their steady
  state (:func:`scores`) for CoRe with freezing (``T_HIST``, ``P_FROZEN``, ``S_MAX``).
- :class:`Jax`: one jitted, donating optimizer step on that problem, optionally ``vmap``-ed,
  with its state bytes and the bytes its compiled program copies (:func:`copied_bytes`).
- :func:`time_interleaved`: medians of several runs, interleaved, and their page faults;
  :func:`timed`: wall and process CPU seconds of one call.
"""

from __future__ import annotations

from collections.abc import Callable
import re
import resource
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

T_HIST = 250
P_FROZEN = 0.1
S_MAX = 1e-3


def mlp_shapes(n: int) -> list[tuple[int, ...]]:
  """5 square dense layers (weights and biases): 10 leaves."""
  d = int((n / 5) ** 0.5)
  return [s for _ in range(5) for s in ((d, d), (d,))]


def small_leaves_shapes(n: int, layers: int = 150) -> list[tuple[int, ...]]:
  """``layers`` dense layers of ``n / layers`` weights each: ``2 * layers`` leaves."""
  m = n // layers
  a = max(1, int(m ** 0.5))
  return [s for _ in range(layers) for s in ((a, m // a - 1), (m // a - 1,))]


def gpt_shapes(layers: int = 12, width: int = 128, vocab: int = 256,
               context: int = 256) -> list[tuple[int, ...]]:
  """A GPT-style decoder's parameter tree: 148 leaves and 2.4e6 weights with the defaults.

  Token and position embeddings; per layer LayerNorm scale and bias (twice), the qkv and
  attention-output kernels and biases, and the MLP's kernels (4x wide) and biases; a final
  LayerNorm.
  """
  block = [(width,), (width,), (width, 3 * width), (3 * width,), (width, width), (width,),
           (width,), (width,), (width, 4 * width), (4 * width,), (4 * width, width), (width,)]
  return [(vocab, width), (context, width), *block * layers, (width,), (width,)]


def arrays(shapes, seed: int, scale: float = 1.0) -> list[np.ndarray]:
  rng = np.random.default_rng(seed)
  return [(rng.normal(size=s) * scale).astype(np.float32) for s in shapes]


def scores(shapes) -> list[np.ndarray]:
  """Importance scores near their steady state under the fixed gradients ``arrays(shapes, 1)``.

  With a gradient ``G`` every step, ``g -> G``, ``u -> sign(G)`` and ``s -> s_max``, so eq. 8's
  average of ``g D`` tends to ``|G| s_max``; starting there (with 1% noise) keeps the scores,
  and so the freezing threshold, from sweeping across their range while the steps are timed.
  """
  noise = arrays(shapes, 2, scale=0.01)
  return [np.abs(g) * S_MAX * (1 + e) for g, e in zip(arrays(shapes, 1), noise)]


def state_bytes(tree, n: int) -> float:
  return sum(x.nbytes for x in jax.tree.leaves(tree) if x.size > 1) / n


def copied_bytes(hlo: str, n: int) -> float:
  """Bytes per parameter that the compiled step's ``copy`` instructions move (each counted once).

  XLA inserts copies where a donated buffer is still read after its new value would overwrite
  it; the copies live in temporaries, which XLA:CPU maps freshly (page faults) on every call.
  """
  total = 0
  for dtype, dims in re.findall(r"= ([a-z]+\d*)\[([\d,]*)\]\{[\d,]*\} copy\(", hlo):
    bits = int(re.sub(r"\D", "", dtype) or 8)  # pred: a byte
    total += int(np.prod([int(d) for d in dims.split(",") if d])) * bits // 8
  return total / n


class Jax:
  """A jitted, donating ``params, state <- step(params, state, grads)``.

  With ``members``, the step is ``vmap``-ed over that many equal copies of the problem;
  ``compiler_options`` go to ``jax.jit``.
  """

  def __init__(self, tx: optax.GradientTransformation, shapes, freezing: bool = False,
               members: int | None = None, compiler_options: dict | None = None):
    batch = [] if members is None else [members]
    put = lambda xs: [jnp.broadcast_to(jnp.asarray(x), (*batch, *x.shape)) for x in xs]
    vmap = jax.vmap if members else lambda f: f
    self.params, self.grads = put(arrays(shapes, 0)), put(arrays(shapes, 1))
    self.state = vmap(tx.init)(self.params)
    if freezing:  # skip to tau > t_hist, with realistic scores
      core_state = self.state[0]._replace(tau=jnp.full(batch, T_HIST, jnp.int32),
                                          S=put(scores(shapes)))
      self.state = (core_state, *self.state[1:])
    n = sum(p.size for p in self.params)
    self.bytes = state_bytes(self.state, n)

    def step(params, state, grads):
      updates, state = tx.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    start = time.perf_counter()
    self.step = jax.jit(vmap(step), donate_argnums=(0, 1),
                        compiler_options=compiler_options).lower(
        self.params, self.state, self.grads).compile()
    self.compile_s = time.perf_counter() - start
    self.copies = copied_bytes(self.step.as_text(), n)

  def __call__(self):
    self.params, self.state = self.step(self.params, self.state, self.grads)
    jax.block_until_ready((self.params, self.state))


class Timing(NamedTuple):
  seconds: float  # median per call
  faults: float  # minor page faults of the process per call, on average


def time_interleaved(runs: dict[str, Callable[[], None]], reps: int) -> dict[str, Timing]:
  """Per run, one call of each per round, after one warm-up round.

  Page faults are the process's (all threads): XLA:CPU allocates a step's temporaries anew on
  every call, and glibc maps blocks above 32 MB freshly, so each of their 4 kB pages faults.
  """
  times = {name: [] for name in runs}
  faults = dict.fromkeys(runs, 0)
  for r in range(reps + 1):
    for name, run in runs.items():
      before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      start = time.perf_counter()
      run()
      if r:
        times[name].append(time.perf_counter() - start)
        faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
  return {name: Timing(float(np.median(t)), faults[name] / reps) for name, t in times.items()}


def timed(fn: Callable[[], object]) -> tuple[float, float]:
  """Wall and process CPU seconds of ``fn()`` (CPU time is steadier on a shared machine)."""
  wall, cpu = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - wall, time.process_time() - cpu
