"""Parameter groups from the model structure: per-group weight decay and freezing.

CoRe's hyperparameters ``weight_decay`` and ``frozen_fraction`` may differ per
group of weights (the paper's chi). Here the groups come from the parameter
paths of a Flax NNX model, through a callable, like optax's masks:

* biases and LayerNorm scales/offsets form one group without weight decay and
  without freezing;
* every kernel is its own group with weight decay 0.1, and freezes its own
  top fraction of weights by importance score: 10% of the first layer, 5% of
  the second and none of the output layer.

Each kernel's frozen weights are chosen among that kernel only (the top-k runs
per group). ``core_optax.frozen_mask`` reads from the optimizer state which
weights the next update freezes; the script prints how many weights each group
froze in its last step::

  python examples/param_groups.py              # a few seconds
  python examples/param_groups.py --steps 50
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import core_optax

WEIGHT_DECAY = {"hidden1": 0.1, "hidden2": 0.1, "out": 0.1, "no_decay": 0.0}
FROZEN_FRACTION = {"hidden1": 0.1, "hidden2": 0.05, "out": 0.0, "no_decay": 0.0}


def digits(seed: int = 0) -> tuple[jax.Array, jax.Array]:
  """Digit images as standardised vectors of their 61 non-constant pixels, and labels.

  The three pixels that are blank in every image are dropped: their weights
  would never get a gradient, and so never move, frozen or not.
  """
  x, y = load_digits(return_X_y=True)
  order = np.random.default_rng(seed).permutation(len(x))
  x, y = x[order].astype(np.float32) / 16.0, y[order].astype(np.int32)
  x = x[:, x.std(0) > 0]
  return jnp.asarray((x - x.mean(0)) / x.std(0)), jnp.asarray(y)


class MLP(nnx.Module):
  """Two tanh layers with LayerNorm, then a linear read-out."""

  def __init__(self, in_features: int, *, rngs: nnx.Rngs):
    self.hidden1 = nnx.Linear(in_features, 64, rngs=rngs)
    self.norm1 = nnx.LayerNorm(64, rngs=rngs)
    self.hidden2 = nnx.Linear(64, 32, rngs=rngs)
    self.norm2 = nnx.LayerNorm(32, rngs=rngs)
    self.out = nnx.Linear(32, 10, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.tanh(self.norm1(self.hidden1(x)))
    x = jnp.tanh(self.norm2(self.hidden2(x)))
    return self.out(x)


def path_names(path: tuple[Any, ...]) -> list[str]:
  """The module and parameter names on a pytree path, e.g. ``['hidden1', 'kernel']``.

  Keeps dictionary keys only, so the same names come out of the ``nnx.State``
  of ``nnx.Variable`` that ``nnx.Optimizer`` initialises with (paths end in
  ``.value``), of the plain arrays it updates with, and of linen's params dicts.
  """
  return [str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey)]


def group_of(path: tuple[Any, ...], _: Any) -> str:
  """One group per kernel, named after its layer; biases and norms share one."""
  *module, name = path_names(path)
  return module[-1] if name == "kernel" else "no_decay"


def param_labels(params: Any) -> Any:
  """``groups`` callable: the parameters' pytree -> a pytree of group labels."""
  return jax.tree_util.tree_map_with_path(group_of, params)


@nnx.jit
def train_step(model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array):
  def loss_fn(model):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  updates = optimizer.update(model, grads)
  return loss, updates


def main(steps: int = 300, batch_size: int = 128, score_history: int = 50, seed: int = 0):
  """Trains with per-group CoRe; returns the frozen count per group in the last step.

  Args:
    steps: training steps; freezing starts after ``score_history`` of them.
    batch_size: mini-batch size.
    score_history: CoRe's ``t_hist``.
    seed: initialisation and batch-order seed.

  Returns:
    ``{"last_loss": float, "groups": {label: {"size", "frozen", "frozen_moved",
    "expected_frozen"}}}`` where ``frozen`` counts the weights that
    ``core_optax.frozen_mask`` says the last step froze, ``frozen_moved`` those of
    them whose update was not zero (none), and ``expected_frozen`` is
    ``floor(frozen_fraction * size)`` once freezing is active, else 0.
  """
  x, y = digits()
  model = MLP(x.shape[1], rngs=nnx.Rngs(seed))
  tx = core_optax.core(
      max_step_size=1e-2,
      weight_decay=WEIGHT_DECAY,
      score_history=score_history,
      frozen_fraction=FROZEN_FRACTION,
      groups=param_labels,
  )
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  rng = np.random.default_rng(seed)
  for step in range(steps):
    if step == steps - 1:
      # The weights the last step freezes, from the state it starts from, given the
      # optimizer's own settings (nnx keeps the state in Variables: as_pure unwraps them).
      frozen = core_optax.frozen_mask(nnx.as_pure(optimizer.opt_state),
                                      score_history=score_history,
                                      frozen_fraction=FROZEN_FRACTION, groups=param_labels)
    batch = rng.integers(0, len(x), batch_size)
    loss, updates = train_step(model, optimizer, x[batch], y[batch])

  labels = jax.tree.leaves(param_labels(updates))
  groups = {label: {"size": 0, "frozen": 0, "frozen_moved": 0, "expected_frozen": 0}
            for label in WEIGHT_DECAY}
  for label, mask, update in zip(labels, jax.tree.leaves(frozen), jax.tree.leaves(updates)):
    groups[label]["size"] += update.size
    groups[label]["frozen"] += int(jnp.sum(mask))
    groups[label]["frozen_moved"] += int(jnp.sum(mask & (update != 0)))
  freezing = steps > score_history
  print(f"loss after {steps} steps: {float(loss):.4f}")
  print(f"{'group':>9} {'decay':>6} {'p_frozen':>8} {'size':>6} {'frozen':>6} "
        f"{'floor(p*size)':>13}")
  for label, g in groups.items():
    g["expected_frozen"] = math.floor(FROZEN_FRACTION[label] * g["size"]) if freezing else 0
    print(f"{label:>9} {WEIGHT_DECAY[label]:>6} {FROZEN_FRACTION[label]:>8} "
          f"{g['size']:>6} {g['frozen']:>6} {g['expected_frozen']:>13}")
  return {"last_loss": float(loss), "groups": groups}


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--score-history", type=int, default=50)
  args = parser.parse_args()
  main(steps=args.steps, score_history=args.score_history)
