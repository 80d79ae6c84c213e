"""Episodic policy-gradient training on CartPole, all seeds vmapped.

Shared by NR (REINFORCE) and RA (actor-critic), after the PyTorch examples: one
update per episode from the whole episode's normalised discounted returns; the
running reward starts at 10 and follows ``0.05 * episode_reward + 0.95 *
running``; a run is solved once the running reward exceeds 475, and its error
is the number of episodes that took. A seed stops training once solved.

Episodes run in a ``lax.while_loop`` until the pole falls or ``max_steps``
(the cap the tasks document in their cuts). The trajectory is kept as
observations, actions and the policy's noise (NR's dropout masks); the loss
replays it, so the gradient flows through the masks used while acting. Seeds
step in lock step (a named vmap axis lets them agree when all poles have
fallen), and the loss is taken over the trajectory buffer cut to the longest
episode, so short episodes stay cheap.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.comparison.task import Mode
from benchmarks.comparison.task import TaskResult
from benchmarks.comparison.tasks.common import cartpole

GAMMA = 0.99
SOLVED_REWARD = 475.0
RETURN_EPS = float(np.finfo(np.float32).eps)
_SEEDS = "seeds"

# policy(params, observation, noise) -> action logits.
Policy = Callable[[optax.Params, jax.Array, jax.Array], jax.Array]
# draw_noise(key) -> the noise the policy acts with at one step.
DrawNoise = Callable[[jax.Array], jax.Array]


class Episode(NamedTuple):
  """One episode, padded to ``max_steps``.

  Attributes:
    observations: ``[max_steps, 4]`` states the agent acted on.
    actions: ``[max_steps]`` actions taken.
    noise: ``[max_steps, ...]`` the policy's noise at each step.
    length: number of steps (= the episode reward).
  """

  observations: jax.Array
  actions: jax.Array
  noise: jax.Array
  length: jax.Array


class EpisodeSpec(NamedTuple):
  """How long NR and RA train and where episodes are cut.

  Attributes:
    max_steps: cap on an episode's length.
    max_episodes: episodes before a run counts as unsolved (its error).
    block: episodes per evaluation column of the result.
  """

  max_steps: int
  max_episodes: int
  block: int


# Episodes end when the pole falls or after 9999 steps (the examples' loop
# bound); quick mode caps them at 1000 steps.
SPECS: dict[Mode, EpisodeSpec] = {
    "quick": EpisodeSpec(max_steps=1000, max_episodes=200, block=20),
    "standard": EpisodeSpec(max_steps=9999, max_episodes=1000, block=50),
    "full": EpisodeSpec(max_steps=9999, max_episodes=2500, block=100),
}

CUTS: dict[Mode, str] = {
    "quick": "episodes capped at 1000 steps (example: 9999), unsolved after "
             "200 episodes (error 200; paper: 2500)",
    "standard": "unsolved after 1000 episodes (error 1000; paper: 2500)",
    "full": "none",
}
"""What :data:`SPECS` cuts relative to the paper, for ``Task.cuts``."""


# loss(params, episode, normalised returns) -> scalar.
EpisodeLoss = Callable[[optax.Params, Episode, jax.Array], jax.Array]


def _any(x: jax.Array, axis_name: str | None) -> jax.Array:
  """Whether ``x`` holds for any seed (for this seed outside a named vmap)."""
  if axis_name is None:
    return x
  return jax.lax.psum(x.astype(jnp.int32), axis_name) > 0


def play(policy: Policy, draw_noise: DrawNoise, params: optax.Params,
         key: jax.Array, max_steps: int, skip: jax.Array,
         axis_name: str | None = None) -> Episode:
  """Plays one episode with actions sampled from ``policy``; none if ``skip``.

  Under ``jax.vmap(..., axis_name=axis_name)`` the seeds step in lock step
  until every seed's pole has fallen, so the step counter stays unbatched and
  the trajectory buffers are written in place; a finished seed's state freezes.
  """
  k_reset, k_steps = jax.random.split(key)
  noise_shape = jax.eval_shape(draw_noise, k_steps)
  start = Episode(
      observations=jnp.zeros((max_steps, 4)),
      actions=jnp.zeros((max_steps,), jnp.int32),
      noise=jnp.zeros((max_steps, *noise_shape.shape), noise_shape.dtype),
      length=jnp.int32(0))

  def cond(carry):
    t, _, _, done = carry
    return _any(~done, axis_name) & (t < max_steps)

  def body(carry):
    t, ep, state, done = carry
    k_noise, k_action = jax.random.split(jax.random.fold_in(k_steps, t))
    noise = draw_noise(k_noise)
    action = jax.random.categorical(k_action, policy(params, state, noise))
    next_state, fell = cartpole.step(state, action)
    length = ep.length + jnp.where(done, 0, 1)
    ep = Episode(ep.observations.at[t].set(state), ep.actions.at[t].set(action),
                 ep.noise.at[t].set(noise), length)
    next_state = jnp.where(done, state, next_state)
    return t + 1, ep, next_state, done | fell | (length >= max_steps)

  start = (jnp.int32(0), start, cartpole.reset(k_reset), skip)
  _, ep, _, _ = jax.lax.while_loop(cond, body, start)
  return ep


def episode_grads(loss: EpisodeLoss, params: optax.Params, ep: Episode,
                  axis_name: str | None = None) -> optax.Updates:
  """Gradient of ``loss`` over the episode, cut to the longest seed's length.

  The buffers are sliced to the smallest power of four (at least 64, at most the
  buffer) that holds every seed's episode, so short episodes cost little.
  """
  max_steps = ep.actions.shape[0]
  sizes = [n for n in (4**k for k in range(3, 8)) if n < max_steps] + [max_steps]
  longest = ep.length
  if axis_name is not None:
    longest = jax.lax.pmax(longest, axis_name)
  index = jnp.searchsorted(jnp.array(sizes), longest)

  def grads_over(size):
    def f(params, ep):
      cut = Episode(ep.observations[:size], ep.actions[:size], ep.noise[:size],
                    ep.length)
      return jax.grad(loss)(params, cut, normalised_returns(ep.length, size))
    return f

  return jax.lax.switch(index, [grads_over(n) for n in sizes], params, ep)


def normalised_returns(length: jax.Array, max_steps: int) -> jax.Array:
  """Discounted returns of reward 1 per step, ``(R - mean) / (std + eps)``.

  Padding steps (index >= length) get 0. The standard deviation is the unbiased
  one, as ``torch.Tensor.std``.
  """
  t = jnp.arange(max_steps)
  valid = t < length
  returns = jnp.where(valid, (1 - GAMMA**(length - t)) / (1 - GAMMA), 0.0)
  mean = returns.sum() / jnp.maximum(length, 1)
  var = jnp.where(valid, (returns - mean)**2, 0.0).sum() / jnp.maximum(length - 1, 1)
  return jnp.where(valid, (returns - mean) / (jnp.sqrt(var) + RETURN_EPS), 0.0)


class _TaskPrograms(NamedTuple):
  """The compiled, seed-vmapped programs of a task that no optimizer enters."""

  start: Callable  # (seeds) -> (play keys, params, running reward, solved at, episode).
  episode: Callable  # (params, play keys, running, solved_at, i, end) -> (grads, active,
  #   running, solved_at, i, whether any seed plays on in this block).
  finish_block: Callable  # (solved_at, end) -> (error, episode counter, any seed unsolved).


@functools.lru_cache(maxsize=8)
def _task_programs(init: Callable[[jax.Array], optax.Params], policy: Policy,
                   draw_noise: DrawNoise, loss: EpisodeLoss,
                   spec: EpisodeSpec) -> _TaskPrograms:
  """Builds the task's programs; kept while the same task runs again with another optimizer."""

  @jax.jit
  @jax.vmap
  def start(seed):
    k_init, k_play = jax.random.split(jax.random.key(seed, impl="rbg"))
    return k_play, init(k_init), jnp.float32(10.0), jnp.int32(0), jnp.int32(0)

  def one_episode(params, k_play, running, solved_at, i, end):
    # A seed plays while it is unsolved in the current block; a solved seed's episode is
    # skipped, and its new values are dropped below (what a batched while_loop does).
    active = (i < end) & (solved_at == 0)
    ep = play(policy, draw_noise, params, jax.random.fold_in(k_play, i),
              spec.max_steps, skip=solved_at > 0, axis_name=_SEEDS)
    grads = episode_grads(loss, params, ep, axis_name=_SEEDS)
    new_running = 0.05 * ep.length + 0.95 * running
    new_solved_at = jnp.where(new_running > SOLVED_REWARD, i + 1, solved_at)
    return (grads, active, jnp.where(active, new_running, running),
            jnp.where(active, new_solved_at, solved_at), jnp.where(active, i + 1, i))

  @jax.jit
  def episode(params, k_play, running, solved_at, i, end):
    grads, active, running, solved_at, i = jax.vmap(
        one_episode, in_axes=(0, 0, 0, 0, 0, None), axis_name=_SEEDS)(
            params, k_play, running, solved_at, i, end)
    return grads, active, running, solved_at, i, jnp.any((i < end) & (solved_at == 0))

  @jax.jit
  def finish_block(solved_at, end):
    error = jnp.where(solved_at > 0, solved_at, spec.max_episodes).astype(jnp.float32)
    return error, jnp.full_like(solved_at, end), jnp.any(solved_at == 0)

  return _TaskPrograms(start, episode, finish_block)


