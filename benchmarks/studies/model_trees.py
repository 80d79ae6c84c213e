"""Compile and step time of freezing on the parameter trees of today's models.

Trees: the 10-leaf MLP-like tree of ``step-speed`` at 1e5, 1e6 and 1e7 weights, a GPT-style
tree (``timing.gpt_shapes``: 12 layers of width 128, 148 leaves, 2.4e6 weights), and 1e6
weights in 300 and 600 small leaves (``timing.small_leaves_shapes``); every leaf its own
group (the default). Per tree: the jit compile time (``lower(...).compile()``, fresh, no
compilation cache) and the median step time (update and apply, fixed gradients, buffers
donated, interleaved repetitions in one process) of optax.adam, ``core_optax.core`` without
scores, and with freezing (``t_hist = 250`` passed, ``p_frozen = 0.1``, realistic scores:
``timing.scores``), with the ratios freezing is judged by: its compile time over
optax.adam's, and its step time over CoRe's without freezing.

  python -m benchmarks model-trees [--reps 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import platform
import sys

import jax
import optax

from benchmarks.studies.timing import P_FROZEN
from benchmarks.studies.timing import S_MAX
from benchmarks.studies.timing import T_HIST
from benchmarks.studies.timing import Jax
from benchmarks.studies.timing import gpt_shapes
from benchmarks.studies.timing import mlp_shapes
from benchmarks.studies.timing import small_leaves_shapes
from benchmarks.studies.timing import time_interleaved
import core_optax

TREES = {
    "MLP, 10 leaves, 1e5": lambda: mlp_shapes(10**5),
    "MLP, 10 leaves, 1e6": lambda: mlp_shapes(10**6),
    "MLP, 10 leaves, 1e7": lambda: mlp_shapes(10**7),
    "GPT-style, 12 layers, width 128": gpt_shapes,
    "1e6 weights in 300 leaves": lambda: small_leaves_shapes(10**6, 150),
    "1e6 weights in 600 leaves": lambda: small_leaves_shapes(10**6, 300),
}


def optimizers(shapes) -> dict[str, Jax]:
  """Each compiled once (``Jax`` times its compilation)."""
  frozen = dict(score_history=T_HIST, frozen_fraction=P_FROZEN)
  return {"optax.adam": Jax(optax.adam(S_MAX), shapes),
          "core_optax": Jax(core_optax.core(S_MAX), shapes),
          "core_optax freezing": Jax(core_optax.core(S_MAX, **frozen), shapes, freezing=True)}


def table(reps: int, trees: dict = TREES) -> list[str]:
  lines = ["| tree | leaves | weights | optimizer | compile (s) | / optax.adam | step (ms) "
           "| / optax.adam | / core_optax |", "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
  for name, shapes_fn in trees.items():
    shapes = shapes_fn()
    n = sum(math.prod(s) for s in shapes)
    runs = optimizers(shapes)
    times = time_interleaved(runs, reps)
    adam, core = runs["optax.adam"], times["core_optax"].seconds
    for opt, run in runs.items():
      step = times[opt].seconds
      lines.append(f"| {name} | {len(shapes)} | {n:.2e} | {opt} | {run.compile_s:.2f} | "
                   f"{run.compile_s / adam.compile_s:.2f} | {1e3 * step:.2f} | "
                   f"{step / times['optax.adam'].seconds:.2f} | {step / core:.2f} |")
      print(lines[-1], flush=True)
  return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--reps", type=int, default=30, help="interleaved step repetitions")
  parser.add_argument("--out", type=pathlib.Path, default=None, help="write a markdown report")


def main(args: argparse.Namespace) -> None:
  load = os.getloadavg()
  lines = table(args.reps)
  if args.out:
    load_end = os.getloadavg()
    text = [
        "# Freezing on today's model trees: compile and step time (CPU, float32)", "",
        f"Command: `python -m benchmarks {' '.join(sys.argv[1:])}`", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}, optax {optax.__version__}; load average (1, 5, 15 min) "
        f"{'/'.join(f'{a:.1f}' for a in load)} at the start, "
        f"{'/'.join(f'{a:.1f}' for a in load_end)} at the end.", "", *lines, ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(text))
