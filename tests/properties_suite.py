"""Invariants of CoRe on random parameter trees, hyperparameters and gradients (hypothesis).

Each property holds for every example; example counts are kept small so the file
runs in well under a minute (``--hypothesis-show-statistics`` reports them).
"""

from __future__ import annotations

import math

import chex
import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax

import core_optax
from tests import helpers

SETTINGS = hypothesis.settings(
    max_examples=40, deadline=None, derandomize=True,
    phases=[p for p in hypothesis.Phase if p != hypothesis.Phase.explain],
    suppress_health_check=[hypothesis.HealthCheck.too_slow])
SHAPES = [(), (1,), (3,), (2, 3), (4, 1), (5,)]


@st.composite
def trees(draw, max_leaves=4):
  """A dict of float32 leaves with random shapes, values and group labels."""
  n = draw(st.integers(1, max_leaves))
  shapes = [draw(st.sampled_from(SHAPES)) for _ in range(n)]
  seed = draw(st.integers(0, 2**16))
  rng = np.random.default_rng(seed)
  params = {f"p{i}": jnp.asarray(rng.normal(size=s) * 2, jnp.float32) for i, s in enumerate(shapes)}
  labels = {name: draw(st.sampled_from("abc")) for name in params}
  return params, labels, seed


def gradient_stream(params, seed, steps, zero_fraction=0.2):
  """Random finite gradients of mixed scales, with some exact zeros."""
  rng = np.random.default_rng(seed + 1)
  out = []
  for _ in range(steps):
    scale = 10.0 ** rng.uniform(-3, 3)
    out.append(jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=p.shape) * scale
                              * (rng.uniform(size=p.shape) >= zero_fraction), jnp.float32),
        params))
  return out


@st.composite
def hyperparameters(draw):
  s_max = draw(st.floats(1e-4, 1.0))
  return dict(
      max_step_size=s_max,
      min_step_size=draw(st.floats(1e-7, 1.0)) * s_max,
      initial_step_size=draw(st.floats(1e-6, 1.0)),
      eta_minus=draw(st.floats(0.1, 1.0)),
      eta_plus=draw(st.floats(1.0, 2.0)),
      b1_initial=draw(st.floats(0.0, 0.99)),
      b1_final=draw(st.floats(0.0, 0.99)),
      b1_width=draw(st.floats(1.0, 500.0)),
      b2=draw(st.sampled_from([0.9, 0.99, 0.999, 0.0, None])),
      eps=draw(st.sampled_from([1e-8, 1e-6, 1e-3])),
      weight_decay=draw(st.floats(0.0, 0.99)) / s_max,
      score_history=draw(st.sampled_from([None, 1, 2, 3, 4])),
  )


def run(tx, params, grads_seq, *, jit=False):
  """``(updates, params, state)`` after each of the given gradients (:func:`helpers.run`)."""
  return helpers.run(tx, params, grads_seq, lambda g, _: g,
                     update=None if jit else tx.update)[2]


@SETTINGS
@hypothesis.given(trees(), hyperparameters(), st.integers(1, 6))
def test_step_sizes_stay_within_min_and_max_after_every_update(tree, hparams, steps):
  params, _, seed = tree
  tx = core_optax.scale_by_core(**{k: v for k, v in hparams.items() if k != "weight_decay"})
  state = tx.init(params)
  lo, hi = np.float32(hparams["min_step_size"]), np.float32(hparams["max_step_size"])
  for grads in gradient_stream(params, seed, steps):
    _, state = tx.update(grads, state)
    for s in jax.tree.leaves(state.s):
      assert np.all((lo <= np.asarray(s)) & (np.asarray(s) <= hi))


@SETTINGS
@hypothesis.given(trees(), hyperparameters(), st.integers(1, 8),
                  st.sampled_from(["sign", "unsmoothed"]), st.floats(0.1, 3.0))
def test_weights_never_leave_the_decay_bound_when_the_normalised_update_is_bounded(
    tree, hparams, steps, mode, spread):
  # Eq. 7 with |u| <= 1 and d * s <= d * s_max < 1: |w'| <= |w| (1 - d|u|s) + |u|s, so
  # max(|w|, 1/d) never grows: weights inside +-1/d stay inside, those outside shrink.
  # |u| <= 1 holds in sign mode (u = sign g) and for b1 = b2 = 0 (u = G / (|G| + eps)).
  params, _, seed = tree
  d = max(hparams["weight_decay"], 1e-3)
  hypothesis.assume(d * hparams["max_step_size"] < 1)
  params = jax.tree.map(lambda p: p * spread / (2 * d), params)  # some inside, some outside
  hparams = dict(hparams, weight_decay=d)
  if mode == "sign":
    hparams["b2"] = None
  else:
    hparams.update(b1_initial=0.0, b1_final=0.0, b2=0.0)
  bound = jax.tree.map(lambda p: np.maximum(np.abs(np.asarray(p)), np.float32(1 / d)), params)
  for _, new_params, _ in run(core_optax.core(**hparams), params,
                              gradient_stream(params, seed, steps)):
    for w, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(bound)):
      assert np.all(np.abs(np.asarray(w)) <= b * (1 + 1e-5))


