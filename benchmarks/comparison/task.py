"""The contract between the benchmark harness and a task.

A task is data + model + loss + test error + epochs. It trains every seed of one
(optimizer, learning rate) configuration in ONE jit-compiled program, vmapped over
the seeds, and returns the test error after each evaluation (epoch, or episode
block for reinforcement learning). The harness takes the minimum over evaluations
(early stopping, paper section 3) and scores it with equations 19-22.

A task evaluates the model at :func:`evaluation_params`, which is the trained parameters for
every optimizer except those that average their iterates (schedule-free AdamW), given as an
:class:`EvaluatedTransformation`. Tasks whose test error is measured on the training
episodes themselves (NR, RA) have no separate evaluation and use the trained parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, Mapping, NamedTuple

import jax
import numpy as np
import optax

Mode = Literal["quick", "standard", "full"]
Regime = Literal["mini-batch", "intermediate", "full-batch"]


class EvaluatedTransformation(NamedTuple):
  """A transformation whose model is evaluated elsewhere than at the parameters it trains.

  It is a transformation like any other (``init`` and ``update`` as in
  ``optax.GradientTransformationExtraArgs``) with one more function.

  Attributes:
    init: as in optax.
    update: as in optax.
    eval_params: ``eval_params(params, opt_state)`` returns the parameters to evaluate
      (e.g. ``optax.contrib.schedule_free_eval_params``).
  """

  init: Callable[[optax.Params], optax.OptState]
  update: Callable[..., tuple[optax.Updates, optax.OptState]]
  eval_params: Callable[[optax.Params, optax.OptState], optax.Params]


def evaluation_params(tx: Any, params: optax.Params, opt_state: optax.OptState) -> optax.Params:
  """The parameters a task evaluates after training with ``tx`` to ``(params, opt_state)``."""
  return tx.eval_params(params, opt_state) if isinstance(tx, EvaluatedTransformation) else params


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
      seed-vmapped program and returns a :class:`TaskResult`. It evaluates the model at
      :func:`evaluation_params`.
    cuts: per mode, a sentence saying what is cut relative to the paper's
      protocol (epochs, data); written next to the results table.
    failure_error: the error that replaces failed (non-finite) runs, or ``None``
      to take the worst finite error of the task.
    n_steps: per mode, the optimizer steps each seed takes, for optimizers whose schedule
      spans the run (a :class:`Scheduled` one); ``None`` where the task does not say.
  """

  name: str
  regime: Regime
  error_name: str
  run: Callable[[optax.GradientTransformation, jax.Array, Mode], TaskResult]
  cuts: Mapping[Mode, str]
  failure_error: float | None = None
  n_steps: Mapping[Mode, int] | None = None


class Scheduled(NamedTuple):
  """An optimizer whose schedule spans the run (warm-up and cosine decay, for example).

  Attributes:
    build: ``build(n_steps)`` returns the transformation for a run of ``n_steps`` steps.
  """

  build: Callable[[int], Any]


def for_run(tx: Any, task: Task, mode: Mode) -> Any:
  """The transformation ``tx`` trains ``task`` with in ``mode``: a :class:`Scheduled` one
  built for the task's number of steps, any other as it is.

  Raises:
    ValueError: ``tx`` is scheduled and the task does not give its number of steps.
  """
  if not isinstance(tx, Scheduled):
    return tx
  if task.n_steps is None:
    raise ValueError(f"{task.name} does not give its number of steps (Task.n_steps), which a "
                     "scheduled optimizer needs.")
  return tx.build(task.n_steps[mode])
