"""CoRe's weight decay, proportional to the size of each weight's update (eq. 7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from core_optax import _checks
from core_optax import _dtypes
from core_optax import _groups

Mask = Any | Callable[[optax.Params], Any] | None
"""``None``, a pytree of bools with the parameters' structure, or ``params -> such a tree``."""


def add_update_scaled_weight_decay(
    weight_decay: _groups.PerGroup = 0.1,
    *,
    groups: _groups.Groups = None,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Adds :math:`d_\chi |D| w` to an uphill update ``D`` (eq. 7).

  After a final sign flip, the weight moves as
  :math:`w \leftarrow (1 - d_\chi |D|) w - D`: the decay is proportional to the
  update's size, so stable weights are decayed less. Weights stay within
  :math:`\pm 1/d_\chi` while :math:`|D| \le 1`. Real and imaginary parts of
  complex leaves are decayed independently, as in the reference.

  Examples:
    >>> import jax.numpy as jnp, core_optax
    >>> params = {"w": jnp.array([2.0]), "shift": jnp.array([-1500.0])}
    >>> tx = core_optax.add_update_scaled_weight_decay(
    ...     0.1, mask={"w": True, "shift": False})
    >>> updates, _ = tx.update({"w": jnp.array([0.5]), "shift": jnp.array([0.5])},
    ...                        tx.init(params), params)
    >>> updates["w"], updates["shift"]
    (Array([0.6], dtype=float32), Array([0.5], dtype=float32))

  Args:
    weight_decay: :math:`d_\chi \ge 0`, a number or ``{group label: number}``.
    groups: weight groups, as in :func:`core_optax.core`.
    mask: which leaves to decay, as ``mask`` of :func:`optax.add_decayed_weights`:
      ``None`` (all), a pytree of bools with the parameters' structure (or a
      prefix of it), or a callable ``params -> such a tree``. Leave out leaves
      of large magnitude whose scale the data sets, such as energy offsets,
      output scales, normalisation parameters and large biases: the decay pulls
      every decayed weight toward :math:`|w| \le 1/d_\chi`.

  Returns:
    A :class:`optax.GradientTransformationExtraArgs` whose ``update`` needs
    ``params`` unless every decay is the number 0.

  Raises:
    ValueError: for a negative decay or a mapping that does not match the labels.
  """
  _checks.check("weight_decay", weight_decay, lambda v: v >= 0, ">= 0", per_group=True)
  grouping = _groups.as_grouping(groups)
  _groups.check_mapping("weight_decay", weight_decay, grouping)

  def init_fn(params: optax.Params) -> optax.EmptyState:
    grouping(params).per_group("weight_decay", weight_decay)
    return optax.EmptyState()

  def update_fn(
      updates: optax.Updates,
      state: optax.EmptyState,
      params: optax.Params | None = None,
      **extra_args: Any,
  ) -> tuple[optax.Updates, optax.EmptyState]:
    del extra_args
    decays = grouping(updates).per_leaf("weight_decay", weight_decay)
    if all(_checks.is_static_zero(d) for d in decays):
      return updates, state
    if params is None:
      raise ValueError(
          "CoRe's weight decay needs the parameters: call update(grads, state, params), "
          "or pass weight_decay=0.0."
      )
    _checks.check_matches("params", params, updates, "the updates")
    decays = jax.tree.unflatten(jax.tree.structure(updates), decays)
    return jax.tree.map(_decayed, updates, params, decays), state

  tx = optax.GradientTransformationExtraArgs(init_fn, update_fn)
  return tx if mask is None else optax.masked(tx, mask)


def _decayed(update: jax.Array, weight: jax.Array, decay: Any) -> jax.Array:
  """``D + d |D| w`` (eq. 7) for one leaf, part by part for complex leaves."""
  if _checks.is_static_zero(decay):
    return update
  u, w = _dtypes.computed(update), _dtypes.computed(weight)
  return _dtypes.stored_like(u + decay * jnp.abs(u) * w, update)  # eq. 7
