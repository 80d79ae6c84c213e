"""The optimizer registry: every optimizer the benchmark compares, built from one learning rate.

The paper's ten optimizers run at PyTorch 2.0 defaults, reproduced exactly in optax
(``tests/benchmarks/comparison/test_optimizers.py`` checks the first steps against torch and the
``core-optimizer`` package). The learning rate is the maximal step size ``s_max`` for
RPROP and CoRe, whose initial step size is ``s^0 = 1e-3``.

The paper's tuned variants (Adam*, AdaMax*, Momentum*, RPROP*, ...) are not here: their
hyperparameters are in the paper's Supporting Information (Tables S1 and S3), which our
copy of the paper does not contain, so they cannot be reproduced honestly.

Beyond the paper: AdamW, Lion and NAdam from optax (AdamW with torch's default weight decay
0.01), and ``CoRe-SP``, CoRe with the stability-plasticity balance (``t_hist = 250``,
``p_frozen = 0.1``, paper section 4.4).

``quick_lr`` is the learning rate quick mode uses instead of the grid, per batch regime.
For CoRe it is the paper's recommendation (section 4.1); for the others it is our choice
of a usual value for the family (the paper's Table S2 is not in our copy either).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal, Mapping

import optax

import core_optax
from benchmarks.comparison import task as task_lib
from benchmarks.comparison import transforms

Family = Literal["SGD", "momentum", "adaptive", "adaptive + momentum", "sign-based"]

LEARNING_RATES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """One optimizer of the comparison.

  Attributes:
    name: the name in tables and plots.
    family: the paper's grouping (section 4.2), for colours and reading.
    build: ``build(learning_rate)`` returns the transformation.
    quick_lr: the learning rate quick mode uses, per batch regime.
    in_paper: whether the paper compared it.
  """

  name: str
  family: Family
  build: Callable[[float], optax.GradientTransformation]
  quick_lr: Mapping[task_lib.Regime, float]
  in_paper: bool = True


def _per_regime(mini_batch: float, intermediate: float, full_batch: float):
  return {"mini-batch": mini_batch, "intermediate": intermediate, "full-batch": full_batch}


_ADAPTIVE_LR = _per_regime(1e-3, 1e-3, 1e-2)
_CORE_LR = _per_regime(1e-3, 1e-2, 1.0)  # The paper's recommended s_max (section 4.1).

_REGISTRY = (
    Optimizer("SGD", "SGD", optax.sgd, _per_regime(1e-2, 1e-2, 1e-1)),
    Optimizer("Momentum", "momentum", lambda lr: optax.sgd(lr, momentum=0.9),
              _per_regime(1e-3, 1e-3, 1e-2)),
    Optimizer("NAG", "momentum", lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
              _per_regime(1e-3, 1e-3, 1e-2)),
    Optimizer("Adam", "adaptive + momentum", lambda lr: optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8),
              _ADAPTIVE_LR),
    Optimizer("AdaMax", "adaptive + momentum",
              lambda lr: optax.adamax(lr, b1=0.9, b2=0.999, eps=1e-8), _ADAPTIVE_LR),
    Optimizer("RMSprop", "adaptive",
              lambda lr: optax.rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False), _ADAPTIVE_LR),
    Optimizer("AdaGrad", "adaptive", transforms.torch_adagrad, _per_regime(1e-2, 1e-2, 1e-1)),
    Optimizer("AdaDelta", "adaptive", lambda lr: optax.adadelta(lr, rho=0.9, eps=1e-6),
              _per_regime(1.0, 1.0, 1.0)),
    Optimizer("RPROP", "sign-based", transforms.torch_rprop, _CORE_LR),
    Optimizer("CoRe", "adaptive + momentum", core_optax.core, _CORE_LR),
    Optimizer("CoRe-SP", "adaptive + momentum",
              lambda lr: core_optax.core(lr, score_history=250, frozen_fraction=0.1), _CORE_LR,
              in_paper=False),
    Optimizer("AdamW", "adaptive + momentum",
              lambda lr: optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01),
              _ADAPTIVE_LR, in_paper=False),
    Optimizer("NAdam", "adaptive + momentum", optax.nadam, _ADAPTIVE_LR, in_paper=False),
    Optimizer("Lion", "sign-based", optax.lion, _per_regime(1e-4, 1e-4, 1e-3), in_paper=False),
)

OPTIMIZERS: Mapping[str, Optimizer] = {optimizer.name: optimizer for optimizer in _REGISTRY}
