"""The modern track's optimizers, configured the way people use them today.

Every optimizer has two hyperparameters a user tunes first: its learning rate (``s_max`` for
CoRe) and the warm-up fraction of its schedule. A *trial* is one point of that space; a
*setting* (the runner's one number per configuration, and its file name) is the trial's
learning rate, from which :meth:`Optimizer.build` looks the trial's warm-up up.

- **Self-tuning ruleset** (AlgoPerf's name; quick mode runs only this): trial 0, the
  documented defaults below.
- **External-tuning ruleset** (standard and full mode): :data:`TRIALS`, the defaults plus two
  points of a quasi-random search, the same for every optimizer: the learning rate times a
  log-uniform factor in [0.1, 10] and a warm-up fraction uniform in [0.02, 0.1], the first two
  points of scipy's scrambled 2-d Halton sequence with seed 0, its base-3 coordinate for the
  rate and its base-2 one for the warm-up (factors 0.128 and 2.76, warm-up 2.8% and 6.8%;
  rounded to three digits; no trial's rate is another regime's, so a rate names its trial).
  Optimizers without a warm-up (CoRe and CoRe-SP at a constant ``s_max``) run the same
  learning-rate factors.

The schedule: linear warm-up from 0 over the warm-up fraction of the run (5% by default, as
AlgoPerf's baselines), then cosine decay to 0 at the last step
(``optax.warmup_cosine_decay_schedule``); it needs the run's length, so these optimizers are
:class:`benchmarks.comparison.task.Scheduled`. The documented defaults
(``tests/benchmarks/comparison/test_modern.py`` checks every one against optax built by hand):

- ``AdamW-cos``: ``optax.adamw``, lr 1e-3, b1 0.9, b2 0.999, eps 1e-8, weight decay 0.01
  (torch.optim.AdamW's defaults), warm-up + cosine.
- ``NAdamW-cos``: ``optax.nadamw`` with the same values (AlgoPerf's NAdamW baseline is AdamW
  with Nesterov momentum), warm-up + cosine.
- ``SF-AdamW-wu``: ``optax.contrib.schedule_free_adamw`` at its defaults (lr 2.5e-3, b1 0.9,
  b2 0.999, eps 1e-8, no weight decay, weight_lr_power 2) with the linear warm-up over 5% of
  the run that schedule-free training uses (its own ``warmup_steps``); no decay. The model is
  evaluated at ``optax.contrib.schedule_free_eval_params``.
- ``Muon-cos``: ``optax.contrib.muon`` at its defaults (5 Newton-Schulz steps of the default
  coefficients, momentum 0.95 with Nesterov, eps 1e-8, no weight decay) on every 2-d weight,
  Adam (b1 0.9, b2 0.999) on the rest; lr 0.02 (the Muon reference implementation's default),
  Adam's lr 1/20 of Muon's (1e-3 at the default); both on warm-up + cosine.
- ``Lion-cos``: ``optax.lion`` at its defaults (b1 0.9, b2 0.99, weight decay 1e-3), lr 1e-4
  (the Lion paper's advice, 3-10x below AdamW's), warm-up + cosine.
- ``AdEMAMix-cos``: ``optax.contrib.ademamix`` at its defaults (b1 0.9, b2 0.999, b3 0.9999,
  alpha 5, eps 1e-8, no weight decay), lr 1e-3, warm-up + cosine (without the paper's alpha
  and b3 warm-up schedulers).
- ``CoRe-const``: ``core_optax.core`` at the paper's ``s_max`` for the task's batch regime
  (``core_optax.MAX_STEP_SIZE``: 1e-3 mini-batch, 1e-2 intermediate, 1 full batch), constant,
  every other hyperparameter at the paper's values, as ``core_optax.recommended(regime)``.
- ``CoRe-SP-const``: the same with the stability-plasticity balance (``score_history`` 250,
  ``frozen_fraction`` 0.1), as ``core_optax.recommended(regime, stability_plasticity=True)``.
- ``CoRe-cos``: CoRe with ``s_max`` on the warm-up + cosine schedule.

Names differ from the paper track's registry (:mod:`benchmarks.comparison.optimizers`) so that a
worker process finds an optimizer by name in either.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import optax
from optax import contrib

from benchmarks.comparison import task as task_lib
import core_optax

DEFAULT_WARMUP = 0.05
TRIALS: tuple[tuple[float, float], ...] = ((1.0, DEFAULT_WARMUP), (0.128, 0.028), (2.76, 0.068))
"""(learning-rate factor, warm-up fraction) of each trial; trial 0 is the defaults."""

MUON_ADAM_RATIO = 1 / 20
"""Adam's learning rate inside Muon-cos, relative to Muon's."""

Make = Callable[[float, float], Any]
"""``make(learning_rate, warmup_fraction)`` returns a transformation or a Scheduled one."""


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """One optimizer of the modern track, with its search space.

  Attributes:
    name: the name in tables and plots.
    make: builds the transformation from a learning rate and a warm-up fraction.
    default: the default learning rate per batch regime.
    default_source: where the defaults come from.
    baseline: whether it is a tuned baseline that sets the targets (AdamW, NAdamW).
    schedule: ``"warm-up + cosine"``, ``"warm-up"`` or ``"constant"``.
  """

  name: str
  make: Make
  default: Mapping[task_lib.Regime, float]
  default_source: str
  baseline: bool = False
  schedule: str = "warm-up + cosine"

  def trials(self, regime: task_lib.Regime) -> tuple[tuple[float, float], ...]:
    """``(learning rate, warm-up fraction)`` of every trial on a task of this regime."""
    return tuple((float(f"{self.default[regime] * factor:.3g}"), warmup)
                 for factor, warmup in TRIALS)

  def settings(self, regime: task_lib.Regime, tuned: bool) -> tuple[float, ...]:
    """The learning rates one task runs: the default's, and with ``tuned`` every trial's."""
    rates = tuple(rate for rate, _ in self.trials(regime))
    return rates if tuned else rates[:1]

  def warmup(self, learning_rate: float) -> float:
    """The warm-up fraction of the trial with this learning rate (in any regime).

    Raises:
      KeyError: no trial has this learning rate.
      ValueError: trials of two regimes share the rate but not the warm-up.
    """
    warmups = {warmup for regime in self.default for rate, warmup in self.trials(regime)
               if rate == learning_rate}
    if not warmups:
      raise KeyError(f"{self.name} has no trial with learning rate {learning_rate:g}; its trials "
                     f"are {[self.trials(r) for r in self.default]}.")
    if len(warmups) > 1:
      raise ValueError(f"{self.name}'s trials of learning rate {learning_rate:g} have the "
                       f"warm-ups {sorted(warmups)}: a rate must name one trial.")
    return warmups.pop()

  def build(self, learning_rate: float) -> Any:
    """The transformation of the trial with this learning rate."""
    return self.make(learning_rate, self.warmup(learning_rate))


def warmup_cosine(peak: float, warmup_fraction: float, n_steps: int) -> optax.Schedule:
  """Linear warm-up from 0 to ``peak`` over the fraction, cosine decay to 0 at ``n_steps``."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=max(1, round(warmup_fraction * n_steps)),
      decay_steps=n_steps, end_value=0.0)


