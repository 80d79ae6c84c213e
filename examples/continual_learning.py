"""Continual learning: task A, then task B, with and without CoRe's stability-plasticity balance.

Task A classifies scikit-learn's handwritten digits; task B classifies the same
digits with their pixels shuffled by a fixed permutation (the "permuted digits"
benchmark of continual learning). One network learns A, then B, and forgets A
in the process. CoRe's importance scores (``score_history``, the paper's
t_hist) and freezing of each weight tensor's most important fraction
(``frozen_fraction``, p_frozen) keep weights that mattered for A from moving
while B is learned, so less of A is forgotten.

The script prints the accuracy on A before and after learning B for each
setting and plots both tasks' test accuracies over training::

  python examples/continual_learning.py                 # ~20 s; writes continual_learning.png
  python examples/continual_learning.py --steps 100 --plot /tmp/cl.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import core_optax



def settings(score_history: int) -> dict[str, dict[str, float]]:
  """CoRe's stability-plasticity settings to compare: none, the paper's, a strong one."""
  return {
      "no freezing": {"score_history": None, "frozen_fraction": 0.0},
      f"t_hist={score_history}, p_frozen=0.1": {"score_history": score_history,
                                                "frozen_fraction": 0.1},
      f"t_hist={score_history}, p_frozen=0.5": {"score_history": score_history,
                                                "frozen_fraction": 0.5},
  }


def tasks(seed: int = 0) -> dict[str, tuple[jax.Array, ...]]:
  """Tasks A (digits) and B (permuted digits): {name: (x_train, y_train, x_test, y_test)}."""
  x, y = load_digits(return_X_y=True)
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(x))
  x, y = x[order].astype(np.float32) / 16.0, y[order].astype(np.int32)
  x = (x - x.mean(0)) / (x.std(0) + 1e-3)
  n = int(0.8 * len(x))
  out = {}
  for name, pixels in (("A", np.arange(64)), ("B", rng.permutation(64))):
    xp = jnp.asarray(x[:, pixels])
    out[name] = (xp[:n], jnp.asarray(y[:n]), xp[n:], jnp.asarray(y[n:]))
  return out


class MLP(nn.Module):
  """64 -> 128 -> 10 with a ReLU."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Dense(10)(nn.relu(nn.Dense(128)(x)))


model = MLP()


def accuracy(params, x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.argmax(model.apply({"params": params}, x), -1) == y)


def run(tx: optax.GradientTransformation, data, *, steps: int, batch_size: int, seed: int = 0):
  """Trains on A for ``steps`` steps, then on B; returns test accuracies, shape (2 * steps, 2)."""
  params = model.init(jax.random.key(seed), data["A"][0][:1])["params"]
  opt_state = tx.init(params)
  tests = [(data[t][2], data[t][3]) for t in "AB"]

  def phase(carry, x_train, y_train, key):
    def step(carry, key):
      params, opt_state = carry
      batch = jax.random.randint(key, (batch_size,), 0, len(x_train))

      def loss_fn(params):
        logits = model.apply({"params": params}, x_train[batch])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_train[batch]).mean()

      grads = jax.grad(loss_fn)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      params = optax.apply_updates(params, updates)
      return (params, opt_state), jnp.stack([accuracy(params, *t) for t in tests])

    return jax.lax.scan(step, carry, jax.random.split(key, steps))

  @jax.jit
  def both_phases(params, opt_state, key):
    key_a, key_b = jax.random.split(key)
    carry, acc_a = phase((params, opt_state), *data["A"][:2], key_a)
    _, acc_b = phase(carry, *data["B"][:2], key_b)
    return jnp.concatenate([acc_a, acc_b])

  return np.asarray(both_phases(params, opt_state, jax.random.key(seed + 1)))


def plot(curves: dict[str, np.ndarray], steps: int, path: Path) -> None:
  """Test accuracy on A (solid) and B (dashed) over both phases, one colour per setting."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4), dpi=80)
  for (name, acc), colour in zip(curves.items(), ("tab:red", "tab:blue", "tab:green")):
    ax.plot(acc[:, 0], color=colour, label=f"CoRe, {name}: task A")
    ax.plot(acc[:, 1], color=colour, linestyle="--", label=f"CoRe, {name}: task B")
  ax.axvline(steps, color="gray", linewidth=0.8)
  ax.set(xlabel="training step (task A, then task B)", ylabel="test accuracy", ylim=(0, 1))
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main(
    steps: int = 1000,
    batch_size: int = 32,
    score_history: int = 250,
    plot_path: str | Path | None = Path(__file__).with_suffix(".png"),
) -> dict[str, dict[str, float]]:
  """Runs every setting; prints and returns the accuracies on A and B.

  Args:
    steps: training steps per task.
    batch_size: mini-batch size (mini-batch regime, so ``max_step_size=1e-3``).
    score_history: t_hist of the settings with freezing; freezing starts after
      t_hist steps, and scores remember about the last t_hist steps.
    plot_path: where to save the plot (PNG); ``None`` for no plot.

  Returns:
    ``{setting: {"A_after_A", "A_after_B", "B_after_B"}}``, test accuracies.
  """
  data = tasks()
  curves, result = {}, {}
  for name, kwargs in settings(score_history).items():
    acc = run(core_optax.core(1e-3, **kwargs), data, steps=steps, batch_size=batch_size)
    curves[name] = acc
    result[name] = {"A_after_A": float(acc[steps - 1, 0]), "A_after_B": float(acc[-1, 0]),
                    "B_after_B": float(acc[-1, 1])}
    r = result[name]
    print(f"CoRe, {name:>26}: task A {r['A_after_A']:.3f} -> {r['A_after_B']:.3f} after B "
          f"(forgot {r['A_after_A'] - r['A_after_B']:.3f}), task B {r['B_after_B']:.3f}")
  if plot_path is not None:
    plot(curves, steps, Path(plot_path))
    print(f"plot: {plot_path}")
  return result


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--score-history", type=int, default=250)
  parser.add_argument("--plot", default=str(Path(__file__).with_suffix(".png")))
  args = parser.parse_args()
  main(steps=args.steps, score_history=args.score_history, plot_path=args.plot)
