"""Continual learning with CoRe's freezing: task A, then task B, over several seeds.

Task A classifies scikit-learn's handwritten digits; task B the same digits with their
pixels shuffled by a fixed permutation (the "permuted digits" benchmark). One network
learns A, then B, and forgets part of A. CoRe's importance scores (``score_history``,
the paper's t_hist) and the freezing of each weight tensor's most important fraction
(``frozen_fraction``, p_frozen) keep the weights that mattered most recently from
moving; with ``score_history`` equal to the length of task A, freezing starts exactly
when task B does.

What the benchmark supports (``python -m benchmarks continual --standard``, README "Does
freezing help?"): on permuted digits freezing trades plasticity for stability, forgetting
less of earlier tasks the more it freezes while learning each new one a little less well,
and freezing by importance beats freezing as many random weights; Synaptic Intelligence
(on Adam) forgets far less still. This script shows the trade with its uncertainty: all
seeds train together (vmapped), every number is a mean ± standard deviation over seeds.
With the defaults (10 seeds, 250 steps per task) it printed::

  CoRe,   no freezing: forgot 0.103 ± 0.008 of A, B 0.958 ± 0.007, mean of A and B 0.914 ± 0.004
  CoRe,  p_frozen=0.1: forgot 0.066 ± 0.011 of A, B 0.938 ± 0.008, mean of A and B 0.922 ± 0.006
  CoRe, p_frozen=0.25: forgot 0.034 ± 0.010 of A, B 0.887 ± 0.009, mean of A and B 0.913 ± 0.005

Run it::

  python examples/continual_learning.py                 # ~30 s of CPU; writes the .png
  python examples/continual_learning.py --steps 100 --seeds 3 --plot /tmp/cl.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import core_optax

HIDDEN = 128


def settings(score_history: int) -> dict[str, optax.GradientTransformation]:
  """CoRe without freezing, and with the paper's p_frozen = 0.1 and a stronger 0.25."""
  return {
      "no freezing": core_optax.core(1e-3),
      "p_frozen=0.1": core_optax.core(1e-3, score_history=score_history, frozen_fraction=0.1),
      "p_frozen=0.25": core_optax.core(1e-3, score_history=score_history,
                                       frozen_fraction=0.25),
  }


def tasks() -> dict[str, tuple[jax.Array, ...]]:
  """Tasks A (digits) and B (permuted digits): {name: (x_train, y_train, x_test, y_test)}."""
  x, y = load_digits(return_X_y=True)
  rng = np.random.default_rng(0)
  order = rng.permutation(len(x))
  x, y = x[order].astype(np.float32), y[order].astype(np.int32)
  n = int(0.8 * len(x))
  x = (x - x[:n].mean(0)) / (x[:n].std(0) + 1e-3)
  out = {}
  for name, pixels in (("A", np.arange(64)), ("B", rng.permutation(64))):
    xp = jnp.asarray(x[:, pixels])
    out[name] = (xp[:n], jnp.asarray(y[:n]), xp[n:], jnp.asarray(y[n:]))
  return out


def init(key: jax.Array) -> dict[str, jax.Array]:
  """An MLP 64 -> 128 -> 10 with torch's initialisation U(+-1/sqrt(fan_in))."""
  k1, k2, k3, k4 = jax.random.split(key, 4)
  uniform = lambda k, shape, fan_in: jax.random.uniform(k, shape, minval=-fan_in**-0.5,
                                                        maxval=fan_in**-0.5)
  return {"w1": uniform(k1, (64, HIDDEN), 64), "b1": uniform(k2, (HIDDEN,), 64),
          "w2": uniform(k3, (HIDDEN, 10), HIDDEN), "b2": uniform(k4, (10,), HIDDEN)}