def _scheduled(make_tx: Callable[[optax.Schedule], Any]) -> Make:
  """An optimizer of a schedule, warm-up + cosine over the run's steps."""
  return lambda lr, warmup: task_lib.Scheduled(
      lambda n_steps: make_tx(warmup_cosine(lr, warmup, n_steps)))


def _schedule_free(lr: float, warmup: float) -> task_lib.Scheduled:
  def build(n_steps: int) -> task_lib.EvaluatedTransformation:
    tx = contrib.schedule_free_adamw(lr, warmup_steps=max(1, round(warmup * n_steps)))
    return task_lib.EvaluatedTransformation(
        tx.init, tx.update,
        lambda params, state: contrib.schedule_free_eval_params(state, params))
  return task_lib.Scheduled(build)


def _muon(lr: float, warmup: float) -> task_lib.Scheduled:
  return task_lib.Scheduled(lambda n_steps: contrib.muon(
      warmup_cosine(lr, warmup, n_steps),
      adam_learning_rate=warmup_cosine(lr * MUON_ADAM_RATIO, warmup, n_steps)))


def _everywhere(rate: float) -> dict[task_lib.Regime, float]:
  return {"mini-batch": rate, "intermediate": rate, "full-batch": rate}


_CORE_SOURCE = ("the paper's s_max per batch regime (core_optax.MAX_STEP_SIZE: 1e-3 mini-batch, "
                "1e-2 intermediate, 1 full batch)")

_REGISTRY = (
    Optimizer("AdamW-cos", _scheduled(lambda lr: optax.adamw(
        lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)), _everywhere(1e-3),
              "torch.optim.AdamW defaults: lr 1e-3, weight decay 0.01", baseline=True),
    Optimizer("NAdamW-cos", _scheduled(lambda lr: optax.nadamw(
        lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)), _everywhere(1e-3),
              "AdamW's values with Nesterov momentum (AlgoPerf's NAdamW baseline)",
              baseline=True),
    Optimizer("SF-AdamW-wu", _schedule_free, _everywhere(0.0025),
              "optax.contrib.schedule_free_adamw defaults (lr 2.5e-3), warm-up 5%",
              schedule="warm-up"),
    Optimizer("Muon-cos", _muon, _everywhere(0.02),
              "optax.contrib.muon defaults; lr 0.02 (Muon's reference), Adam's lr 1/20 of it"),
    Optimizer("Lion-cos", _scheduled(optax.lion), _everywhere(1e-4),
              "optax.lion defaults (b1 0.9, b2 0.99, weight decay 1e-3); lr 1e-4 (Lion paper)"),
    Optimizer("AdEMAMix-cos", _scheduled(contrib.ademamix), _everywhere(1e-3),
              "optax.contrib.ademamix defaults (b3 0.9999, alpha 5); lr 1e-3"),
    Optimizer("CoRe-const", lambda s_max, warmup: core_optax.core(s_max),
              dict(core_optax.MAX_STEP_SIZE), _CORE_SOURCE, schedule="constant"),
    Optimizer("CoRe-SP-const",
              lambda s_max, warmup: core_optax.core(
                  s_max, **core_optax.STABILITY_PLASTICITY),
              dict(core_optax.MAX_STEP_SIZE), _CORE_SOURCE + "; score_history 250, "
              "frozen_fraction 0.1", schedule="constant"),
    Optimizer("CoRe-cos", _scheduled(core_optax.core), dict(core_optax.MAX_STEP_SIZE),
              _CORE_SOURCE + ", on warm-up + cosine"),
)

OPTIMIZERS: Mapping[str, Optimizer] = {optimizer.name: optimizer for optimizer in _REGISTRY}
BASELINES = tuple(name for name, optimizer in OPTIMIZERS.items() if optimizer.baseline)
