"""Every example runs, quickly, and shows what it claims (small settings)."""

from __future__ import annotations

import collections
import functools
import importlib.util
import pathlib
import re
import subprocess
import sys
from types import ModuleType

from flax import nnx
import jax
import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


@functools.cache
def load(name: str) -> ModuleType:
  """Imports ``examples/<name>.py`` as a module."""
  spec = importlib.util.spec_from_file_location(f"examples.{name}", EXAMPLES / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # flax.linen's dataclasses look their module up
  spec.loader.exec_module(module)
  return module


def test_core_vs_adam_script_prints_both_loss_curves_end_points_and_both_learn():
  out = subprocess.run(
      [sys.executable, str(EXAMPLES / "core_vs_adam.py"), "--steps", "60"],
      capture_output=True, text=True, timeout=120, check=True,
  ).stdout
  # e.g. " core: loss 2.1712 -> 0.0793 (mean of first/last 20 steps), test accuracy 0.972"
  ends = {m[0]: (float(m[1]), float(m[2]))
          for m in re.findall(r"(\w+): loss ([\d.]+) -> ([\d.]+)", out)}
  assert set(ends) == {"core", "adam"}, out
  for name, (first, last) in ends.items():
    assert last < 0.8 * first, (name, out)


def test_linen_train_state_learns_the_digits():
  result = load("linen_train_state").main(steps=40)
  assert result["last_loss"] < 0.5 * result["first_loss"]
  assert result["test_accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_param_groups_freeze_floor_of_each_groups_fraction_within_the_group():
  result = load("param_groups").main(steps=8, score_history=4)
  groups = result["groups"]
  assert set(groups) == {"hidden1", "hidden2", "out", "no_decay"}
  assert groups["hidden1"]["expected_frozen"] == int(0.1 * groups["hidden1"]["size"]) > 0
  for label, g in groups.items():
    assert g["frozen"] == g["expected_frozen"], (label, g)  # core_optax.frozen_mask's count
    assert g["frozen_moved"] == 0, (label, g)


def test_param_groups_label_callable_sees_nnx_variables_and_arrays_alike():
  module = load("param_groups")
  model = module.MLP(61, rngs=nnx.Rngs(0))
  as_variables = module.param_labels(nnx.state(model, nnx.Param))  # what Optimizer.init sees
  as_arrays = module.param_labels(nnx.as_pure(nnx.state(model, nnx.Param)))  # what update sees
  # One group per kernel; the 7 biases, LayerNorm scales and offsets share one.
  assert collections.Counter(jax.tree.leaves(as_arrays)) == {
      "hidden1": 1, "hidden2": 1, "out": 1, "no_decay": 7}
  assert jax.tree.leaves(as_variables) == jax.tree.leaves(as_arrays)


def test_vmap_sweep_model_equals_the_same_model_trained_alone():
  module = load("vmap_sweep")
  swept = module.train([1e-3, 1e-1], steps=5)
  alone = module.train([1e-1], steps=5)
  assert swept.shape == (2, 5)
  np.testing.assert_allclose(swept[1], alone[0], rtol=1e-5)
  assert not np.allclose(swept[0], swept[1])  # the hyperparameter really differs per model


def test_vmap_sweep_main_reports_one_loss_per_s_max():
  result = load("vmap_sweep").main(steps=3, s_max=(1e-2, 1.0))
  assert list(result) == [1e-2, 1.0]
  assert all(np.isfinite(v) for v in result.values())


def test_continual_learning_freezing_trades_plasticity_for_stability_and_saves_a_plot(
    tmp_path):
  plot = tmp_path / "continual.png"
  result = load("continual_learning").main(steps=100, seeds=3, plot_path=plot)
  none, strong = result["no freezing"], result["p_frozen=0.25"]
  assert strong["forgot_A"][0] < none["forgot_A"][0], result  # (mean, std) over seeds
  assert strong["B_after_B"][0] < none["B_after_B"][0], result
  assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
