"""The container every image loader returns."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ImageData:
  """Grey-scale images in [0, 1] with integer labels.

  Attributes:
    x_train: ``[n_train, height, width]`` float32.
    y_train: ``[n_train]`` int32.
    x_test: ``[n_test, height, width]`` float32.
    y_test: ``[n_test]`` int32.
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
