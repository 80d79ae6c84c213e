"""TS: two stacked LSTM cells predicting sine waves (PyTorch time_sequence_prediction).

LSTMCell 1 -> 51, LSTMCell 51 -> 51, dense 51 -> 1, zero initial states, in
float64. Train on waves 3..99 (input ``[:, :-1]``, target ``[:, 1:]``), test on
waves 0..2; mean squared error, full batch: one optimizer step per epoch. The
example trains with L-BFGS for 15 steps; first-order optimizers need more, so
the epoch counts are ours.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison.data.sine import sine_waves
from benchmarks.comparison.task import Mode
from benchmarks.comparison.task import Task
from benchmarks.comparison.task import TaskResult
from benchmarks.comparison.tasks.common import training
from benchmarks.comparison.tasks.common.layers import init_linear
from benchmarks.comparison.tasks.common.layers import linear
from benchmarks.comparison.tasks.common.layers import torch_uniform

HIDDEN = 51
N_TEST = 3


@dataclasses.dataclass(frozen=True)
class Size:
  """Waves trained on, points per wave and epochs (= full-batch steps)."""

  n_train: int
  length: int
  n_epochs: int


SIZES: dict[Mode, Size] = {
    "quick": Size(n_train=8, length=100, n_epochs=50),
    "standard": Size(n_train=48, length=200, n_epochs=100),
    "full": Size(n_train=97, length=1000, n_epochs=1000),
}


def init_lstm_cell(key: jax.Array, n_in: int, n_hidden: int) -> optax.Params:
  """``torch.nn.LSTMCell``: every weight and bias from U(+-1/sqrt(hidden))."""
  keys = jax.random.split(key, 4)
  shapes = {"w_ih": (n_in, 4 * n_hidden), "w_hh": (n_hidden, 4 * n_hidden),
            "b_ih": (4 * n_hidden,), "b_hh": (4 * n_hidden,)}
  return {name: torch_uniform(k, shape, n_hidden, jnp.float64)
          for k, (name, shape) in zip(keys, shapes.items())}


def lstm_cell(params: optax.Params, x: jax.Array,
              state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """One step; gates in torch's order (input, forget, cell, output)."""
  h, c = state
  gates = (x @ params["w_ih"] + params["b_ih"] + h @ params["w_hh"] + params["b_hh"])
  i, f, g, o = jnp.split(gates, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  return jax.nn.sigmoid(o) * jnp.tanh(c), c


def init(key: jax.Array, data: jax.Array) -> optax.Params:
  del data
  k1, k2, k3 = jax.random.split(key, 3)
  return {"lstm1": init_lstm_cell(k1, 1, HIDDEN), "lstm2": init_lstm_cell(k2, HIDDEN, HIDDEN),
          "linear": init_linear(k3, HIDDEN, 1, jnp.float64)}


def predict(params: optax.Params, inputs: jax.Array) -> jax.Array:
  """Next-value predictions ``[n_waves, length]`` from inputs of the same shape."""
  zeros = jnp.zeros((inputs.shape[0], HIDDEN), inputs.dtype)

  def step(states, x):
    s1 = lstm_cell(params["lstm1"], x[:, None], states[0])
    s2 = lstm_cell(params["lstm2"], s1[0], states[1])
    return (s1, s2), linear(params["linear"], s2[0])[:, 0]

  _, outputs = jax.lax.scan(step, ((zeros, zeros), (zeros, zeros)), inputs.T)
  return outputs.T


def mse(params: optax.Params, waves: jax.Array) -> jax.Array:
  return jnp.mean((predict(params, waves[:, :-1]) - waves[:, 1:])**2)


def loss(params: optax.Params, data, batch, key: jax.Array) -> jax.Array:
  del batch, key
  return mse(params, data["train"])


def evaluate(params: optax.Params, data) -> dict[str, jax.Array]:
  return {"mse": mse(params, data["test"])}


def run(tx: optax.GradientTransformation, seeds: jax.Array, mode: Mode) -> TaskResult:
  size = SIZES[mode]
  waves = sine_waves()[:, :size.length]
  with jax.enable_x64(True):
    data = {"train": jnp.asarray(waves[N_TEST:N_TEST + size.n_train]),
            "test": jnp.asarray(waves[:N_TEST])}
    metrics = training.train(tx, seeds, data, init=init, batches=training.full_batch, loss=loss,
                             evaluate=evaluate, n_epochs=size.n_epochs)
  return TaskResult(errors=metrics["mse"].astype(np.float64))


TASK = Task(
    name="TS",
    regime="full-batch",
    error_name="test MSE",
    run=run,
    cuts={
        "quick": "8 training waves, all waves cut to 100 points (paper: 97 of "
                 "1000), 50 full-batch steps",
        "standard": "48 training waves (paper: 97), all waves cut to 200 points (paper: "
                    "1000), 100 full-batch steps",
        "full": "1000 full-batch steps (the example runs 15 L-BFGS steps)",
    },
)
