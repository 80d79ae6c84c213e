"""CoRe freezing random weights (the controls), and CoRe's state inside an optimizer state.

CoRe freezes, in each update after the first ``t_hist`` (paper eq. 5), every weight of a
group whose importance score is at least ``TIE_TOLERANCE`` times the group's
``floor(p_frozen n)``-th largest score, as the reference does. The benchmarks read that
selection with :func:`core_optax.frozen_mask` on the state an update starts from, which
counts the tie band's excess over ``floor(p_frozen n)``. In the standard run of
``python -m benchmarks continual`` that excess was at most 9 weights (0.05% of the 2,502
or 17,610) at any update; the band grows only where many scores crowd just below the
threshold.

:func:`core_with_random_freezing` is CoRe that freezes the same number of weights chosen
at random instead of by importance: it overwrites CoRe's scores with uniform random
numbers before every update, so CoRe's own selection picks ``floor(p_frozen n)`` random
weights per leaf (continuous scores leave no ties). A fresh choice per update, or one
fixed choice, tells whether the importance ranking is what helps. Its state holds the
random scores the next update reads, so :func:`core_optax.frozen_mask` reads its frozen
weights too.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

import core_optax


def _is_core_state(x: Any) -> bool:
  return isinstance(x, core_optax.ScaleByCoreState)


def core_state(state: optax.OptState) -> core_optax.ScaleByCoreState | None:
  """The first :class:`core_optax.ScaleByCoreState` inside an optimizer state, or ``None``."""
  found = [x for x in jax.tree.leaves(state, is_leaf=_is_core_state) if _is_core_state(x)]
  return found[0] if found else None


class RandomFreezingState(NamedTuple):
  """State of :func:`core_with_random_freezing`.

  Attributes:
    core: CoRe's state, its scores replaced by the random ones the next update will use.
    key: the random key of this run.
  """

  core: optax.OptState
  key: jax.Array


def _with_scores(state: optax.OptState, scores: optax.Updates) -> optax.OptState:
  """``state`` with the scores of its CoRe state replaced."""
  return jax.tree.map(lambda x: x._replace(S=scores) if _is_core_state(x) else x, state,
                      is_leaf=_is_core_state)


def core_with_random_freezing(max_step_size: float, *, frozen_fraction: float,
                              score_history: int, fixed: bool, seed: int = 0,
                              **core_kwargs: Any) -> optax.GradientTransformationExtraArgs:
  """CoRe freezing ``floor(p_frozen n)`` random weights per leaf after ``t_hist`` updates.

  The random stream starts from ``seed`` folded with the bits of the first initial weight,
  so runs with different initial weights (vmapped seeds) freeze different weights.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> tx = core_with_random_freezing(1e-2, frozen_fraction=0.5, score_history=1,
    ...                                fixed=True)
    >>> params = {"w": jnp.ones(4)}
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update({"w": jnp.ones(4)}, state, params)
    >>> int((updates["w"] == 0).sum())  # two of four frozen in the second update
    2

  Args:
    max_step_size: ``s_max`` of :func:`core_optax.core`.
    frozen_fraction: ``p_frozen``, a number in ``[0, 1]``.
    score_history: ``t_hist``: freezing starts with update ``t_hist + 1``.
    fixed: one random choice for the whole run (``True``) or a fresh one each update.
    seed: seed of the random choices.
    **core_kwargs: further arguments of :func:`core_optax.core`.

  Returns:
    A :class:`optax.GradientTransformationExtraArgs` with CoRe's ``update`` signature.
  """
  tx = core_optax.core(max_step_size, score_history=score_history,
                       frozen_fraction=frozen_fraction, **core_kwargs)

  def random_scores(key, like, tau):
    key = key if fixed else jax.random.fold_in(key, tau)
    keys = jax.random.split(key, len(jax.tree.leaves(like)))
    leaves = [jax.random.uniform(k, x.shape, x.dtype)
              for k, x in zip(keys, jax.tree.leaves(like))]
    return jax.tree.unflatten(jax.tree.structure(like), leaves)

  def init_fn(params):
    state = tx.init(params)
    first = jnp.ravel(jax.tree.leaves(params)[0])[0].astype(jnp.float32)
    key = jax.random.fold_in(jax.random.key(seed), jax.lax.bitcast_convert_type(first,
                                                                               jnp.uint32))
    inner = core_state(state)
    return RandomFreezingState(_with_scores(state, random_scores(key, inner.S, inner.tau)),
                               key)

  def update_fn(updates, state, params=None, **extra_args):
    new_updates, inner = tx.update(updates, state.core, params, **extra_args)
    scores = random_scores(state.key, core_state(inner).S, core_state(inner).tau)
    return new_updates, RandomFreezingState(_with_scores(inner, scores), state.key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
