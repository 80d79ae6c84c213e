"""Construction-time checks of hyperparameters, and telling static values apart.

A hyperparameter may be a Python number, a concrete array, or (inside
``optax.inject_hyperparams`` under ``jit``) a tracer. Checks run on every value
that is known when the transformation is built and skip tracers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

MIN_EPS = 1e-30
"""XLA flushes float32 numbers below 1.2e-38 to zero, and may fold the bias
correction (>= 2**-24) into ``sqrt(h) + eps``: a smaller eps can become 0 and
turn a zero gradient into 0/0 = NaN (eq. 4)."""

MAX_SCORE_HISTORY = 2**31 - 1
"""``score_history`` is compared with the int32 step counter."""


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


def is_static_zero(value: Any) -> bool:
  """Whether ``value`` is the number 0, known now (a branch that does nothing can go)."""
  return is_python_number(value) and value == 0


def check(
    name: str,
    value: Any,
    ok: Callable[[float], bool],
    allowed: str,
    *,
    per_group: bool = False,
    schedule: bool = False,
) -> None:
  """Raises a ValueError naming ``name``, ``value`` and the allowed range.

  Non-numbers raise a TypeError, except a mapping ``{label: value}`` (checked
  value by value) with ``per_group`` and a callable (not checked) with
  ``schedule``.
  """
  if isinstance(value, Mapping) and per_group:
    for label, v in value.items():
      check(f"{name}[{label!r}]", v, ok, allowed)
    return
  if callable(value) and schedule:
    return
  if isinstance(value, bool) or not isinstance(
      value, (int, float, np.ndarray, np.generic, jax.Array)
  ):
    kind = "a number or a schedule" if schedule else "a number"
    raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}.")
  dtype = value.dtype if hasattr(value, "dtype") else np.result_type(value)
  if (
      np.shape(value) != () or not jnp.issubdtype(dtype, jnp.number)
      or jnp.issubdtype(dtype, jnp.complexfloating)
  ):
    raise TypeError(f"{name} must be a real scalar, got {type(value).__name__} {value!r}.")
  if isinstance(value, (int, np.integer)) and not -(2**31) <= value < 2**31:
    raise ValueError(
        f"{name} must be {allowed}, and an int must fit int32 (JAX's integer), got {value!r}; "
        "pass a float instead."
    )
  v = static_value(value)
  if v is not None and not math.isfinite(v):
    raise ValueError(f"{name} must be finite and {allowed}, got {value!r}.")
  if v is not None and not ok(v):
    raise ValueError(f"{name} must be {allowed}, got {value!r}.")


def check_bool(name: str, value: Any) -> None:
  """Raises a TypeError unless ``value`` is a Python or NumPy bool."""
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}.")


def check_float_leaves(name: str, tree: Any, *, abstract: bool = False) -> None:
  """Raises a TypeError naming the first leaf that is not a float or complex array.

  CoRe's state and arithmetic are floating-point; integer, boolean (and
  ``float0``) leaves are rejected rather than silently skipped: mask them out,
  e.g. with ``optax.masked`` or ``optax.multi_transform`` and ``optax.set_to_zero``.
  Python numbers are rejected too: leaves must be (JAX or NumPy) arrays. With
  ``abstract``, ``jax.ShapeDtypeStruct`` leaves are arrays too: ``init`` needs
  only shapes and dtypes (flax NNX and orbax build abstract states this way).
  """
  arrays = (jax.Array, np.ndarray, np.generic) + ((jax.ShapeDtypeStruct,) if abstract else ())
  try:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  except ValueError as error:  # e.g. dict keys of mixed types, which cannot be sorted
    raise ValueError(f"{name} is not a valid pytree: {error}") from error
  for path, leaf in leaves:
    where = f"{name}{jax.tree_util.keystr(path)}"
    if not isinstance(leaf, arrays):
      raise TypeError(
          f"{where} is {type(leaf).__name__}, not an array; leaves must be (JAX or NumPy) "
          f"arrays{' or jax.ShapeDtypeStructs' if abstract else ''} of floats or complex numbers."
      )
    if not jnp.issubdtype(leaf.dtype, jnp.inexact):
      raise TypeError(
          f"{where} is {type(leaf).__name__} of dtype {leaf.dtype}; CoRe updates float and "
          "complex leaves only. Leave others out with optax.masked or "
          "optax.multi_transform(..., optax.set_to_zero())."
      )


def check_matches(name: str, tree: Any, expected: Any, expected_name: str) -> None:
  """Raises a ValueError if ``tree`` differs from ``expected`` in structure or shapes.

  The message names the first path where they differ.
  """
  ours = jax.tree_util.tree_flatten_with_path(tree)[0]
  theirs = jax.tree_util.tree_flatten_with_path(expected)[0]
  for i in range(max(len(ours), len(theirs))):
    a = ours[i] if i < len(ours) else (None, None)
    b = theirs[i] if i < len(theirs) else (None, None)
    if a[0] != b[0]:
      if a[0] is None:
        detail = f"{name} has no leaf at {jax.tree_util.keystr(b[0])}"
      elif b[0] is None:
        detail = f"{name} has an extra leaf at {jax.tree_util.keystr(a[0])}"
      else:
        detail = (f"{name} has a leaf at {jax.tree_util.keystr(a[0])} where {expected_name} "
                  f"has {jax.tree_util.keystr(b[0])}")
      raise ValueError(
          f"{name} does not match {expected_name}: {detail}. {name} must have the "
          "structure of the parameters given to init."
      )
    if np.shape(a[1]) != np.shape(b[1]):
      raise ValueError(
          f"{name}{jax.tree_util.keystr(a[0])} has shape {np.shape(a[1])}, "
          f"but {expected_name} has shape {np.shape(b[1])} there."
      )


def check_decay_below_inverse_step(weight_decay: Any, max_step_size: Any) -> None:
  """Raises a ValueError unless every decay d < 1 / s_max (paper, eq. 7).

  With ``d * s_max >= 1`` a full step can flip a weight's sign or grow it, and
  weights are no longer bounded by ``1 / d``. Checked only where both are known
  now (numbers, not schedules or tracers).
  """
  s_max = static_value(max_step_size)
  if s_max is None:
    return
  decays = weight_decay.items() if isinstance(weight_decay, Mapping) else [(None, weight_decay)]
  for label, d in decays:
    v = static_value(d)
    if v is not None and not v * s_max < 1:
      name = "weight_decay" if label is None else f"weight_decay[{label!r}]"
      raise ValueError(
          f"{name} must be < 1 / max_step_size (paper, eq. 7), got {d!r} with "
          f"max_step_size={max_step_size!r}."
      )
