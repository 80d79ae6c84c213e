"""The paper's recommended settings (section 4.1), by batch regime."""

from __future__ import annotations

from collections.abc import Mapping
import types
from typing import Any, Literal

import optax

from core_optax._core import core

Regime = Literal["mini-batch", "intermediate", "full-batch"]

MAX_STEP_SIZE: Mapping[str, float] = types.MappingProxyType({
    "mini-batch": 1e-3,
    "intermediate": 1e-2,
    "full-batch": 1.0,
})
"""Recommended :math:`s_\\max` per batch regime (paper, section 4.1); read-only."""

STABILITY_PLASTICITY: Mapping[str, Any] = types.MappingProxyType(
    {"score_history": 250, "frozen_fraction": 0.1})
"""The stability-plasticity setting that helped lifelong ML potentials (section 4.4);
read-only (pass ``**STABILITY_PLASTICITY`` or copy it with ``dict(...)``)."""


def recommended(
    regime: Regime,
    *,
    stability_plasticity: bool = False,
    **overrides: Any,
) -> optax.GradientTransformationExtraArgs:
  """CoRe with the paper's recommended hyperparameters for a batch regime.

  Examples:
    >>> import core_optax
    >>> tx = core_optax.recommended("full-batch", stability_plasticity=True)

  Args:
    regime: ``"mini-batch"`` (small batches; ``s_max = 1e-3``),
      ``"intermediate"`` (batches of a few percent of the data; ``1e-2``) or
      ``"full-batch"`` (``1``).
    stability_plasticity: also use ``score_history=250`` and
      ``frozen_fraction=0.1``, for continual / lifelong learning.
    **overrides: any other keyword argument of :func:`core_optax.core`.

  Returns:
    :func:`core_optax.core` with those settings.

  Raises:
    ValueError: for an unknown regime.
  """
  if regime not in MAX_STEP_SIZE:
    raise ValueError(f"regime must be one of {sorted(MAX_STEP_SIZE)}, got {regime!r}.")
  kwargs: dict[str, Any] = dict(STABILITY_PLASTICITY) if stability_plasticity else {}
  kwargs.update(overrides)
  kwargs.setdefault("max_step_size", MAX_STEP_SIZE[regime])
  return core(**kwargs)
