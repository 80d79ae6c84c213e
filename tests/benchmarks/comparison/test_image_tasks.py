"""AED, AEF, ICD, ICF: loaders, torch-style initialisation, and training on tiny data."""

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.comparison.data import digits
from benchmarks.comparison.data import fashion_mnist
from benchmarks.comparison.data import images
from benchmarks.comparison.tasks import TASKS
from benchmarks.comparison.tasks.common import classifier
from benchmarks.comparison.tasks.common import image
from benchmarks.comparison.tasks.common import vae


def _tiny_images() -> images.ImageData:
  rng = np.random.default_rng(0)
  return images.ImageData(
      x_train=rng.uniform(size=(70, 28, 28)).astype(np.float32),
      y_train=rng.integers(0, 10, 70).astype(np.int32),
      x_test=rng.uniform(size=(20, 28, 28)).astype(np.float32),
      y_test=rng.integers(0, 10, 20).astype(np.int32))


def _tiny_task(model: image.ImageModel):
  budget = image.Budget(n_train=70, n_test=20, epochs=2)
  return image.make_task(name="tiny", regime="mini-batch", error_name="e", model=model,
                          load=_tiny_images, budgets={"quick": budget, "full": budget})


MODELS = {"vae": vae.MODEL, "classifier": classifier.MODEL}


@pytest.fixture(scope="module")
def tiny_results():
  """Two seeds of a tiny task per model, trained with Adam: one compilation per model."""
  return {name: _tiny_task(model).run(optax.adam(1e-3), jnp.arange(2), "quick")
          for name, model in MODELS.items()}


@pytest.mark.parametrize("name", MODELS)
def test_tiny_task_trains_every_seed_and_seeds_differ(tiny_results, name):
  errors = tiny_results[name].errors
  assert errors.shape == (2, 2)
  assert np.isfinite(errors).all()
  assert not np.allclose(errors[0], errors[1])


def test_only_the_classifier_reports_accuracy(tiny_results):
  assert tiny_results["vae"].extras == {}
  accuracy = tiny_results["classifier"].extras["accuracy"]
  assert accuracy.shape == (2, 2) and ((0 <= accuracy) & (accuracy <= 1)).all()


def test_a_seed_trains_the_same_alone_and_vmapped_with_others(tiny_results):
  alone = _tiny_task(vae.MODEL).run(optax.adam(1e-3), jnp.arange(1, 2), "quick").errors
  np.testing.assert_allclose(alone[0], tiny_results["vae"].errors[1], rtol=1e-4)


@pytest.mark.parametrize("layer, x, fan_in", [
    (image.torch_dense(300, 50), jnp.zeros((1, 50)), 50),
    (image.TorchConv(300, 4, 3), jnp.zeros((1, 5, 5, 4)), 36),
], ids=["dense", "conv"])
def test_layers_are_initialised_like_torch(layer, x, fan_in):
  bound = 1 / math.sqrt(fan_in)
  for leaf in jax.tree.leaves(layer.init(jax.random.key(0), x)):
    assert np.abs(leaf).max() <= bound
    assert np.abs(leaf).max() > 0.9 * bound


def test_torch_conv_is_a_valid_cross_correlation():
  layer = image.TorchConv(2, 3, 3)
  x = jax.random.normal(jax.random.key(1), (2, 6, 7, 3))
  params = layer.init(jax.random.key(0), x)["params"]
  expected = jax.lax.conv_general_dilated(x, params["kernel"], (1, 1), "VALID",
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(layer.apply({"params": params}, x), expected + params["bias"],
                             rtol=1e-5, atol=1e-5)


def test_registered_image_tasks_name_their_substitutes_and_cuts():
  assert {"AED-digits", "AEF", "ICD-digits", "ICF"} <= set(TASKS)
  for name in ("AED-digits", "ICD-digits"):
    assert all("sklearn digits" in cut for cut in TASKS[name].cuts.values())
  assert TASKS["ICF"].cuts["full"] == "no cuts"
  assert "epochs" in TASKS["ICF"].cuts["quick"]


def test_digits_are_upsampled_to_28x28_and_split_stratified():
  data = digits.load()
  assert data.x_train.shape == (1497, 28, 28) and data.x_test.shape == (300, 28, 28)
  assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
  assert np.bincount(data.y_test).min() >= 29


def test_fashion_mnist_loader_names_the_install_command_when_files_are_missing(tmp_path):
  with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
    fashion_mnist.load(pathlib.Path(tmp_path))


# The idx files come from Debian's dataset-fashion-mnist, which needs root to install:
# `bash scripts/setup.sh test` installs it, and without it these tests skip.
NEEDS_FASHION_MNIST = pytest.mark.skipif(
    not all((fashion_mnist.DIRECTORY / name).is_file()
            for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")),
    reason=f"Fashion-MNIST is not in {fashion_mnist.DIRECTORY}: Debian's dataset-fashion-mnist "
           f"installs it ({fashion_mnist.INSTALL_HINT}, or bash scripts/setup.sh test as root)")


@NEEDS_FASHION_MNIST
def test_fashion_mnist_loads_all_images_in_unit_range():
  data = fashion_mnist.load()
  assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
  assert data.x_train.dtype == np.float32 and data.x_train.max() == 1.0
  assert np.bincount(data.y_train).tolist() == [6000] * 10
