"""Collectives and memory of a sharded optimizer step on 8 virtual CPU devices (compiled only).

For the tree ``{"w": (64, n / 128) P(None, "model"), "v": (n / 2,) P("model"),
"b": (256,) P()}`` with n = 1e6 and 1e7 parameters, compiles one jit step
(update and apply, buffers donated, state sharded like the parameters with
``optax.tree_map_params``) of optax.adam, core_optax.core and core_optax.core
with freezing (t_hist = 250, p_frozen = 0.1), and prints from the compiled HLO
the largest collective and the elements all collectives move (a collective in
a loop counts once), and from ``memory_analysis()`` the temp and argument bytes
per device. Imports only public API, so that it measures any checkout::

  python -m benchmarks sharded-step
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/studies/sharded_step.py

The verb runs the script in a fresh process (the device count is read at
start-up); ``python -m benchmarks step-speed`` runs it as its sharded section.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import optax

import core_optax

DEVICES = 8
SIZES = (1 << 20, 10 << 20)  # about 1e6 and 1e7, divisible over the devices
COLLECTIVE = re.compile(r"=\s*(.*?)\s+(all-reduce|all-gather|all-to-all|collective-permute|"
                        r"reduce-scatter)(?:-start)?\(")


def collectives(hlo: str) -> list[tuple[str, int]]:
  """``(op, elements)`` of every collective in compiled HLO text."""
  found = []
  for match in filter(None, map(COLLECTIVE.search, hlo.splitlines())):
    sizes = []
    for dims in re.findall(r"[a-z]+[0-9]*\[([0-9,]*)\]", match.group(1)):
      size = 1
      for d in filter(None, dims.split(",")):
        size *= int(d)
      sizes.append(size)
    found.append((match.group(2), sum(sizes)))
  return found


def mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D ``"model"`` mesh (an Auto axis) over ``devices``, by default ``DEVICES`` local ones.

  ``devices`` may be those of a topology that is compiled for but absent (see
  ``benchmarks/studies/accelerator_cost.py``).
  """
  devices = jax.devices()[:DEVICES] if devices is None else list(devices)
  return jax.make_mesh((len(devices),), ("model",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def tree(n: int, on: jax.sharding.Mesh) -> tuple[dict[str, jax.ShapeDtypeStruct],
                                                  dict[str, NamedSharding]]:
  """The study's float32 parameters of about ``n`` weights (shapes and shardings only)."""
  shapes = {"w": (64, n // 128), "v": (n // 2,), "b": (256,)}
  specs = {"w": P(None, "model"), "v": P("model"), "b": P()}
  shardings = {name: NamedSharding(on, spec) for name, spec in specs.items()}
  params = {name: jax.ShapeDtypeStruct(shape, jnp.float32, sharding=shardings[name])
            for name, shape in shapes.items()}
  return params, shardings


def compile_step(tx: optax.GradientTransformation, n: int,
                 on: jax.sharding.Mesh | None = None) -> jax.stages.Compiled:
  """The jit step (update and apply, buffers donated) with the state sharded like the params."""
  on = mesh() if on is None else on
  params, shardings = tree(n, on)
  state = jax.eval_shape(tx.init, params)
  state_shardings = optax.tree_map_params(
      tx, lambda _, sharding: sharding, state, shardings,
      transform_non_params=lambda _: NamedSharding(on, P()))
  state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                       state, state_shardings)

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return jax.jit(step, donate_argnums=(0, 1), out_shardings=(shardings, state_shardings)
                 ).lower(params, state, params).compile()


def measure(tx: optax.GradientTransformation, n: int,
            on: jax.sharding.Mesh | None = None) -> dict[str, object]:
  compiled = compile_step(tx, n, on)
  found = collectives(compiled.as_text())
  memory = compiled.memory_analysis()
  return {"parameters": 64 * (n // 128) + n // 2 + 256,
          "largest": max(found, key=lambda c: c[1], default=("none", 0)),
          "total": sum(e for _, e in found), "count": len(found),
          "temp": memory.temp_size_in_bytes, "arguments": memory.argument_size_in_bytes}


def table() -> list[str]:
  lines = ["| parameters | optimizer | largest collective (elements) | collectives | "
           "elements moved per step | temp per device (MB) | arguments per device (MB) |",
           "|---:|---|---:|---:|---:|---:|---:|"]
  print(*lines, sep="\n", flush=True)
  optimizers = {"optax.adam": optax.adam(1e-3), "core_optax": core_optax.core(1e-3),
                "core_optax freezing": core_optax.core(1e-3, score_history=250,
                                                        frozen_fraction=0.1)}
  for n in SIZES:
    for name, tx in optimizers.items():
      m = measure(tx, n)
      op, largest = m["largest"]
      lines.append(f"| {m['parameters']:.2e} | {name} | {largest:,} ({op}) | {m['count']} | "
                   f"{m['total']:,} | {m['temp'] / 1e6:.2f} | {m['arguments'] / 1e6:.2f} |")
      print(lines[-1], flush=True)
  return lines


def table_in_subprocess() -> list[str]:
  """:func:`table`, printed and returned, from a fresh process with ``DEVICES`` virtual CPUs."""
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={DEVICES}"
  env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                       check=True).stdout
  print(out, end="", flush=True)
  return [line for line in out.splitlines() if line.startswith("|")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
  del parser  # no options


def main(args: argparse.Namespace) -> None:
  del args
  table_in_subprocess()


if __name__ == "__main__":
  assert jax.device_count() == DEVICES, "set XLA_FLAGS=--xla_force_host_platform_device_count=8"
  table()
