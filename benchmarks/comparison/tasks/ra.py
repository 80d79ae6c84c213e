"""RA: actor-critic on CartPole (PyTorch examples, reinforcement_learning/actor_critic.py).

Shared dense 4 -> 128 with ReLU, an action head 128 -> 2 (softmax) and a value
head 128 -> 1. Loss ``sum(-log pi(a|s) * (R - V(s)))`` with the value detached,
plus ``sum(smooth_l1(V(s), R))`` (beta 1), with normalised discounted returns
(gamma 0.99); one update per episode. Regime "intermediate", as NR's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from benchmarks.comparison.task import Mode
from benchmarks.comparison.task import Task
from benchmarks.comparison.task import TaskResult
from benchmarks.comparison.tasks.common import episodes
from benchmarks.comparison.tasks.common.layers import init_linear
from benchmarks.comparison.tasks.common.layers import linear

HIDDEN = 128


def init(key: jax.Array) -> optax.Params:
  k1, k2, k3 = jax.random.split(key, 3)
  return {"affine1": init_linear(k1, 4, HIDDEN),
          "action_head": init_linear(k2, HIDDEN, 2),
          "value_head": init_linear(k3, HIDDEN, 1)}


def actor_critic(params: optax.Params,
                 observation: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Action logits and the state value."""
  h = jax.nn.relu(linear(params["affine1"], observation))
  return linear(params["action_head"], h), linear(params["value_head"], h)[..., 0]


def policy(params: optax.Params, observation: jax.Array, noise: jax.Array) -> jax.Array:
  """Action logits; the actor-critic acts without noise."""
  del noise
  return actor_critic(params, observation)[0]


def no_noise(key: jax.Array) -> jax.Array:
  del key
  return jnp.zeros((0,))


def loss(params: optax.Params, episode: episodes.Episode,
         returns: jax.Array) -> jax.Array:
  """Policy loss with the detached value as baseline plus smooth-L1 value loss."""
  logits, values = actor_critic(params, episode.observations)
  log_pi = jnp.take_along_axis(jax.nn.log_softmax(logits),
                               episode.actions[:, None], axis=1)[:, 0]
  valid = jnp.arange(returns.shape[0]) < episode.length
  advantage = returns - jax.lax.stop_gradient(values)
  value_loss = optax.huber_loss(values, returns, delta=1.0)
  return jnp.sum(jnp.where(valid, -log_pi * advantage + value_loss, 0.0))


def run(tx: optax.GradientTransformation, seeds: jax.Array, mode: Mode) -> TaskResult:
  return episodes.train(tx, seeds, init=init, policy=policy, draw_noise=no_noise,
                         loss=loss, spec=episodes.SPECS[mode])


TASK = Task(
    name="RA",
    regime="intermediate",
    error_name="episodes to solve",
    run=run,
    cuts=episodes.CUTS,
)
