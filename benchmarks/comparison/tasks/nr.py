"""NR: REINFORCE on CartPole (PyTorch examples, reinforcement_learning/reinforce.py).

Policy: dense 4 -> 128, dropout 0.6 (active while acting, before the ReLU),
dense 128 -> 2, softmax. Loss ``sum(-log pi(a|s) * R)`` over the episode with
normalised discounted returns (gamma 0.99), one update per episode.

Regime "intermediate" (our choice; the paper does not say): each update sees a
whole episode, tens to thousands of correlated steps, and a run has at most
2500 updates, so it sits between small mini-batches and full-batch learning;
the examples' tuned Adam learning rates (1e-2 here, 3e-2 for RA) are also
above the usual mini-batch value.
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
DROPOUT = 0.6

def init(key: jax.Array) -> optax.Params:
  k1, k2 = jax.random.split(key)
  return {"affine1": init_linear(k1, 4, HIDDEN), "affine2": init_linear(k2, HIDDEN, 2)}


def draw_mask(key: jax.Array) -> jax.Array:
  """The dropout mask of one step: which hidden units are kept."""
  return jax.random.bernoulli(key, 1 - DROPOUT, (HIDDEN,))


def policy(params: optax.Params, observation: jax.Array, keep: jax.Array) -> jax.Array:
  """Action logits with dropout mask ``keep`` (torch scales kept units by 1/0.4)."""
  h = linear(params["affine1"], observation)
  h = jnp.where(keep, h / (1 - DROPOUT), 0.0)
  return linear(params["affine2"], jax.nn.relu(h))


def loss(params: optax.Params, episode: episodes.Episode,
         returns: jax.Array) -> jax.Array:
  """``sum(-log pi(a_t | s_t) * R_t)``, replaying the episode's dropout masks."""
  logits = jax.vmap(policy, (None, 0, 0))(params, episode.observations, episode.noise)
  log_pi = jnp.take_along_axis(jax.nn.log_softmax(logits),
                               episode.actions[:, None], axis=1)[:, 0]
  return -jnp.sum(log_pi * returns)


def run(tx: optax.GradientTransformation, seeds: jax.Array, mode: Mode) -> TaskResult:
  return episodes.train(tx, seeds, init=init, policy=policy, draw_noise=draw_mask,
                         loss=loss,
                         spec=episodes.SPECS[mode])


TASK = Task(
    name="NR",
    regime="intermediate",
    error_name="episodes to solve",
    run=run,
    cuts=episodes.CUTS,
)
