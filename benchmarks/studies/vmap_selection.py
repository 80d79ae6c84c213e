"""What freezing costs under ``vmap`` (e.g. a sweep over seeds), before and after t_hist.

Under ``vmap`` the ``lax.cond`` that skips the selection while no group freezes gets a batched
predicate and runs its branch for every member; the selection then skips the groups that are
not needed. Prints the median step time of ``jit(vmap(step))`` over 4 members of an MLP-like
tree (fixed gradients, buffers donated) for CoRe without scores, and CoRe with
``score_history=250, frozen_fraction=0.1`` before t_hist (tau = 0) and after it (tau = t_hist,
scores near their steady state), with ratios to the first.

  python -m benchmarks vmap-selection
"""

from __future__ import annotations

import argparse

from benchmarks.studies.timing import P_FROZEN
from benchmarks.studies.timing import S_MAX
from benchmarks.studies.timing import T_HIST
from benchmarks.studies.timing import Jax
from benchmarks.studies.timing import mlp_shapes
from benchmarks.studies.timing import time_interleaved
import core_optax

MEMBERS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
  del parser  # no options


def main(args: argparse.Namespace) -> None:
  del args
  frozen = dict(score_history=T_HIST, frozen_fraction=P_FROZEN)
  print(f"jit(vmap(step)) over {MEMBERS} members, CPU; median ms per step (ratio to CoRe)")
  print("| parameters per member | CoRe | CoRe freezing, tau < t_hist "
        "| CoRe freezing, tau > t_hist |")
  print("|---:|---:|---:|---:|")
  for n in (10**5, 10**6):
    shapes = mlp_shapes(n)
    runs = {
        "core": Jax(core_optax.core(S_MAX), shapes, members=MEMBERS),
        "before": Jax(core_optax.core(S_MAX, **frozen), shapes, members=MEMBERS),
        "after": Jax(core_optax.core(S_MAX, **frozen), shapes, freezing=True, members=MEMBERS),
    }
    times = {name: timing.seconds for name, timing in time_interleaved(runs, 30).items()}
    print(f"| {n:.0e} | " + " | ".join(
        f"{times[name] * 1e3:.2f} ({times[name] / times['core']:.2f}x)" for name in runs) + " |")
