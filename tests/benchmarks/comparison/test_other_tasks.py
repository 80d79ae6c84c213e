"""NR, RA, SR, SS, TS and MLP: smoke tests on tiny sizes, and the potential's physics."""

import typing

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.comparison.data import emt
from benchmarks.comparison.task import Mode
from benchmarks.comparison.task import Task
from benchmarks.comparison.tasks import mlp
from benchmarks.comparison.tasks import nr
from benchmarks.comparison.tasks import ra
from benchmarks.comparison.tasks import sr
from benchmarks.comparison.tasks import ss
from benchmarks.comparison.tasks import ts
from benchmarks.comparison.tasks.common import episodes


@pytest.fixture
def tiny_emt(monkeypatch):
  """A 20-structure EMT trajectory in place of the cached 1000 structures."""
  monkeypatch.setattr(emt, "EQUILIBRATION_STEPS", 2)
  monkeypatch.setattr(emt, "SAMPLES_PER_RUN", 20)
  monkeypatch.setattr(emt, "SAMPLE_EVERY", 2)
  structures = emt._run(900.0, 16, seed=0)
  monkeypatch.setattr(emt, "load", lambda: structures)
  mlp.prepared.cache_clear()
  yield structures
  mlp.prepared.cache_clear()


@pytest.fixture
def tiny_sizes(monkeypatch, tiny_emt):
  monkeypatch.setitem(episodes.SPECS, "quick",
                      episodes.EpisodeSpec(max_steps=60, max_episodes=4, block=2))
  monkeypatch.setitem(sr.SIZES, "quick", sr.Size(n_train=10, n_test=3, crop=16, n_epochs=2))
  monkeypatch.setitem(ss.N_EPOCHS, "quick", 2)
  monkeypatch.setitem(ts.SIZES, "quick", ts.Size(n_train=2, length=12, n_epochs=2))
  monkeypatch.setitem(mlp.SIZES, "quick", mlp.Size(n_structures=20, n_epochs=2))


TASKS = {"NR": (nr, 2), "RA": (ra, 2), "SR": (sr, 2), "SS": (ss, 2), "TS": (ts, 2),
         "MLP": (mlp, 2)}


@pytest.mark.parametrize("name", TASKS)
def test_task_runs_all_seeds_in_one_program(name, tiny_sizes):
  module, n_evals = TASKS[name]
  task = module.TASK
  assert isinstance(task, Task)
  assert task.regime in typing.get_args(typing.get_type_hints(Task)["regime"])
  assert set(task.cuts) == set(typing.get_args(Mode))
  result = task.run(optax.adam(1e-3), np.arange(3), "quick")
  assert result.errors.shape == (3, n_evals)
  assert np.all(np.isfinite(result.errors))
  for extra in result.extras.values():
    assert extra.shape == result.errors.shape
  assert jnp.zeros(1).dtype == jnp.float32  # x64 stays local to TS
  if name == "TS":
    assert result.errors.dtype == np.float64
  if name in ("NR", "RA"):  # episodes until solved, at most 4; once solved, solved
    errors = result.errors
    assert np.all((errors >= 1) & (errors <= 4)) and np.all(errors == np.round(errors))
    assert np.all(np.diff(errors, axis=1) <= 0)


@pytest.mark.parametrize("name", ["NR", "TS"])
def test_a_second_optimizer_compiles_only_its_own_programs(name, tiny_sizes):
  """The task's programs (rollout or model, gradients, evaluation) compile once per task."""
  task = TASKS[name][0].TASK
  task.run(optax.adam(1e-3), np.arange(3), "quick")
  compiled = []

  def listen(event, duration, **_):
    compiled.append(event)

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    task.run(optax.sgd(1e-3, momentum=0.9), np.arange(3), "quick")
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  # Momentum's state initialisation and its update, nothing of the task.
  assert compiled.count("/jax/core/compile/backend_compile_duration") == 2


def test_pixel_shuffle_matches_torch():
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 16)).astype(np.float32)
  expected = torch.nn.functional.pixel_shuffle(torch.from_numpy(x.transpose(0, 3, 1, 2)), 4)
  np.testing.assert_array_equal(sr.pixel_shuffle(jnp.asarray(x)), expected[:, 0].numpy())


def _structure(seed, n_atoms=8):
  rng = np.random.default_rng(seed)
  positions = emt.cluster_positions()[:n_atoms] + rng.normal(0, 0.1, (n_atoms, 3))
  return positions, rng.integers(0, 2, n_atoms)


def test_forces_are_minus_the_energy_gradient_by_finite_differences():
  with jax.enable_x64(True):
    positions, species = _structure(0)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), mlp.init(jax.random.key(0)))
    scale, shift = jnp.full(mlp.N_FEATURES, 2.0), jnp.zeros(mlp.N_FEATURES)
    energy = jax.jit(lambda x: mlp.energy(params, x, jnp.asarray(species), scale, shift))
    forces = -jax.jit(jax.grad(energy))(jnp.asarray(positions))
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2)]:
      step = np.zeros_like(positions)
      step[atom, axis] = h
      numeric = -(energy(positions + step) - energy(positions - step)) / (2 * h)
      np.testing.assert_allclose(forces[atom, axis], numeric, rtol=1e-6, atol=1e-9)
    # Forces from precomputed symmetry-function Jacobians: the same.
    args = jnp.asarray(positions), jnp.asarray(species)
    features = (jax.jit(mlp.symmetry_functions)(*args) - shift) / scale
    jacobian = jax.jit(mlp.symmetry_function_jacobian)(*args) / scale[None, :, None, None]
    e, f = jax.jit(mlp.energy_and_forces)(params, features, jacobian, args[1])
    np.testing.assert_allclose(e, energy(jnp.asarray(positions)), rtol=1e-12)
    np.testing.assert_allclose(f, forces, rtol=1e-9, atol=1e-12)


def test_symmetry_function_jacobian_equals_autodiff():
  positions, species = _structure(1)
  args = jnp.asarray(positions, jnp.float32), jnp.asarray(species)
  got = jax.jit(mlp.symmetry_function_jacobian)(*args)
  want = jax.jit(jax.jacfwd(mlp.symmetry_functions))(*args)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_symmetry_functions_are_invariant_to_rotation_and_permutation():
  positions, species = _structure(2)
  g = mlp.symmetry_functions(jnp.asarray(positions), jnp.asarray(species))
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
  perm = np.random.default_rng(1).permutation(len(species))
  g_moved = mlp.symmetry_functions(jnp.asarray(positions[perm] @ q.T + 1.5),
                                   jnp.asarray(species[perm]))
  np.testing.assert_allclose(g_moved, g[perm], rtol=1e-4, atol=1e-5)


def test_patch_convolution_matches_lax_conv():
  params = sr.init(jax.random.key(0))["conv1"]
  x = jax.random.normal(jax.random.key(1), (2, 7, 9, 1))
  want = jax.lax.conv_general_dilated(x, params["w"], (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC")) + params["b"]
  np.testing.assert_allclose(sr.conv(params, x), want, rtol=1e-5, atol=1e-5)
