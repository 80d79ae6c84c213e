"""Saved and restored, CoRe's state continues a run bitwise identically.

Through numpy arrays and pickle in one process, and through an orbax checkpoint
restored in a fresh process: that test trains past ``score_history`` (so weights
are frozen), saves parameters and optimizer state with ``orbax.checkpoint``,
restores them in a new Python process, trains on there, and compares with the run
that was never interrupted.
"""

from __future__ import annotations

import pathlib
import pickle
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax
from tests import helpers

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS_BEFORE_SAVE = 5
STEPS_AFTER_SAVE = 5


def setup():
  """Parameters, CoRe with freezing, and a jitted training step."""
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {"dense": {"kernel": jax.random.normal(k1, (16, 8)), "bias": jnp.zeros(8)}}
  x = jax.random.normal(k2, (32, 16))
  y = jax.random.normal(k3, (32, 8))
  tx = core_optax.core(1e-2, score_history=3, frozen_fraction=0.25)

  @jax.jit
  def step(params, opt_state, i):
    xb, yb = jnp.roll(x, i, axis=0)[:8], jnp.roll(y, i, axis=0)[:8]  # a batch per step
    grads = jax.grad(
        lambda p: jnp.mean((xb @ p["dense"]["kernel"] + p["dense"]["bias"] - yb) ** 2))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return params, tx, step


def restore_and_continue(checkpoint: str, out: str) -> None:
  """In a fresh process: restore the checkpoint, train on, save the result as .npz."""
  import orbax.checkpoint as ocp

  params, tx, step = setup()
  abstract = jax.eval_shape(lambda p: {"params": p, "opt_state": tx.init(p)}, params)
  with ocp.StandardCheckpointer() as checkpointer:
    restored = checkpointer.restore(checkpoint, abstract)
  params, opt_state = restored["params"], restored["opt_state"]
  for i in range(STEPS_BEFORE_SAVE, STEPS_BEFORE_SAVE + STEPS_AFTER_SAVE):
    params, opt_state = step(params, opt_state, i)
  leaves = jax.tree.leaves((params, opt_state))
  np.savez(out, *[np.asarray(leaf) for leaf in leaves])


def test_restored_run_continues_bitwise_identically_with_freezing_active(tmp_path):
  import orbax.checkpoint as ocp

  params, tx, step = setup()
  opt_state = tx.init(params)
  for i in range(STEPS_BEFORE_SAVE):
    params, opt_state = step(params, opt_state, i)
  core_state = opt_state[0]
  assert int(core_state.tau) > 3  # past score_history: weights are being frozen
  frozen = jax.tree.leaves(jax.tree.map(lambda u: int((u == 0).sum()),
                                        tx.update(jax.tree.map(np.ones_like, params),
                                                  opt_state, params)[0]))
  assert frozen == [2, 32]  # floor(0.25 * 8) biases, floor(0.25 * 128) kernel weights

  checkpoint = tmp_path / "checkpoint"
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(checkpoint, {"params": params, "opt_state": opt_state})

  out = tmp_path / "continued.npz"
  proc = subprocess.run(
      [sys.executable, "-m", "tests.test_checkpoint", str(checkpoint), str(out)],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]

  for i in range(STEPS_BEFORE_SAVE, STEPS_BEFORE_SAVE + STEPS_AFTER_SAVE):
    params, opt_state = step(params, opt_state, i)
  uninterrupted = jax.tree.leaves((params, opt_state))
  continued = np.load(out)
  assert len(continued.files) == len(uninterrupted)
  for i, leaf in enumerate(uninterrupted):
    restored = continued[f"arr_{i}"]
    assert restored.dtype == leaf.dtype
    np.testing.assert_array_equal(restored, np.asarray(leaf))  # bitwise, not approximately


def _continue(tx, params, state, steps, first_step=0):
  update = jax.jit(tx.update)
  for step in range(first_step, first_step + steps):
    updates, state = update(helpers.wb_grads(step, params), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


@pytest.mark.parametrize("roundtrip", ["numpy", "pickle"])
def test_save_and_restore_of_the_state_continues_bitwise_identically(roundtrip):
  tx = core_optax.core(1e-2, score_history=3, frozen_fraction=0.3)
  params, state = _continue(tx, helpers.wb_params(), tx.init(helpers.wb_params()), 5)
  if roundtrip == "numpy":
    restored = jax.tree.map(jnp.asarray, jax.tree.map(np.asarray, state))
  else:
    restored = pickle.loads(pickle.dumps(state))
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  continued = _continue(tx, params, restored, 5, 5)
  assert helpers.bits(continued) == helpers.bits(_continue(tx, params, state, 5, 5))


if __name__ == "__main__":
  restore_and_continue(*sys.argv[1:])
