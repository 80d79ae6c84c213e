"""Step time and state memory of CoRe against Adam, in JAX and in PyTorch (CPU or GPU).

One table: for a 10-leaf MLP-like tree and a 300-leaf tree of small leaves, at
1e5, 1e6 and 1e7 parameters, the median time of one optimizer step (update and
apply, fixed gradients, buffers donated) of optax.adam, core_optax.core with
freezing off and on (t_hist = 250 passed, p_frozen = 0.1; each also compiled with
:data:`REGION_ANALYSIS`), torch.optim.Adam and the reference
``core_optimizer.CoRe`` (freezing off and on), and steps that move CoRe's data
(without and with the scores ``S``) with one add per element
(:func:`data_movement`), with ratios to optax.adam, bytes of state per
parameter, for JAX the bytes per parameter that the compiled step copies (see
:func:`benchmarks.studies.timing.copied_bytes`), and the page faults per step (see
:func:`benchmarks.studies.timing.time_interleaved`). The optimizers of one row group run
interleaved, so that load from other processes hits them alike (torch gets one thread per
core, as XLA:CPU). Then jit compile times of core_optax against the number of leaves, and the
collectives and memory per device of a sharded step on 8 virtual devices
(:mod:`benchmarks.studies.sharded_step`).

  python -m benchmarks step-speed [--quick] [--out benchmarks/results/studies/step_speed.md]

JAX runs on its default device; on a GPU machine add ``--torch-device cuda`` (the
region-analysis rows are XLA:CPU's and run on CPU only).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import os
import pathlib
import platform
import sys

from core_optimizer import CoRe
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from benchmarks.studies import sharded_step
from benchmarks.studies.timing import P_FROZEN
from benchmarks.studies.timing import S_MAX
from benchmarks.studies.timing import T_HIST
from benchmarks.studies.timing import Jax
from benchmarks.studies.timing import arrays
from benchmarks.studies.timing import mlp_shapes
from benchmarks.studies.timing import scores
from benchmarks.studies.timing import small_leaves_shapes
from benchmarks.studies.timing import time_interleaved
import core_optax

ENVIRONMENT = ("XLA_FLAGS", "MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")
"""Environment variables recorded with the command in the report."""

REGION_ANALYSIS = {"xla_cpu_copy_insertion_use_region_analysis": True}
"""XLA:CPU compiler options (``jax.jit(..., compiler_options=...)``) that let it drop some of the
copies :func:`benchmarks.studies.timing.copied_bytes` counts; the rows "..., region analysis"
compile with them."""


class Torch:
  """``opt.step()`` with fixed gradients, on ``device``; a step on a GPU waits for its kernels."""

  def __init__(self, make: Callable, shapes, freezing: bool = False, device: str = "cpu"):
    self.device = torch.device(device)
    put = lambda x: torch.from_numpy(x).to(self.device)
    self.params = [torch.nn.Parameter(put(x)) for x in arrays(shapes, 0)]
    for p, g in zip(self.params, arrays(shapes, 1)):
      p.grad = put(g)
    self.opt = make(self.params)
    self.opt.step()  # creates the state
    if freezing:  # skip to t >= t_hist, with realistic scores
      for p, s in zip(self.params, scores(shapes)):
        self.opt.state[p]["step"] = T_HIST
        self.opt.state[p]["score"].copy_(put(s))
    n = sum(p.numel() for p in self.params)
    tensors = [v for st in self.opt.state.values() for v in st.values()
               if isinstance(v, torch.Tensor) and v.numel() > 1]
    self.bytes = sum(v.numel() * v.element_size() for v in tensors) / n
    self.copies = None

  def __call__(self):
    self.opt.step()
    if self.device.type == "cuda":
      torch.cuda.synchronize(self.device)


def data_movement(scores: bool = False) -> optax.GradientTransformation:
  """Reads and writes what CoRe does (G and state g, h, s, and S with ``scores``), one add each.

  Not an optimizer: where a step is bound by memory traffic (1e7 parameters here), what
  moving CoRe's data costs in XLA, whatever the arithmetic; with ``scores``, before
  freezing's selection reads the scores again.
  """
  def init(params):
    return tuple(jax.tree.map(jnp.zeros_like, params) for _ in range(4 if scores else 3))

  def update(updates, state, params=None):
    del params
    add = lambda tree: jax.tree.map(jnp.add, tree, updates)
    return add(state[2]), tuple(add(tree) for tree in state)

  return optax.GradientTransformation(init, update)


def optimizers(shapes, torch_device: str = "cpu") -> dict[str, Callable[[], object]]:
  frozen = dict(score_history=T_HIST, frozen_fraction=P_FROZEN)
  ref_frozen = dict(score_history=T_HIST, frozen=P_FROZEN)
  region_analysis = {} if jax.default_backend() != "cpu" else {
      "core_optax, region analysis": lambda: Jax(core_optax.core(S_MAX), shapes,
                                                 compiler_options=REGION_ANALYSIS),
      "core_optax freezing, region analysis": lambda: Jax(
          core_optax.core(S_MAX, **frozen), shapes, True, compiler_options=REGION_ANALYSIS),
  }
  return {
      "optax.adam": lambda: Jax(optax.adam(S_MAX), shapes),
      "CoRe's data, one add each": lambda: Jax(data_movement(), shapes),
      "CoRe's data with S, one add each": lambda: Jax(data_movement(scores=True), shapes),
      "core_optax": lambda: Jax(core_optax.core(S_MAX), shapes),
      "core_optax freezing": lambda: Jax(core_optax.core(S_MAX, **frozen), shapes, True),
      **region_analysis,
      "core_optax freezing bf16 state": lambda: Jax(
          core_optax.core(S_MAX, state_dtype=jnp.bfloat16, **frozen), shapes, True),
      "torch Adam": lambda: Torch(lambda p: torch.optim.Adam(p, lr=S_MAX), shapes,
                                  device=torch_device),
      "torch CoRe": lambda: Torch(lambda p: CoRe(p, step_sizes=(1e-6, S_MAX)), shapes,
                                  device=torch_device),
      "torch CoRe freezing": lambda: Torch(
          lambda p: CoRe(p, step_sizes=(1e-6, S_MAX), **ref_frozen), shapes, True, torch_device),
  }


def speed_table(sizes, reps, torch_device: str) -> list[str]:
  lines = [("| tree | parameters | optimizer | step (ms) | / optax.adam | state (B/param) "
            "| XLA copies (B/param) | page faults / step |"),
           "|---|---|---|---:|---:|---:|---:|---:|"]
  for tree, shape_fn in (("MLP, 10 leaves", mlp_shapes), ("300 small leaves", small_leaves_shapes)):
    for n in sizes:
      shapes = shape_fn(n)
      count = sum(int(np.prod(s)) for s in shapes)
      runs = {name: make() for name, make in optimizers(shapes, torch_device).items()}
      times = time_interleaved(runs, reps(n))
      for name, (seconds, faults) in times.items():
        lines.append(f"| {tree} | {count:.1e} | {name} | {seconds * 1e3:.2f} | "
                     f"{seconds / times['optax.adam'].seconds:.2f} | {runs[name].bytes:.0f} | "
                     f"{'—' if runs[name].copies is None else f'{runs[name].copies:.0f}'} | "
                     f"{faults:.0f} |")
      print("\n".join(lines[-len(times):]), flush=True)
      del runs
  return lines


def compile_table(n: int, leaf_counts) -> list[str]:
  lines = ["| leaves | groups | optax.adam (s) | core_optax (s) | core_optax freezing (s) |",
           "|---:|---:|---:|---:|---:|"]
  frozen = dict(score_history=T_HIST, frozen_fraction=P_FROZEN)
  for leaves in leaf_counts:
    shapes = small_leaves_shapes(n, leaves // 2)
    seconds = [Jax(tx, shapes).compile_s for tx in (
        optax.adam(S_MAX), core_optax.core(S_MAX), core_optax.core(S_MAX, **frozen))]
    lines.append(f"| {leaves} | {leaves} | " + " | ".join(f"{s:.2f}" for s in seconds) + " |")
    print(lines[-1], flush=True)
  return lines


def _load(averages: tuple[float, float, float]) -> str:
  return "/".join(f"{a:.1f}" for a in averages)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--quick", action="store_true", help="1e5 and 1e6 only, fewer repetitions")
  parser.add_argument("--out", type=pathlib.Path, default=None, help="write a markdown report")
  parser.add_argument("--torch-device", default="cpu",
                      help="where torch runs (JAX runs on its default device): cpu or cuda")


def main(args: argparse.Namespace) -> None:
  sizes = (10**5, 10**6) if args.quick else (10**5, 10**6, 10**7)
  reps = (lambda n: 10) if args.quick else (lambda n: {10**5: 60, 10**6: 30}.get(n, 9))
  # torch gets as many threads as XLA:CPU's intra-op pool (one per core).
  torch.set_num_threads(os.cpu_count())
  load_at_start = os.getloadavg()
  speed = speed_table(sizes, reps, args.torch_device)
  sharded = sharded_step.table_in_subprocess()
  compile_ = compile_table(10**6 if not args.quick else 10**5, (30, 100, 300, 600))
  if args.out:
    command = "python -m benchmarks " + " ".join(sys.argv[1:])
    for name in reversed(ENVIRONMENT):  # settings that change the timings, read at start-up
      if os.environ.get(name):
        command = f"{name}={os.environ[name]} {command}"
    header = [
        f"# Step speed and state memory ({jax.default_backend().upper()}, float32)", "",
        f"Command: `{command}`", "",
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, JAX on {jax.devices()[0].device_kind}, "
        f"torch on {args.torch_device}, jax {jax.__version__}, "
        f"optax {optax.__version__}, torch {torch.__version__}; load average (1, 5, 15 min) "
        f"{_load(load_at_start)} at the start, {_load(os.getloadavg())} at the end (this run "
        f"alone makes about {os.cpu_count()}): medians of interleaved repetitions.", "",
    ]
    body = ["## Step time", "", *speed, "", "## jit compile time (1e6 parameters in N leaves, "
            "every leaf its own group)", "", *compile_, "",
            "## Sharded step on 8 virtual CPU devices (compiled only; see "
            "`benchmarks/studies/sharded_step.py`)", "", *sharded, ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + body))
