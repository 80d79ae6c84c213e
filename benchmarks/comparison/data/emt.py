"""Energies and forces of Cu-Au clusters from ASE's EMT potential, for the MLP task.

Eight Langevin molecular-dynamics runs of a 32-atom Cu-Au cluster (cut from
an fcc lattice, a = 3.8 A), at 300, 600, 900 and 1200 K, each for the
compositions Cu16Au16 and Cu24Au8 with the elements placed at random; after
200 steps of equilibration a snapshot every 10 steps (2 fs time step),
125 per run: 1000 structures with EMT energies (eV) and forces (eV/A).

Generation takes about a minute, so the result is cached as an ``.npz`` under
``$XDG_CACHE_HOME/core_optax_benchmarks`` (default ``~/.cache/...``); the data
are deterministic from the fixed seed.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

N_ATOMS = 32
ELEMENTS = ("Cu", "Au")
TEMPERATURES_K = (300, 600, 900, 1200)
N_CU = (16, 24)  # compositions Cu16Au16 and Cu24Au8
LATTICE_CONSTANT = 3.8
TIME_STEP_FS = 2.0
FRICTION_PER_FS = 0.02
EQUILIBRATION_STEPS = 200
SAMPLE_EVERY = 10
SAMPLES_PER_RUN = 125
SEED = 32
CACHE_NAME = "emt_cuau32_v1.npz"


@dataclasses.dataclass(frozen=True)
class Structures:
  """Structures with reference labels.

  Attributes:
    positions: ``[n_structures, 32, 3]`` in A.
    species: ``[n_structures, 32]`` index into :data:`ELEMENTS`.
    energies: ``[n_structures]`` total energies in eV.
    forces: ``[n_structures, 32, 3]`` in eV/A.
  """

  positions: np.ndarray
  species: np.ndarray
  energies: np.ndarray
  forces: np.ndarray


def cluster_positions() -> np.ndarray:
  """The 32 fcc lattice sites closest to a point off the lattice's symmetries."""
  cells = np.stack(np.meshgrid(*[np.arange(-3, 4)] * 3, indexing="ij"), -1).reshape(-1, 3)
  basis = np.array([(0, 0, 0), (0, .5, .5), (.5, 0, .5), (.5, .5, 0)])
  sites = (cells[:, None, :] + basis[None]).reshape(-1, 3) * LATTICE_CONSTANT
  distance = np.linalg.norm(sites - np.array([0.1, 0.2, 0.3]), axis=1)
  return sites[np.argsort(distance, kind="stable")[:N_ATOMS]]


def _run(temperature_k: float, n_cu: int, seed: int) -> Structures:
  """One Langevin trajectory with EMT, sampled after equilibration."""
  from ase import Atoms
  from ase import units
  from ase.calculators.emt import EMT
  from ase.md import velocitydistribution
  from ase.md.langevin import Langevin

  rng = np.random.default_rng(seed)
  species = rng.permutation(np.repeat([0, 1], [n_cu, N_ATOMS - n_cu]))
  atoms = Atoms([ELEMENTS[s] for s in species], positions=cluster_positions())
  atoms.calc = EMT()
  thermalize = getattr(velocitydistribution, "thermalize_momenta",  # ase >= 3.29
                       velocitydistribution.MaxwellBoltzmannDistribution)
  thermalize(atoms, temperature_K=temperature_k, rng=rng)
  dynamics = Langevin(atoms, TIME_STEP_FS * units.fs, temperature_K=temperature_k,
                      friction=FRICTION_PER_FS / units.fs, fixcm=False, rng=rng)
  dynamics.run(EQUILIBRATION_STEPS)
  positions, energies, forces = [], [], []
  for _ in range(SAMPLES_PER_RUN):
    dynamics.run(SAMPLE_EVERY)
    positions.append(atoms.get_positions())
    energies.append(atoms.get_potential_energy())
    forces.append(atoms.get_forces())
  return Structures(np.array(positions), np.tile(species, (SAMPLES_PER_RUN, 1)),
                    np.array(energies), np.array(forces))


def generate() -> Structures:
  """Runs all trajectories (about a minute)."""
  runs = [_run(t, n_cu, SEED + i) for i, (t, n_cu) in
          enumerate((t, n) for t in TEMPERATURES_K for n in N_CU)]
  return Structures(*(np.concatenate([getattr(r, f.name) for r in runs])
                      for f in dataclasses.fields(Structures)))


def cache_path() -> pathlib.Path:
  root = os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")
  return pathlib.Path(root) / "core_optax_benchmarks" / CACHE_NAME


def load() -> Structures:
  """The structures, generated on first use and cached."""
  path = cache_path()
  if not path.exists():
    structures = generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **dataclasses.asdict(structures))
    tmp.replace(path)
  with np.load(path) as f:
    return Structures(**{name: f[name] for name in f.files})