@SETTINGS
@hypothesis.given(trees(), hyperparameters(), st.floats(0.0, 1.0), st.integers(1, 3))
def test_top_k_weights_of_every_group_do_not_move_once_tau_exceeds_the_history(
    tree, hparams, fraction, t_hist):
  params, labels, seed = tree
  hparams = dict(hparams, score_history=t_hist, frozen_fraction=fraction, groups=labels)
  tx = core_optax.core(**hparams)
  state = tx.init(params)
  names = sorted(params)
  for step, grads in enumerate(gradient_stream(params, seed, t_hist + 3, zero_fraction=0.0)):
    scores = state[0].S
    updates, state = tx.update(grads, state, params)
    new_params = optax.apply_updates(params, updates)
    for label in set(labels.values()):
      members = [n for n in names if labels[n] == label]
      flat_scores = np.concatenate([np.ravel(scores[n]) for n in members])
      moved = np.concatenate([np.ravel(new_params[n] != params[n]) for n in members])
      assert np.all(flat_scores >= 0)  # S accumulates g * u * s >= 0 (u has g's sign)
      k = math.floor(fraction * flat_scores.size)
      if step >= t_hist and k > 0:  # tau = step + 1 > t_hist
        top_k = np.argsort(-flat_scores, kind="stable")[:k]
        assert not np.any(moved[top_k])
        assert np.count_nonzero(~moved) >= k
    params = new_params


@SETTINGS
@hypothesis.given(trees(), hyperparameters(), st.floats(0.0, 0.5), st.integers(1, 5))
def test_maximizing_a_loss_equals_minimizing_its_negative(tree, hparams, fraction, steps):
  params, labels, seed = tree
  hparams = dict(hparams, frozen_fraction=fraction if hparams["score_history"] else 0.0,
                 groups=labels)
  grads_seq = gradient_stream(params, seed, steps)
  ascending = run(core_optax.core(**hparams, maximize=True), params, grads_seq)
  descending = run(core_optax.core(**hparams), params,
                   [jax.tree.map(jnp.negative, g) for g in grads_seq])
  assert helpers.bits(ascending) == helpers.bits(descending)


@SETTINGS
@hypothesis.given(trees(), hyperparameters(), st.floats(0.0, 0.5), st.integers(1, 5),
                  st.randoms(use_true_random=False))
def test_permuting_leaves_and_renaming_labels_does_not_change_the_result(
    tree, hparams, fraction, steps, random):
  params, labels, seed = tree
  names = sorted(params)
  renamed_leaves = dict(zip(names, random.sample([f"q{i}" for i in range(len(names))],
                                                 len(names))))  # a new leaf order
  renamed_labels = dict(zip("abc", random.sample(["x", "y", "z"], 3)))
  decays = {label: hparams["weight_decay"] * (i + 1) / 3 for i, label in enumerate("abc")}
  fractions = {label: fraction * (3 - i) / 3 for i, label in enumerate("abc")}
  used = set(labels.values())
  hparams = {k: v for k, v in hparams.items() if k != "weight_decay"}
  if not hparams["score_history"]:
    fractions = dict.fromkeys(fractions, 0.0)

  def rename(tree):
    return {renamed_leaves[k]: v for k, v in tree.items()}

  grads_seq = gradient_stream(params, seed, steps)
  ours = run(core_optax.core(
      **hparams, groups=labels, weight_decay={k: decays[k] for k in used},
      frozen_fraction={k: fractions[k] for k in used}), params, grads_seq)
  theirs = run(core_optax.core(
      **hparams, groups={renamed_leaves[k]: renamed_labels[v] for k, v in labels.items()},
      weight_decay={renamed_labels[k]: decays[k] for k in used},
      frozen_fraction={renamed_labels[k]: fractions[k] for k in used}),
      rename(params), [rename(g) for g in grads_seq])
  for (u, p, _), (u2, p2, _) in zip(ours, theirs):
    assert helpers.bits(rename(u)) == helpers.bits(u2)
    assert helpers.bits(rename(p)) == helpers.bits(p2)


@hypothesis.settings(SETTINGS, max_examples=20)  # compiles every example
@hypothesis.given(trees(), hyperparameters(), st.floats(0.0, 0.5), st.integers(1, 4))
def test_a_jitted_step_equals_an_eager_step_to_rounding(tree, hparams, fraction, steps):
  params, labels, seed = tree
  hparams = dict(hparams, frozen_fraction=fraction if hparams["score_history"] else 0.0,
                 groups=labels)
  tx = core_optax.core(**hparams)
  jitted = jax.jit(tx.update)
  state = tx.init(params)
  for grads in gradient_stream(params, seed, steps):
    eager_out = tx.update(grads, state, params)
    jit_out = jitted(grads, state, params)
    # XLA fuses and contracts differently under jit: equal to float32 rounding of
    # the magnitudes involved (a relative check per element is too strict where
    # g = b1 g + (1 - b1) G or w - D cancel).
    scale = max(float(np.max(np.abs(np.asarray(x)), initial=0.0))
                for x in jax.tree.leaves((grads, state, params, eager_out)))
    for x, y in zip(jax.tree.leaves(jit_out), jax.tree.leaves(eager_out)):
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-5 * scale)
    updates, state = eager_out
    params = optax.apply_updates(params, updates)


def test_jitted_training_equals_eager_training_with_freezing():
  """jit changes no number beyond rounding, also once weights are frozen (eqs. 5-8)."""
  tx = core_optax.core(1e-2, score_history=3, frozen_fraction=0.25)
  runs = {}
  for mode, update in (("jit", jax.jit(tx.update)), ("eager", tx.update)):
    params, state = helpers.train(tx, helpers.params(), 8, update=update)
    updates, state = update(helpers.grads(8, params), state, params)
    runs[mode] = updates, params, state
  chex.assert_trees_all_close(runs["jit"], runs["eager"], rtol=1e-6, atol=1e-7)
  updates = runs["eager"][0]
  assert int(runs["eager"][2][0].tau) == 9
  assert sum(int(jnp.sum(u == 0)) for u in jax.tree.leaves(updates)) >= 3  # floor(0.25 * n)
