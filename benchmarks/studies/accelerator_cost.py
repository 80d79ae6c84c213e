"""Bytes accessed per sharded step on a TPU v5e 2x4 slice, with every pass of freezing's selection.

Compiles (and never runs) the sharded jit step of ``sharded_step.py`` (its tree
of about ``n`` float32 weights over a 1-D ``"model"`` mesh of 8 devices, update
and apply, buffers donated, state sharded like the parameters) of optax.adam,
CoRe (``core_optax.recommended("mini-batch")``, as ``core_optax.core(1e-3)``),
CoRe with importance scores (eq. 8, ``t_hist = 250``) that freezes nothing,
and CoRe with freezing (``stability_plasticity=True``: ``t_hist = 250``,
``p_frozen = 0.1``, every leaf its own group), for the devices of a
TPU v5e 2x4 topology (``--platform tpu``: libtpu compiles for a slice that is
not there) or 8 virtual CPU devices (``--platform cpu``, the default, for a
machine without libtpu). It prints XLA's ``cost_analysis()`` of each compiled
step: "bytes accessed" (per device: the partitioned program) and flops, and the
collectives of the compiled HLO (``sharded_step.collectives``; a collective in
a loop counts once).

XLA's cost analysis counts a while loop's body once (and of a ``lax.cond``, its
costlier branch), but the exact search of eq. 5's thresholds loops: one read of
the scores per iteration (a count against 8 rungs per group, or a cut of the
brackets to their extremes). The study therefore compiles one read on its own,
on the step's scores (the parameters' shapes, dtype and shardings, packed as the
search packs them): ``_search._count`` and ``_search._extremes`` (the search's
two kinds of read, internal functions of ``core_optax._search``; its entry point
for measurements, ``_search.search``, counts the reads), and takes the costlier
as the bytes of one read. For ``p`` reads per update it reports
``bytes(step) + (p - 1) * bytes(read)``: the step as counted holds at least one
read, so this counts every read. It also compiles ``_search.search`` alone on
the same scores (from guesses, as the optimizer does): its bytes over those of a
read say how many reads the cost analysis counts in the loop. ``p`` defaults to
the median and the maximum reads per update that ``python -m benchmarks
selection-passes`` measured (median 2, max 7); pass others with ``--passes``.
"Bytes accessed" is XLA's estimate of memory traffic, not a timing.

The verb runs the compilation in a fresh process, with ``JAX_PLATFORMS=cpu``
(libtpu only compiles) and 8 host CPU devices also under ``--platform tpu``:
a process on the 8-chip slice sees ``jax.device_count() == 8``, and the
selection reads that count (with 1 device it takes the unsharded path, which
gathers the scores)::

  python -m benchmarks accelerator-cost [--platform cpu|tpu] [--sizes N ...] [--passes P ...]
  TPU_ACCELERATOR_TYPE=v5litepod-8 TPU_WORKER_HOSTNAMES=localhost JAX_PLATFORMS=cpu \\
      XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
      python -m benchmarks.studies.accelerator_cost --platform tpu

In a venv with ``jax[tpu]``, optax and chex (and ``PYTHONPATH`` at the
repository), the second line needs neither the benchmarks' other dependencies
nor a TPU; ``benchmarks/results/studies/accelerator_cost.md`` has the set-up.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import optax

from benchmarks.studies import sharded_step
import core_optax
from core_optax import _search

SIZES = (1 << 20, 8 << 20)  # 1.05e6 and 8.39e6 parameters (the 8.4M)
PASSES = (2, 7)  # median and max reads per update: python -m benchmarks selection-passes
TOPOLOGY = "v5e:2x4"
TPU_ENV = {"TPU_ACCELERATOR_TYPE": "v5litepod-8", "TPU_WORKER_HOSTNAMES": "localhost"}
ROOT = pathlib.Path(__file__).resolve().parents[2]


def optimizers() -> dict[str, optax.GradientTransformation]:
  """The steps compiled; "scores" keeps eq. 8's importance scores and freezes nothing."""
  return {"optax.adam": optax.adam(1e-3),
          "core_optax": core_optax.recommended("mini-batch"),
          "core_optax scores": core_optax.recommended(
              "mini-batch", score_history=core_optax.STABILITY_PLASTICITY["score_history"]),
          "core_optax freezing": core_optax.recommended("mini-batch", stability_plasticity=True)}


def mesh(platform: str) -> jax.sharding.Mesh:
  """The 8 devices' mesh: a TPU v5e 2x4 topology's (compile-only), or the local CPUs'."""
  if platform == "tpu":
    from jax.experimental import topologies
    return sharded_step.mesh(topologies.get_topology_desc(TOPOLOGY, platform="tpu").devices)
  return sharded_step.mesh()


