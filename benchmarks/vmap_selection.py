"""What freezing costs under ``vmap`` (e.g. a sweep over seeds), before and after t_hist.

Under ``vmap`` the ``lax.cond`` that skips the selection while no group freezes gets a batched
predicate and runs its branch for every member; the selection then skips the groups that are
not needed. Prints the median step time of ``jit(vmap(step))`` over 4 members of an MLP-like
tree (fixed gradients, buffers donated) for CoRe without scores, and CoRe with
``score_history=250, frozen_fraction=0.1`` before t_hist (tau = 0) and after it (tau = t_hist,
scores near their steady state), with ratios to the first.

  python -m benchmarks.vmap_selection
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import core_optax
from benchmarks.step_speed import P_FROZEN, S_MAX, T_HIST, arrays, mlp_shapes, scores, time_interleaved

MEMBERS = 4


class VmappedStep:
  """``params, state <- jit(vmap(step))(params, state, grads)`` for ``MEMBERS`` equal members."""

  def __init__(self, tx: optax.GradientTransformation, shapes, tau: int = 0):
    stack = lambda xs: [jnp.stack([jnp.asarray(x)] * MEMBERS) for x in xs]  # noqa: E731
    self.params, self.grads = stack(arrays(shapes, 0)), stack(arrays(shapes, 1))
    self.state = jax.vmap(tx.init)(self.params)
    if tau:
      core_state = self.state[0]._replace(tau=jnp.full([MEMBERS], tau, jnp.int32),
                                          S=stack(scores(shapes)))
      self.state = (core_state, *self.state[1:])

    def step(params, state, grads):
      updates, state = tx.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    self.step = jax.jit(jax.vmap(step), donate_argnums=(0, 1))

  def __call__(self):
    self.params, self.state = self.step(self.params, self.state, self.grads)
    jax.block_until_ready((self.params, self.state))


def main() -> None:
  frozen = dict(score_history=T_HIST, frozen_fraction=P_FROZEN)
  print(f"jit(vmap(step)) over {MEMBERS} members, CPU; median ms per step (ratio to CoRe)")
  print("| parameters per member | CoRe | CoRe freezing, tau < t_hist | CoRe freezing, tau > t_hist |")
  print("|---:|---:|---:|---:|")
  for n in (10**5, 10**6):
    shapes = mlp_shapes(n)
    runs = {
        "core": VmappedStep(core_optax.core(S_MAX), shapes),
        "before": VmappedStep(core_optax.core(S_MAX, **frozen), shapes),
        "after": VmappedStep(core_optax.core(S_MAX, **frozen), shapes, tau=T_HIST),
    }
    times = time_interleaved(runs, 30)
    print(f"| {n:.0e} | " + " | ".join(
        f"{times[name] * 1e3:.2f} ({times[name] / times['core']:.2f}x)" for name in runs) + " |")


if __name__ == "__main__":
  main()
