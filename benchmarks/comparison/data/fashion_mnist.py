"""Fashion-MNIST from the idx files of Debian's ``dataset-fashion-mnist``."""

from __future__ import annotations

import functools
import gzip
import pathlib

import numpy as np

from benchmarks.comparison.data import images

DIRECTORY = pathlib.Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "sudo apt-get install dataset-fashion-mnist"


def _read_idx(path: pathlib.Path) -> np.ndarray:
  """Reads one gzipped idx file (unsigned bytes) into an array."""
  with gzip.open(path, "rb") as f:
    raw = f.read()
  n_dims = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(n_dims))
  return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(shape)


@functools.cache
def load(directory: pathlib.Path = DIRECTORY) -> images.ImageData:
  """Loads the 60000 training and 10000 test images, scaled to [0, 1].

  Args:
    directory: where the four ``*-ubyte.gz`` idx files are.

  Returns:
    The images (float32, ``[n, 28, 28]``) and labels (int32).

  Raises:
    FileNotFoundError: the idx files are missing; the message says how to install them.
  """
  names = {
      "x_train": "train-images-idx3-ubyte.gz",
      "y_train": "train-labels-idx1-ubyte.gz",
      "x_test": "t10k-images-idx3-ubyte.gz",
      "y_test": "t10k-labels-idx1-ubyte.gz",
  }
  missing = [name for name in names.values() if not (directory / name).exists()]
  if missing:
    raise FileNotFoundError(
        f"Fashion-MNIST idx files {missing} not found in {directory}. "
        f"Install them with `{INSTALL_HINT}`.")
  arrays = {key: _read_idx(directory / name) for key, name in names.items()}
  return images.ImageData(
      x_train=arrays["x_train"].astype(np.float32) / 255.0,
      y_train=arrays["y_train"].astype(np.int32),
      x_test=arrays["x_test"].astype(np.float32) / 255.0,
      y_test=arrays["y_test"].astype(np.int32),
  )