def cost(compiled: jax.stages.Compiled) -> tuple[float, float]:
  """``(bytes accessed, flops)`` of XLA's cost analysis of a compiled program."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # one per program in older JAX
    analysis = analysis[0]
  return float(analysis["bytes accessed"]), float(analysis.get("flops", 0.0))


def every_pass(step_bytes: float, pass_bytes: float, passes: float) -> float:
  """Bytes of a step whose selection makes ``passes`` passes: the one counted, and the rest."""
  return step_bytes + (passes - 1) * pass_bytes


def selection_bytes(n: int, on: jax.sharding.Mesh) -> dict[str, float]:
  """Bytes accessed by one read of the search (a count, a cut) and by the search, alone.

  On freezing's scores for :func:`sharded_step.tree` (every leaf its own
  group): the parameters' shapes, dtype and shardings, as the state's ``S``.
  """
  params, _ = sharded_step.tree(n, on)
  leaves = tuple(jax.tree.leaves(params))
  rows = len(leaves)
  groups = lambda leaves: [[leaf] for leaf in leaves]
  replicated = NamedSharding(on, P())
  rungs = jax.ShapeDtypeStruct((rows, _search.RUNGS), jnp.uint32, sharding=replicated)
  bounds = jax.ShapeDtypeStruct((rows,), jnp.uint32, sharding=replicated)
  count = jax.jit(lambda leaves, rungs: _search._count(_search.pack(groups(leaves))[0], rungs))
  cut = jax.jit(lambda leaves, lo, hi: _search._extremes(_search.pack(groups(leaves))[0], lo, hi))
  ks = [int(core_optax.STABILITY_PLASTICITY["frozen_fraction"] * leaf.size) for leaf in leaves]
  search = jax.jit(lambda leaves, guesses: _search.search(groups(leaves), ks, guesses).thresholds)
  guesses = jax.ShapeDtypeStruct((rows,), jnp.float32, sharding=replicated)
  out = {"count": cost(count.lower(leaves, rungs).compile())[0],
         "cut": cost(cut.lower(leaves, bounds, bounds).compile())[0],
         "search": cost(search.lower(leaves, guesses).compile())[0]}
  out["pass"] = max(out["count"], out["cut"])
  return out


def rows(on: jax.sharding.Mesh, sizes: Sequence[int] = SIZES,
         passes: Sequence[float] = PASSES) -> list[dict[str, object]]:
  """Per size and optimizer: bytes, flops and collectives of the step, and the estimates.

  ``estimates`` maps each number of passes to :func:`every_pass` (the step's
  bytes for optimizers without a selection).
  """
  out = []
  for n in sizes:
    for name, tx in optimizers().items():
      compiled = sharded_step.compile_step(tx, n, on)
      step_bytes, flops = cost(compiled)
      found = sharded_step.collectives(compiled.as_text())
      row = {"parameters": sum(leaf.size for leaf in jax.tree.leaves(sharded_step.tree(n, on)[0])),
             "optimizer": name, "bytes": step_bytes, "flops": flops, "collectives": found,
             "estimates": {p: step_bytes for p in passes}}
      if name.endswith("freezing"):
        row["selection"] = selection_bytes(n, on)
        row["estimates"] = {p: every_pass(step_bytes, row["selection"]["pass"], p)
                            for p in passes}
      out.append(row)
  return out


def table(measured: list[dict[str, object]]) -> list[str]:
  """Markdown lines of :func:`rows`, in MB (1e6 bytes) and ratios to optax.adam of the size."""
  passes = [float(p) for p in measured[0]["estimates"]]  # str keys after a JSON round trip
  lines = ["| parameters | optimizer | bytes accessed (MB) | x adam | GFLOP | collectives | "
           "largest collective (elements) | bytes per pass (MB) | loop as counted (passes) | "
           + " | ".join(f"{p:g} passes: MB | x adam" for p in passes) + " |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|---:|" * len(passes)]
  adam = {}
  for row in measured:
    adam.setdefault(row["parameters"], row["bytes"])
    base = adam[row["parameters"]]
    op, largest = max(row["collectives"], key=lambda c: c[1], default=("none", 0))
    selection = row.get("selection")
    per_pass = f"{selection['pass'] / 1e6:.2f}" if selection else "-"
    counted = f"{selection['search'] / selection['pass']:.1f}" if selection else "-"
    estimates = " | ".join(f"{b / 1e6:.1f} | {b / base:.2f}" for b in row["estimates"].values())
    lines.append(f"| {row['parameters']:.3g} | {row['optimizer']} | {row['bytes'] / 1e6:.1f} | "
                 f"{row['bytes'] / base:.2f} | {row['flops'] / 1e9:.3f} | "
                 f"{len(row['collectives'])} | {largest:,} ({op}) | {per_pass} | {counted} | "
                 f"{estimates} |")
  return lines


def environment(platform: str) -> dict[str, str]:
  """The fresh process's environment: 8 host CPU devices, and libtpu's for ``tpu``."""
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"
  env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu",  # libtpu: compile only
             PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
  if platform == "tpu":
    env.update({k: os.environ.get(k, v) for k, v in TPU_ENV.items()})
  return env


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--platform", choices=("cpu", "tpu"), default="cpu",
                      help="compile for 8 virtual CPU devices (default) or, with libtpu, "
                      f"for a TPU {TOPOLOGY} slice")
  parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                      help="parameters (about; multiples of 1024)")
  parser.add_argument("--passes", type=float, nargs="+", default=list(PASSES),
                      help="reads of the scores per update to estimate for (default: median "
                      "and max of `python -m benchmarks selection-passes`)")


def _options(args: argparse.Namespace) -> list[str]:
  return ["--platform", args.platform, "--sizes", *map(str, args.sizes),
          "--passes", *(f"{p:g}" for p in args.passes)]


def main(args: argparse.Namespace) -> None:
  """Runs the study in a fresh process (see the module's docstring) and prints its table."""
  subprocess.run([sys.executable, "-m", __name__, *_options(args)],
                 env=environment(args.platform), check=True)


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  add_arguments(parser)
  options = parser.parse_args()
  assert jax.device_count() == 8, "set XLA_FLAGS=--xla_force_host_platform_device_count=8"
  print(f"jax {jax.__version__}, optax {optax.__version__}, core_optax {core_optax.__version__}, "
        f"platform {options.platform}" + (f" ({TOPOLOGY})" if options.platform == "tpu" else ""),
        flush=True)
  print(*table(rows(mesh(options.platform), options.sizes, options.passes)), sep="\n")
