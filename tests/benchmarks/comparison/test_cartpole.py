"""CartPole in JAX against Gymnasium's CartPole-v1, and the episode machinery of NR/RA."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.comparison.tasks import nr
from benchmarks.comparison.tasks.common import cartpole
from benchmarks.comparison.tasks.common import episodes


def _gym_cartpole(seed):
  env = gym.make("CartPole-v1").unwrapped
  observation, _ = env.reset(seed=seed)
  return env, observation


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_step_matches_gymnasium(seed):
  env, observation = _gym_cartpole(seed)
  rng = np.random.default_rng(seed)
  step = jax.jit(cartpole.step)
  for _ in range(200):
    state = jnp.asarray(observation, jnp.float32)
    env.state = np.asarray(state, np.float64)  # both start from the same float32 state
    action = int(rng.integers(2))
    expected, reward, terminated, truncated, _ = env.step(action)
    got, fell = step(state, jnp.int32(action))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert bool(fell) == terminated and reward == 1.0 and not truncated
    if terminated:
      _, observation = None, env.reset(seed=seed + 100)[0]
    else:
      observation = expected


@pytest.mark.parametrize("seed", [3, 4])
def test_whole_episode_matches_gymnasium(seed):
  env, observation = _gym_cartpole(seed)
  state = jnp.asarray(observation, jnp.float32)
  rng = np.random.default_rng(seed)
  for t in range(1, 500):
    action = int(rng.integers(2))
    observation, _, terminated, _, _ = env.step(action)
    state, fell = cartpole.step(state, jnp.int32(action))
    np.testing.assert_allclose(state, observation, rtol=1e-4, atol=1e-4)
    assert bool(fell) == terminated, f"step {t}"
    if terminated:
      break
  assert terminated


def test_reset_draws_from_the_gymnasium_range():
  states = jax.vmap(cartpole.reset)(jax.random.split(jax.random.key(0), 1000))
  assert states.shape == (1000, 4)
  assert float(jnp.abs(states).max()) <= 0.05 and float(jnp.abs(states).max()) > 0.049


def test_normalised_returns_match_the_pytorch_example():
  length, max_steps = 7, 10
  returns, r = [], 0.0
  for _ in range(length):  # the example's loop over reversed rewards
    r = 1.0 + 0.99 * r
    returns.insert(0, r)
  returns = np.array(returns)
  expected = (returns - returns.mean()) / (returns.std(ddof=1) + np.finfo(np.float32).eps)
  got = episodes.normalised_returns(jnp.int32(length), max_steps)
  np.testing.assert_allclose(got[:length], expected, atol=1e-5)
  np.testing.assert_array_equal(got[length:], 0.0)


def test_play_records_the_episode_the_policy_acted_in():
  params = nr.init(jax.random.key(0))
  ep = episodes.play(nr.policy, nr.draw_mask, params, jax.random.key(1), 100,
                      skip=jnp.bool_(False))
  n = int(ep.length)
  assert 5 < n <= 100
  # Replaying the recorded states and actions reproduces the episode's dynamics.
  for t in range(n - 1):
    nxt, fell = cartpole.step(ep.observations[t], ep.actions[t])
    np.testing.assert_allclose(nxt, ep.observations[t + 1], rtol=1e-5, atol=1e-6)
    assert not bool(fell)
  assert bool(cartpole.step(ep.observations[n - 1], ep.actions[n - 1])[1])
  # Dropout keeps 40% of the units.
  assert 0.3 < float(ep.noise[:n].mean()) < 0.5


def test_skipped_episode_has_no_steps():
  params = nr.init(jax.random.key(0))
  ep = episodes.play(nr.policy, nr.draw_mask, params, jax.random.key(1), 100,
                      skip=jnp.bool_(True))
  assert int(ep.length) == 0
