"""Helpers shared by the test modules: small parameter trees, gradients, one training loop, and
processes with several (virtual CPU) devices."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
import os
import pathlib
import subprocess
import sys
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


def grads(step: int, params: Any, *, seed: int = 0, shift: float = 0.0,
          scale: float = 1.0) -> Any:
  """Deterministic noisy gradients ``scale (p - shift + N(0, 1))`` for update ``step``.

  In the leaves' dtypes; ``seed`` picks the noise (the same for every ``step`` and leaf
  shape). The defaults give ``p + N(0, 1)`` exactly.
  """
  key = jax.random.fold_in(jax.random.key(seed), step)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return treedef.unflatten([(scale * (p - shift + jax.random.normal(k, p.shape))).astype(p.dtype)
                            for p, k in zip(leaves, keys)])


def run(tx: optax.GradientTransformation, params: Any, batches: Iterable[Any],
        gradients: Callable[[Any, Any], Any] = grads, *,
        update: Callable[..., Any] | None = None) -> tuple[Any, Any, list[tuple[Any, Any, Any]]]:
  """The training loop: one update of ``tx`` per batch, from ``params``.

  Args:
    tx: the optimizer.
    params: the initial parameters.
    batches: what each update's gradients are computed from, in order.
    gradients: ``gradients(batch, params)``; the default, :func:`grads`, takes the step
      number as its batch.
    update: ``tx.update`` as it is to be called (default ``jax.jit(tx.update)``).

  Returns:
    The final parameters and state, and ``(updates, params, state)`` after every update.
  """
  update = update or jax.jit(tx.update)
  state = tx.init(params)
  history = []
  for batch in batches:
    updates, state = update(gradients(batch, params), state, params)
    params = optax.apply_updates(params, updates)
    history.append((updates, params, state))
  return params, state, history


def train(tx: optax.GradientTransformation, params: Any, steps: int,
          update: Callable[..., Any] | None = None) -> tuple[Any, Any]:
  """:func:`run` for ``steps`` updates with :func:`grads`; the final parameters and state."""
  params, state, _ = run(tx, params, range(steps), update=update)
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
  as_tree = lambda leaves: dict(zip(names, map(jnp.asarray, leaves)))
  _, _, history = run(tx, as_tree(weights), grads_seq, lambda g, _: as_tree(g),
                      update=None if jit else tx.update)
  return [[np.asarray(params[k]) for k in names] for _, params, _ in history]


def wb_params() -> dict[str, jax.Array]:
  """A 2 x 3 matrix ``w`` and a vector ``b``, with values of both signs."""
  return {"w": jnp.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.5]]), "b": jnp.array([0.1, -0.2])}


def wb_grads(step: int, params: Any, scale: float = 1.0) -> Any:
  """:func:`grads` for :func:`wb_params`: ``scale (p - 0.3 + N(0, 1))``, its own noise."""
  return grads(step, params, seed=1, shift=0.3, scale=scale)


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
  """:func:`run` over the batches ``(x, y)`` with ``grad_fn`` (default ``jax.grad(loss_fn)``),
  jitted; returns the final params, state and every update."""
  grad_fn = jax.jit(grad_fn or jax.grad(loss_fn))
  params, state, history = run(tx, params, zip(xs, ys), lambda xy, p: grad_fn(p, *xy))
  return params, state, [updates for updates, _, _ in history]


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


ROOT = pathlib.Path(__file__).resolve().parents[1]
DEVICES = 8


def device_env(devices: int = DEVICES) -> dict[str, str]:
  """This process's environment, for a jax process with ``devices`` virtual CPU devices."""
  return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
              JAX_PLATFORMS="cpu")


def run_on_devices(script: os.PathLike | str, *cases: str, timeout_s: float,
                   devices: int = DEVICES) -> str:
  """Runs ``python script case ...`` in a fresh process with ``devices`` virtual CPU devices.

  The device count must be set (``XLA_FLAGS``) before jax is imported, hence the process; the
  timeout makes a hang (of XLA's CPU collectives, say) a failure instead of a stuck test run.
  Fails the test unless the process succeeds; returns (and prints) its stdout.
  """
  import pytest  # only tests call this

  env = device_env(devices)
  what = f"{pathlib.Path(script).name} {' '.join(cases)}"
  try:
    proc = subprocess.run([sys.executable, str(script), *cases], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout_s)
  except subprocess.TimeoutExpired as e:
    pytest.fail(f"{what} hung for {timeout_s} s on {devices} devices; last output:\n"
                f"{(e.stdout or b'')[-3000:]!r}\n{(e.stderr or b'')[-3000:]!r}")
  assert proc.returncode == 0, f"{what} failed:\n{proc.stdout}\n{proc.stderr[-6000:]}"
  print(proc.stdout)
  return proc.stdout
