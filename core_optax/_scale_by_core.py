"""``scale_by_core``: the signed CoRe step ``D = u * P * s`` (paper eqs. 1-6 and 8)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from core_optax import _checks
from core_optax import _groups
from core_optax import _selection


class ScaleByCoreState(NamedTuple):
  """State of :func:`scale_by_core`; every tree has the parameters' structure.

  Trees have the parameters' dtypes, except that the state of float16 and
  bfloat16 leaves is kept in float32 (see :func:`_state_dtype`).

  Attributes:
    tau: number of updates applied so far, int32 (``tau - 1`` of the update in
      progress, the ``t`` of the reference implementation).
    g: ``g``, the moving average of gradients (eq. 1).
    h: ``h``, the moving average of squared gradients (eq. 2); ``None`` in sign
      mode (``b2 < 0`` given as a number).
    s: ``s``, the per-weight step sizes (eq. 6), starting at ``s^0``.
    S: ``S``, the importance scores (eq. 8); ``None`` when ``score_history`` is
      the number 0 (no stability-plasticity balance).
    threshold: shape ``[2, groups]``, a column per group that can freeze
      weights (in the order of the groups' first leaves; one unused column if
      there are none): the ``n_frozen``-th largest score of the group (eq. 5)
      in the last update that froze weights (row 0) and in the one before
      (row 1), 0 before those; the next update's exact selection starts its
      search where they point (see :func:`_next_threshold_guess`). One array,
      not a tree like the parameters, so that tools which give the
      parameter-shaped parts of a state the parameters' shardings
      (``optax.tree_map_params``) treat it like ``tau``. ``None`` when ``S``
      is.
  """

  tau: chex.Array
  g: optax.Updates
  h: optax.Updates | None
  s: optax.Updates
  S: optax.Updates | None  # noqa: N815 (the paper's symbol)
  threshold: chex.Array | None


def _real_view(x: jax.Array) -> jax.Array:
  """Complex leaves as pairs of independent real weights, as in the reference."""
  return jnp.stack([x.real, x.imag], axis=-1) if jnp.iscomplexobj(x) else x


def _like(x: jax.Array, leaf: jax.Array) -> jax.Array:
  """Undoes :func:`_real_view` and casts to ``leaf``'s dtype."""
  if jnp.iscomplexobj(leaf):
    x = jax.lax.complex(x[..., 0], x[..., 1])
  return x.astype(leaf.dtype)


def _compute_dtype(leaf: jax.Array) -> jnp.dtype:
  """Arithmetic runs in at least float32, whatever the storage dtype."""
  return jnp.promote_types(jnp.finfo(leaf.dtype).dtype, jnp.float32)


def _state_dtype(leaf: jax.Array) -> jnp.dtype:
  """The leaf's dtype, but at least float32.

  Half-precision state would break CoRe: ``h ~ G^2`` overflows float16 for
  ``|G| > 256``, and bfloat16 cannot hold the small relative changes of the
  moving averages ``h`` and ``S`` (decays 0.99 and ``1 - 1/t_hist``).
  """
  return jnp.promote_types(leaf.dtype, jnp.float32)


def _real_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """The dtype of :func:`_real_view` of an array of ``dtype``."""
  return jnp.finfo(dtype).dtype


def _freezing_groups(leaves: list[jax.Array], labels: tuple[_groups.Label, ...],
                     frozen_fraction: _groups.PerGroup,
                     groups: _groups.Groups) -> list[tuple[list[int], int | jax.Array]]:
  """The groups that can freeze weights, as ``(leaf indices, n_frozen)`` (eq. 5).

  ``n_frozen = floor(p_frozen * n)``, in double precision as the reference,
  where ``n`` counts a complex leaf's elements, not its 2x real weights (as
  the reference). Groups with a number ``p_frozen`` that freezes nothing are
  left out; a traced ``p_frozen`` (``inject_hyperparams``) gives a traced
  ``n_frozen``.
  """
  fractions = _groups.per_leaf("frozen_fraction", frozen_fraction, labels, groups)
  out = []
  for leaf_ids in _groups.members(labels).values():
    p, size = fractions[leaf_ids[0]], sum(leaves[i].size for i in leaf_ids)
    if not _checks.is_python_number(p):
      out.append((leaf_ids, jnp.floor(jnp.asarray(p) * size).astype(jnp.int32)))
    elif int(p * size) > 0:
      out.append((leaf_ids, int(p * size)))
  return out


