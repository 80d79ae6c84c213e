"""SR: ESPCN super-resolution by 4 (PyTorch examples, super_resolution).

Conv 1 -> 64 (5x5), ReLU, conv 64 -> 64 (3x3), ReLU, conv 64 -> 32 (3x3), ReLU,
conv 32 -> 16 (3x3), pixel shuffle by 4; orthogonal kernels (gain sqrt(2) for
the first three, 1 for the last), torch-default biases. Mean squared error on
the Y channel, batches of 10. Data: crops of the photographs bundled with
scikit-image and scikit-learn (:mod:`benchmarks.comparison.data.photos`), as BSD300 is not
available offline.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison.data.photos import UPSCALE
from benchmarks.comparison.data.photos import super_resolution_data
from benchmarks.comparison.task import Mode
from benchmarks.comparison.task import Task
from benchmarks.comparison.task import TaskResult
from benchmarks.comparison.tasks.common import training
from benchmarks.comparison.tasks.common.layers import torch_uniform

BATCH = 10
# (kernel size, in channels, out channels, orthogonal gain)
LAYERS = ((5, 1, 64, math.sqrt(2)), (3, 64, 64, math.sqrt(2)), (3, 64, 32, math.sqrt(2)),
          (3, 32, UPSCALE**2, 1.0))


@dataclasses.dataclass(frozen=True)
class Size:
  """Training and test crops, crop size (targets) and epochs."""

  n_train: int
  n_test: int
  crop: int
  n_epochs: int


SIZES: dict[Mode, Size] = {
    "quick": Size(n_train=20, n_test=10, crop=32, n_epochs=5),
    "standard": Size(n_train=40, n_test=20, crop=48, n_epochs=8),
    "full": Size(n_train=200, n_test=100, crop=256, n_epochs=30),
}


def init(key: jax.Array, data=None) -> optax.Params:
  del data
  params, previous = {}, None
  for i, (key, (k, c_in, c_out, gain)) in enumerate(
      zip(jax.random.split(key, len(LAYERS)), LAYERS)):
    k_w, k_b = jax.random.split(key)
    if previous is not None:
      # One QR decomposition at a time. jaxlib's CPU QR kernels spread a batch
      # (the vmapped seeds) over the intra-op threads and block until it is
      # done: with 2 threads, two QRs in flight each held one thread and waited
      # on the other forever (gdb: both threads in ParallelBatchMap, under
      # QrFactorization and OrthogonalQr). A data dependency on the last
      # layer's kernel orders them (XLA:CPU drops optimization barriers).
      k_w = jax.random.fold_in(k_w, jnp.isnan(previous[0, 0, 0, 0]).astype(jnp.uint32))
    orthogonal = jax.nn.initializers.orthogonal(scale=gain)
    previous = orthogonal(k_w, (k, k, c_in, c_out))
    params[f"conv{i + 1}"] = {"w": previous, "b": torch_uniform(k_b, (c_out,), c_in * k * k)}
  return params


def conv(params: optax.Params, x: jax.Array) -> jax.Array:
  """'Same'-padded convolution of NHWC ``x`` with an HWIO kernel.

  Written as patches times a matrix, so that vmapped over seeds it is a
  batched matrix product rather than a grouped convolution (on 2 loaded CPU
  cores we measured no clear difference in wall time; equal within 1e-5 to
  ``lax.conv_general_dilated``, see the tests).
  """
  k, _, c_in, c_out = params["w"].shape
  patches = jax.lax.conv_general_dilated_patches(
      x, (k, k), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  kernel = params["w"].transpose(2, 0, 1, 3).reshape(c_in * k * k, c_out)  # (c, i, j) order
  return patches @ kernel + params["b"]


def pixel_shuffle(x: jax.Array) -> jax.Array:
  """torch's pixel_shuffle for one output channel: channel i*4 + j -> offset (i, j)."""
  n, h, w, _ = x.shape
  x = x.reshape(n, h, w, UPSCALE, UPSCALE).transpose(0, 1, 3, 2, 4)
  return x.reshape(n, h * UPSCALE, w * UPSCALE)


def upscale(params: optax.Params, inputs: jax.Array) -> jax.Array:
  """``[n, h, w]`` low-resolution images -> ``[n, 4h, 4w]``."""
  x = inputs[..., None]
  for i in range(1, len(LAYERS)):
    x = jax.nn.relu(conv(params[f"conv{i}"], x))
  return pixel_shuffle(conv(params[f"conv{len(LAYERS)}"], x))


def mse(params: optax.Params, inputs: jax.Array, targets: jax.Array) -> jax.Array:
  return jnp.mean((upscale(params, inputs) - targets)**2)


def batches(key: jax.Array, data) -> jax.Array:
  n = data["train_inputs"].shape[0]
  return jax.random.permutation(key, n)[:n // BATCH * BATCH].reshape(-1, BATCH)


def loss(params: optax.Params, data, batch: jax.Array, key: jax.Array) -> jax.Array:
  del key
  return mse(params, data["train_inputs"][batch], data["train_targets"][batch])


def evaluate(params: optax.Params, data) -> dict[str, jax.Array]:
  return {"mse": mse(params, data["test_inputs"], data["test_targets"])}


@functools.cache
def _data(size: Size) -> dict[str, np.ndarray]:
  return super_resolution_data(size.n_train, size.n_test, size.crop)


def run(tx: optax.GradientTransformation, seeds: jax.Array, mode: Mode) -> TaskResult:
  size = SIZES[mode]
  data = jax.tree.map(jnp.asarray, _data(size))
  metrics = training.train(tx, seeds, data, init=init, batches=batches, loss=loss,
                            evaluate=evaluate, n_epochs=size.n_epochs)
  return TaskResult(errors=metrics["mse"],
                    extras={"psnr": 10 * np.log10(1 / metrics["mse"])})


TASK = Task(
    name="SR-photos",
    regime="intermediate",
    error_name="test MSE",
    run=run,
    cuts={
        "quick": "20 training / 10 test crops of 32x32 (paper: 200 / 100 of 256x256), "
                 "5 epochs; BSD300 replaced by bundled photographs",
        "standard": "40 training / 20 test crops of 48x48 (paper: 200 / 100 of "
                    "256x256), 8 epochs; BSD300 replaced by bundled photographs",
        "full": "BSD300 replaced by photographs bundled with scikit-image/learn; "
                "30 epochs (the example README's)",
    },
)
