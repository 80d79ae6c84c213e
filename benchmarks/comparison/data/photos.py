"""Natural photographs bundled with scikit-image and scikit-learn, for SR.

BSD300 cannot be downloaded here. Instead: random square crops of the Y channel
(luma of YCbCr, as PIL's ``convert("YCbCr")``) of the photographs that ship in
the scikit-image and scikit-learn wheels. Training and test crops come from
disjoint source images. Inputs are the crops downscaled by 4 with antialiased
bilinear interpolation. Deterministic from a fixed seed.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

UPSCALE = 4
SEED = 300
# skimage.data loaders (``cat`` is ``chelsea`` again, so it is left out) and
# sklearn sample images; all at least 300 x 384 pixels.
TRAIN_SOURCES = ("astronaut", "camera", "coffee", "hubble_deep_field", "rocket", "brick",
                 "grass", "gravel", "immunohistochemistry", "retina")
TEST_SOURCES = ("chelsea", "moon", "coins", "clock", "china.jpg", "flower.jpg")


def luma(name: str) -> np.ndarray:
  """A source image's Y channel in [0, 1]."""
  if name.endswith(".jpg"):
    from sklearn.datasets import load_sample_image
    image = load_sample_image(name)
  else:
    import skimage.data
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      image = getattr(skimage.data, name)()
  image = image.astype(np.float64) / 255.0
  if image.ndim == 3:
    image = image[..., :3] @ np.array([0.299, 0.587, 0.114])
  return image.astype(np.float32)


def crops(sources: tuple[str, ...], n: int, size: int,
          rng: np.random.Generator) -> np.ndarray:
  """``n`` random ``size x size`` crops, spread evenly over the sources."""
  images = [luma(name) for name in sources]
  out = np.empty((n, size, size), np.float32)
  for i in range(n):
    image = images[i % len(images)]
    top = rng.integers(0, image.shape[0] - size + 1)
    left = rng.integers(0, image.shape[1] - size + 1)
    out[i] = image[top:top + size, left:left + size]
  return out


def downscale(targets: np.ndarray) -> np.ndarray:
  """Antialiased bilinear downscaling by :data:`UPSCALE` (like PIL's resize)."""
  n, h, w = targets.shape
  small = jax.image.resize(jnp.asarray(targets), (n, h // UPSCALE, w // UPSCALE),
                           method="linear", antialias=True)
  return np.asarray(small)


def super_resolution_data(n_train: int, n_test: int, size: int) -> dict[str, np.ndarray]:
  """Training and test pairs: ``*_inputs [n, size/4, size/4]``, ``*_targets [n, size, size]``."""
  rng = np.random.default_rng(SEED)
  train = crops(TRAIN_SOURCES, n_train, size, rng)
  test = crops(TEST_SOURCES, n_test, size, rng)
  return {"train_inputs": downscale(train), "train_targets": train,
          "test_inputs": downscale(test), "test_targets": test}
