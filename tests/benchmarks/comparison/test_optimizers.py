"""Every registered optimizer's first steps against the torch optimizer it reproduces."""

import core_optimizer
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from benchmarks.comparison import optimizers
from benchmarks.comparison import transforms

LR = 0.01
N_STEPS = 8

TORCH = {
    "SGD": lambda p: torch.optim.SGD(p, lr=LR),
    "Momentum": lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9),
    "NAG": lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, nesterov=True),
    "Adam": lambda p: torch.optim.Adam(p, lr=LR),
    "AdaMax": lambda p: torch.optim.Adamax(p, lr=LR),
    "RMSprop": lambda p: torch.optim.RMSprop(p, lr=LR),
    "AdaGrad": lambda p: torch.optim.Adagrad(p, lr=LR),
    "AdaDelta": lambda p: torch.optim.Adadelta(p, lr=LR),
    "RPROP": lambda p: torch.optim.Rprop(p, lr=1e-3, step_sizes=(1e-6, LR)),
    "CoRe": lambda p: core_optimizer.CoRe(p, lr=1e-3, step_sizes=(1e-6, LR)),
    "CoRe-SP": lambda p: core_optimizer.CoRe(p, lr=1e-3, step_sizes=(1e-6, LR), score_history=250,
                                             frozen=0.1),
    "AdamW": lambda p: torch.optim.AdamW(p, lr=LR, weight_decay=0.01),
}
# optax's own implementations, with no torch counterpart (torch's NAdam adds a momentum
# schedule that optax.nadam does not have; torch has no Lion and no tuning-free optimizers).
OPTAX_ONLY = {"NAdam", "Lion", "Prodigy", "DAdapt-AdamW", "DoG", "COCOB", "SF-AdamW",
              "Mechanic-Adam"}
# CoRe-SP only freezes weights after t_hist = 250 steps.
STEPS = {"CoRe-SP": 260}


def _trajectories(name: str, n_steps: int):
  rng = np.random.default_rng(0)
  params = {"b": rng.normal(size=20), "w": rng.normal(size=(10, 10))}
  grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(n_steps)]

  torch_params = [torch.tensor(params[k], requires_grad=True) for k in sorted(params)]
  torch_opt = TORCH[name](torch_params)
  for g in grads:
    for p, k in zip(torch_params, sorted(params)):
      p.grad = torch.tensor(g[k])
    torch_opt.step()

  tx = optimizers.OPTIMIZERS[name].build(LR)
  jax_params = jax.tree.map(jnp.asarray, params)
  state = tx.init(jax_params)
  update = jax.jit(tx.update)
  for g in grads:
    updates, state = update(jax.tree.map(jnp.asarray, g), state, jax_params)
    jax_params = optax.apply_updates(jax_params, updates)
  return ({k: p.detach().numpy() for k, p in zip(sorted(params), torch_params)},
          jax.tree.map(np.asarray, jax_params))


def test_every_registered_optimizer_is_checked_here():
  assert set(optimizers.OPTIMIZERS) == set(TORCH) | OPTAX_ONLY


@pytest.mark.parametrize("name", sorted(TORCH))
def test_first_steps_match_torch(name, x64):
  expected, actual = _trajectories(name, STEPS.get(name, N_STEPS))
  for key in expected:
    np.testing.assert_allclose(actual[key], expected[key], rtol=1e-9, atol=1e-12, err_msg=key)


# optax.rprop (0.2.8) applies the previous step's update (its first update is zero) and
# skips the step-size clamp where g * g_prev == 0; optax PR #1725 fixes both. The benchmark
# therefore runs transforms.torch_rprop, and this test holds it against torch.optim.Rprop
# itself on exactly those cases, not against optax's behaviour, which is going to change.
RPROP_GRADIENTS = [  # per step, for 5 weights
    [0.5, -2.0, 0.0, 1.0, 1.0],   # first step: every weight with a gradient moves
    [0.5, 2.0, 1.0, 0.0, 1.0],    # kept sign, sign flip, first gradient, zero gradient
    [0.5, 2.0, -1.0, 0.0, 1.0],   # after a flip the gradient counts as 0: no flip again
    [0.5, -2.0, -1.0, 1.0, 1.0],
    [0.5, -2.0, 1.0, -1.0, 1.0],  # s_max and s_min reached, clamps hold
    [0.5, 2.0, 1.0, -1.0, -1.0],
]


@pytest.mark.parametrize("initial_step_size", [0.1, 0.2], ids=["inside", "above_s_max"])
def test_torch_rprop_equals_torch_on_first_steps_sign_flips_zeros_and_clamps(
    initial_step_size, x64):
  # s^0 = 0.2 > s_max: torch clamps it on the first step, where every g * g_prev is 0.
  kwargs = dict(eta_minus=0.5, eta_plus=1.2, min_step_size=0.04, max_step_size=0.15)
  weights = torch.zeros(5, dtype=torch.float64, requires_grad=True)
  torch_opt = torch.optim.Rprop([weights], lr=initial_step_size, etas=(0.5, 1.2),
                                step_sizes=(0.04, 0.15))
  tx = transforms.scale_by_torch_rprop(initial_step_size, **kwargs)
  params = jnp.zeros(5, jnp.float64)
  state = tx.init(params)
  for step, g in enumerate(RPROP_GRADIENTS):
    weights.grad = torch.tensor(g, dtype=torch.float64)
    torch_opt.step()
    updates, state = tx.update(jnp.asarray(g, jnp.float64), state)
    params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params, weights.detach().numpy(), rtol=1e-12, atol=1e-15,
                               err_msg=f"after step {step + 1}")
  assert not np.allclose(params, 0.0)


def test_defaults_cover_every_regime_and_core_takes_the_papers_s_max():
  for optimizer in optimizers.OPTIMIZERS.values():
    assert set(optimizer.default) == {"mini-batch", "intermediate", "full-batch"}
  for name in ("CoRe", "CoRe-SP"):
    assert optimizers.OPTIMIZERS[name].default == {"mini-batch": 1e-3, "intermediate": 1e-2,
                                                    "full-batch": 1.0}
  assert optimizers.OPTIMIZERS["Prodigy"].grid == (0.1, 1.0, 10.0)
  assert optimizers.OPTIMIZERS["SF-AdamW"].grid == (0.00025, 0.0025, 0.025)