def _next_threshold_guess(last: jax.Array, before: jax.Array) -> jax.Array:
  """Where the search for this update's thresholds starts, per group.

  Scores drift smoothly from update to update (frozen weights' scores, for
  one, decay by ``1 - 1/t_hist``, eq. 8), and so does the threshold: the
  last threshold, scaled by its last change (by at most a factor of 2). A
  bad guess costs passes of the selection, never exactness.
  """
  ratio = jnp.where(last * before > 0, last / jnp.where(before == 0, 1, before), 1)
  return last * jnp.clip(ratio, 0.5, 2)


def scale_by_core(
    max_step_size: optax.ScalarOrSchedule = 1e-3,
    *,
    min_step_size: jax.typing.ArrayLike = 1e-6,
    initial_step_size: jax.typing.ArrayLike = 1e-3,
    eta_minus: jax.typing.ArrayLike = 0.7375,
    eta_plus: jax.typing.ArrayLike = 1.2,
    b1_initial: jax.typing.ArrayLike = 0.7375,
    b1_final: jax.typing.ArrayLike = 0.8125,
    b1_width: jax.typing.ArrayLike = 250.0,
    b2: jax.typing.ArrayLike = 0.99,
    eps: jax.typing.ArrayLike = 1e-8,
    score_history: jax.typing.ArrayLike = 0,
    frozen_fraction: _groups.PerGroup = 0.0,
    groups: _groups.Groups = None,
    maximize: bool = False,
    state_dtype: jax.typing.DTypeLike | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales gradients to the signed CoRe step ``D = u * P * s``.

  This is CoRe without its weight decay: the returned update ``D`` points
  uphill, like a gradient; :func:`core_optax.core` adds the update-scaled weight
  decay and flips the sign. All arguments are documented there.

  Args:
    max_step_size: :math:`s_\max`, a number or a schedule of the step count.
    min_step_size: :math:`s_\min`.
    initial_step_size: :math:`s^0`.
    eta_minus: :math:`\eta_-`.
    eta_plus: :math:`\eta_+`.
    b1_initial: :math:`\beta_1^a`.
    b1_final: :math:`\beta_1^b`.
    b1_width: :math:`\beta_1^c`.
    b2: :math:`\beta_2`; negative selects sign mode, ``u = sign(g)``.
    eps: :math:`\epsilon`.
    score_history: :math:`t_\mathrm{hist}`; 0 turns scores and freezing off.
    frozen_fraction: :math:`p_\mathrm{frozen}`, a number or ``{label: number}``.
    groups: weight groups :math:`\chi` (see :func:`core_optax.core`).
    maximize: ascend instead of descend.
    state_dtype: storage dtype of ``g`` and ``s`` of real leaves (see
      :func:`core_optax.core`).

  Returns:
    A :class:`optax.GradientTransformationExtraArgs`.
  """
  _checks.check("max_step_size", max_step_size, lambda v: v > 0, "> 0", schedule=True)
  _checks.check("min_step_size", min_step_size, lambda v: v > 0, "> 0")
  s_min, s_max = _checks.static_value(min_step_size), _checks.static_value(max_step_size)
  if s_min is not None and s_max is not None and s_min > s_max:
    raise ValueError(
        f"min_step_size must be <= max_step_size, got {min_step_size!r} > {max_step_size!r}."
    )
  _checks.check("initial_step_size", initial_step_size, lambda v: v > 0, "> 0")
  _checks.check("eta_minus", eta_minus, lambda v: 0 < v <= 1, "in (0, 1]")
  _checks.check("eta_plus", eta_plus, lambda v: v >= 1, ">= 1")
  _checks.check("b1_initial", b1_initial, lambda v: 0 <= v < 1, "in [0, 1)")
  _checks.check("b1_final", b1_final, lambda v: 0 <= v < 1, "in [0, 1)")
  _checks.check("b1_width", b1_width, lambda v: v > 0, "> 0")
  _checks.check("b2", b2, lambda v: v < 1, "< 1 (negative selects sign mode)")
  for name, beta in (("b1_initial", b1_initial), ("b1_final", b1_final), ("b2", b2)):
    # Rounded to 1, a bias correction 1 - beta^tau would be 0 (eq. 4): 0/0 = NaN.
    _checks.check(name, beta, lambda v: np.float32(v) < 1,
                  "< 1 also in float32 (<= 1 - 2**-24)")
  _checks.check("eps", eps, lambda v: v >= 0, ">= 0")
  _checks.check("eps", eps, lambda v: v >= _checks.MIN_EPS,
                f">= {_checks.MIN_EPS:g} (in float32 a smaller eps can be flushed to 0 and "
                "turn a zero gradient into 0/0 = NaN)")
  _checks.check("score_history", score_history, lambda v: v >= 0 and v == int(v),
                "a whole number >= 0")
  _checks.check("score_history", score_history, lambda v: v <= _checks.MAX_SCORE_HISTORY,
                f"<= {_checks.MAX_SCORE_HISTORY} (the step counter is int32)")
  _checks.check("frozen_fraction", frozen_fraction, lambda v: 0 <= v <= 1, "in [0, 1]",
                per_group=True)
  _groups.check_mapping("frozen_fraction", frozen_fraction, _groups.static_labels(groups))
  if isinstance(frozen_fraction, Mapping) and groups is None:
    raise ValueError("frozen_fraction is a mapping {label: fraction}; it needs groups=...")
  _checks.check_bool("maximize", maximize)
  if _checks.is_python_number(score_history) and score_history == 0 and any(
      _checks.static_value(p) not in (0, None)
      for p in (frozen_fraction.values() if isinstance(frozen_fraction, Mapping)
                else [frozen_fraction])
  ):
    warnings.warn(
        f"frozen_fraction={frozen_fraction!r} has no effect with score_history=0: "
        "freezing needs importance scores; set score_history > 0 (e.g. 250).",
        stacklevel=2,
    )

  # Numbers decide the state's structure; arrays (inject_hyperparams) keep it general.
  sign_mode = bool(b2 < 0) if _checks.is_python_number(b2) else None
  scores_on = bool(score_history > 0) if _checks.is_python_number(score_history) else None

  def init_fn(params: optax.Params) -> ScaleByCoreState:
    _checks.check_float_leaves("params", params)
    leaves = jax.tree.leaves(params)
    freezing = _freezing_groups(leaves, _groups.leaf_labels(groups, params), frozen_fraction,
                                groups)
    s0 = jnp.asarray(initial_step_size)

    def dtype(p, lean=False):  # lean: g and s, which may be stored in state_dtype
      if lean and state_dtype is not None and not jnp.iscomplexobj(p):
        return state_dtype
      return _state_dtype(p)

    def zeros(p, lean=False):
      return jnp.zeros_like(p, dtype=dtype(p, lean))

    def step_sizes(p):
      return jnp.full_like(p, s0 * (1 + 1j) if jnp.iscomplexobj(p) else s0, dtype(p, lean=True))

    return ScaleByCoreState(
        tau=jnp.zeros([], jnp.int32),
        g=jax.tree.map(lambda p: zeros(p, lean=True), params),
        h=None if sign_mode else jax.tree.map(zeros, params),
        s=jax.tree.map(step_sizes, params),
        S=jax.tree.map(zeros, params) if scores_on is not False else None,
        threshold=jnp.zeros(
            [2, max(len(freezing), 1)],  # never empty: orbax refuses zero-size arrays
            jnp.result_type(jnp.float32, *(_real_dtype(dtype(leaves[ids[0]])) for ids, _ in freezing)),
        ) if scores_on is not False else None,
    )

  def update_fn(
      updates: optax.Updates,
      state: ScaleByCoreState,
      params: optax.Params | None = None,
      **extra_args: Any,
  ) -> tuple[optax.Updates, ScaleByCoreState]:
    del params, extra_args
    _checks.check_float_leaves("updates", updates)
    _checks.check_matches("updates", updates, state.g, "the optimizer state")
    leaves, treedef = jax.tree.flatten(updates)
    labels = _groups.leaf_labels(groups, updates)
    n = len(leaves)
    g_prev = treedef.flatten_up_to(state.g)
    h_prev = treedef.flatten_up_to(state.h) if state.h is not None else [None] * n
    s_prev = treedef.flatten_up_to(state.s)
    S_prev = treedef.flatten_up_to(state.S) if state.S is not None else [None] * n  # noqa: N806
    t = state.tau
    s_max = max_step_size(t) if callable(max_step_size) else max_step_size

    threshold = state.threshold
    frozen = [None] * n  # P == 0 where True (eq. 5); None where P == 1 everywhere.
    decay_scores = [False] * n  # where the EMA decay of eq. 8 applies this step.
    if scores_on is not False:
      t_hist = jnp.asarray(score_history)
      past_history = (t_hist > 0) & (t >= t_hist)  # tau > t_hist (eq. 5)
      selected = _freezing_groups(leaves, labels, frozen_fraction, groups)
      scores = [[_real_view(S_prev[i]) for i in leaf_ids] for leaf_ids, _ in selected]
      last, before = ([row[j].astype(group[0].dtype) for j, group in enumerate(scores)]
                      for row in state.threshold)
      guesses = [_next_threshold_guess(a, b) for a, b in zip(last, before)]
      actives = [past_history & (jnp.asarray(k) > 0) for _, k in selected]
      thresholds = jax.lax.cond(  # the selection only runs once tau > t_hist, if any k > 0
          jnp.any(jnp.stack(actives)),
          lambda scores, guesses: _selection.kth_largest(scores, [k for _, k in selected], guesses,
                                                         actives),
          lambda scores, guesses: last,
          scores, guesses,
      ) if selected else []
      history = []  # per group: (last, before) after this update
      for (leaf_ids, _), active, new, a, b in zip(selected, actives, thresholds, last, before):
        for i in leaf_ids:
          frozen[i] = active & _selection.frozen_mask(_real_view(S_prev[i]), new)
          decay_scores[i] = active
        history.append(jnp.where(active, jnp.stack([new, a]), jnp.stack([a, b])))
      if history:
        threshold = threshold.at[:, :len(history)].set(jnp.stack(history, axis=1))

    new_D, new_g, new_h, new_s, new_S = [], [], [], [], []  # noqa: N806
    for i, leaf in enumerate(leaves):
      dtype = _compute_dtype(leaf)
      G = _real_view(leaf).astype(dtype)  # noqa: N806
      if maximize:
        G = -G  # noqa: N806
      g = _real_view(g_prev[i]).astype(dtype)
      s = _real_view(s_prev[i]).astype(dtype)
      tf = t.astype(dtype)
      # eq. 3, as b1^a + (b1^a - b1^b) (exp(-z) - 1): no cancellation in early steps.
      beta1 = b1_initial + (b1_initial - b1_final) * jnp.expm1(-((tf / b1_width) ** 2))
      g_new = beta1 * g + (1 - beta1) * G  # eq. 1

      if h_prev[i] is not None:
        h = _real_view(h_prev[i]).astype(dtype)
        h_new = b2 * h + (1 - b2) * G * G  # eq. 2
        if sign_mode is None:
          h_new = jnp.where(b2 < 0, h, h_new)
        new_h.append(_like(h_new, h_prev[i]))

      # eq. 6: RPROP-like step sizes from the sign of g^{tau-1} g^tau P^tau.
      q = g_new * g
      if frozen[i] is not None:
        q = jnp.where(frozen[i], 0, q)
      s = s * jnp.where(q > 0, eta_plus, jnp.where(q < 0, eta_minus, 1))
      s = jnp.clip(s, min_step_size, s_max)

      if sign_mode is True:
        u = jnp.sign(g_new)
      else:
        bc1 = 1 - beta1 ** (tf + 1)
        bc2 = 1 - b2 ** (tf + 1)
        u = (g_new / bc1) / (jnp.sqrt(h_new / bc2) + eps)  # eq. 4
        if sign_mode is None:
          u = jnp.where(b2 < 0, jnp.sign(g_new), u)
      D = u * s  # noqa: N806
      if frozen[i] is not None:
        D = jnp.where(frozen[i], 0, D)  # noqa: N806  (P^tau = 0, eq. 5)

      if S_prev[i] is not None:
        S = _real_view(S_prev[i]).astype(dtype)  # noqa: N806
        t_hist = jnp.asarray(score_history, dtype)
        if decay_scores[i] is not False:
          S = jnp.where(decay_scores[i], S * (1 - 1 / t_hist), S)  # noqa: N806  (eq. 8)
        S_new = S + g_new * D / jnp.where(t_hist > 0, t_hist, 1)  # noqa: N806  (eq. 8)
        if scores_on is None:
          S_new = jnp.where(t_hist > 0, S_new, S)  # noqa: N806
        new_S.append(_like(S_new, S_prev[i]))

      new_D.append(_like(D, leaf))
      new_g.append(_like(g_new, g_prev[i]))
      new_s.append(_like(s, s_prev[i]))

    unflatten = treedef.unflatten
    new_state = ScaleByCoreState(
        tau=optax.safe_increment(t),
        g=unflatten(new_g),
        h=unflatten(new_h) if state.h is not None else None,
        s=unflatten(new_s),
        S=unflatten(new_S) if state.S is not None else None,
        threshold=threshold,
    )
    return unflatten(new_D), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
