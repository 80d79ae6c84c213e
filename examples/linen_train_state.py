"""CoRe in a Flax linen training loop built on ``flax.training.train_state.TrainState``.

``TrainState.create(apply_fn=..., params=..., tx=core_optax.core(...))`` and
``state.apply_gradients(grads=grads)`` are all it takes: ``apply_gradients``
passes the parameters to ``tx.update``, which CoRe's weight decay needs::

  python examples/linen_train_state.py              # a few seconds
  python examples/linen_train_state.py --steps 50
"""

from __future__ import annotations

import argparse

import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import core_optax


def digits(seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """8x8 digit images as standardised 64-vectors: (x_train, y_train, x_test, y_test)."""
  x, y = load_digits(return_X_y=True)
  order = np.random.default_rng(seed).permutation(len(x))
  x, y = x[order].astype(np.float32) / 16.0, y[order].astype(np.int32)
  x = (x - x.mean(0)) / (x.std(0) + 1e-3)
  n_train = int(0.8 * len(x))
  return (jnp.asarray(x[:n_train]), jnp.asarray(y[:n_train]),
          jnp.asarray(x[n_train:]), jnp.asarray(y[n_train:]))


class MLP(nn.Module):
  """64 -> hidden -> 10 with a ReLU."""

  hidden: int = 64

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Dense(10)(nn.relu(nn.Dense(self.hidden)(x)))


@jax.jit
def train_step(
    state: train_state.TrainState, x: jax.Array, y: jax.Array
) -> tuple[train_state.TrainState, jax.Array]:
  def loss_fn(params):
    logits = state.apply_fn({"params": params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), loss


def main(steps: int = 300, batch_size: int = 128, seed: int = 0) -> dict[str, float]:
  """Trains the MLP with CoRe; prints and returns the end points of the run.

  Args:
    steps: training steps.
    batch_size: mini-batch size; 128 of 1437 images is the paper's
      "intermediate" batch regime, where it recommends ``max_step_size=1e-2``.
    seed: initialisation and batch-order seed.

  Returns:
    ``{"first_loss", "last_loss", "test_accuracy"}``.
  """
  x_train, y_train, x_test, y_test = digits()
  model = MLP()
  state = train_state.TrainState.create(
      apply_fn=model.apply,
      params=model.init(jax.random.key(seed), x_train[:1])["params"],
      tx=core_optax.core(max_step_size=1e-2),
  )
  rng = np.random.default_rng(seed)
  losses = []
  for _ in range(steps):
    batch = rng.integers(0, len(x_train), batch_size)
    state, loss = train_step(state, x_train[batch], y_train[batch])
    losses.append(float(loss))
  logits = state.apply_fn({"params": state.params}, x_test)
  result = {
      "first_loss": losses[0],
      "last_loss": float(np.mean(losses[-10:])),
      "test_accuracy": float(jnp.mean(jnp.argmax(logits, -1) == y_test)),
  }
  print(f"linen + TrainState + CoRe: loss {result['first_loss']:.4f} -> "
        f"{result['last_loss']:.4f}, test accuracy {result['test_accuracy']:.3f} "
        f"after {int(state.step)} steps")
  return result


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch-size", type=int, default=128)
  args = parser.parse_args()
  main(steps=args.steps, batch_size=args.batch_size)
