"""CoRe's weight decay, proportional to the size of each weight's update (eq. 7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from core_optax import _checks
from core_optax import _groups


def _is_static_zero(value: Any) -> bool:
  return _checks.is_python_number(value) and value == 0


def add_update_scaled_weight_decay(
    weight_decay: _groups.PerGroup = 0.1,
    *,
    groups: _groups.Groups = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Adds :math:`d_\chi |D| w` to an uphill update ``D`` (eq. 7).

  After a final sign flip, the weight moves as
  :math:`w \leftarrow (1 - d_\chi |D|) w - D`: the decay is proportional to the
  update's size, so stable weights are decayed less. Weights stay within
  :math:`\pm 1/d_\chi` while :math:`|D| \le 1`. Real and imaginary parts of
  complex leaves are decayed independently, as in the reference.

  Args:
    weight_decay: :math:`d_\chi \ge 0`, a number or ``{group label: number}``.
    groups: weight groups, as in :func:`core_optax.core`.

  Returns:
    A :class:`optax.GradientTransformationExtraArgs` whose ``update`` needs
    ``params`` unless every decay is the number 0.

  Raises:
    ValueError: for a negative decay or a mapping that does not match the labels.
  """
  _checks.check("weight_decay", weight_decay, lambda v: v >= 0, ">= 0", per_group=True)
  if isinstance(weight_decay, Mapping) and groups is None:
    raise ValueError("weight_decay is a mapping {label: decay}; it needs groups=...")
  _groups.check_mapping("weight_decay", weight_decay, _groups.static_labels(groups))

  def init_fn(params: optax.Params) -> optax.EmptyState:
    _groups.per_leaf("weight_decay", weight_decay, _groups.leaf_labels(groups, params), groups)
    return optax.EmptyState()

  def update_fn(
      updates: optax.Updates,
      state: optax.EmptyState,
      params: optax.Params | None = None,
      **extra_args: Any,
  ) -> tuple[optax.Updates, optax.EmptyState]:
    del extra_args
    leaves, treedef = jax.tree.flatten(updates)
    decays = _groups.per_leaf("weight_decay", weight_decay, _groups.leaf_labels(groups, updates),
                              groups)
    if all(_is_static_zero(d) for d in decays):
      return updates, state
    if params is None:
      raise ValueError(
          "CoRe's weight decay needs the parameters: call update(grads, state, params), "
          "or pass weight_decay=0.0."
      )
    _checks.check_matches("params", params, updates, "the updates")
    weights = treedef.flatten_up_to(params)

    def decayed(d, u, w):
      if _is_static_zero(d):
        return u
      if jnp.iscomplexobj(u):
        re = u.real + d * jnp.abs(u.real) * w.real
        im = u.imag + d * jnp.abs(u.imag) * w.imag
        return jax.lax.complex(re, im).astype(u.dtype)
      # In at least float32: a decay d > 65504 (s_max < 1/65504) is inf in float16.
      dtype = jnp.promote_types(jnp.result_type(u, w), jnp.float32)
      x = u.astype(dtype)
      return (x + d * jnp.abs(x) * w.astype(dtype)).astype(u.dtype)  # eq. 7

    return treedef.unflatten(list(map(decayed, decays, leaves, weights))), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
