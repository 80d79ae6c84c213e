"""CartPole-v1 dynamics in JAX, identical to Gymnasium's, for NR and RA.

Gymnasium steps in float64 and hands out float32 observations; this version
steps in the state's own dtype (float32 in the tasks). Unlike the ``gym.make``
environment it never truncates: episodes end only when the pole falls, as in the
PyTorch examples (where the only cap is their loop bound of 9999 steps).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

GRAVITY = 9.8
CART_MASS = 1.0
POLE_MASS = 0.1
TOTAL_MASS = CART_MASS + POLE_MASS
HALF_LENGTH = 0.5
POLE_MASS_LENGTH = POLE_MASS * HALF_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
RESET_BOUND = 0.05


def reset(key: jax.Array) -> jax.Array:
  """Draws a start state ``(x, x_dot, theta, theta_dot)`` from U(-0.05, 0.05)."""
  return jax.random.uniform(key, (4,), minval=-RESET_BOUND, maxval=RESET_BOUND)


def step(state: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One Euler step of the cart-pole; returns the next state and whether it fell.

  The reward is 1 for every step, the last included, so it is not returned.

  Args:
    state: ``(x, x_dot, theta, theta_dot)``.
    action: 0 pushes left, 1 pushes right.

  Returns:
    The next state and the boolean ``terminated``.
  """
  x, x_dot, theta, theta_dot = state
  force = jnp.where(action == 1, FORCE_MAG, -FORCE_MAG)
  cos_theta, sin_theta = jnp.cos(theta), jnp.sin(theta)
  temp = (force + POLE_MASS_LENGTH * theta_dot**2 * sin_theta) / TOTAL_MASS
  theta_acc = (GRAVITY * sin_theta - cos_theta * temp) / (
      HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos_theta**2 / TOTAL_MASS))
  x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos_theta / TOTAL_MASS
  next_state = jnp.stack([
      x + TAU * x_dot,
      x_dot + TAU * x_acc,
      theta + TAU * theta_dot,
      theta_dot + TAU * theta_acc,
  ]).astype(state.dtype)
  terminated = (jnp.abs(next_state[0]) > X_THRESHOLD) | (
      jnp.abs(next_state[2]) > THETA_THRESHOLD)
  return next_state, terminated
