"""Freezing's compiled size does not grow with the number of leaves (compile time's stand-in).

XLA:CPU spends about 10-30 ms of code generation on every distinct kernel, so a search that
reduced every leaf separately inside its loop compiled for minutes on models with hundreds
of leaves. These tests count instructions of the optimized HLO of a jitted, donated freezing
step (deterministic, unlike compile times on a shared machine) for 30 and 300 leaves of the
same total size (``benchmarks/studies/timing.small_leaves_shapes``'s pattern: dense layers,
every leaf its own group).

Measured at 30 and 300 leaves (instructions): the search's while loop 1,105 and 1,123; the
selection (the cond's branch that packs the scores and searches) 1,810 and 4,416. The
counting search this one replaced (one reduction per leaf and read) fails both tests: its loop
2,997 and 24,096, its selection 4,049 and 34,058. The whole step grows with the leaves, as
optax.adam's does (per-leaf arithmetic), which is why the tests look at the selection.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import optax

import core_optax

MAX_INSTRUCTIONS_PER_LEAF = 16
"""Measured: 9.7 (the counting search it replaced: 111, most of them inside its loop)."""

CALLS = re.compile(r"(?:calls|body|condition|to_apply|branch_computations|true_computation|"
                   r"false_computation)=\{?(%[\w.\-]+(?:, %[\w.\-]+)*)\}?")


def computations(hlo: str) -> dict[str, list[str]]:
  """Every computation of HLO text: its name and its instruction lines."""
  out, name = {}, None
  for line in hlo.splitlines():
    header = re.match(r"^(?:ENTRY )?(%[\w.\-]+) .*\{$", line)
    if header:
      name = header.group(1)
      out[name] = []
    elif name and re.match(r"^\s+(?:ROOT )?%\S+ = ", line):
      out[name].append(line)
  return out


def reachable(comps: dict[str, list[str]], roots: list[str]) -> set[str]:
  """The computations ``roots`` call, directly or not, and ``roots``."""
  seen, todo = set(), list(roots)
  while todo:
    name = todo.pop()
    if name in seen:
      continue
    seen.add(name)
    for line in comps[name]:
      for group in CALLS.findall(line):
        todo += group.split(", ")
  return seen


def size(comps: dict[str, list[str]], names: set[str]) -> int:
  return sum(len(comps[n]) for n in names)


@functools.cache
def freezing_step_sizes(leaves: int) -> tuple[int, int]:
  """Instructions of the search's while loop and of the selection branch of the step."""
  params = [jnp.zeros(s) for _ in range(leaves // 2) for s in ((24, 27), (27,))]
  tx = core_optax.core(1e-3, score_history=250, frozen_fraction=0.1)

  def step(p, s, g):
    updates, s = tx.update(g, s, p)
    return optax.apply_updates(p, updates), s

  hlo = jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params), params)
  comps = computations(hlo.compile().as_text())
  loops = [CALLS.findall(line) for lines in comps.values() for line in lines
           if " while(" in line]
  assert loops, "no while loop: the search was not compiled"
  loop = set().union(*(reachable(comps, g.split(", ")) for found in loops for g in found))
  branches = [g.split(", ") for lines in comps.values() for line in lines
              if " conditional(" in line for g in CALLS.findall(line)]
  selection = max((reachable(comps, [b]) for group in branches for b in group),
                  key=lambda names: size(comps, names))
  return size(comps, loop), size(comps, selection)


def test_the_search_loop_compiles_to_the_same_size_for_ten_times_the_leaves():
  """One reduction per read, whatever the number of leaves."""
  few, many = freezing_step_sizes(30)[0], freezing_step_sizes(300)[0]
  assert many <= 1.1 * few, (few, many)


def test_the_selection_grows_by_a_small_constant_per_leaf_outside_the_loop():
  """Per leaf, the selection only packs the leaf into the blocks and hands its group's
  limit and decay to the leaf's kernels."""
  few, many = freezing_step_sizes(30)[1], freezing_step_sizes(300)[1]
  assert (many - few) / 270 <= MAX_INSTRUCTIONS_PER_LEAF, (few, many)
