"""The optimizer registry: every optimizer the benchmark compares, built from one setting.

Each optimizer has one scanned hyperparameter, its *setting*: the learning rate, the maximal
step size ``s_max`` for RPROP and CoRe (whose initial step size is ``s^0 = 1e-3``), the
learning-rate multiplier of the tuning-free optimizers, and the base Adam's learning rate
inside Mechanic. Two tracks use it:

- **defaults-only**: one setting per optimizer and batch regime, its documented default
  (:attr:`Optimizer.default`, with the source in :attr:`Optimizer.default_source`). Quick mode
  runs this track only.
- **tuned**: the best setting of :attr:`Optimizer.grid` and the default (standard and full
  mode), per task by the lowest mean minimum test error.

The paper's ten optimizers run at PyTorch 2.0 defaults otherwise, reproduced exactly in optax
(``tests/benchmarks/comparison/test_optimizers.py`` checks the first steps against torch and
the ``core-optimizer`` package). The paper's tuned variants (Adam*, AdaMax*, Momentum*,
RPROP*, ...) are not here: their hyperparameters are in the paper's Supporting Information
(Tables S1 and S3), which our copy of the paper does not contain.

Beyond the paper: AdamW, Lion and NAdam from optax (AdamW with torch's default weight decay
0.01); ``CoRe-SP``, CoRe with the stability-plasticity balance (``t_hist = 250``,
``p_frozen = 0.1``, paper section 4.4); and the tuning-free optimizers of ``optax.contrib``
(Prodigy, DAdapt-AdamW, DoG, COCOB, SF-AdamW = schedule-free AdamW evaluated at its
averaged parameters, Mechanic-Adam = Mechanic around Adam), at the optax 0.2.8 defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal, Mapping

import optax
from optax import contrib

from benchmarks.comparison import task as task_lib
from benchmarks.comparison import transforms
import core_optax

Family = Literal["SGD", "momentum", "adaptive", "adaptive + momentum", "sign-based",
                 "tuning-free"]

LEARNING_RATES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""The paper's grid (section 3) of learning rates and of ``s_max``."""

MULTIPLIERS = (0.1, 1.0, 10.0)
"""The tuned grid of the tuning-free optimizers: their default setting times these."""


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """One optimizer of the comparison.

  Attributes:
    name: the name in tables and plots.
    family: the paper's grouping (section 4.2), plus ``"tuning-free"``.
    build: ``build(setting)`` returns the transformation.
    default: the documented default setting, per batch regime (only CoRe's depends on it).
    default_source: where :attr:`default` comes from.
    grid: the settings of the tuned track (the default is added to them).
    in_paper: whether the paper compared it.
  """

  name: str
  family: Family
  build: Callable[[float], optax.GradientTransformation]
  default: Mapping[task_lib.Regime, float]
  default_source: str
  grid: tuple[float, ...] = LEARNING_RATES
  in_paper: bool = True

  def settings(self, regime: task_lib.Regime, tuned: bool) -> tuple[float, ...]:
    """The settings one task runs: the default, and with ``tuned`` the grid too, ascending."""
    default = self.default[regime]
    return tuple(sorted({default, *self.grid})) if tuned else (default,)


def _everywhere(setting: float) -> dict[task_lib.Regime, float]:
  return {"mini-batch": setting, "intermediate": setting, "full-batch": setting}


def _around(default: float) -> tuple[float, ...]:
  """The multiplier grid around a default, rounded so that file names stay exact."""
  return tuple(float(f"{default * m:.6g}") for m in MULTIPLIERS)


def _tuning_free(name: str, build: Callable[[float], optax.GradientTransformation],
                 default: float, source: str) -> Optimizer:
  return Optimizer(name, "tuning-free", build, _everywhere(default), source, _around(default),
                   in_paper=False)


def _schedule_free_adamw(learning_rate: float) -> task_lib.EvaluatedTransformation:
  """Schedule-free AdamW; the model is evaluated at the averaged iterate ``x``, not at ``y``."""
  tx = contrib.schedule_free_adamw(learning_rate)
  return task_lib.EvaluatedTransformation(
      tx.init, tx.update,
      lambda params, state: contrib.schedule_free_eval_params(state, params))


