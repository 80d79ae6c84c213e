"""MLP: a Behler-Parrinello machine-learning potential on Cu-Au clusters (EMT).

The task the CoRe optimizer was written for (paper section 4.4). Per-element
atomic networks (22 -> 25 -> 25 -> 1, tanh) map atom-centred symmetry functions
(Behler's radial G2 per neighbour element and angular G4 per element pair,
cosine cutoff 6 A) to atomic energies; the energy is their sum and the forces
are minus its gradient with respect to the positions. Reference data: ASE's
EMT potential on 32-atom Cu-Au clusters (:mod:`benchmarks.comparison.data.emt`).

Loss (the lMLP's): ``q^2 * MSE(energy per atom) + MSE(force components)`` with
q = 10.9, energies in eV and forces in eV/A, mini-batches of 10% of the training
structures. The test error is that loss on the test structures; the energy RMSE
(meV/atom) and force RMSE (meV/A) are reported next to it.

Training does not differentiate through the symmetry functions: their Jacobian
with respect to the positions is computed once per structure, and the forces
are ``-sum_i dE_i/dG_i . dG_i/dR`` (the chain rule of ``-jax.grad(energy)``;
the tests compare both and check them against finite differences).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison.data import emt
from benchmarks.comparison.task import Mode
from benchmarks.comparison.task import Task
from benchmarks.comparison.task import TaskResult
from benchmarks.comparison.tasks.common import training
from benchmarks.comparison.tasks.common.layers import init_linear
from benchmarks.comparison.tasks.common.layers import linear

CUTOFF = 6.0  # A
RADIAL_SHIFTS = (2.0, 2.8, 3.6, 4.4, 5.2)  # A
RADIAL_ETA = 1.0  # 1/A^2
ANGULAR_ETA = 0.005  # 1/A^2
ANGULAR_TERMS = ((1, 1.0), (1, -1.0), (4, 1.0), (4, -1.0))  # (zeta, lambda)
N_ELEMENTS = len(emt.ELEMENTS)
N_PAIRS = N_ELEMENTS * (N_ELEMENTS + 1) // 2
N_FEATURES = N_ELEMENTS * len(RADIAL_SHIFTS) + N_PAIRS * len(ANGULAR_TERMS)
HIDDEN = 25
Q = 10.9  # weight of the energy error relative to the force error
BATCH_FRACTION = 0.1
TEST_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class Size:
  """Structures used (train + test) and epochs (passes over the training set)."""

  n_structures: int
  n_epochs: int


SIZES: dict[Mode, Size] = {
    "quick": Size(n_structures=200, n_epochs=15),
    "standard": Size(n_structures=400, n_epochs=40),
    "full": Size(n_structures=1000, n_epochs=200),
}


def _cutoff(r: jax.Array) -> jax.Array:
  return jnp.where(r < CUTOFF, 0.5 * (jnp.cos(math.pi * r / CUTOFF) + 1), 0.0)


def _norm(v: jax.Array) -> jax.Array:
  """Length of ``v``, with a finite gradient at 0 (masked pairs have d = 0)."""
  r2 = jnp.sum(v**2)
  return jnp.sqrt(jnp.where(r2 > 0, r2, 1.0))


def _pair_terms(d_ij: jax.Array) -> jax.Array:
  """Radial terms ``exp(-eta (r_ij - r_s)^2) f_c(r_ij)`` for every shift r_s."""
  r = _norm(d_ij)
  return jnp.exp(-RADIAL_ETA * (r - jnp.array(RADIAL_SHIFTS))**2) * _cutoff(r)


def _triplet_terms(d_ij: jax.Array, d_ik: jax.Array) -> jax.Array:
  """Angular terms ``2^(1-zeta) (1 + lambda cos theta_ijk)^zeta exp(-eta (r_ij^2 +
  r_ik^2 + r_jk^2)) f_c(r_ij) f_c(r_ik) f_c(r_jk)`` for every (zeta, lambda)."""
  r_ij, r_ik, r_jk = _norm(d_ij), _norm(d_ik), _norm(d_ik - d_ij)
  cos = jnp.dot(d_ij, d_ik) / (r_ij * r_ik)
  envelope = (jnp.exp(-ANGULAR_ETA * (r_ij**2 + r_ik**2 + r_jk**2))
              * _cutoff(r_ij) * _cutoff(r_ik) * _cutoff(r_jk))
  return jnp.stack([2.0**(1 - zeta) * (1 + lam * cos)**zeta * envelope
                    for zeta, lam in ANGULAR_TERMS])


def _geometry(positions: jax.Array, species: jax.Array):
  """Pair vectors ``d[i, j] = R_j - R_i``, the pair and triplet masks, one-hot species."""
  n = positions.shape[0]
  d = positions[None, :, :] - positions[:, None, :]
  pair = ~jnp.eye(n, dtype=bool)
  triplet = pair[:, :, None] & pair[:, None, :] & pair[None, :, :]
  return d, pair, triplet, jax.nn.one_hot(species, N_ELEMENTS, dtype=positions.dtype)


def _over_pairs(f, d):
  return jax.vmap(jax.vmap(f))(d)


def _over_triplets(f, d):
  """``f(d[i, j], d[i, k])`` for all i, j, k."""
  return jax.vmap(jax.vmap(jax.vmap(f, (None, 0)), (0, None)))(d, d)


def _unordered(by_pair: jax.Array) -> jax.Array:
  """``[..., a, b]`` sums over ordered (j, k) -> sums over j < k per unordered pair."""
  a, b = np.triu_indices(N_ELEMENTS)
  return 0.5 * (by_pair[..., a, b] + jnp.where(a == b, 0.0, by_pair[..., b, a]))


def symmetry_functions(positions: jax.Array, species: jax.Array) -> jax.Array:
  """Atom-centred symmetry functions ``[n_atoms, N_FEATURES]`` of one structure.

  Radial G2: the pair terms summed over neighbours j of each element.
  Angular G4: the triplet terms summed over j < k for each unordered element
  pair of (j, k).
  """
  d, pair, triplet, onehot = _geometry(positions, species)
  radial = jnp.einsum("ijs,ij,je->ies", _over_pairs(_pair_terms, d), pair, onehot)
  terms = _over_triplets(_triplet_terms, d) * triplet[..., None]
  angular = _unordered(jnp.einsum("ijkt,ja,kb->itab", terms, onehot, onehot))
  n = positions.shape[0]
  return jnp.concatenate([radial.reshape(n, -1), angular.reshape(n, -1)], axis=1)


def symmetry_function_jacobian(positions: jax.Array, species: jax.Array) -> jax.Array:
  """``d symmetry_functions / d positions``: ``[n_atoms, N_FEATURES, n_atoms, 3]``.

  Equals ``jax.jacfwd(symmetry_functions)`` but differentiates each pair and
  triplet term by its own two or three vectors instead of pushing 3 n tangents
  through the whole structure: about 25 times faster for 32 atoms.
  """
  d, pair, triplet, onehot = _geometry(positions, species)
  n = positions.shape[0]
  # Derivatives by R_m, m != i (d[i, m] = R_m - R_i): [i, m, c, feature].
  d_pair = _over_pairs(jax.jacfwd(_pair_terms), d) * pair[..., None, None]  # [i, m, s, c]
  radial = jnp.einsum("imsc,me->imces", d_pair, onehot).reshape(n, n, 3, -1)
  d_first, d_second = _over_triplets(jax.jacfwd(_triplet_terms, argnums=(0, 1)), d)
  mask = triplet[..., None, None]
  angular = _unordered(
      jnp.einsum("imktc,ma,kb->imctab", d_first * mask, onehot, onehot)
      + jnp.einsum("ijmtc,ja,mb->imctab", d_second * mask, onehot, onehot))
  others = jnp.concatenate([radial, angular.reshape(n, n, 3, -1)], axis=-1)
  # R_i enters every d[i, m] with a minus sign (translation invariance).
  own = -others.sum(axis=1)
  jac = others + jnp.eye(n)[:, :, None, None] * own[:, None]
  return jac.transpose(0, 3, 1, 2)


def init(key: jax.Array, data=None) -> optax.Params:
  """One atomic network per element, stacked on a leading element axis."""
  del data

  def network(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"dense1": init_linear(k1, N_FEATURES, HIDDEN),
            "dense2": init_linear(k2, HIDDEN, HIDDEN),
            "dense3": init_linear(k3, HIDDEN, 1)}

  return jax.vmap(network)(jax.random.split(key, N_ELEMENTS))


def atomic_energies(params: optax.Params, features: jax.Array,
                    species: jax.Array) -> jax.Array:
  """Each atom's energy from its element's network; ``features [..., F]``."""

  def network(p):
    h = jnp.tanh(linear(p["dense1"], features))
    h = jnp.tanh(linear(p["dense2"], h))
    return linear(p["dense3"], h)[..., 0]

  per_element = jax.vmap(network)(params)  # [n_elements, ...]
  return jnp.take_along_axis(per_element, species[None], axis=0)[0]


def energy(params: optax.Params, positions: jax.Array, species: jax.Array,
           scale: jax.Array, shift: jax.Array) -> jax.Array:
  """Total energy of one structure, from positions (differentiable in them)."""
  features = (symmetry_functions(positions, species) - shift) / scale
  return jnp.sum(atomic_energies(params, features, species))


def energy_and_forces(params: optax.Params, features: jax.Array, jacobian: jax.Array,
                      species: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Energies ``[...]`` and forces ``[..., n_atoms, 3]`` from precomputed features.

  Args:
    features: ``[..., n_atoms, F]`` scaled symmetry functions.
    jacobian: ``[..., n_atoms, F, n_atoms, 3]`` their derivatives by position.
    species: ``[..., n_atoms]``.
  """
  total = lambda f: jnp.sum(atomic_energies(params, f, species))
  energies = jnp.sum(atomic_energies(params, features, species), axis=-1)
  d_energy = jax.grad(total)(features)
  # F_jc = -sum_if dE/dG_if dG_if/dR_jc, one vector-matrix product per structure. Written as
  # an einsum over the two axes (i, f), XLA's CPU gradient step of MLP-EMT took 73 ms instead
  # of 10 ms (3 seeds x 16 structures), nearly all in the product's derivative.
  *structures, n_atoms, n_features = features.shape
  forces = jnp.matmul(d_energy.reshape(*structures, 1, n_atoms * n_features),
                      jacobian.reshape(*structures, n_atoms * n_features, n_atoms * 3))
  return energies, -forces.reshape(*structures, n_atoms, 3)


