"""Optax transformations that reproduce torch optimizers optax has no exact copy of.

``optax.rprop`` (0.2.8) applies the previous step's update (its first update is zero)
and skips the step-size clamp when ``g * g_prev == 0``; ``optax.adagrad`` starts its
accumulator at 0.1 and adds ``eps`` inside the square root. The transformations here
follow ``torch.optim.Rprop`` and ``torch.optim.Adagrad`` (PyTorch 2.x) step for step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class ScaleByTorchRpropState(NamedTuple):
  """State of :func:`scale_by_torch_rprop`."""

  step_sizes: optax.Updates
  prev_grads: optax.Updates


def scale_by_torch_rprop(
    initial_step_size: float,
    *,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> optax.GradientTransformation:
  """Resilient backpropagation as ``torch.optim.Rprop`` computes it.

  Per weight: the step size is multiplied by ``eta_plus`` or ``eta_minus`` by the sign
  of ``g * g_prev`` (unchanged when it is 0) and always clamped to
  ``[min_step_size, max_step_size]``; where the sign flipped the gradient is set to 0
  (no step, and it is remembered as 0); the update is ``-step_size * sign(g)``.

  Args:
    initial_step_size: the step size every weight starts with (torch's ``lr``).
    eta_minus: decrease factor after a sign flip.
    eta_plus: increase factor for a constant sign.
    min_step_size: lower bound of the step sizes.
    max_step_size: upper bound of the step sizes.

  Returns:
    The transformation; its updates are to be added to the parameters.
  """

  def init_fn(params):
    return ScaleByTorchRpropState(
        step_sizes=optax.tree.full_like(params, initial_step_size),
        prev_grads=optax.tree.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    products = jax.tree.map(lambda g, prev: g * prev, updates, state.prev_grads)
    step_sizes = jax.tree.map(
        lambda s, p: jnp.clip(s * jnp.where(p > 0, eta_plus, jnp.where(p < 0, eta_minus, 1.0)),
                              min_step_size, max_step_size),
        state.step_sizes, products)
    grads = jax.tree.map(lambda g, p: jnp.where(p < 0, jnp.zeros_like(g), g), updates, products)
    updates = jax.tree.map(lambda g, s: -s * jnp.sign(g), grads, step_sizes)
    return updates, ScaleByTorchRpropState(step_sizes=step_sizes, prev_grads=grads)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_torch_rss(eps: float = 1e-10) -> optax.GradientTransformation:
  """Divides by the root of the summed squared gradients, ``eps`` outside the root.

  Args:
    eps: added to the root, as in ``torch.optim.Adagrad``.

  Returns:
    The transformation; the accumulator starts at 0.
  """

  def init_fn(params):
    return optax.ScaleByRssState(sum_of_squares=optax.tree.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    sum_of_squares = jax.tree.map(lambda g, s: s + g * g, updates, state.sum_of_squares)
    updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, sum_of_squares)
    return updates, optax.ScaleByRssState(sum_of_squares=sum_of_squares)

  return optax.GradientTransformation(init_fn, update_fn)


def torch_rprop(max_step_size: float, initial_step_size: float = 1e-3,
                **kwargs) -> optax.GradientTransformation:
  """RPROP with the paper's protocol: ``s_max`` scanned, ``s^0 = 1e-3``."""
  return scale_by_torch_rprop(initial_step_size, max_step_size=max_step_size, **kwargs)


def torch_adagrad(learning_rate: float, eps: float = 1e-10) -> optax.GradientTransformation:
  """``torch.optim.Adagrad(lr=learning_rate)`` at its defaults."""
  return optax.chain(scale_by_torch_rss(eps), optax.scale_by_learning_rate(learning_rate))
