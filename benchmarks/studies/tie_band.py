"""How many weights the reference's tie band freezes beyond ``floor(p_frozen n)``.

Eq. 5 freezes every weight whose importance score is at least ``TIE_TOLERANCE``
(0.999999) times the group's ``floor(p n)``-th largest score, so scores crowding just
below that threshold freeze too. This study trains, as a user would, an MLP 64-256-256-10
(ReLU) on scikit-learn's 8x8 digits (pixels / 16, or standardised per pixel; mini-batches
of 64) with CoRe at ``p_frozen = 0.1``, every leaf its own group, for ``t_hist`` in
{250, 1000, 5000} (and a large step size that kills ReLU units), and counts per leaf and
update:

- *frozen*: the weights eq. 5 froze (``P = 0``), read from the state the update starts
  from with :func:`core_optax.frozen_mask`; the excess is this minus ``floor(p n)``;
- *not moved*: the weights whose update is exactly 0, what a user who checks
  ``updates == 0`` sees; it adds, to the frozen weights, every weight whose gradient
  has been exactly 0 so far (weights of a constant-zero pixel, of a dead unit);
- *zero score*: weights whose score is exactly 0.

The first layer (64 x 256 = 16,384 weights) is the leaf the issue's figure is about.

  python -m benchmarks tie-band [--steps 3000]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

from benchmarks.studies.selection_passes import loss  # the same ReLU MLP's loss
import core_optax

P_FROZEN = 0.1
SIZES = (64, 256, 256, 10)
BATCH = 64


@dataclasses.dataclass(frozen=True)
class Config:
  """One training run: ``t_hist``, CoRe's ``s_max``, input scaling, seed."""

  score_history: int
  max_step_size: float = 1e-3
  standardised: bool = False
  seed: int = 0

  @property
  def label(self) -> str:
    inputs = "standardised" if self.standardised else "pixels / 16"
    return f"t_hist {self.score_history}, s_max {self.max_step_size:g}, {inputs}"


CONFIGS = (Config(250), Config(1000), Config(5000), Config(1000, standardised=True),
           Config(1000, max_step_size=1e-1), Config(5000, max_step_size=1e-2))


def init(key: jax.Array) -> list[dict[str, jax.Array]]:
  keys = jax.random.split(key, len(SIZES) - 1)
  return [{"w": jax.random.normal(k, (a, b)) * np.sqrt(2 / a), "b": jnp.zeros(b)}
          for k, a, b in zip(keys, SIZES[:-1], SIZES[1:])]


def _data(standardised: bool) -> tuple[jax.Array, jax.Array]:
  x, y = load_digits(return_X_y=True)
  x = x.astype(np.float32)
  x = (x - x.mean(0)) / (x.std(0) + 1e-3) if standardised else x / 16.0
  return jnp.asarray(x), jnp.asarray(y)


def train(config: Config, n_steps: int) -> dict[str, np.ndarray]:
  """Per update and leaf: frozen, not moved, zero scores (``[n_steps, n_leaves]``)."""
  x, y = _data(config.standardised)
  tx = core_optax.core(config.max_step_size, score_history=config.score_history,
                       frozen_fraction=P_FROZEN)
  params = init(jax.random.key(config.seed))
  state = tx.init(params)

  def step(carry, key):
    params, state = carry
    batch = jax.random.randint(key, (BATCH,), 0, x.shape[0])
    grads = jax.grad(loss)(params, x[batch], y[batch])
    updates, new_state = tx.update(grads, state, params)
    masks = jax.tree.leaves(core_optax.frozen_mask(state, score_history=config.score_history,
                                                   frozen_fraction=P_FROZEN))
    frozen, still, zero = [], [], []
    for mask, scores, update in zip(masks, jax.tree.leaves(state[0].S), jax.tree.leaves(updates)):
      frozen.append(jnp.sum(mask))
      still.append(jnp.sum(update == 0))
      zero.append(jnp.sum(scores == 0))
    out = {"frozen": jnp.stack(frozen), "not_moved": jnp.stack(still),
           "zero_score": jnp.stack(zero)}
    return (optax.apply_updates(params, updates), new_state), out

  keys = jax.random.split(jax.random.key(config.seed + 1), n_steps)
  _, out = jax.jit(lambda c, k: jax.lax.scan(step, c, k))((params, state), keys)
  return {k: np.asarray(v) for k, v in out.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--steps", type=int, default=3000,
                      help="updates after the first t_hist (default 3000)")


def main(args: argparse.Namespace) -> None:
  shapes = [x.shape for x in jax.tree.leaves(init(jax.random.key(0)))]
  names = [f"layer {i // 2 + 1} {'w' if i % 2 else 'b'}" for i in range(len(shapes))]
  order = sorted(range(len(shapes)), key=lambda i: (i // 2, -len(shapes[i])))  # w before b
  print(f"MLP {'-'.join(map(str, SIZES))} (ReLU) on scikit-learn's digits, mini-batches of "
        f"{BATCH}, CoRe with p_frozen = {P_FROZEN}, every leaf its own group, seed 0; "
        f"{args.steps} updates after the first t_hist. Per leaf, over the updates that "
        "freeze: frozen by eq. 5 (with the tie band), its largest excess over floor(p n), "
        "and the weights whose update is exactly 0.\n")
  print("| run | leaf | n | floor(p n) | frozen, max | max excess (weights) | not moved, "
        "mean | not moved, max | zero scores, max | s |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
  for config in CONFIGS:
    start = time.perf_counter()
    out = train(config, config.score_history + args.steps)
    seconds = time.perf_counter() - start
    on = slice(config.score_history, None)  # updates tau > t_hist
    for i in order:
      n = int(np.prod(shapes[i]))
      k = int(P_FROZEN * n)
      frozen, still, zero = (out[name][on, i] for name in ("frozen", "not_moved",
                                                           "zero_score"))
      assert np.all(still >= frozen), "a frozen weight moved"
      print(f"| {config.label} | {names[i]} {shapes[i]} | {n} | {k} | {frozen.max() / n:.4f} | "
            f"{frozen.max() - k} | {still.mean() / n:.4f} | {still.max() / n:.4f} | "
            f"{zero.max() / n:.4f} | {seconds:.0f} |")