_TORCH = "torch 2.x default"
_CORE_DEFAULT = {"mini-batch": 1e-3, "intermediate": 1e-2, "full-batch": 1.0}
_CORE_SOURCE = ("the paper's recommended s_max per batch regime (section 4.1): 1e-3 mini-batch, "
                "1e-2 intermediate, 1 full batch")
_SGD_SOURCE = ("the example in torch.optim.SGD's docstring, lr=0.1 (torch 2.x's signature "
               "default is 1e-3)")
_OPTAX = "optax 0.2.8 default"

_REGISTRY = (
    Optimizer("SGD", "SGD", optax.sgd, _everywhere(0.1), _SGD_SOURCE),
    Optimizer("Momentum", "momentum", lambda lr: optax.sgd(lr, momentum=0.9), _everywhere(0.1),
              _SGD_SOURCE + ", momentum=0.9"),
    Optimizer("NAG", "momentum", lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
              _everywhere(0.1), _SGD_SOURCE + ", momentum=0.9, nesterov=True"),
    Optimizer("Adam", "adaptive + momentum", lambda lr: optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8),
              _everywhere(1e-3), _TORCH + " lr=1e-3"),
    Optimizer("AdaMax", "adaptive + momentum",
              lambda lr: optax.adamax(lr, b1=0.9, b2=0.999, eps=1e-8), _everywhere(2e-3),
              _TORCH + " lr=2e-3"),
    Optimizer("RMSprop", "adaptive",
              lambda lr: optax.rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False),
              _everywhere(1e-2), _TORCH + " lr=1e-2"),
    Optimizer("AdaGrad", "adaptive", transforms.torch_adagrad, _everywhere(1e-2),
              _TORCH + " lr=1e-2"),
    Optimizer("AdaDelta", "adaptive", lambda lr: optax.adadelta(lr, rho=0.9, eps=1e-6),
              _everywhere(1.0), _TORCH + " lr=1"),
    Optimizer("RPROP", "sign-based", transforms.torch_rprop, _everywhere(50.0),
              "torch 2.x default step_sizes=(1e-6, 50), so s_max=50; s^0 stays the protocol's "
              "1e-3 (torch's lr=1e-2)"),
    Optimizer("CoRe", "adaptive + momentum", core_optax.core, _CORE_DEFAULT, _CORE_SOURCE),
    Optimizer("CoRe-SP", "adaptive + momentum",
              lambda lr: core_optax.core(lr, score_history=250, frozen_fraction=0.1),
              _CORE_DEFAULT, _CORE_SOURCE, in_paper=False),
    Optimizer("AdamW", "adaptive + momentum",
              lambda lr: optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01),
              _everywhere(1e-3), _TORCH + " lr=1e-3, weight_decay=0.01", in_paper=False),
    Optimizer("NAdam", "adaptive + momentum", optax.nadam, _everywhere(2e-3),
              _TORCH + " lr=2e-3 (optax.nadam has none)", in_paper=False),
    Optimizer("Lion", "sign-based", optax.lion, _everywhere(1e-4),
              "1e-4, the Lion paper's advice of a rate 3-10x below AdamW's (optax.lion has none)",
              in_paper=False),
    _tuning_free("Prodigy", contrib.prodigy, 1.0, _OPTAX + " learning_rate=1 (a multiplier)"),
    _tuning_free("DAdapt-AdamW", contrib.dadapt_adamw, 1.0,
                 _OPTAX + " learning_rate=1 (a multiplier)"),
    _tuning_free("DoG", contrib.dog, 1.0,
                 _OPTAX + " learning_rate=1 (a multiplier), init_step=('heuristic', 1e-6)"),
    _tuning_free("COCOB", contrib.cocob, 1.0, _OPTAX + " learning_rate=1 (a multiplier), "
                 "alpha=100"),
    _tuning_free("SF-AdamW", _schedule_free_adamw, 0.0025,
                 _OPTAX + " learning_rate=0.0025, no warm-up"),
    _tuning_free("Mechanic-Adam", lambda lr: contrib.mechanize(optax.adam(lr)), 1.0,
                 "optax.contrib.mechanize's docstring: the base optimizer's rate at 1.0; "
                 "Adam's betas and eps at their defaults"),
)

OPTIMIZERS: Mapping[str, Optimizer] = {optimizer.name: optimizer for optimizer in _REGISTRY}
