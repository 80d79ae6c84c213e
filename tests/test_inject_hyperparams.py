"""``optax.inject_hyperparams(core)`` is ``core``: same updates, same state, values changeable.

``inject_hyperparams`` turns every number into an array and leaves ``None``,
bools and (as ``static_args``) callables alone, so the state's structure may hang
on ``None`` only (``b2=None``: no ``h``; ``score_history=None``: no ``S``). These
tests cover every pair of values of the arguments that decide structure or
per-group values (an all-pairs design: 9 of the 72 combinations, every one of which
passed when all ran), sign mode included (optax's own suite,
``tests/test_optax_contract.py``, cannot run sign mode: it stalls on Rosenbrock's
function).
"""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax
from tests import helpers

STEPS = 5  # past score_history = 3: freezing is active in the last two updates
LABELS = {"dense": {"kernel": "a", "bias": "b"}, "scale": "a"}
MASK = {"dense": {"kernel": True, "bias": False}, "scale": True}


def _labels_by_name(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: "b" if "bias" in jax.tree_util.keystr(path) else "a", params)


FACTORS = {"b2": [0.99, None], "history": [None, 3], "groups": ["none", "pytree", "callable"],
           "mask": ["none", "tree"], "fraction_as": ["number", "mapping"],
           "decay_as": ["number", "mapping"]}


def _valid(c: dict) -> bool:
  return not (c["groups"] == "none" and "mapping" in (c["fraction_as"], c["decay_as"]))


def _pairs(c: dict) -> set:
  return set(itertools.combinations(sorted(c.items(), key=lambda kv: kv[0]), 2))


def all_pairs() -> list[dict]:
  """Valid combinations of FACTORS in which every pair of values that some valid
  combination has appears at least once (greedy, deterministic)."""
  candidates = [c for c in (dict(zip(FACTORS, values))
                            for values in itertools.product(*FACTORS.values())) if _valid(c)]
  uncovered = set().union(*map(_pairs, candidates))
  chosen = []
  while uncovered:
    best = max(candidates, key=lambda c: len(_pairs(c) & uncovered))
    chosen.append(best)
    uncovered -= _pairs(best)
  return chosen


def _combinations():
  """Keyword arguments of :func:`all_pairs` (mappings need groups, so not with None)."""
  for c in all_pairs():
    b2, history, groups = c["b2"], c["history"], c["groups"]
    fraction = 0.25 if history else 0.0  # without scores a fraction only warns
    kwargs = dict(
        max_step_size=1e-2, b2=b2, score_history=history,
        groups={"none": None, "pytree": LABELS, "callable": _labels_by_name}[groups],
        mask=MASK if c["mask"] == "tree" else None,
        frozen_fraction={"a": fraction, "b": 2 * fraction} if c["fraction_as"] == "mapping"
        else fraction,
        weight_decay={"a": 0.1, "b": 0.3} if c["decay_as"] == "mapping" else 0.1,
    )
    yield pytest.param(kwargs, id="-".join(f"{k}={v}" for k, v in c.items()))


def test_the_design_covers_every_pair_and_only_valid_combinations():
  design = all_pairs()
  assert all(map(_valid, design))
  everything = [dict(zip(FACTORS, v)) for v in itertools.product(*FACTORS.values())]
  wanted = set().union(*(_pairs(c) for c in everything if _valid(c)))
  assert set().union(*map(_pairs, design)) == wanted
  assert len(design) < len(everything) / 4


@pytest.mark.parametrize("kwargs", list(_combinations()))
def test_injected_core_gives_the_same_updates_and_inner_state_as_core(kwargs):
  plain = core_optax.core(**kwargs)
  # Callables other than schedules must be static, as optax.inject_hyperparams documents.
  injected = optax.inject_hyperparams(core_optax.core, static_args=("groups", "mask"))(**kwargs)
  params = helpers.params()
  state, injected_state = plain.init(params), injected.init(params)
  assert jax.tree.structure(injected_state.inner_state) == jax.tree.structure(state)
  update, injected_update = jax.jit(plain.update), jax.jit(injected.update)
  for step in range(STEPS):
    grads = helpers.grads(step, params)
    updates, state = update(grads, state, params)
    injected_updates, injected_state = injected_update(grads, injected_state, params)
    assert jax.tree.structure(injected_state.inner_state) == jax.tree.structure(state)
    chex.assert_trees_all_equal_shapes_and_dtypes(injected_state.inner_state, state)
    chex.assert_trees_all_close(injected_updates, updates, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(injected_state.inner_state, state, rtol=1e-5, atol=1e-7)
    params = optax.apply_updates(params, updates)
  core_state = state[0]
  assert (core_state.h is None) == (kwargs["b2"] is None)
  assert (core_state.S is None) == (kwargs["score_history"] is None)
  if kwargs["score_history"]:  # freezing took place: some updates are exactly 0
    assert any(bool(jnp.any(u == 0)) for u in jax.tree.leaves(updates))


def test_injected_core_changes_values_without_recompiling():
  tx = optax.inject_hyperparams(core_optax.core)(1e-2, score_history=2, frozen_fraction=0.2)
  params = helpers.params()
  state = tx.init(params)
  traces = []

  @jax.jit
  def step(params, state, grads):
    traces.append(None)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for i in range(6):
    state.hyperparams["max_step_size"] = jnp.asarray(1e-2 / (i + 1))
    state.hyperparams["frozen_fraction"] = jnp.asarray(0.1 * i)
    params, state = step(params, state, helpers.grads(i, params))
  assert len(traces) == 1
  assert jax.tree.leaves(state.inner_state[0].s)[0].max() <= 1e-2 / 6 + 1e-9


def test_injected_schedule_on_max_step_size_equals_the_schedule_given_to_core():
  schedule = optax.linear_schedule(1e-1, 1e-3, transition_steps=STEPS)
  injected = optax.inject_hyperparams(core_optax.core)(
      max_step_size=schedule, score_history=2, frozen_fraction=0.25)
  got, state = helpers.train(injected, helpers.params(), STEPS)
  want, _ = helpers.train(core_optax.core(schedule, score_history=2, frozen_fraction=0.25),
                          helpers.params(), STEPS)
  chex.assert_trees_all_close(got, want, rtol=1e-6)
  np.testing.assert_allclose(state.hyperparams["max_step_size"], schedule(STEPS - 1))
