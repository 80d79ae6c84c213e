"""The presets: ``MAX_STEP_SIZE`` per regime and ``recommended``."""

from __future__ import annotations

import pytest

import core_optax
from tests import helpers


def test_recommended_settings():
  assert core_optax.MAX_STEP_SIZE == {"mini-batch": 1e-3, "intermediate": 1e-2, "full-batch": 1.0}
  tx = core_optax.recommended("full-batch", stability_plasticity=True)
  state = tx.init(helpers.params())
  assert state[0].S is not None
  with pytest.raises(ValueError, match="regime must be one of"):
    core_optax.recommended("huge-batch")