def featurise(picks: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
  """Scaled symmetry functions, their Jacobians and labels of the EMT structures ``picks``.

  Features are shifted and scaled to zero mean and unit variance over the atoms of the
  reference structures ``picks[reference]`` (all of them for MLP-EMT, the training
  structures of the first stage for the continual potentials); energies are given relative
  to a per-element reference energy fitted by least squares to all picked structures.

  Args:
    picks: indices of structures in :func:`benchmarks.comparison.data.emt.load`'s data.
    reference: positions in ``picks`` of the structures that set the scaling.
  """
  data = emt.load()
  picks = np.asarray(picks)
  positions = jnp.asarray(data.positions[picks], jnp.float32)
  species = jnp.asarray(data.species[picks])
  raw = jax.jit(jax.vmap(symmetry_functions))(positions, species)
  jac = jax.jit(jax.vmap(symmetry_function_jacobian))
  chunk = 50  # one compiled shape: the last chunk is padded by repeating structures
  padded = np.resize(np.arange(len(picks)), -(-len(picks) // chunk) * chunk)
  jacobian = jnp.concatenate([jac(positions[padded[i:i + chunk]], species[padded[i:i + chunk]])
                              for i in range(0, len(padded), chunk)])[:len(picks)]
  reference_features = raw[np.asarray(reference)].reshape(-1, N_FEATURES)
  shift, scale = reference_features.mean(0), reference_features.std(0) + 1e-6
  counts = np.stack([(data.species[picks] == e).sum(1) for e in range(N_ELEMENTS)], 1)
  energy_reference, *_ = np.linalg.lstsq(counts, data.energies[picks], rcond=None)
  return {
      "features": np.asarray((raw - shift) / scale),
      "jacobian": np.asarray(jacobian / scale[None, None, :, None, None]),
      "species": np.asarray(species),
      "energies": (data.energies[picks] - counts @ energy_reference).astype(np.float32),
      "forces": data.forces[picks].astype(np.float32),
      "shift": np.asarray(shift), "scale": np.asarray(scale),
  }


@functools.cache
def prepared(n_structures: int) -> dict[str, np.ndarray]:
  """:func:`featurise` of ``n_structures`` taken evenly from all eight MD runs, scaled over all."""
  pick = np.linspace(0, len(emt.load().energies) - 1, n_structures).round().astype(int)
  return featurise(pick, np.arange(n_structures))


def errors(params: optax.Params, data, structures: jax.Array) -> dict[str, jax.Array]:
  """Energy MSE per atom (eV^2), force MSE (eV^2/A^2) and the loss on ``structures``."""
  take = lambda name: data[name][structures]
  energies, forces = energy_and_forces(params, take("features"), take("jacobian"),
                                       take("species"))
  n_atoms = data["species"].shape[1]
  energy_mse = jnp.mean(((energies - take("energies")) / n_atoms)**2)
  force_mse = jnp.mean((forces - take("forces"))**2)
  return {"loss": Q**2 * energy_mse + force_mse, "energy_mse": energy_mse,
          "force_mse": force_mse}


def split(key: jax.Array, data):
  """This seed's split of the structures into test and training sets."""
  n = data["energies"].shape[0]
  order = jax.random.permutation(key, n)
  n_test = round(TEST_FRACTION * n)
  return {**data, "test": order[:n_test], "train": order[n_test:]}


def batches(key: jax.Array, data) -> jax.Array:
  """One epoch: the shuffled training structures in batches of 10%."""
  n_train = data["train"].shape[0]
  batch = max(1, round(BATCH_FRACTION * n_train))
  order = jax.random.permutation(key, data["train"])
  return order[:n_train // batch * batch].reshape(-1, batch)


def loss(params: optax.Params, data, batch: jax.Array, key: jax.Array) -> jax.Array:
  """The training loss of one mini-batch of structures."""
  del key
  return errors(params, data, batch)["loss"]


def evaluate(params: optax.Params, data) -> dict[str, jax.Array]:
  return errors(params, data, data["test"])


def run(tx: optax.GradientTransformation, seeds: jax.Array, mode: Mode) -> TaskResult:
  arrays = prepared(SIZES[mode].n_structures)
  data = {k: jnp.asarray(v) for k, v in arrays.items() if k not in ("shift", "scale")}
  metrics = training.train(
      tx, seeds, data, init=init, batches=batches, loss=loss, evaluate=evaluate,
      n_epochs=SIZES[mode].n_epochs, per_seed=split)
  return TaskResult(errors=metrics["loss"], extras={
      "energy_rmse_meV_per_atom": 1e3 * np.sqrt(metrics["energy_mse"]),
      "force_rmse_meV_per_A": 1e3 * np.sqrt(metrics["force_mse"])})


TASK = Task(
    name="MLP-EMT",
    regime="intermediate",
    error_name="test loss (q^2 E-MSE + F-MSE)",
    run=run,
    cuts={
        "quick": "200 structures (160 training), 15 epochs of 10 mini-batches; "
                 "EMT Cu-Au clusters instead of the paper's DFT data",
        "standard": "400 structures (320 training), 40 epochs of 10 mini-batches; "
                    "EMT Cu-Au clusters instead of the paper's DFT data",
        "full": "1000 structures (800 training), 200 epochs of 10 mini-batches (2000 "
                "updates, as the paper's 2000 epochs of one 10% fit); EMT Cu-Au "
                "clusters instead of the paper's DFT data",
    },
    # 10 mini-batches of 10% of the training structures per epoch.
    n_steps={mode: size.n_epochs * round(1 / BATCH_FRACTION) for mode, size in SIZES.items()},
)
