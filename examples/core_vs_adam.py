"""CoRe and Adam side by side on the same small Flax model.

Trains one multilayer perceptron on scikit-learn's handwritten digits (shipped
with the package, no download) with :func:`core_optax.core` and another, from
the same initial weights and on the same mini-batches, with :func:`optax.adam`,
and prints where both training-loss curves end::

  python examples/core_vs_adam.py            # about 10 s on a laptop CPU
  python examples/core_vs_adam.py --steps 50
"""

from __future__ import annotations

import argparse

from flax import nnx
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


class MLP(nnx.Module):
  """64 -> hidden -> 10 with a ReLU."""

  def __init__(self, hidden: int, *, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(64, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, 10, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.out(nnx.relu(self.hidden(x)))


def loss_fn(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def train_step(model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
  loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
  optimizer.update(model, grads)
  return loss


def train(
    tx: optax.GradientTransformation,
    *,
    steps: int,
    batch_size: int,
    seed: int = 0,
) -> tuple[list[float], float]:
  """Trains a fresh MLP with ``tx``; returns the training losses and the test accuracy."""
  x_train, y_train, x_test, y_test = digits()
  model = MLP(64, rngs=nnx.Rngs(seed))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  rng = np.random.default_rng(seed)  # the same batches for every optimizer
  losses = []
  for _ in range(steps):
    batch = rng.integers(0, len(x_train), batch_size)
    losses.append(float(train_step(model, optimizer, x_train[batch], y_train[batch])))
  accuracy = float(jnp.mean(jnp.argmax(model(x_test), -1) == y_test))
  return losses, accuracy


def main(steps: int = 500, batch_size: int = 32, window: int = 20) -> dict[str, dict[str, float]]:
  """Trains with CoRe and with Adam; prints and returns both curves' end points.

  Args:
    steps: training steps per optimizer.
    batch_size: mini-batch size (the digits training set has 1437 images).
    window: the start and end losses are means over this many steps.

  Returns:
    ``{optimizer name: {"first_loss", "last_loss", "test_accuracy"}}``.
  """
  optimizers = {
      # Mini-batches of 32 are ~2% of the data: the paper's "mini-batch" regime.
      "core": core_optax.recommended("mini-batch"),
      "adam": optax.adam(1e-3),
  }
  results = {}
  for name, tx in optimizers.items():
    losses, accuracy = train(tx, steps=steps, batch_size=batch_size)
    w = min(window, steps)
    results[name] = {
        "first_loss": float(np.mean(losses[:w])),
        "last_loss": float(np.mean(losses[-w:])),
        "test_accuracy": accuracy,
    }
    print(f"{name:>5}: loss {results[name]['first_loss']:.4f} -> {results[name]['last_loss']:.4f} "
          f"(mean of first/last {w} steps), test accuracy {accuracy:.3f}")
  return results


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=500)
  parser.add_argument("--batch-size", type=int, default=32)
  args = parser.parse_args()
  main(steps=args.steps, batch_size=args.batch_size)
