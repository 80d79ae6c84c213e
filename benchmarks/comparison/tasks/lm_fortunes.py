"""LM-fortunes: a decoder-only character-level transformer on the text of Debian's fortunes.

Model (:mod:`.common.transformer`): characters (98 symbols, see
:mod:`benchmarks.comparison.data.fortunes`) embedded to the width, learned positions, pre-LN
blocks with causal self-attention and a GELU MLP, a final LayerNorm and an untied linear head
to the 98 logits. Training: mini-batches of windows of ``context + 1`` characters starting at
uniformly drawn positions of the training text; loss the mean next-character cross-entropy
over every position of the window. Validation: the mean next-character cross-entropy in bits
per character over a fixed set of windows spread evenly over the validation files (the split
by file is fixed: see the data module), measured every ``steps / evaluations`` steps.

Sizes (our choice, to fit two CPU cores; see :data:`SIZES`): standard mode is width 64, 2
blocks of 4 heads, context 64 (about 110 k parameters), batches of 16 windows; full mode the
issue's model, width 128, 4 blocks, context 128 (about 0.83 M parameters), batches of 64.
Standard mode's 400 steps of 16 windows read 410 k characters, under a fifth of the
training text: every batch is new text, so the validation loss still falls at the end.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison import task as task_lib
from benchmarks.comparison.data import fortunes
from benchmarks.comparison.tasks.common import training
from benchmarks.comparison.tasks.common import transformer

LN2 = float(np.log(2.0))


@dataclasses.dataclass(frozen=True)
class Budget:
  """Model, data and steps of one mode."""

  size: transformer.Size
  context: int
  batch: int
  steps: int
  evaluations: int  # evenly spaced; the last after the last step.
  validation_windows: int


SIZES: dict[task_lib.Mode, Budget] = {
    "quick": Budget(transformer.Size(32, 1, 2), context=32, batch=16, steps=60, evaluations=6,
                    validation_windows=64),
    "standard": Budget(transformer.Size(64, 2, 4), context=64, batch=16, steps=400,
                       evaluations=16, validation_windows=128),
    "full": Budget(transformer.Size(128, 4, 4), context=128, batch=64, steps=5000,
                   evaluations=50, validation_windows=1024),
}


class CharTransformer(nn.Module):
  """Characters ``[batch, length]`` to next-character logits ``[batch, length, 98]``."""

  size: transformer.Size

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    x = nn.Embed(fortunes.VOCABULARY_SIZE, self.size.width, embedding_init=transformer.INIT,
                 name="embed")(tokens)
    x = transformer.Transformer(self.size, causal=True, name="transformer")(x)
    return nn.Dense(fortunes.VOCABULARY_SIZE, kernel_init=transformer.INIT, name="head")(x)


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean next-character cross-entropy in nats."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def _windows(text: jax.Array, starts: jax.Array, length: int) -> jax.Array:
  return jax.vmap(lambda s: jax.lax.dynamic_slice(text, (s,), (length,)))(starts)


def _functions(budget: Budget):
  """The task's functions for :func:`training.train`, made once per mode (they are the keys
  of its cache of compiled programs)."""
  model = CharTransformer(budget.size)
  steps_per_evaluation = budget.steps // budget.evaluations

  def init(key, data):
    del data
    return model.init(key, jnp.zeros((1, budget.context), jnp.int32))

  def batches(key, data):
    n_starts = data["train"].shape[0] - budget.context - 1
    return jax.random.randint(key, (steps_per_evaluation, budget.batch), 0, n_starts)

  def loss(params, data, starts, key):
    del key
    windows = _windows(data["train"], starts, budget.context + 1).astype(jnp.int32)
    return cross_entropy(model.apply(params, windows[:, :-1]), windows[:, 1:])

  def evaluate(params, data):
    windows = data["validation"].astype(jnp.int32)
    nats = cross_entropy(model.apply(params, windows[:, :-1]), windows[:, 1:])
    return {"bits_per_character": nats / LN2}

  return init, batches, loss, evaluate


_FUNCTIONS = {mode: _functions(budget) for mode, budget in SIZES.items()}


def data(mode: task_lib.Mode) -> dict[str, jax.Array]:
  """The training text and this mode's validation windows (evenly spaced, fixed)."""
  text, budget = fortunes.load(), SIZES[mode]
  length = budget.context + 1
  starts = np.linspace(0, len(text.validation) - length, budget.validation_windows).astype(int)
  windows = np.stack([text.validation[s:s + length] for s in starts])
  return {"train": jnp.asarray(text.train), "validation": jnp.asarray(windows)}


def run(tx: optax.GradientTransformation, seeds: jax.Array,
        mode: task_lib.Mode) -> task_lib.TaskResult:
  budget = SIZES[mode]
  init, batches, loss, evaluate = _FUNCTIONS[mode]
  metrics = training.train(tx, seeds, data(mode), init=init, batches=batches, loss=loss,
                           evaluate=evaluate, n_epochs=budget.evaluations)
  return task_lib.TaskResult(errors=metrics["bits_per_character"])


def _cut(mode: task_lib.Mode) -> str:
  b = SIZES[mode]
  return (f"width {b.size.width}, {b.size.depth} blocks of {b.size.heads} heads, context "
          f"{b.context}, batches of {b.batch}, {b.steps} steps, {b.evaluations} evaluations on "
          f"{b.validation_windows} validation windows")


TASK = task_lib.Task(
    name="LM-fortunes",
    regime="mini-batch",
    error_name="validation bits per character",
    run=run,
    cuts={mode: _cut(mode) for mode in SIZES},
    n_steps={mode: b.steps // b.evaluations * b.evaluations for mode, b in SIZES.items()},
)
