"""Every hyperparameter is checked when the optimizer is built, with a message that helps.

A value out of range is a ValueError, a value of the wrong type a TypeError; the
message names the argument, the value and what is allowed (README, "Failure
modes"). Only numbers are checked: schedules and injected arrays are the caller's.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import optax
import pytest

import core_optax

BAD = [
    (dict(max_step_size=0.0), ValueError, "max_step_size must be > 0, got 0.0"),
    (dict(max_step_size=1e-3, min_step_size=0.0), ValueError, "min_step_size must be > 0, got 0.0"),
    (dict(max_step_size=1e-3, min_step_size=1e-2), ValueError,
     "min_step_size must be <= max_step_size, got 0.01 > 0.001"),
    (dict(max_step_size=1e-3, initial_step_size=-1.0), ValueError, "initial_step_size must be > 0"),
    (dict(max_step_size=1e-3, eta_minus=0.0), ValueError, "eta_minus must be in (0, 1], got 0.0"),
    (dict(max_step_size=1e-3, eta_minus=1.5), ValueError, "eta_minus must be in (0, 1], got 1.5"),
    (dict(max_step_size=1e-3, eta_plus=0.9), ValueError, "eta_plus must be >= 1, got 0.9"),
    (dict(max_step_size=1e-3, b1_initial=1.0), ValueError, "b1_initial must be in [0, 1), got 1.0"),
    (dict(max_step_size=1e-3, b1_final=-0.1), ValueError, "b1_final must be in [0, 1), got -0.1"),
    (dict(max_step_size=1e-3, b1_width=0.0), ValueError, "b1_width must be > 0, got 0.0"),
    (dict(max_step_size=1e-3, b2=1.0), ValueError, "b2 must be in [0, 1)"),
    (dict(max_step_size=1e-3, b2=-1.0), ValueError,
     "b2 must be in [0, 1) (for sign mode, u = sign(g) without h, pass b2=None), got -1.0"),
    (dict(max_step_size=1e-3, eps=-1e-8), ValueError, "eps must be >= 0, got -1e-08"),
    (dict(max_step_size=1e-3, weight_decay=-0.1), ValueError,
     "weight_decay must be >= 0, got -0.1"),
    (dict(max_step_size=1e-3, weight_decay={"a": -1.0}, groups={"a": "a"}), ValueError,
     "weight_decay['a'] must be >= 0, got -1.0"),
    (dict(max_step_size=1e-3, score_history=0), ValueError,
     "score_history must be a whole number >= 1 (for no importance scores and no freezing, "
     "pass score_history=None), got 0"),
    (dict(max_step_size=1e-3, score_history=-1), ValueError,
     "score_history must be a whole number >= 1"),
    (dict(max_step_size=1e-3, score_history=2.5), ValueError,
     "score_history must be a whole number >= 1"),
    (dict(max_step_size=1e-3, frozen_fraction=1.1), ValueError,
     "frozen_fraction must be in [0, 1], got 1.1"),
    (dict(max_step_size=1e-3, frozen_fraction={"a": 0.1}), ValueError,
     "frozen_fraction is a mapping {label: value}; it needs groups="),
    (dict(max_step_size=1e-3, weight_decay={"a": 0.1}), ValueError,
     "weight_decay is a mapping {label: value}; it needs groups="),
    (dict(max_step_size=1e-3, weight_decay={"a": 0.1, "b": 0.2}, groups={"x": "a"}), ValueError,
     "weight_decay names group label(s) [\"'b'\"] that label no parameter"),
    (dict(max_step_size=1e-3, frozen_fraction={"a": 0.1}, groups={"x": "a", "y": "b"}), ValueError,
     "frozen_fraction has no value for group label(s) [\"'b'\"]"),
    (dict(max_step_size=float("nan")), ValueError, "max_step_size must be finite and > 0, got nan"),
    (dict(max_step_size=float("inf")), ValueError, "max_step_size must be finite and > 0, got inf"),
    (dict(max_step_size=1e-3, eps=float("nan")), ValueError, "eps must be finite and >= 0"),
    (dict(max_step_size=1e-3, b2=-float("inf")), ValueError, "b2 must be finite and in [0, 1)"),
    (dict(max_step_size=1e-3, eps=0.0), ValueError,
     "eps must be >= 1e-30 (in float32 a smaller eps can be flushed to 0"),
    (dict(max_step_size=1e-3, eps=1e-38), ValueError, "got 1e-38"),
    (dict(max_step_size=1e-3, eps={"a": 1e-8}), TypeError, "eps must be a number, got dict"),
    (dict(max_step_size=1e-3, b2=lambda count: 0.9), TypeError, "b2 must be a number, got "),
    (dict(max_step_size=[1e-3]), TypeError,
     "max_step_size must be a number or a schedule, got list"),
    (dict(max_step_size=1e-3, b1_initial=1 - 1e-9), ValueError,
     "b1_initial must be < 1 also in float32 (<= 1 - 2**-24), got 0.999999999"),
    (dict(max_step_size=1e-3, b2=1 - 1e-9), ValueError, "b2 must be < 1 also in float32"),
    (dict(max_step_size=1e-3, score_history=2.0**31), ValueError,
     "score_history must be <= 2147483647 (the step counter is int32), got 2147483648.0"),
    (dict(max_step_size=1e-3, b1_width=2**31), ValueError,
     "b1_width must be > 0, and an int must fit int32 (JAX's integer), got 2147483648"),
    (dict(max_step_size=20.0), ValueError,
     "weight_decay must be < 1 / max_step_size (paper, eq. 7), got 0.1 with max_step_size=20.0"),
    (dict(max_step_size=1.0, weight_decay=1.0), ValueError, "weight_decay must be < 1 / max"),
    (dict(max_step_size=1.0, weight_decay={"a": 0.5, "b": 2.0}, groups={"w": "a", "b": "b"}),
     ValueError, "weight_decay['b'] must be < 1 / max_step_size"),
    (dict(max_step_size="1e-3"), TypeError,
     "max_step_size must be a number or a schedule, got str '1e-3'"),
    (dict(max_step_size=True), TypeError,
     "max_step_size must be a number or a schedule, got bool True"),
    (dict(max_step_size=1e-3, eps=1j), TypeError, "eps must be a number, got complex 1j"),
    (dict(max_step_size=np.array([1e-3, 1e-2])), TypeError, "max_step_size must be a real scalar"),
    (dict(max_step_size=1e-3, eta_plus=np.complex64(2)), TypeError,
     "eta_plus must be a real scalar"),
    (dict(max_step_size=1e-3, maximize="yes"), TypeError, "maximize must be a bool, got str"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD)
def test_bad_hyperparameters_fail_naming_argument_value_and_range(kwargs, error, message):
  with pytest.raises(error) as raised:
    core_optax.core(**kwargs)
  assert message in str(raised.value)


@pytest.mark.parametrize("factory", [core_optax.core, core_optax.scale_by_core])
def test_max_step_size_is_required(factory):
  parameter = inspect.signature(factory).parameters["max_step_size"]
  assert parameter.default is inspect.Parameter.empty
  with pytest.raises(TypeError, match="max_step_size"):
    factory()

def test_decay_against_a_max_step_size_schedule_is_not_checked():
  # Only numbers are checked; a schedule's values are the caller's responsibility.
  core_optax.core(optax.constant_schedule(20.0), weight_decay=0.1)


def test_frozen_fraction_without_score_history_warns_that_it_has_no_effect():
  with pytest.warns(UserWarning,
                    match=r"frozen_fraction=0.1 has no effect with score_history=None"):
    core_optax.core(1e-3, frozen_fraction=0.1)
  with pytest.warns(UserWarning, match=r"has no effect"):
    core_optax.core(1e-3, frozen_fraction={"a": 0.0, "b": 0.2}, groups={"w": "a", "b": "b"})
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    core_optax.core(1e-3, frozen_fraction=0.1, score_history=10)
    core_optax.core(1e-3, frozen_fraction={"a": 0.0}, groups={"w": "a"})
