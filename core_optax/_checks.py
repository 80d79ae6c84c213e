"""Construction-time checks of hyperparameters, and telling static values apart.

A hyperparameter may be a Python number, a concrete array, or (inside
``optax.inject_hyperparams`` under ``jit``) a tracer. Checks run on every value
that is known when the transformation is built and skip tracers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np


def static_value(value: Any) -> float | None:
  """``value`` as a float if it is known now, else ``None`` (tracers, schedules)."""
  if callable(value) or isinstance(value, jax.core.Tracer):
    return None
  return float(np.asarray(value))


def is_python_number(value: Any) -> bool:
  """Whether ``value`` may decide the state's structure (not an array)."""
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
      value, bool
  )


def check(name: str, value: Any, ok: Callable[[float], bool], allowed: str) -> None:
  """Raises a ValueError naming ``name``, ``value`` and the allowed range.

  A mapping is checked value by value.
  """
  if isinstance(value, Mapping):
    for label, v in value.items():
      check(f"{name}[{label!r}]", v, ok, allowed)
    return
  if isinstance(value, bool) or not (
      callable(value) or isinstance(value, (int, float, np.ndarray, np.generic, jax.Array))
  ):
    raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
  v = static_value(value)
  if v is not None and not ok(v):
    raise ValueError(f"{name} must be {allowed}, got {value!r}.")
