"""What a trained Behler-Parrinello potential reaches on the stationary scenario's data.

The stationary scenario (:func:`.scenarios.stationary_setup`) compares optimizers on a
fixed budget; to say how far from trained its errors are, this trains the same network
on the same structures and split, in the same mini-batches (10% of the training
structures), for much longer with a step size that decays: Adam with a cosine decay from
``--lr`` to 1e-3 of it over ``--epochs`` epochs, and CoRe (the defaults, ``s_max`` 1e-2)
for comparison. It prints the test errors at a few epochs (where the curve flattens) and
at each seed's best epoch.

  python -m benchmarks continual-floor [--mode standard] [--epochs 2000] [--seeds 3]
      [--lr 1e-2] [--optimizers adam core]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

from benchmarks.continual import scenarios
from benchmarks.continual import training
import core_optax


def optimizers(lr: float, n_updates: int) -> dict[str, optax.GradientTransformationExtraArgs]:
  """Adam with a decaying step size, and CoRe at its recommended setting."""
  decay = optax.cosine_decay_schedule(lr, n_updates, alpha=1e-3)
  return {"adam": optax.with_extra_args_support(optax.adam(decay)),
          "core": core_optax.core(1e-2)}


NAMES = {"adam": "Adam, cosine decay {lr:g} -> {end:g}", "core": "CoRe s_max 1e-2"}


def train(mode: str, n_epochs: int, n_seeds: int, lr: float,
          which: tuple[str, ...] = ("adam", "core")) -> dict[str, dict]:
  """Per optimizer: ``{metric: [n_seeds, n_epochs]}`` on the test set, and its wall time."""
  setup = scenarios.stationary_setup(mode)
  first = setup.stages[0]
  stage = training.Stage(first.train, n_epochs, first.batch_size)
  results = {}
  for key, tx in optimizers(lr, stage.n_updates).items():
    if key not in which:
      continue
    name = NAMES[key].format(lr=lr, end=lr * 1e-3)
    start = time.perf_counter()
    trained = training.train(lambda _: tx, {}, np.arange(n_seeds), setup.data,
                             init=setup.init, loss=setup.loss, evaluate=setup.evaluate,
                             stages=[stage])
    results[name] = {k: v[:, :, 0] for k, v in trained.metrics.items()}
    results[name]["wall_s"] = time.perf_counter() - start
    print(f"{name}: {results[name]['wall_s']:.0f} s", flush=True)
  return results


def _pm(values: np.ndarray, digits: int = 0) -> str:
  return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def table(results: dict[str, dict], n_epochs: int) -> str:
  """Force and energy RMSE at a few epochs and at the best epoch (mean ± std over seeds)."""
  marks = sorted({e for e in (n_epochs // 10, n_epochs // 4, n_epochs // 2, n_epochs) if e})
  header = (["optimizer"] + [f"F RMSE epoch {e}" for e in marks]
            + ["F RMSE at best", "E RMSE at best (meV/atom)", "min test loss", "wall s"])
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, m in results.items():
    best = np.argmin(m["loss"], axis=1)
    at_best = lambda k: m[k][np.arange(len(best)), best]
    lines.append("| " + " | ".join(
        [name] + [_pm(m["force_rmse"][:, e - 1]) for e in marks]
        + [_pm(at_best("force_rmse")), _pm(at_best("energy_rmse"), 1),
           _pm(m["loss"].min(1), 4), f"{m['wall_s']:.0f}"]) + " |")
  return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The options of ``python -m benchmarks continual-floor``."""
  parser.add_argument("--mode", default="standard", choices=["quick", "standard", "full"],
                      help="whose structures and split (default standard)")
  parser.add_argument("--epochs", type=int, default=2000)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--lr", type=float, default=1e-2, help="Adam's initial step size")
  parser.add_argument("--optimizers", nargs="+", choices=list(NAMES), default=list(NAMES))


def main(args: argparse.Namespace) -> None:
  """Trains and prints the table (``python -m benchmarks continual-floor``)."""
  n, _ = scenarios._STATIONARY[args.mode]
  print(f"Stationary potential data of {args.mode} mode ({n} structures, "
        f"{n - n // scenarios.TEST_EVERY} training), {args.epochs} epochs of 10 updates, "
        f"{args.seeds} seeds; {jax.devices()[0].platform}.\n")
  print(table(train(args.mode, args.epochs, args.seeds, args.lr, tuple(args.optimizers)),
              args.epochs))
