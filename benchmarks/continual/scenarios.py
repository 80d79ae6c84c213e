"""The three scenarios: a lifelong ML potential (sequential, growing), a stationary one, digits.

A scenario is data, a model, its stages and test sets per mode. ``setup(mode)`` builds
them; :func:`run` trains a prefix of the stages (the first one to choose step sizes, the
first two to choose SI's strength, all of them for the results).

- **Lifelong potential** (``potential-sequential``, ``potential-growing``): the
  Behler-Parrinello potential of the MLP-EMT task (:mod:`benchmarks.comparison.tasks.mlp`)
  on three stages of the EMT Cu-Au clusters that differ physically: A = Cu16Au16 at 300
  and 600 K, B = Cu16Au16 at 900 and 1200 K, C = Cu24Au8 at 300-1200 K. *Sequential*
  trains each stage on its own data; *growing* trains on all data seen so far (the lMLP
  way); both update on mini-batches of 10% of what they train on (10 updates per epoch)
  and evaluate on the three stages' test sets. Symmetry functions are standardised on
  stage A's structures (a lifelong potential fixes them when it starts); the per-element
  reference energies are fitted to all structures, as atomic reference energies known in
  advance would be.
- **Stationary potential** (``potential-stationary``): the same potential on structures of
  all eight MD runs, trained for four segments of equal length; the first segment is
  where step sizes are chosen, and there are no task boundaries.
- **Permuted digits** (``permuted-digits``): scikit-learn's 8x8 digits, standardised per
  pixel; task t shows them with its own fixed pixel permutation (task 1 unpermuted). An
  MLP 64-100-100-10 (ReLU, one head shared by the tasks: domain-incremental in the usual
  taxonomy, as permuted MNIST) trains on the tasks in turn, mini-batches, test accuracy on
  every task's test images after every epoch.

Train/test splits are fixed (the same for all seeds); seeds differ in initial weights
and batch order. ``t_hist`` is 250 (the paper's value), or the first stage's length if
that is shorter (quick mode), so that freezing starts with the second stage; the
stationary potential's segments are longer in standard and full mode (3750 updates), so
there freezing starts inside the first and every freezing variant chooses its own step
size.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Literal, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import sklearn.datasets
import sklearn.model_selection

from benchmarks.comparison.data import emt
from benchmarks.comparison.task import Mode
from benchmarks.comparison.tasks import mlp
from benchmarks.comparison.tasks.common.layers import init_linear
from benchmarks.comparison.tasks.common.layers import linear
from benchmarks.continual import optimizers as optimizers_lib
from benchmarks.continual import training

SCORE_HISTORY = 250  # the paper's t_hist (section 4.4)
BATCH_FRACTION = 0.1  # of the training data per update, as the lMLP and MLP-EMT
TEST_EVERY = 5  # every 5th structure of a stage is a test structure (20%)


@dataclasses.dataclass(frozen=True)
class Setup:
  """A scenario in one mode: what :func:`training.train` needs."""

  data: dict[str, jax.Array]
  init: training.Init
  loss: training.Loss
  evaluate: training.Evaluate
  stages: tuple[training.Stage, ...]

  @property
  def score_history(self) -> int:
    return min(SCORE_HISTORY, self.stages[0].n_updates)


@dataclasses.dataclass(frozen=True)
class Scenario:
  """One scenario.

  Attributes:
    name: its name in tables and folders.
    kind: ``"potential"`` (metrics loss, energy and force RMSE) or ``"classification"``
      (accuracy, NLL).
    regime: batch regime, for quick mode's step sizes.
    stage_names: the training stages.
    test_names: the test sets (one per stage, or one).
    optimizers: the optimizers it compares.
    tuning: scenarios with the same ``tuning`` share their first stage, and so their
      step-size selection.
    setup: ``setup(mode)`` builds the :class:`Setup`.
    cuts: per mode, what is cut, for the report.
  """

  name: str
  kind: Literal["potential", "classification"]
  regime: str
  stage_names: tuple[str, ...]
  test_names: tuple[str, ...]
  optimizers: tuple[str, ...]
  tuning: str
  setup: Callable[[Mode], Setup]
  cuts: Mapping[Mode, str]

  def error(self, metrics: Mapping[str, np.ndarray]) -> np.ndarray:
    """The error step sizes and strengths are selected by: loss, or 1 - accuracy."""
    return metrics["loss"] if self.kind == "potential" else 1 - metrics["accuracy"]


def run(scenario: Scenario, make_tx, hyperparameters, seeds: np.ndarray, mode: Mode, *,
        n_stages: int | None = None, frozen: training.Freezing | None = None
        ) -> training.Trained:
  """Trains ``seeds`` through the first ``n_stages`` stages (all by default).

  ``make_tx(hyperparameters)`` builds the optimizer inside the program (see
  :func:`training.train`).
  """
  setup = scenario.setup(mode)
  return training.train(make_tx, hyperparameters, jnp.asarray(seeds), setup.data,
                        init=setup.init, loss=setup.loss, evaluate=setup.evaluate,
                        stages=setup.stages[:n_stages], frozen=frozen)


# Potentials ----------------------------------------------------------------------------

# The EMT data hold 8 MD runs of 125 structures: run 2 i + j at TEMPERATURES_K[i], N_CU[j].
_RUNS = {"A": (0, 2), "B": (4, 6), "C": (1, 3, 5, 7)}
_LIFELONG = {  # structures per stage, epochs per stage
    "quick": (40, 5), "standard": (50, 25), "full": (250, 100)}
_STATIONARY = {  # structures, epochs per segment (4 segments)
    "quick": (50, 5), "standard": (150, 375), "full": (1000, 375)}
N_SEGMENTS = 4


def _pool(runs: tuple[int, ...], n: int) -> np.ndarray:
  """``n`` structures evenly spread over the given MD runs."""
  pool = np.concatenate([np.arange(r * emt.SAMPLES_PER_RUN, (r + 1) * emt.SAMPLES_PER_RUN)
                         for r in runs])
  return pool[np.linspace(0, len(pool) - 1, n).round().astype(int)]


def _split(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
  """Train and test positions of ``n`` consecutive structures starting at ``offset``."""
  test = np.arange(n) % TEST_EVERY == TEST_EVERY - 1
  return offset + np.flatnonzero(~test), offset + np.flatnonzero(test)


@functools.cache
def _potential_data(picks: tuple[int, ...], n_standardise: int) -> dict[str, np.ndarray]:
  """MLP-EMT's features, Jacobians and labels of the picked structures (:func:`mlp.featurise`).

  The features are standardised on the training structures among the first
  ``n_standardise`` picks; the per-element reference energies are fitted to all.
  """
  first, _ = _split(n_standardise, 0)
  data = mlp.featurise(np.asarray(picks), first)
  return {k: v for k, v in data.items() if k not in ("shift", "scale")}


def _structure_errors(params, data, structures):
  """Squared energy error per atom (eV^2) and mean squared force error (eV^2/A^2) per
  structure."""
  take = lambda name: data[name][structures]
  energies, forces = mlp.energy_and_forces(params, take("features"), take("jacobian"),
                                           take("species"))
  n_atoms = data["species"].shape[1]
  return (((energies - take("energies")) / n_atoms)**2,
          jnp.mean((forces - take("forces"))**2, axis=(-2, -1)))


def _potential_setup(picks: np.ndarray, n_standardise: int, stages, tests) -> Setup:
  """The lMLP loss ``q^2 MSE(E/atom) + MSE(F)`` (MLP-EMT's), evaluated per test set."""
  data = {k: jnp.asarray(v) for k, v in _potential_data(tuple(picks.tolist()),
                                                        n_standardise).items()}
  tests = jnp.asarray(np.stack(tests))  # [n_test_sets, n_per_set]

  def loss(params, data, batch, weights):
    energy, force = _structure_errors(params, data, batch)
    return jnp.sum(weights * (mlp.Q**2 * energy + force)) / jnp.sum(weights)

  def evaluate(params, data):
    energy, force = _structure_errors(params, data, tests.reshape(-1))
    energy_mse = energy.reshape(tests.shape).mean(1)
    force_mse = force.reshape(tests.shape).mean(1)
    return {"loss": mlp.Q**2 * energy_mse + force_mse,
            "energy_rmse": 1e3 * jnp.sqrt(energy_mse),  # meV/atom
            "force_rmse": 1e3 * jnp.sqrt(force_mse)}  # meV/A

  return Setup(data=data, init=mlp.init, loss=loss, evaluate=evaluate, stages=tuple(stages))


def _fraction_batch(train: np.ndarray) -> int:
  """10% of the training structures: 10 updates per epoch."""
  return max(1, len(train) // 10)


def lifelong_setup(mode: Mode, growing: bool) -> Setup:
  """Stages A, B, C of the lifelong potential."""
  n, n_epochs = _LIFELONG[mode]
  picks = np.concatenate([_pool(_RUNS[s], n) for s in "ABC"])
  splits = [_split(n, i * n) for i in range(3)]
  stages, seen = [], []
  for train, _ in splits:
    seen = [*seen, train] if growing else [train]
    union = np.concatenate(seen)
    stages.append(training.Stage(union, n_epochs, _fraction_batch(union)))
  return _potential_setup(picks, n, stages, [test for _, test in splits])


def stationary_setup(mode: Mode) -> Setup:
  """The stationary potential: N_SEGMENTS equal segments on the same data."""
  n, n_epochs = _STATIONARY[mode]
  picks = _pool(tuple(range(8)), n)
  train, test = _split(n, 0)
  stage = training.Stage(train, n_epochs, _fraction_batch(train))
  return _potential_setup(picks, n, [stage] * N_SEGMENTS, [test])


def _lifelong_cuts(growing: bool) -> dict[Mode, str]:
  what = ("all data seen so far, in batches of 10% of it" if growing else
          "each stage's own data, in batches of 10% of it")
  return {mode: f"{n} structures per stage ({n - n // TEST_EVERY} training), {e} epochs "
                f"of 10 updates per stage on {what}; EMT instead of DFT"
          for mode, (n, e) in _LIFELONG.items()}


_STATIONARY_CUTS = {
    mode: f"{n} structures ({n - n // TEST_EVERY} training), {N_SEGMENTS} x {e} epochs of "
          f"10 updates ({N_SEGMENTS * e * 10} updates); EMT instead of DFT"
    for mode, (n, e) in _STATIONARY.items()}


# Permuted digits -----------------------------------------------------------------------

HIDDEN = 100
_DIGITS = {  # tasks, training images per task, batch size, epochs per task
    "quick": (5, 300, 32, 2), "standard": (5, 1250, 25, 5), "full": (5, 1497, 32, 20)}
N_DIGITS_TEST = 300


@functools.cache
def _digits(n_tasks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Images ``[n_tasks * 1797, 64]`` (task-major), labels, train and test positions."""
  digits = sklearn.datasets.load_digits()
  x = digits.data.astype(np.float32)
  train, test = sklearn.model_selection.train_test_split(
      np.arange(len(x)), test_size=N_DIGITS_TEST, stratify=digits.target, random_state=0)
  x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-3)
  rng = np.random.default_rng(0)
  perms = [np.arange(64), *(rng.permutation(64) for _ in range(n_tasks - 1))]
  images = np.concatenate([x[:, p] for p in perms])
  labels = np.tile(digits.target.astype(np.int32), n_tasks)
  return images, labels, train, test


def digits_setup(mode: Mode) -> Setup:
  n_tasks, n_train, batch, n_epochs = _DIGITS[mode]
  images, labels, train, test = _digits(n_tasks)
  n = len(images) // n_tasks
  data = {"x": jnp.asarray(images), "y": jnp.asarray(labels)}
  tests = jnp.asarray(np.stack([t * n + test for t in range(n_tasks)]))

  def init(key):
    keys = jax.random.split(key, 3)
    return {"dense1": init_linear(keys[0], 64, HIDDEN),
            "dense2": init_linear(keys[1], HIDDEN, HIDDEN),
            "dense3": init_linear(keys[2], HIDDEN, 10)}

  def log_probs(params, x):
    h = jax.nn.relu(linear(params["dense1"], x))
    return jax.nn.log_softmax(linear(params["dense3"], jax.nn.relu(linear(params["dense2"], h))))

  def nll(params, data, batch, weights):
    logp = log_probs(params, data["x"][batch])
    picked = jnp.take_along_axis(logp, data["y"][batch][:, None], axis=1)[:, 0]
    return -jnp.sum(weights * picked) / jnp.sum(weights)

  def evaluate(params, data):
    logp = log_probs(params, data["x"][tests.reshape(-1)]).reshape(*tests.shape, 10)
    labels = data["y"][tests]
    picked = jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    return {"accuracy": jnp.mean(jnp.argmax(logp, -1) == labels, axis=1),
            "nll": -jnp.mean(picked, axis=1)}

  stages = [training.Stage(t * n + train[:n_train], n_epochs, batch) for t in range(n_tasks)]
  return Setup(data=data, init=init, loss=nll, evaluate=evaluate, stages=tuple(stages))


_DIGITS_CUTS = {
    mode: f"{t} tasks, {n} of 1497 training images per task, batches of {b}, {e} epochs per "
          f"task ({e * (n // b)} updates); scikit-learn's 8x8 digits instead of MNIST"
    for mode, (t, n, b, e) in _DIGITS.items()}


SCENARIOS: Mapping[str, Scenario] = {s.name: s for s in (
    Scenario("permuted-digits", "classification", "mini-batch",
             tuple(f"task {i + 1}" for i in range(_DIGITS["full"][0])),
             tuple(f"task {i + 1}" for i in range(_DIGITS["full"][0])),
             optimizers_lib.CONTINUAL, "permuted-digits", digits_setup, _DIGITS_CUTS),
    Scenario("potential-sequential", "potential", "intermediate", ("A", "B", "C"),
             ("A", "B", "C"), optimizers_lib.CONTINUAL, "potential-lifelong",
             functools.partial(lifelong_setup, growing=False), _lifelong_cuts(False)),
    Scenario("potential-stationary", "potential", "intermediate",
             tuple(f"segment {i + 1}" for i in range(N_SEGMENTS)), ("all",),
             optimizers_lib.STATIONARY, "potential-stationary", stationary_setup,
             _STATIONARY_CUTS),
    Scenario("potential-growing", "potential", "intermediate", ("A", "A+B", "A+B+C"),
             ("A", "B", "C"), optimizers_lib.CONTINUAL, "potential-lifelong",
             functools.partial(lifelong_setup, growing=True), _lifelong_cuts(True)),
)}