def train(tx: optax.GradientTransformation, seeds: jax.Array, *,
          init: Callable[[jax.Array], optax.Params], policy: Policy,
          draw_noise: DrawNoise, loss: EpisodeLoss, spec: EpisodeSpec) -> TaskResult:
  """Trains one agent per seed, all seeds vmapped.

  An episode is two programs, as a step of the image tasks (:mod:`.image`): playing it and
  its gradients, which depend on the task alone, and the update, which depends on the
  optimizer alone; a Python loop drives them over the episodes. The task's program is
  compiled once per task and kept for every optimizer after the first (in this process, and
  across runs in the persistent compilation cache); one program of everything compiled the
  rollout again for every optimizer. Seeds step in lock step: an episode runs while any seed
  is unsolved in the current block, and the solved seeds keep their state.

  Returns:
    errors ``[n_seeds, n_blocks]``: the episodes needed to solve if solved by
    the end of that block, else ``spec.max_episodes``; extras
    ``running_reward`` at the end of each block.
  """
  n_blocks = -(-spec.max_episodes // spec.block)
  task = _task_programs(init, policy, draw_noise, loss, spec)
  init_optimizer = jax.jit(jax.vmap(tx.init))

  @jax.jit
  @jax.vmap
  def apply(grads, opt_state, params, active):
    updates, new_state = tx.update(grads, opt_state, params)
    new = (optax.apply_updates(params, updates), new_state)
    return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, (params, opt_state))

  k_play, params, running, solved_at, i = task.start(jnp.asarray(seeds))
  opt_state = init_optimizer(params)
  errors, runnings, unsolved = [], [], True
  for b in range(n_blocks):
    end = np.int32(min((b + 1) * spec.block, spec.max_episodes))
    more = unsolved
    while more:
      grads, active, running, solved_at, i, more = task.episode(params, k_play, running,
                                                                solved_at, i, end)
      params, opt_state = apply(grads, opt_state, params, active)
      more = bool(more)
    error, i, unsolved = task.finish_block(solved_at, end)
    errors.append(error)
    runnings.append(running)
    unsolved = bool(unsolved)
  return TaskResult(errors=np.stack([np.asarray(e) for e in errors], axis=1),
                    extras={"running_reward": np.stack([np.asarray(r) for r in runnings],
                                                       axis=1)})
