"""Sweep CoRe's s_max over several models at once, in one compiled training step.

``optax.inject_hyperparams`` moves ``max_step_size`` from the closure into the
optimizer state, so ``jax.vmap`` can map the training step over a batch of
(parameters, optimizer state) pairs that differ in their s_max. All models
train together on the same batches, in one XLA program::

  python examples/vmap_sweep.py                # a few seconds
  python examples/vmap_sweep.py --steps 20
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import core_optax

S_MAX = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def digits(seed: int = 0) -> tuple[jax.Array, jax.Array]:
  """8x8 digit images as standardised 64-vectors, and their labels."""
  x, y = load_digits(return_X_y=True)
  order = np.random.default_rng(seed).permutation(len(x))
  x, y = x[order].astype(np.float32) / 16.0, y[order].astype(np.int32)
  return jnp.asarray((x - x.mean(0)) / (x.std(0) + 1e-3)), jnp.asarray(y)


class MLP(nn.Module):
  """64 -> 32 -> 10 with a ReLU."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Dense(10)(nn.relu(nn.Dense(32)(x)))


model = MLP()
# Numeric hyperparameters become arrays in the optimizer state (s_max is the one
# we sweep). Which state CoRe keeps hangs on None only (b2=None: no h;
# score_history=None, the default: no scores), so it is the plain optimizer's.
tx = optax.inject_hyperparams(core_optax.core)(max_step_size=1e-3)


def init(key: jax.Array, s_max: jax.Array, x: jax.Array):
  """Parameters and optimizer state of one model of the sweep."""
  params = model.init(key, x[:1])["params"]
  opt_state = tx.init(params)
  opt_state.hyperparams["max_step_size"] = s_max
  return params, opt_state


def loss_fn(params, x: jax.Array, y: jax.Array) -> jax.Array:
  logits = model.apply({"params": params}, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def train_step(params, opt_state, x: jax.Array, y: jax.Array):
  """One step of one model; vmapped below over the models of the sweep."""
  loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


# Models are mapped over (axis 0 of params and state); the batch is shared.
sweep_step = jax.jit(jax.vmap(train_step, in_axes=(0, 0, None, None)))


def train(s_max: Sequence[float], *, steps: int, seed: int = 0) -> np.ndarray:
  """Trains one model per s_max (all from the same initial weights) on the full batch.

  Returns:
    The training losses, shape ``(len(s_max), steps)``.
  """
  x, y = digits()
  s_max = jnp.asarray(s_max, jnp.float32)
  keys = jnp.broadcast_to(jax.random.key(seed), s_max.shape)
  params, opt_state = jax.vmap(init, in_axes=(0, 0, None))(keys, s_max, x)
  losses = []
  for _ in range(steps):
    params, opt_state, loss = sweep_step(params, opt_state, x, y)
    losses.append(loss)
  return np.asarray(jnp.stack(losses, axis=1))


def main(steps: int = 100, s_max: Sequence[float] = S_MAX) -> dict[float, float]:
  """Runs the sweep; prints and returns the final full-batch loss per s_max."""
  losses = train(s_max, steps=steps)
  result = {float(s): float(curve[-1]) for s, curve in zip(s_max, losses)}
  print(f"full-batch loss after {steps} steps, {len(s_max)} models in one vmapped step:")
  for s, loss in result.items():
    print(f"  s_max = {s:<7g} loss = {loss:.3g}")
  print(f"best s_max: {min(result, key=result.get):g} "
        "(the paper recommends 1 for full-batch learning)")
  return result


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=100)
  args = parser.parse_args()
  main(steps=args.steps)
