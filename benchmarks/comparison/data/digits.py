"""scikit-learn's handwritten digits, upsampled to 28x28: our offline MNIST substitute.

MNIST itself cannot be downloaded here. scikit-learn ships 1797 digits of 8x8 pixels
with values 0..16; they are scaled to [0, 1], upsampled bilinearly to 28x28 so that the
MNIST architectures stay unchanged, and split stratified into 1497 training and 300 test
images (fixed split). Tasks on this data are named ``*-digits``.
"""

from __future__ import annotations

import functools

import numpy as np
import skimage.transform
import sklearn.datasets
import sklearn.model_selection

from benchmarks.comparison.data import images

N_TEST = 300


@functools.cache
def load() -> images.ImageData:
  """Loads the upsampled digits, split into 1497 training and 300 test images."""
  digits = sklearn.datasets.load_digits()
  small = digits.images.astype(np.float32) / 16.0
  upsampled = np.stack([
      skimage.transform.resize(image, (28, 28), order=1, anti_aliasing=False)
      for image in small
  ]).astype(np.float32)
  x_train, x_test, y_train, y_test = sklearn.model_selection.train_test_split(
      upsampled, digits.target.astype(np.int32), test_size=N_TEST,
      stratify=digits.target, random_state=0)
  return images.ImageData(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
