"""Drives the reference implementation, ``core-optimizer`` 1.1.0 (PyTorch), in tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core_optimizer import CoRe
import numpy as np
import torch


def run_reference(
    weights: Sequence[np.ndarray],
    grad_fn: Callable[[int, list[np.ndarray]], list[np.ndarray]],
    steps: int,
    **kwargs: Any,
) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
  """Runs ``CoRe`` and records the gradients it was given and its weights.

  Args:
    weights: initial weights, one array per parameter tensor (any real or
      complex dtype torch knows).
    grad_fn: ``grad_fn(step, weights) -> gradients``, given the reference's
      current weights; complex gradients follow torch's convention
      (dL/dx + i dL/dy).
    steps: number of updates.
    **kwargs: constructor arguments of ``core_optimizer.CoRe``.

  Returns:
    ``(grads, weights)``: per step, the gradients fed in and the weights after
    the update.
  """
  params = [torch.nn.Parameter(torch.from_numpy(np.array(w))) for w in weights]
  opt = CoRe(params, **kwargs)
  grads_seen, weights_seen = [], []
  for step in range(steps):
    grads = grad_fn(step, [p.detach().numpy().copy() for p in params])
    for p, g in zip(params, grads):
      p.grad = torch.from_numpy(np.array(g, dtype=g.dtype))
    opt.step()
    grads_seen.append([np.array(g) for g in grads])
    weights_seen.append([p.detach().numpy().copy() for p in params])
  return grads_seen, weights_seen
