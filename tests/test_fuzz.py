"""Fuzzing ``core_optax.core``'s constructor, ``init`` and ``update`` (hypothesis).

Contract: no input raises anything but a TypeError or ValueError, and an accepted
configuration never turns finite weights and finite gradients into NaN weights.
(A step too large for the weights' dtype, float16 above all, can overflow to
inf; the fuzz counts such runs and stops them, since NaN may follow from
inf - inf, as it does in the reference.)

Domain of the NaN check: every hyperparameter the constructor accepts, except that
``max_step_size`` (a number or an optax schedule) stays <= 1e6 (weights that step
by ~1e38 overflow float32, which is not a bug); finite gradients of magnitude 0 or
1e-15 to 1e15 (less in half precision); up to 5 updates. The counts of what was
tried are printed after the tests (``pytest tests/test_fuzz.py``).
"""

from __future__ import annotations

import collections
import traceback
import warnings

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax

SETTINGS = hypothesis.settings(
    max_examples=300, deadline=None, derandomize=True,
    phases=[p for p in hypothesis.Phase if p != hypothesis.Phase.explain],
    suppress_health_check=list(hypothesis.HealthCheck))
COUNTS: collections.Counter[str] = collections.Counter()
DTYPES = [jnp.float32, jnp.float16, jnp.bfloat16, jnp.complex64]
SHAPES = [(), (0,), (1,), (3,), (2, 2)]
LABELS = ["a", "b", 0]


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
  yield
  capture = request.config.pluginmanager.get_plugin("capturemanager")
  with capture.global_and_fixture_disabled():
    print("\nfuzz counts: " + ", ".join(f"{k}={v}" for k, v in sorted(COUNTS.items())))


def junk():
  """Values of every kind an argument might wrongly be given."""
  return st.one_of(
      st.none(), st.booleans(), st.integers(-(2**70), 2**70),
      st.floats(allow_nan=True, allow_infinity=True), st.floats(-2.0, 2.0),
      st.floats(0.0, 1e-37), st.text(max_size=3), st.binary(max_size=2),
      st.lists(st.floats(0.0, 1.0), max_size=2), st.tuples(st.floats(0.0, 1.0)),
      st.complex_numbers(max_magnitude=2.0),
      st.dictionaries(st.sampled_from(LABELS + ["z"]), st.floats(-1.0, 2.0), max_size=3),
      st.sampled_from([np.array([0.1, 0.2]), np.float32(0.5), np.int64(3), np.bool_(True),
                       np.array("x"), jnp.asarray(0.5), jnp.asarray([1.0]), object(), "nan"]),
      st.floats(-1.0, 2.0).map(lambda v: (lambda count: v)),
  )


def _below_one():
  return st.one_of(st.floats(0.0, 0.999), st.sampled_from([0.0, 1 - 2**-24, 0.9999999]))


def valid(name, s_max):
  """Values in the documented range of each argument."""
  return {
      "min_step_size": st.floats(1e-12, 1.0).map(lambda f: f * s_max),
      "initial_step_size": st.floats(1e-12, 1e3),
      "eta_minus": st.floats(1e-6, 1.0),
      "eta_plus": st.floats(1.0, 1e3),
      "b1_initial": _below_one(),
      "b1_final": _below_one(),
      "b1_width": st.floats(1e-6, 1e12),
      "b2": st.one_of(_below_one(), st.none()),
      "eps": st.one_of(st.floats(1e-30, 1.0), st.sampled_from([1e-30, 1e-20, 1e-8])),
      "weight_decay": st.one_of(
          st.floats(0.0, 0.999999).map(lambda f: f / s_max),
          st.dictionaries(st.sampled_from(LABELS), st.floats(0.0, 0.999).map(lambda f: f / s_max),
                          min_size=3)),
      "score_history": st.one_of(st.none(), st.integers(1, 5), st.integers(1, 2**31 - 1),
                                 st.just(3.0)),
      "frozen_fraction": st.one_of(
          st.floats(0.0, 1.0),
          st.dictionaries(st.sampled_from(LABELS), st.floats(0.0, 1.0), min_size=3)),
      "maximize": st.booleans(),
  }[name]


