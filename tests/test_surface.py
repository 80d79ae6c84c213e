"""The library's surface: ``state_dtype`` checked when built, read-only presets, shared defaults."""

from __future__ import annotations

import inspect
import warnings

import jax
import jax.numpy as jnp
import pytest

import core_optax

FACTORIES = [core_optax.core, core_optax.scale_by_core]
ALLOWED = "a real floating dtype such as jnp.bfloat16 or jnp.float32, or None"


def _g_dtype(tx, params):
  state = tx.init(params)
  core_state = state[0] if isinstance(state, tuple) and not hasattr(state, "g") else state
  (g,) = jax.tree.leaves(core_state.g)
  return g.dtype


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("value", ["not-a-dtype", 3, object()])
def test_a_state_dtype_that_is_no_dtype_is_a_type_error_naming_it(factory, value):
  with pytest.raises(TypeError, match=rf"^state_dtype must be {ALLOWED}, got "):
    factory(1e-2, state_dtype=value)


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("value, shown", [(jnp.int32, "int32"), (bool, "bool"),
                                          (jnp.complex64, "complex64"), ("uint8", "uint8")])
def test_a_state_dtype_that_is_not_real_floating_is_a_value_error_naming_it(factory, value, shown):
  with pytest.raises(ValueError, match=rf"^state_dtype must be {ALLOWED}, got {shown} \("):
    factory(1e-2, state_dtype=value)


@pytest.mark.parametrize("factory", FACTORIES)
def test_state_dtype_is_canonicalised_like_optax_mu_dtype(factory):
  params = {"w": jnp.ones(3)}
  assert _g_dtype(factory(1e-2, state_dtype="bfloat16"), params) == jnp.bfloat16
  with warnings.catch_warnings():  # float64 without x64 is float32, without a warning
    warnings.simplefilter("error")
    tx = factory(1e-2, state_dtype=jnp.float64)
    assert _g_dtype(tx, params) == jnp.float32
    jax.tree.map(lambda x: x.block_until_ready(), tx.update(params, tx.init(params), params))


def test_float64_state_dtype_with_x64(x64):
  params = {"w": jnp.ones(3, jnp.float32)}
  assert _g_dtype(core_optax.core(1e-2, state_dtype=jnp.float64), params) == jnp.float64


@pytest.mark.parametrize("name", ["MAX_STEP_SIZE", "STABILITY_PLASTICITY"])
def test_presets_are_read_only(name):
  preset = getattr(core_optax, name)
  key = next(iter(preset))
  before = dict(preset)
  with pytest.raises(TypeError):
    preset[key] = 1.0
  with pytest.raises(TypeError):
    del preset[key]
  with pytest.raises(TypeError):
    preset["new"] = 1.0
  assert dict(preset) == before
  mutable = dict(preset)  # a copy to change
  mutable[key] = 1.0


def test_presets_still_build_the_recommended_optimizer():
  tx = core_optax.recommended("mini-batch", stability_plasticity=True)
  state = tx.init({"w": jnp.ones(3)})
  assert state[0].S is not None
  with pytest.raises(ValueError, match=r"regime must be one of \['full-batch', 'intermediate', "):
    core_optax.recommended("tiny")


def test_core_and_scale_by_core_share_their_defaults():
  core = inspect.signature(core_optax.core, eval_str=True).parameters
  scale = inspect.signature(core_optax.scale_by_core, eval_str=True).parameters
  decay = inspect.signature(core_optax.add_update_scaled_weight_decay, eval_str=True).parameters
  assert set(core) == set(scale) | {"weight_decay", "mask"}
  for name, parameter in scale.items():
    assert (core[name].default, core[name].kind, core[name].annotation) == (
        parameter.default, parameter.kind, parameter.annotation), name
  for name, parameter in decay.items():  # weight_decay is positional there, as in optax
    assert (core[name].default, core[name].annotation) == (
        parameter.default, parameter.annotation), name


@pytest.mark.parametrize("name", [name for name in inspect.signature(core_optax.scale_by_core)
                                  .parameters if name != "groups"])
def test_every_hyperparameter_is_checked_when_built(name):
  """A value of no allowed type is a TypeError that names the argument, whatever its name."""
  kwargs = {"max_step_size": 1e-2, name: object()}
  with pytest.raises(TypeError, match=rf"^{name} must be "):
    core_optax.scale_by_core(**kwargs)


@pytest.mark.parametrize("frozen_fraction, message", [
    ({"a": 0.1}, "has no value for group label(s)"),
    ({"a": 0.1, "b": 0.1, "c": 0.1}, "names group label(s)"),
])
def test_labels_known_when_built_and_labels_known_at_init_give_the_same_error(frozen_fraction,
                                                                              message):
  params = {"x": jnp.ones(2), "y": jnp.ones(3)}
  labels = {"x": "a", "y": "b"}
  with pytest.raises(ValueError) as built:
    core_optax.core(1e-2, score_history=3, frozen_fraction=frozen_fraction, groups=labels)
  tx = core_optax.core(1e-2, score_history=3, frozen_fraction=frozen_fraction,
                       groups=lambda params: labels)
  with pytest.raises(ValueError) as at_init:
    tx.init(params)
  assert message in str(built.value)
  assert str(built.value) == str(at_init.value)
