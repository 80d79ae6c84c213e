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
from core_optax import _dtypes
from core_optax import _freezing
from core_optax import _groups


class ScaleByCoreState(NamedTuple):
  """State of :func:`scale_by_core`; every tree has the parameters' structure.

  Trees are stored as :mod:`core_optax._dtypes` says: in the parameters'
  dtypes, but at least float32.

  Attributes:
    tau: number of updates applied so far, int32 (``tau - 1`` of the update in
      progress, the ``t`` of the reference implementation).
    g: ``g``, the moving average of gradients (eq. 1).
    h: ``h``, the moving average of squared gradients (eq. 2); ``None`` in sign
      mode (``b2=None``).
    s: ``s``, the per-weight step sizes (eq. 6), starting at ``s^0``.
    S: ``S``, the importance scores (eq. 8); ``None`` without a score history
      (``score_history=None``).
    threshold: shape ``[2, groups]``, a column per weight group (in the order
      of the groups' first leaves): the ``n_frozen``-th largest score of the
      group (eq. 5) in the last update that froze weights (row 0) and in the
      one before (row 1), 0 before those; the next update's exact selection
      starts its search where they point. One array, not a tree like the
      parameters, so that tools which give the parameter-shaped parts of a
      state the parameters' shardings (``optax.tree_map_params``) treat it
      like ``tau``. ``None`` when ``S`` is.
  """

  tau: chex.Array
  g: optax.Updates
  h: optax.Updates | None
  s: optax.Updates
  S: optax.Updates | None
  threshold: chex.Array | None


def _check_hyperparameters(
    *,
    max_step_size: optax.ScalarOrSchedule,
    min_step_size: jax.typing.ArrayLike,
    initial_step_size: jax.typing.ArrayLike,
    eta_minus: jax.typing.ArrayLike,
    eta_plus: jax.typing.ArrayLike,
    b1_initial: jax.typing.ArrayLike,
    b1_final: jax.typing.ArrayLike,
    b1_width: jax.typing.ArrayLike,
    b2: jax.typing.ArrayLike | None,
    eps: jax.typing.ArrayLike,
    score_history: jax.typing.ArrayLike | None,
    frozen_fraction: _groups.PerGroup,
    maximize: bool,
) -> None:
  """Raises a ValueError or TypeError for every value that is out of range now."""
  _checks.check("max_step_size", max_step_size, lambda v: v > 0, "> 0", schedule=True)
  _checks.check("min_step_size", min_step_size, lambda v: v > 0, "> 0")
  s_min = _checks.static_value(min_step_size)
  s_max = _checks.static_value(max_step_size)
  if s_min is not None and s_max is not None and s_min > s_max:
    raise ValueError(f"min_step_size must be <= max_step_size, got {min_step_size!r} > "
                     f"{max_step_size!r}.")
  _checks.check("initial_step_size", initial_step_size, lambda v: v > 0, "> 0")
  _checks.check("eta_minus", eta_minus, lambda v: 0 < v <= 1, "in (0, 1]")
  _checks.check("eta_plus", eta_plus, lambda v: v >= 1, ">= 1")
  _checks.check("b1_initial", b1_initial, lambda v: 0 <= v < 1, "in [0, 1)")
  _checks.check("b1_final", b1_final, lambda v: 0 <= v < 1, "in [0, 1)")
  _checks.check("b1_width", b1_width, lambda v: v > 0, "> 0")
  if b2 is not None:
    _checks.check("b2", b2, lambda v: 0 <= v < 1,
                  "in [0, 1) (for sign mode, u = sign(g) without h, pass b2=None)")
  for name, beta in (("b1_initial", b1_initial), ("b1_final", b1_final), ("b2", b2)):
    if beta is not None:  # rounded to 1, a bias correction 1 - beta^tau is 0 (eq. 4)
      _checks.check(name, beta, lambda v: np.float32(v) < 1,
                    "< 1 also in float32 (<= 1 - 2**-24)")
  _checks.check("eps", eps, lambda v: v >= 0, ">= 0")
  _checks.check("eps", eps, lambda v: v >= _checks.MIN_EPS,
                f">= {_checks.MIN_EPS:g} (in float32 a smaller eps can be flushed to 0 and "
                "turn a zero gradient into 0/0 = NaN)")
  if score_history is not None:
    _checks.check("score_history", score_history, lambda v: v >= 1 and v == int(v),
                  "a whole number >= 1 (for no importance scores and no freezing, pass "
                  "score_history=None)")
    _checks.check("score_history", score_history,
                  lambda v: v <= _checks.MAX_SCORE_HISTORY,
                  f"<= {_checks.MAX_SCORE_HISTORY} (the step counter is int32)")
  _checks.check("frozen_fraction", frozen_fraction, lambda v: 0 <= v <= 1, "in [0, 1]",
                per_group=True)
  _checks.check_bool("maximize", maximize)