ARGUMENTS = ["min_step_size", "initial_step_size", "eta_minus", "eta_plus", "b1_initial",
             "b1_final", "b1_width", "b2", "eps", "weight_decay", "score_history",
             "frozen_fraction", "maximize"]


@st.composite
def max_step_sizes(draw):
  value = draw(st.floats(1e-8, 1e6))
  kind = draw(st.sampled_from(["number", "numpy", "constant", "linear", "cosine"]))
  if kind == "number":
    return value, value
  if kind == "numpy":
    return np.float32(value), value
  if kind == "constant":
    return optax.constant_schedule(value), value
  if kind == "linear":
    return optax.linear_schedule(value, value / 10, 3), value
  return optax.cosine_decay_schedule(value, 4, alpha=0.1), value


@st.composite
def parameter_trees(draw):
  n = draw(st.integers(0, 4))
  rng = np.random.default_rng(draw(st.integers(0, 2**16)))
  params = {}
  for i in range(n):
    dtype, shape = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(SHAPES))
    x = rng.normal(size=shape) * 10.0 ** rng.uniform(-3, 3)
    if jnp.issubdtype(dtype, jnp.complexfloating):
      x = x + 1j * rng.normal(size=shape)
    params[f"p{i}"] = jnp.asarray(x, dtype)
  return params


@st.composite
def group_labels(draw, params):
  kind = draw(st.sampled_from(["none", "tree", "callable", "junk"]))
  if kind == "none":
    return None
  labels = {name: LABELS[i % 3] for i, name in enumerate(params)}
  if kind == "tree":
    return labels
  if kind == "callable":
    return lambda p: {name: LABELS[i % 3] for i, name in enumerate(p)}
  return draw(st.one_of(junk(), st.dictionaries(st.sampled_from(["p0", "p1", "x"]), junk())))


def finite_gradients(rng, params):
  def draw(p):
    if rng.integers(4) == 0:
      x = np.zeros(p.shape)
    else:
      x = rng.normal(size=p.shape) * 10.0 ** rng.uniform(-15, 15)
      x = x * (rng.uniform(size=p.shape) > 0.3)  # with exact zeros
      limit = float(jnp.finfo(p.dtype).max) / 4
      x = np.clip(x, -limit, limit)
    if jnp.iscomplexobj(p):
      x = x + 1j * x[::-1] if x.ndim else x + 1j * x
    return jnp.asarray(x, p.dtype)

  return jax.tree.map(draw, params)


def _all_not_nan(tree):
  return all(not bool(jnp.any(jnp.isnan(x))) for x in jax.tree.leaves(tree))


def _all_finite(tree):
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


def _decay_overflows(steps, params, weight_decay):
  """Whether eq. 7's ``d |D| w`` may leave some leaf dtype's range (bounded above in float64).

  The bound ``|w| <= 1/d`` holds only while ``|D| <= 1``; with ``b2 = 0`` and a zero gradient
  ``u = g / eps`` and ``|D|`` can reach 1e19, so that ``d |D| w`` overflows and the new weight
  is ``inf - inf = NaN``, as in the reference.
  """
  d = max(weight_decay.values()) if isinstance(weight_decay, dict) else weight_decay
  for step, weight in zip(jax.tree.leaves(steps), jax.tree.leaves(params)):
    step, weight = np.asarray(step), np.asarray(weight)
    size = float(d) * np.abs(step.astype(np.complex128)) * np.abs(weight.astype(np.complex128))
    if np.any(size >= float(jnp.finfo(weight.dtype).max) / 4):
      return True
  return False


def _assert_clear(error):
  """A clear error is raised by core_optax's own checks, not deep inside JAX or NumPy."""
  frames = traceback.extract_tb(error.__traceback__)
  assert str(error) and frames and "/core_optax/" in frames[-1].filename, (
      f"unclear {type(error).__name__} from {frames[-1].filename}: {error}")


def _construct(kwargs):
  """core(**kwargs), counting the outcome; None when it was rejected."""
  COUNTS["constructions"] += 1
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", UserWarning)
      tx = core_optax.core(**kwargs)
  except (TypeError, ValueError) as error:
    COUNTS[f"constructor rejected ({type(error).__name__})"] += 1
    _assert_clear(error)
    return None
  COUNTS["constructor accepted"] += 1
  return tx


