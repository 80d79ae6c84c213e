"""The optimizers of the continual-learning benchmark, built from a step size and a context.

Every entry is built by ``build(learning_rate, context)``; the context carries what a
scenario fixes (``t_hist`` in this mode) and what is selected on its first stages (SI's
strength). ``tune_as`` names the optimizer whose step size an entry reuses: CoRe's
freezing variants and random controls use CoRe's, Adam with SI uses Adam's, because on
the first stage, where step sizes are chosen, they equal it bit for bit (freezing starts
after ``t_hist`` updates, which the scenarios make the length of the first stage; SI's
penalty is zero before the first boundary). The runner checks that premise.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import optax

from benchmarks.comparison import transforms
from benchmarks.continual import baselines
from benchmarks.continual import freezing
import core_optax

ETA_MINUS_SMOOTH = 0.55  # The paper's smoother variant (section 4.4), with p_frozen = 0.025.


@dataclasses.dataclass(frozen=True)
class Context:
  """What a scenario sets for the optimizers.

  Attributes:
    score_history: ``t_hist`` of the freezing variants.
    si_strength: SI's ``c`` (only Adam+SI reads it).
  """

  score_history: int
  si_strength: float = 0.0


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """One optimizer of the benchmark.

  Attributes:
    name: the name in tables and figures.
    build: ``build(learning_rate, context)`` returns the transformation.
    tune_as: the optimizer whose chosen step size this one uses (itself if ``None``).
    frozen_fraction: ``p_frozen`` of a freezing variant (0 for the others).
    score_history: whether it keeps importance scores (and may freeze) with ``t_hist``.
    si: whether its strength is selected (Synaptic Intelligence).
    quick_lr: the step size of quick mode, per batch regime.
  """

  name: str
  build: Callable[[float, Context], optax.GradientTransformationExtraArgs]
  quick_lr: Mapping[str, float]
  tune_as: str | None = None
  frozen_fraction: float = 0.0
  score_history: bool = False
  si: bool = False

  @property
  def tuning_name(self) -> str:
    return self.tune_as or self.name


_ADAM_LR = {"mini-batch": 1e-3, "intermediate": 1e-2}
_CORE_LR = dict(core_optax.MAX_STEP_SIZE)


def _adam(lr: float, context: Context) -> optax.GradientTransformationExtraArgs:
  del context
  return optax.with_extra_args_support(optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8))


def _core_sp(p: float, **kwargs) -> Callable[[float, Context], optax.GradientTransformation]:
  return lambda lr, context: core_optax.core(lr, score_history=context.score_history,
                                             frozen_fraction=p, **kwargs)


def _random(p: float, fixed: bool) -> Callable[[float, Context], optax.GradientTransformation]:
  return lambda lr, context: freezing.core_with_random_freezing(
      lr, frozen_fraction=p, score_history=context.score_history, fixed=fixed)


def _si(lr: float, context: Context) -> optax.GradientTransformationExtraArgs:
  return optax.chain(baselines.add_synaptic_intelligence(context.si_strength),
                     optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8))


_REGISTRY = (
    Optimizer("Adam", _adam, _ADAM_LR),
    Optimizer("AdamW", lambda lr, c: optax.with_extra_args_support(
        optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)), _ADAM_LR),
    Optimizer("RPROP", lambda lr, c: optax.with_extra_args_support(transforms.torch_rprop(lr)),
              _CORE_LR),
    Optimizer("CoRe", lambda lr, c: core_optax.core(lr), _CORE_LR),
    *(Optimizer(f"CoRe p={p:g}", _core_sp(p), _CORE_LR, tune_as="CoRe", frozen_fraction=p,
                score_history=True) for p in (0.025, 0.1, 0.25)),
    Optimizer("CoRe eta-=0.55 p=0.025", _core_sp(0.025, eta_minus=ETA_MINUS_SMOOTH), _CORE_LR,
              frozen_fraction=0.025, score_history=True),
    Optimizer("CoRe random-fresh p=0.1", _random(0.1, fixed=False), _CORE_LR, tune_as="CoRe",
              frozen_fraction=0.1, score_history=True),
    Optimizer("CoRe random-fixed p=0.1", _random(0.1, fixed=True), _CORE_LR, tune_as="CoRe",
              frozen_fraction=0.1, score_history=True),
    Optimizer("Adam+SI", _si, _ADAM_LR, tune_as="Adam", si=True),
)

OPTIMIZERS: Mapping[str, Optimizer] = {optimizer.name: optimizer for optimizer in _REGISTRY}

CONTINUAL = ("Adam", "AdamW", "RPROP", "CoRe", "CoRe p=0.025", "CoRe p=0.1", "CoRe p=0.25",
             "Adam+SI", "CoRe random-fresh p=0.1", "CoRe random-fixed p=0.1")
"""The issue's list, for the scenarios with task boundaries."""

STATIONARY = ("Adam", "RPROP", "CoRe", "CoRe p=0.025", "CoRe p=0.1", "CoRe eta-=0.55 p=0.025")
"""The paper's section 4.4 comparison, for the stationary potential."""
