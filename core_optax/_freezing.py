"""CoRe's freezing policy (eq. 5): which weights get ``P = 0``, and what eq. 8 decays.

Per weight group, once ``tau > t_hist``, the weights whose importance score is
at least ``TIE_TOLERANCE`` times the group's ``floor(p_frozen n)``-th largest
score are frozen. The threshold is found by the exact search of
:mod:`core_optax._search`, started where the last two thresholds point
(:func:`next_threshold_guess`). Everything per group is computed as arrays over
the groups, and the per-leaf work (masks) is one elementwise pass per leaf.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from core_optax import _checks
from core_optax import _dtypes
from core_optax import _groups
from core_optax import _search

TIE_TOLERANCE = 0.999999
"""The reference freezes every score ``>= TIE_TOLERANCE * threshold``.

With ties (or near ties) this freezes slightly more than ``k`` weights, and with a
negative threshold it can freeze fewer: ``core-optimizer`` 1.1.0 does both, and so
do we (``python -m benchmarks tie-band`` measures the excess in training; see
``benchmarks/results/studies/tie_band.md``).

Scores are never negative, so a threshold of 0 freezes the whole group. That happens
when fewer than ``k`` of its weights have a positive score once freezing starts
(weights that got no gradient in the first ``score_history`` updates: embedding rows
not yet seen, inputs that are always 0). A frozen weight's score only decays, so the
group then stays frozen, and weights that get gradients later never learn. The
reference does this too (eq. 5's top-``k`` would freeze ``k`` weights). Such
parameters want a ``frozen_fraction`` of 0 in their own group (``groups``).
"""


def n_frozen(fraction: Any, size: int) -> int | jax.Array:
  """``floor(p_frozen * n)`` (eq. 5), in double precision as the reference for a number."""
  if _checks.is_python_number(fraction):
    return int(fraction * size)
  return jnp.floor(jnp.asarray(fraction) * size).astype(jnp.int32)


def next_threshold_guess(last: jax.Array, before: jax.Array) -> jax.Array:
  """Where the search for this update's threshold starts, per group.

  Scores drift smoothly from update to update (frozen weights' scores, for
  one, decay by ``1 - 1/t_hist``, eq. 8), and so does the threshold: the
  last threshold, scaled by its last change (by at most a factor of 2). A
  bad guess costs reads of the scores, never exactness.

  Args:
    last: the threshold of the last update that froze weights (0 before one).
    before: the threshold of the one before it (0 before one).

  Returns:
    The guess, of ``last``'s shape and dtype.
  """
  ratio = jnp.where(last * before > 0, last / jnp.where(before == 0, 1, before), 1)
  return last * jnp.clip(ratio, 0.5, 2)


def select(partition: _groups.Partition, frozen_fraction: _groups.PerGroup,
           S: optax.Updates, threshold: jax.Array, t: jax.Array,
           score_history: jax.typing.ArrayLike) -> tuple[list[Any], list[Any], jax.Array]:
  """Eq. 5 for the update after ``t`` updates, from the scores ``S`` before it.

  Args:
    partition: the groups of ``S``'s leaves.
    frozen_fraction: ``p_frozen``, a number (or array) or ``{label: number}``.
    S: the importance scores (eq. 8) before the update.
    threshold: ``ScaleByCoreState.threshold`` before the update.
    t: the number of updates applied so far.
    score_history: ``t_hist``.

  Returns:
    Per leaf (in ``jax.tree.leaves`` order), where ``P = 0`` and the factor eq. 8
    decays the scores by (``1 - 1/t_hist`` or 1), ``None`` for leaves of groups whose
    ``floor(p n)`` is the number 0 (they never freeze); and the new ``threshold``.
  """
  scores = [_dtypes.real_view(x) for x in jax.tree.leaves(S)]
  ks = [n_frozen(p, n) for p, n in zip(partition.per_group("frozen_fraction", frozen_fraction),
                                        partition.sizes)]
  freezing = [j for j, k in enumerate(ks) if not (isinstance(k, int) and k == 0)]
  none = [None] * len(scores)
  if not freezing:
    return none, none, threshold
  columns = np.asarray(freezing)
  k = jnp.stack([jnp.asarray(ks[j], jnp.int32) for j in freezing])
  last, before = threshold[0, columns], threshold[1, columns]
  on = (t >= score_history) & (k > 0)  # tau > t_hist (eq. 5)
  groups = [[scores[i] for i in partition.members[j]] for j in freezing]
  dtype = jnp.result_type(jnp.float32, *(g[0] for g in groups))

  def per_group(new):
    # Per group, in its scores' dtype: eq. 5's limit with the reference's tie band (NaN
    # freezes nothing) and eq. 8's decay factor. Each group's pair leaves the cond as an
    # output of its own, so that XLA passes it to the leaves' kernels as a parameter:
    # kernels of equally shaped leaves are then identical, and XLA:CPU compiles them
    # once (pairs sliced inside the kernels made every leaf's kernels distinct).
    params = {}
    for d in {g[0].dtype for g in groups}:
      t_hist = jnp.asarray(score_history, d)
      params[d] = jnp.stack([jnp.where(on, TIE_TOLERANCE * new.astype(d), jnp.nan),
                             jnp.where(on, 1 - 1 / t_hist, 1)])
    return new, tuple(params[g[0].dtype][:, row] for row, g in enumerate(groups))

  new, pairs = jax.lax.cond(  # the search runs once tau > t_hist, if any k > 0
      jnp.any(on),
      lambda: per_group(_search.kth_largest(groups, k, next_threshold_guess(last, before), on)),
      lambda: per_group(last.astype(dtype)))
  frozen, decay = list(none), list(none)
  for row, j in enumerate(freezing):
    for i in partition.members[j]:
      frozen[i], decay[i] = scores[i] >= pairs[row][0], pairs[row][1]
  shifted = jnp.where(on, jnp.stack([new.astype(threshold.dtype), last]),
                      jnp.stack([last, before]))
  return frozen, decay, threshold.at[:, columns].set(shifted)


def frozen_mask(state: optax.OptState, *, score_history: jax.typing.ArrayLike,
                frozen_fraction: _groups.PerGroup,
                groups: _groups.Groups = None) -> optax.Updates | None:
  """The weights that the next update from ``state`` freezes (``P = 0``, eq. 5).

  Pass the ``score_history``, ``frozen_fraction`` and ``groups`` that the
  optimizer was built with: the mask is computed as the update computes it (the
  same exact search and tie band, :data:`core_optax.TIE_TOLERANCE`), from the
  scores and thresholds in ``state``. Call it on the state *before* an update
  to get that update's frozen weights, under ``jax.jit`` where it runs often (it
  runs the search; eagerly it is traced anew on every call). A complex weight
  counts as frozen where either of its real and imaginary parts is. With Flax NNX,
  pass ``nnx.as_pure(optimizer.opt_state)``.

  Examples:
    >>> import jax.numpy as jnp, core_optax
    >>> tx = core_optax.core(1e-2, score_history=2, frozen_fraction=0.5)
    >>> params = {"w": jnp.array([1.0, 2.0, 3.0, 4.0])}
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update({"w": jnp.array([0.1, -0.4, 0.2, 0.3])}, state, params)
    >>> core_optax.frozen_mask(state, score_history=2, frozen_fraction=0.5)["w"]
    Array([False,  True, False,  True], dtype=bool)

  Args:
    state: an optimizer state that holds one :class:`core_optax.ScaleByCoreState`
      (from :func:`core_optax.core`, :func:`core_optax.scale_by_core`, or a
      chain or wrapper around one), or that state itself.
    score_history: ``t_hist`` of the optimizer.
    frozen_fraction: ``p_frozen`` of the optimizer (a number or ``{label: number}``).
    groups: ``groups`` of the optimizer.

  Returns:
    A tree of bool arrays with the parameters' structure (all False while
    ``tau <= t_hist``, and for groups that freeze nothing), or ``None`` if the
    optimizer keeps no scores (``score_history=None``).

  Raises:
    ValueError: if ``state`` holds no CoRe state or more than one.
  """
  from core_optax._scale_by_core import ScaleByCoreState  # it imports this module

  is_core_state = lambda x: isinstance(x, ScaleByCoreState)
  found = [x for x in jax.tree.leaves(state, is_leaf=is_core_state) if is_core_state(x)]
  if len(found) != 1:
    raise ValueError(f"state must hold exactly one ScaleByCoreState, found {len(found)}; "
                     "pass the CoRe state itself when a state holds several.")
  core = found[0]
  if core.S is None:
    return None
  partition = _groups.as_grouping(groups)(core.S)
  if isinstance(frozen_fraction, Mapping):
    _groups.check_mapping("frozen_fraction", frozen_fraction, _groups.as_grouping(groups))
  frozen, _, _ = select(partition, frozen_fraction, core.S, core.threshold, core.tau,
                        score_history)
  leaves = jax.tree.leaves(core.S)
  masks = [jnp.zeros(x.shape, bool) if m is None else m for x, m in zip(leaves, frozen)]
  masks = [m.any(axis=-1) if jnp.iscomplexobj(x) else m for x, m in zip(leaves, masks)]
  return jax.tree.unflatten(jax.tree.structure(core.S), masks)