@SETTINGS
@hypothesis.given(st.data())
def test_constructor_init_and_update_raise_only_clear_errors_and_never_make_nan(data):
  COUNTS["examples"] += 1
  max_step_size, s_max = data.draw(max_step_sizes())
  junked = data.draw(st.one_of(st.just(set()), st.sets(
      st.sampled_from(ARGUMENTS + ["max_step_size", "groups"]), min_size=1, max_size=2)))
  params = data.draw(parameter_trees())
  kwargs = {"max_step_size": data.draw(junk()) if "max_step_size" in junked else max_step_size}
  for name in ARGUMENTS:
    if data.draw(st.booleans()) or name in junked:
      kwargs[name] = data.draw(junk() if name in junked else valid(name, s_max))
  kwargs["groups"] = data.draw(junk() if "groups" in junked else group_labels(params))
  tx = _construct(kwargs)
  if tx is None:
    return
  try:
    state = tx.init(params)
  except (TypeError, ValueError) as error:
    COUNTS["init rejected"] += 1
    _assert_clear(error)
    return
  rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
  update = jax.jit(tx.update) if data.draw(st.booleans()) else tx.update
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    step_only = core_optax.scale_by_core(
        **{k: v for k, v in kwargs.items() if k != "weight_decay"})
  for _ in range(data.draw(st.integers(1, 5))):
    COUNTS["updates with finite gradients"] += 1
    grads = finite_gradients(rng, params)
    steps, _ = step_only.update(grads, state[0])  # the signed step D, before weight decay
    updates, state = update(grads, state, params)
    overflows = _decay_overflows(steps, params, kwargs.get("weight_decay", 0.1))
    params = optax.apply_updates(params, updates)
    if not _all_finite(steps):
      COUNTS["steps D overflowed the leaf dtype"] += 1
      break  # then D + d |D| w can be inf - inf = NaN, as in the reference
    if overflows:
      COUNTS["decays d |D| w overflowed the leaf dtype"] += 1
      break
    assert _all_not_nan(params), f"NaN weights from finite gradients with {kwargs}"
    if not _all_finite(params):
      COUNTS["weights overflowed the leaf dtype"] += 1
      break


def bad_update_arguments(params):
  leaf_junk = st.one_of(junk(), st.sampled_from([jnp.arange(3), jnp.ones((2, 2)), jnp.ones(7),
                                                 jnp.array([True]), np.array(["a"])]))
  trees = st.one_of(
      junk(),
      st.dictionaries(st.sampled_from(list(params) + ["q"]), leaf_junk, max_size=4),
      st.builds(lambda k, v: {**params, k: v}, st.sampled_from(list(params)), leaf_junk),
      st.just([params]), st.just(tuple(params.values())),
  )
  return trees


@SETTINGS
@hypothesis.given(st.data())
def test_update_with_wrong_gradients_or_params_raises_only_clear_errors(data):
  COUNTS["examples"] += 1
  params = {"p0": jnp.ones(3), "p1": jnp.zeros((2, 2), jnp.bfloat16), "p2": jnp.asarray(1.0)}
  tx = core_optax.core(1e-2, score_history=2, frozen_fraction=0.5,
                       groups=data.draw(st.sampled_from([None, {"p0": "a", "p1": "a", "p2": "b"}])))
  state = tx.init(params)
  grads = data.draw(st.one_of(st.just(params), bad_update_arguments(params)))
  passed = data.draw(st.one_of(st.just(params), st.none(), bad_update_arguments(params)))
  COUNTS["update calls with fuzzed arguments"] += 1
  try:
    # Eager: under jit, JAX converts (and may reject) arguments before update runs.
    updates, _ = tx.update(grads, state, passed)
  except (TypeError, ValueError) as error:
    COUNTS[f"update rejected ({type(error).__name__})"] += 1
    _assert_clear(error)
    return
  COUNTS["update accepted"] += 1
  assert jax.tree.structure(updates) == jax.tree.structure(params)