def scale_by_core(
    max_step_size: optax.ScalarOrSchedule,
    *,
    min_step_size: jax.typing.ArrayLike = 1e-6,
    initial_step_size: jax.typing.ArrayLike = 1e-3,
    eta_minus: jax.typing.ArrayLike = 0.7375,
    eta_plus: jax.typing.ArrayLike = 1.2,
    b1_initial: jax.typing.ArrayLike = 0.7375,
    b1_final: jax.typing.ArrayLike = 0.8125,
    b1_width: jax.typing.ArrayLike = 250.0,
    b2: jax.typing.ArrayLike | None = 0.99,
    eps: jax.typing.ArrayLike = 1e-8,
    score_history: jax.typing.ArrayLike | None = None,
    frozen_fraction: _groups.PerGroup = 0.0,
    groups: _groups.Groups = None,
    maximize: bool = False,
    state_dtype: jax.typing.DTypeLike | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales gradients to the signed CoRe step ``D = u * P * s``.

  This is CoRe without its weight decay: the returned update ``D`` points
  uphill, like a gradient; :func:`core_optax.core` adds the update-scaled weight
  decay and flips the sign. All arguments are documented there.

  Examples:
    >>> import jax.numpy as jnp, core_optax
    >>> tx = core_optax.scale_by_core(1e-2)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> updates, state = tx.update({"w": jnp.array([0.5, -0.5])}, tx.init(params))
    >>> updates["w"]  # s^0 = 1e-3 times u = 1 (eq. 4, first step)
    Array([ 0.001, -0.001], dtype=float32)

  Args:
    max_step_size: :math:`s_\max`, a number or a schedule of the step count.
    min_step_size: :math:`s_\min`.
    initial_step_size: :math:`s^0`.
    eta_minus: :math:`\eta_-`.
    eta_plus: :math:`\eta_+`.
    b1_initial: :math:`\beta_1^a`.
    b1_final: :math:`\beta_1^b`.
    b1_width: :math:`\beta_1^c`.
    b2: :math:`\beta_2`; ``None`` selects sign mode, ``u = sign(g)``.
    eps: :math:`\epsilon`.
    score_history: :math:`t_\mathrm{hist}`; ``None`` turns scores and freezing off.
    frozen_fraction: :math:`p_\mathrm{frozen}`, a number or ``{label: number}``.
    groups: weight groups :math:`\chi` (see :func:`core_optax.core`).
    maximize: ascend instead of descend.
    state_dtype: storage dtype of ``g`` and ``s`` of real leaves (see
      :func:`core_optax.core`).

  Returns:
    A :class:`optax.GradientTransformationExtraArgs`.
  """
  _check_hyperparameters(
      max_step_size=max_step_size, min_step_size=min_step_size,
      initial_step_size=initial_step_size, eta_minus=eta_minus, eta_plus=eta_plus,
      b1_initial=b1_initial, b1_final=b1_final, b1_width=b1_width, b2=b2, eps=eps,
      score_history=score_history, frozen_fraction=frozen_fraction, maximize=maximize)
  state_dtype = _dtypes.canonical_state_dtype(state_dtype)
  grouping = _groups.as_grouping(groups)
  _groups.check_mapping("frozen_fraction", frozen_fraction, grouping)
  fractions = frozen_fraction.values() if isinstance(frozen_fraction, Mapping) else [
      frozen_fraction]
  if score_history is None and any(_checks.static_value(p) not in (0, None) for p in fractions):
    warnings.warn(
        f"frozen_fraction={frozen_fraction!r} has no effect with score_history=None: "
        "freezing needs importance scores; set score_history (e.g. 250).",
        stacklevel=2,
    )
  # The state's structure hangs on None only: inject_hyperparams leaves None alone.
  sign_mode = b2 is None
  scores_on = score_history is not None

  def init_fn(params: optax.Params) -> ScaleByCoreState:
    _checks.check_float_leaves("params", params, abstract=True)
    partition = grouping(params)
    partition.per_group("frozen_fraction", frozen_fraction)

    def lean(p):  # g and s, which state_dtype may store lower
      if state_dtype is not None and not jnp.iscomplexobj(p):
        return state_dtype
      return _dtypes.state_dtype(p.dtype)

    def step_sizes(p):
      s0 = jnp.asarray(initial_step_size)
      return jnp.full_like(p, s0 * (1 + 1j) if jnp.iscomplexobj(p) else s0, lean(p))

    def zeros(p):
      return jnp.zeros_like(p, _dtypes.state_dtype(p.dtype))

    leaves = jax.tree.leaves(params)
    return ScaleByCoreState(
        tau=jnp.zeros([], jnp.int32),
        g=jax.tree.map(lambda p: jnp.zeros_like(p, lean(p)), params),
        h=None if sign_mode else jax.tree.map(zeros, params),
        s=jax.tree.map(step_sizes, params),
        S=jax.tree.map(zeros, params) if scores_on else None,
        threshold=jnp.zeros(  # never empty: orbax refuses zero-size arrays
            [2, max(len(partition.members), 1)],
            jnp.result_type(jnp.float32,
                            *(_dtypes.real_dtype(_dtypes.state_dtype(p.dtype)) for p in leaves)),
        ) if scores_on else None,
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
    treedef = jax.tree.structure(updates)
    t = state.tau
    s_max = max_step_size(t) if callable(max_step_size) else max_step_size

    grads = jax.tree.map(_dtypes.computed, updates)
    if maximize:
      grads = jax.tree.map(jnp.negative, grads)
    g_prev = jax.tree.map(_dtypes.computed, state.g)
    count = t.astype(jnp.result_type(jnp.float32, *jax.tree.leaves(grads)))  # tau - 1
    # eq. 3, as b1^a + (b1^a - b1^b) (exp(-z) - 1): no cancellation in early steps.
    beta1 = b1_initial + (b1_initial - b1_final) * jnp.expm1(-((count / b1_width) ** 2))
    g = optax.tree.update_moment(grads, g_prev, beta1, 1)  # eq. 1
    if sign_mode:
      h, u = None, jax.tree.map(jnp.sign, g)
    else:
      h = optax.tree.update_moment(grads, jax.tree.map(_dtypes.computed, state.h), b2, 2)  # eq. 2
      u = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps),  # eq. 4
                       optax.tree.bias_correction(g, beta1, count + 1),
                       optax.tree.bias_correction(h, b2, count + 1))

    none = [None] * treedef.num_leaves
    frozen, decay, threshold = (
        _freezing.select(grouping(updates), frozen_fraction, state.S, state.threshold, t,
                         score_history) if scores_on else (none, none, None))
    frozen, decay = treedef.unflatten(frozen), treedef.unflatten(decay)

    def step_size(s, g, g_prev, frozen):  # eq. 6: by the sign of g^{tau-1} g^tau P^tau
      q = g * g_prev if frozen is None else jnp.where(frozen, 0, g * g_prev)
      return jnp.clip(s * jnp.where(q > 0, eta_plus, jnp.where(q < 0, eta_minus, 1)),
                      min_step_size, s_max)

    def signed_step(u, s, frozen):  # D = u P s, with P = 0 where frozen (eq. 5)
      return u * s if frozen is None else jnp.where(frozen, 0, u * s)

    def score(S, g, D, decay):  # eq. 8
      t_hist = jnp.asarray(score_history, S.dtype)
      if decay is not None:  # 1 - 1/t_hist once tau > t_hist, else 1
        S = S * decay
      return S + g * D / t_hist

    s = jax.tree.map(step_size, jax.tree.map(_dtypes.computed, state.s), g, g_prev, frozen)
    D = jax.tree.map(signed_step, u, s, frozen)
    S = (jax.tree.map(score, jax.tree.map(_dtypes.computed, state.S), g, D, decay)
         if scores_on else None)

    def stored(new, old):
      return None if new is None else jax.tree.map(_dtypes.stored_like, new, old)

    return stored(D, updates), ScaleByCoreState(
        tau=optax.safe_increment(t), g=stored(g, state.g), h=stored(h, state.h),
        s=stored(s, state.s), S=stored(S, state.S), threshold=threshold)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
