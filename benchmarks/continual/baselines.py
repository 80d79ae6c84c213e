"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017) as an optax transformation.

SI is the continual-learning method CoRe's importance scores are modelled on (paper,
section 2): each weight's contribution to the decrease of the loss along its path,
``omega_k = -sum_t g_k^t * (theta_k^{t+1} - theta_k^t)``, is consolidated at every task
boundary into an importance ``Omega_k += max(omega_k, 0) / (Delta_k^2 + xi)``, with
``Delta_k`` the weight's change over the task; later tasks then train on
``L + c * sum_k Omega_k (theta_k - theta*_k)^2``, ``theta*`` the weights at the boundary.

:func:`add_synaptic_intelligence` adds that penalty's gradient to the gradients it
receives, so ``optax.chain(add_synaptic_intelligence(c), optax.adam(lr))`` is Adam with
SI. The task boundary is an extra argument of ``update``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax


class SynapticIntelligenceState(NamedTuple):
  """State of :func:`add_synaptic_intelligence`; every tree has the parameters' structure.

  Attributes:
    path: ``omega``, the path integral of the current task so far.
    importance: ``Omega``, the importance consolidated at the task boundaries so far.
    anchor: ``theta*``, the weights at the last task boundary (at ``init`` before it).
    previous_params: the weights of the previous ``update``.
    previous_grads: the task gradients of the previous ``update`` (without the penalty).
  """

  path: optax.Updates
  importance: optax.Updates
  anchor: optax.Params
  previous_params: optax.Params
  previous_grads: optax.Updates


def add_synaptic_intelligence(strength: chex.Numeric, damping: chex.Numeric = 0.1
                              ) -> optax.GradientTransformationExtraArgs:
  """Adds the gradient of Synaptic Intelligence's quadratic penalty to the gradients.

  Each ``update`` first adds the previous step to the path integral (``-G^{t-1} *
  (theta^t - theta^{t-1})``, with the task gradient ``G`` it received then); with
  ``task_boundary=True`` it then consolidates the importance, moves the anchor to the
  current weights and restarts the path integral, before adding ``2 c Omega (theta -
  theta*)`` to the gradients. Negative path integrals (weights whose path raised the
  loss) contribute no importance, our choice for a penalty that stays bounded below.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> tx = optax.chain(add_synaptic_intelligence(1.0), optax.sgd(0.1))
    >>> params = {"w": jnp.array([1.0])}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.array([2.0])}, state, params,
    ...                            task_boundary=False)
    >>> updates["w"]  # no importance yet: plain SGD
    Array([-0.2], dtype=float32)

  Args:
    strength: ``c >= 0``, the penalty's weight (a number, checked, or an array).
    damping: ``xi > 0``, keeps the importance finite for weights that barely moved.

  Returns:
    A :class:`optax.GradientTransformationExtraArgs` whose ``update`` needs ``params``
    and takes ``task_boundary`` (a bool, traced or not; ``True`` at the first update of
    every task after the first).

  Raises:
    ValueError: for a negative ``strength`` or a ``damping`` that is not positive.

  References:
    Zenke, Poole & Ganguli, `Continual Learning Through Synaptic Intelligence
    <https://proceedings.mlr.press/v70/zenke17a.html>`_, ICML 2017.
  """
  if isinstance(strength, (int, float)) and not strength >= 0:
    raise ValueError(f"strength must be >= 0, got {strength!r}.")
  if isinstance(damping, (int, float)) and not damping > 0:
    raise ValueError(f"damping must be > 0, got {damping!r}.")

  def init_fn(params: optax.Params) -> SynapticIntelligenceState:
    zeros = optax.tree.zeros_like(params)
    return SynapticIntelligenceState(path=zeros, importance=zeros, anchor=params,
                                     previous_params=params, previous_grads=zeros)

  def update_fn(updates: optax.Updates, state: SynapticIntelligenceState,
                params: optax.Params | None = None, *, task_boundary: chex.Numeric = False,
                **extra_args: Any) -> tuple[optax.Updates, SynapticIntelligenceState]:
    del extra_args
    if params is None:
      raise ValueError("add_synaptic_intelligence needs params in update.")
    boundary = jnp.asarray(task_boundary, bool)
    path = jax.tree.map(lambda w, g, p, q: w - g * (p - q), state.path, state.previous_grads,
                        params, state.previous_params)
    consolidated = jax.tree.map(
        lambda imp, w, p, a: imp + jnp.maximum(w, 0) / ((p - a)**2 + damping),
        state.importance, path, params, state.anchor)
    importance = jax.tree.map(lambda new, old: jnp.where(boundary, new, old), consolidated,
                              state.importance)
    anchor = jax.tree.map(lambda p, a: jnp.where(boundary, p, a), params, state.anchor)
    path = jax.tree.map(lambda w: jnp.where(boundary, jnp.zeros_like(w), w), path)
    penalized = jax.tree.map(lambda g, imp, p, a: g + 2 * strength * imp * (p - a),
                             updates, importance, params, anchor)
    return penalized, SynapticIntelligenceState(
        path=path, importance=importance, anchor=anchor, previous_params=params,
        previous_grads=updates)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def synaptic_intelligence_penalty(state: SynapticIntelligenceState, params: optax.Params,
                                  strength: float) -> jax.Array:
  """``c * sum_k Omega_k (theta_k - theta*_k)^2``, the penalty whose gradient is added."""
  terms = jax.tree.map(lambda imp, p, a: jnp.sum(imp * (p - a)**2), state.importance, params,
                       state.anchor)
  return strength * sum(jax.tree.leaves(terms))