def logits(params, x: jax.Array) -> jax.Array:
  return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def run(tx: optax.GradientTransformation, data, *, steps: int, batch_size: int,
        seeds: int) -> np.ndarray:
  """Trains on A for ``steps`` steps, then on B, one model per seed (vmapped).

  Returns:
    Test accuracies on A and B after every step, shape ``[seeds, 2 * steps, 2]``.
  """
  tests = [(data[t][2], data[t][3]) for t in "AB"]

  def accuracy(params, x, y):
    return jnp.mean(jnp.argmax(logits(params, x), -1) == y)

  def phase(carry, x_train, y_train, key):
    def step(carry, key):
      params, opt_state = carry
      batch = jax.random.randint(key, (batch_size,), 0, len(x_train))

      def loss_fn(params):
        return optax.softmax_cross_entropy_with_integer_labels(
            logits(params, x_train[batch]), y_train[batch]).mean()

      updates, opt_state = tx.update(jax.grad(loss_fn)(params), opt_state, params)
      params = optax.apply_updates(params, updates)
      return (params, opt_state), jnp.stack([accuracy(params, *t) for t in tests])

    return jax.lax.scan(step, carry, jax.random.split(key, steps))

  def one_seed(seed):
    k_init, k_a, k_b = jax.random.split(jax.random.key(seed), 3)
    params = init(k_init)
    carry, acc_a = phase((params, tx.init(params)), *data["A"][:2], k_a)
    _, acc_b = phase(carry, *data["B"][:2], k_b)
    return jnp.concatenate([acc_a, acc_b])

  return np.asarray(jax.jit(jax.vmap(one_seed))(jnp.arange(seeds)))


def plot(curves: dict[str, np.ndarray], steps: int, path: Path) -> None:
  """Mean test accuracy on A (solid) and B (dashed) over both phases, ± std shaded."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4), dpi=80)
  x = np.arange(2 * steps)
  for (name, acc), colour in zip(curves.items(), ("tab:red", "tab:blue", "tab:green")):
    for task, style in ((0, "-"), (1, "--")):
      mean, std = acc[:, :, task].mean(0), acc[:, :, task].std(0)
      ax.plot(x, mean, color=colour, linestyle=style, label=f"CoRe, {name}: task {'AB'[task]}")
      ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15)
  ax.axvline(steps, color="gray", linewidth=0.8)
  ax.set(xlabel="training step (task A, then task B)", ylabel="test accuracy", ylim=(0, 1))
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main(
    steps: int = 250,
    batch_size: int = 32,
    score_history: int | None = None,
    seeds: int = 10,
    plot_path: str | Path | None = Path(__file__).with_suffix(".png"),
) -> dict[str, dict[str, tuple[float, float]]]:
  """Runs every setting; prints and returns the accuracies as (mean, std) over seeds.

  Args:
    steps: training steps per task.
    batch_size: mini-batch size (mini-batch regime, so ``max_step_size=1e-3``).
    score_history: t_hist of the settings with freezing (default ``steps``: scores
      over task A, freezing from B's first step).
    seeds: models trained per setting, in one vmapped program.
    plot_path: where to save the plot (PNG); ``None`` for no plot.

  Returns:
    ``{setting: {"A_after_A", "A_after_B", "B_after_B", "forgot_A", "average"}}``, each a
    ``(mean, std)`` over seeds of test accuracies.
  """
  data = tasks()
  curves, result = {}, {}
  for name, tx in settings(score_history or steps).items():
    acc = run(tx, data, steps=steps, batch_size=batch_size, seeds=seeds)
    curves[name] = acc
    values = {"A_after_A": acc[:, steps - 1, 0], "A_after_B": acc[:, -1, 0],
              "B_after_B": acc[:, -1, 1]}
    values["forgot_A"] = values["A_after_A"] - values["A_after_B"]
    values["average"] = (values["A_after_B"] + values["B_after_B"]) / 2
    result[name] = {k: (float(v.mean()), float(v.std())) for k, v in values.items()}
    r = {k: f"{m:.3f} ± {s:.3f}" for k, (m, s) in result[name].items()}
    print(f"CoRe, {name:>13}: forgot {r['forgot_A']} of A, B {r['B_after_B']}, "
          f"mean of A and B {r['average']} ({seeds} seeds)")
  if plot_path is not None:
    plot(curves, steps, Path(plot_path))
    print(f"plot: {plot_path}")
  return result


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=250)
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--score-history", type=int, default=None)
  parser.add_argument("--plot", default=str(Path(__file__).with_suffix(".png")))
  args = parser.parse_args()
  main(steps=args.steps, score_history=args.score_history, seeds=args.seeds,
       plot_path=args.plot)
