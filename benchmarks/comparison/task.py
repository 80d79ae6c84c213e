"""The contract between the benchmark harness and a task.

A task is data + model + loss + test error + epochs. It trains every seed of one
(optimizer, learning rate) configuration in ONE jit-compiled program, vmapped over
the seeds, and returns the test error after each evaluation (epoch, or episode
block for reinforcement learning). The harness takes the minimum over evaluations
(early stopping, paper section 3) and scores it with equations 19-22.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal, Mapping

import jax
import numpy as np
import optax

Mode = Literal["quick", "standard", "full"]
Regime = Literal["mini-batch", "intermediate", "full-batch"]


@dataclasses.dataclass(frozen=True)
class TaskResult:
  """What one configuration produced, for all its seeds.

  Attributes:
    errors: ``[n_seeds, n_evals]`` test errors (lower is better), one column per
      evaluation. Non-finite entries mark failed runs.
    extras: further per-evaluation metrics of the same shape (accuracy, PSNR,
      running reward, ...), reported next to the errors but not scored.
  """

  errors: np.ndarray
  extras: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Task:
  """One benchmark task.

  Attributes:
    name: the name in tables, e.g. ``"ICF"`` or ``"ICD-digits"``.
    regime: batch regime; picks the recommended learning rate in quick mode.
    error_name: what the test error is, e.g. ``"test NLL"``.
    run: ``run(tx, seeds, mode)`` trains one model per seed (``seeds`` is an
      int array of shape ``[n_seeds]``) with ``tx`` in one jit-compiled,
      seed-vmapped program and returns a :class:`TaskResult`.
    cuts: per mode, a sentence saying what is cut relative to the paper's
      protocol (epochs, data); written next to the results table.
    failure_error: the error that replaces failed (non-finite) runs, or ``None``
      to take the worst finite error of the task.
  """

  name: str
  regime: Regime
  error_name: str
  run: Callable[[optax.GradientTransformation, jax.Array, Mode], TaskResult]
  cuts: Mapping[Mode, str]
  failure_error: float | None = None
