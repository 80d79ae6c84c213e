"""Helpers shared by the test modules: small parameter trees, gradients, training loops."""

from __future__ import annotations

from collections.abc import Callable, Sequence
import os
import subprocess
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def params(dtype=jnp.float32) -> dict[str, Any]:
  """A nested tree with a matrix, a vector and a scalar leaf."""
  return {
      "dense": {"kernel": jnp.arange(12.0).reshape(3, 4).astype(dtype) / 10,
                "bias": jnp.ones(4, dtype)},
      "scale": jnp.asarray(0.5, dtype),
  }


def grads(step: int, params: Any) -> Any:
  """Deterministic noisy gradients ``p + N(0, 1)`` for update ``step``, in the leaves' dtypes."""
  key = jax.random.fold_in(jax.random.key(0), step)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return treedef.unflatten(
      [(p + jax.random.normal(k, p.shape)).astype(p.dtype) for p, k in zip(leaves, keys)])


def train(tx: optax.GradientTransformation, params: Any, steps: int,
          update: Callable[..., Any] | None = None) -> tuple[Any, Any]:
  """``steps`` updates with :func:`grads` (``update`` defaults to ``jax.jit(tx.update)``)."""
  update = update or jax.jit(tx.update)
  state = tx.init(params)
  for step in range(steps):
    updates, state = update(grads(step, params), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


def bits(tree: Any) -> list[bytes]:
  """The exact bit patterns of every leaf, to compare trees bitwise."""
  return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def leaf_names(n: int) -> list[str]:
  """The parameter names that :func:`run_ours` gives ``n`` leaves, in leaf order."""
  return [f"p{i:02d}" for i in range(n)]


def run_ours(tx: optax.GradientTransformation, weights: Sequence[np.ndarray],
             grads_seq: Sequence[Sequence[np.ndarray]], *, jit: bool = True
             ) -> list[list[np.ndarray]]:
  """Runs ``tx`` on given gradients (as the reference saw them); the weights after each step."""
  names = leaf_names(len(weights))
  params = dict(zip(names, map(jnp.asarray, weights)))
  state = tx.init(params)
  update = jax.jit(tx.update) if jit else tx.update
  history = []
  for step_grads in grads_seq:
    updates, state = update(dict(zip(names, map(jnp.asarray, step_grads))), state, params)
    params = optax.apply_updates(params, updates)
    history.append([np.asarray(params[k]) for k in names])
  return history


def wb_params() -> dict[str, jax.Array]:
  """A 2 x 3 matrix ``w`` and a vector ``b``, with values of both signs."""
  return {"w": jnp.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.5]]), "b": jnp.array([0.1, -0.2])}


def wb_grads(step: int, params: Any, scale: float = 1.0) -> Any:
  """Deterministic noisy gradients ``scale (p - 0.3 + N(0, 1))`` for update ``step``."""
  key = jax.random.fold_in(jax.random.key(1), step)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return treedef.unflatten([(scale * (p - 0.3 + jax.random.normal(k, p.shape))).astype(p.dtype)
                            for p, k in zip(leaves, keys)])


def poisoned(grads: Any, value: float, *, whole_leaf: bool = False) -> Any:
  """``grads`` (of :func:`wb_params`) with ``value`` at ``w[0, 1]``, or in all of ``w``."""
  w = grads["w"]
  w = jnp.full_like(w, value) if whole_leaf else w.at[0, 1].set(value)
  return {**grads, "w": w}


BATCHES = 6


def least_squares() -> tuple[Any, Callable[..., jax.Array], jax.Array, jax.Array]:
  """A least-squares problem: params, ``loss_fn(params, x, y)`` and :data:`BATCHES` batches."""
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {"w": jax.random.normal(k1, (8, 4)), "b": jnp.zeros(4)}
  xs = jax.random.normal(k2, (BATCHES, 16, 8))
  ys = jax.random.normal(k3, (BATCHES, 16, 4))

  def loss_fn(params, x, y):
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)

  return params, loss_fn, xs, ys


def train_on_batches(tx: optax.GradientTransformation, params: Any, loss_fn: Callable[..., Any],
                     xs: Any, ys: Any, grad_fn: Callable[..., Any] | None = None
                     ) -> tuple[Any, Any, list[Any]]:
  """Runs ``tx`` (jitted) over the batches; returns final params, state and every update."""
  grad_fn = grad_fn or jax.grad(loss_fn)

  @jax.jit
  def step(params, state, x, y):
    updates, state = tx.update(grad_fn(params, x, y), state, params)
    return optax.apply_updates(params, updates), state, updates

  state = tx.init(params)
  all_updates = []
  for x, y in zip(xs, ys):
    params, state, updates = step(params, state, x, y)
    all_updates.append(updates)
  return params, state, all_updates


def assert_trees_close(actual: Any, expected: Any, rtol: float = 1e-6, atol: float = 1e-7) -> None:
  """Leaf by leaf ``np.testing.assert_allclose``; the trees must have the same structure."""
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=rtol, atol=atol),
               actual, expected)


def run_concurrently(commands: Sequence[Sequence[str]], *, cwd: os.PathLike, env: dict[str, str],
                     timeout_s: float, what: str) -> list[tuple[int, str, str]]:
  """Starts every command at once and waits for all; ``(returncode, stdout, stderr)`` of each.

  Kills them all and fails the test if they are not done within ``timeout_s``
  (counted per command, in order), so that a hang (of a collective, say) fails
  instead of eating CI. ``what`` names them in that failure.
  """
  import pytest  # only tests call this

  procs = [subprocess.Popen(list(command), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for command in commands]
  outputs = []
  try:
    for proc in procs:
      outputs.append(proc.communicate(timeout=timeout_s))
  except subprocess.TimeoutExpired:
    for proc in procs:
      proc.kill()
    pytest.fail(f"{what} hung for {timeout_s} s")
  return [(proc.returncode, out, err) for proc, (out, err) in zip(procs, outputs)]
