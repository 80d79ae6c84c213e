"""A run directory: its result files, saved atomically, and ``run.json``, merged across runs.

``python -m benchmarks run`` and ``python -m benchmarks continual`` both save this way, so that
an interrupted run resumes where it stopped and a directory never mixes runs that cannot be
reported together:

- every result is one ``.npz`` file, written as ``<name>.partial.npz`` and renamed when complete
  (:func:`save`), so a killed run leaves no half-written result; readers skip partial files
  (:func:`saved_files`);
- ``run.json`` says what the directory holds (:func:`write_run_json`): its kind, mode and seeds,
  which a later run into the same directory must share, and the names (tasks, optimizers,
  scenarios) and commands of every run that wrote there, earlier ones first.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from typing import Iterable, Mapping

import numpy as np

PARTIAL = ".partial.npz"
"""The suffix of a result file being written."""


def command() -> str:
  """The command line of this process, as a user would type it."""
  return "python -m benchmarks " + " ".join(sys.argv[1:])


def save(path: pathlib.Path, **arrays) -> None:
  """Writes ``arrays`` to ``path`` atomically (a killed run leaves no half-written file)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_suffix(PARTIAL)
  np.savez(partial, **arrays)
  os.replace(partial, path)


def load(path: pathlib.Path) -> dict[str, np.ndarray]:
  """The arrays of one saved file."""
  with np.load(path) as saved:
    return dict(saved)


def saved_files(directory: pathlib.Path, pattern: str) -> list[pathlib.Path]:
  """The complete files of ``directory`` that match ``pattern``, sorted (partial ones skipped)."""
  return sorted(p for p in directory.glob(pattern) if not p.name.endswith(PARTIAL))


def _describe(meta: Mapping) -> str:
  return " ".join(filter(None, (meta.get("kind"), meta["mode"]))) + (
      f" run with seeds {meta['seeds']}")


def write_run_json(out: pathlib.Path, *, mode: str, seeds: np.ndarray, kind: str | None = None,
                   names: Mapping[str, Iterable[str]] | None = None,
                   merged: Mapping[str, Mapping] | None = None) -> dict:
  """Writes ``out/run.json``, merged with what an earlier run wrote there, and returns it.

  Args:
    out: the run directory.
    mode: the run's mode.
    seeds: the run's seeds.
    kind: what ran (``None``: the accuracy comparison, whose ``run.json`` has no kind).
    names: ``{key: names}`` (tasks, optimizers, scenarios): each becomes the earlier runs' names
      followed by this run's new ones.
    merged: ``{key: {name: value}}`` (a scenario's cuts): this run's entries replace the earlier
      runs' entries of the same name.

  Raises:
    ValueError: when ``out`` holds a run of another kind, mode or seeds (a report needs one of
      each).
  """
  run_file = out / "run.json"
  previous = json.loads(run_file.read_text()) if run_file.exists() else {}
  meta = {"kind": kind, "mode": mode, "seeds": np.asarray(seeds).tolist()}
  if previous and any(previous.get(key) != value for key, value in meta.items()):
    raise ValueError(f"{out} holds a {_describe(previous)}; choose another --out for a "
                     f"{_describe(meta)}.")
  if kind is None:
    del meta["kind"]
  union = lambda key, new: list(dict.fromkeys([*previous.get(key, []), *new]))
  meta |= {key: union(key, new) for key, new in (names or {}).items()}
  meta["commands"] = union("commands", [command()])
  meta |= {key: previous.get(key, {}) | dict(new) for key, new in (merged or {}).items()}
  out.mkdir(parents=True, exist_ok=True)
  run_file.write_text(json.dumps(meta, indent=2))
  return meta
