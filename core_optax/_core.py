"""``core``: the CoRe optimizer as one optax transformation."""

from __future__ import annotations

import jax
import optax

from core_optax import _checks
from core_optax import _groups
from core_optax import _weight_decay
from core_optax._scale_by_core import scale_by_core


def core(
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
    weight_decay: _groups.PerGroup = 0.1,
    score_history: jax.typing.ArrayLike | None = None,
    frozen_fraction: _groups.PerGroup = 0.0,
    groups: _groups.Groups = None,
    mask: _weight_decay.Mask = None,
    maximize: bool = False,
    state_dtype: jax.typing.DTypeLike | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""The Continual Resilient (CoRe) optimizer.

  CoRe (Eckhoff & Reiher, 2024) combines Adam-like gradient normalisation, RPROP-
  like per-weight step sizes, an update-scaled weight decay and, optionally, the
  freezing of each group's most important weights for a better
  stability-plasticity balance. For weight :math:`\xi` in group :math:`\chi`, at
  update :math:`\tau`:

  .. math::
    g^\tau &= \beta_1^\tau g^{\tau-1} + (1-\beta_1^\tau) G^\tau
      &\text{(1)}\\
    h^\tau &= \beta_2 h^{\tau-1} + (1-\beta_2) (G^\tau)^2 &\text{(2)}\\
    \beta_1^\tau &= \beta_1^b + (\beta_1^a-\beta_1^b)
      \exp[-((\tau-1)/\beta_1^c)^2] &\text{(3)}\\
    u^\tau &= \frac{g^\tau}{1-(\beta_1^\tau)^\tau}
      \Big/ \Big(\sqrt{h^\tau / (1-\beta_2^\tau)} + \epsilon\Big) &\text{(4)}\\
    P^\tau &= 0 \text{ if } \tau > t_\mathrm{hist} \text{ and } S^{\tau-1}
      \text{ is top-}n_{\mathrm{frozen},\chi} \text{ in its group, else } 1
      &\text{(5)}\\
    s^\tau &= \mathrm{clip}(\eta_\pm s^{\tau-1}, s_\min, s_\max)
      \text{ by the sign of } g^{\tau-1} g^\tau P^\tau &\text{(6)}\\
    w^\tau &= (1 - d_\chi |u^\tau| P^\tau s^\tau) w^{\tau-1}
      - u^\tau P^\tau s^\tau &\text{(7)}\\
    S^\tau &= [1 - t_\mathrm{hist}^{-1}]_{\tau > t_\mathrm{hist}} S^{\tau-1}
      + t_\mathrm{hist}^{-1} g^\tau u^\tau P^\tau s^\tau &\text{(8)}

  with :math:`n_{\mathrm{frozen},\chi} = \lfloor p_{\mathrm{frozen},\chi}
  |\chi| \rfloor`. ``optax.apply_updates(params, updates)`` gives exactly the
  reference implementation's new weights (``core-optimizer`` 1.1.0). It is the
  chain of :func:`core_optax.scale_by_core`,
  :func:`core_optax.add_update_scaled_weight_decay` and a sign flip, so other
  transformations can be put between them.

  Recommended settings (paper, section 4.1) are the defaults, with
  ``max_step_size`` 1e-3 for mini-batch learning, 1e-2 for intermediate batch
  fractions and 1 for full-batch learning, and ``score_history=250``,
  ``frozen_fraction`` up to about 0.1 to balance stability and plasticity; see
  :func:`core_optax.recommended`.

  Examples:
    >>> import jax, jax.numpy as jnp, optax, core_optax
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> tx = core_optax.core(max_step_size=1.0)
    >>> state = tx.init(params)
    >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
    >>> updates, state = tx.update(grads, state, params)
    >>> optax.apply_updates(params, updates)["w"]
    Array([ 0.9989, -1.9988], dtype=float32)

  Args:
    max_step_size: :math:`s_\max > 0`, the hyperparameter to tune; a number or
      an optax schedule of the step count (its values are not checked).
    min_step_size: :math:`0 < s_\min \le s_\max`.
    initial_step_size: :math:`s^0 > 0`.
    eta_minus: :math:`\eta_- \in (0, 1]`, step-size decrease on a sign change.
    eta_plus: :math:`\eta_+ \ge 1`, step-size increase on a kept sign.
    b1_initial: :math:`\beta_1^a \in [0, 1)`, decay of ``g`` at the start;
      also below 1 in float32, as are ``b1_final`` and ``b2``.
    b1_final: :math:`\beta_1^b \in [0, 1)`, decay of ``g`` in the end.
    b1_width: :math:`\beta_1^c > 0`, width of the Gaussian between them.
    b2: :math:`\beta_2 \in [0, 1)`, decay of ``h``, or ``None`` for the
      reference's sign mode, :math:`u = \mathrm{sign}(g)`, which keeps no ``h``
      (the reference selects it with a negative ``b2``).
    eps: :math:`\epsilon \ge 10^{-30}` (the reference allows 0, which turns a
      zero gradient into 0/0 = NaN; float32 flushes much smaller values to 0).
    weight_decay: :math:`d_\chi \ge 0` and :math:`d_\chi < 1/s_\max` (paper,
      eq. 7; a ValueError when both are numbers); a number or
      ``{group label: number}``.
    score_history: :math:`t_\mathrm{hist} \ge 1`, a whole number below
      :math:`2^{31}`, or ``None`` (the default) for no importance scores and no
      freezing (a ``frozen_fraction`` then warns that it has no effect; the
      reference's ``t_hist = 0``).
    frozen_fraction: :math:`p_{\mathrm{frozen},\chi} \in [0, 1]`, a number or
      ``{group label: number}``. Weights compare their scores within a group,
      across all its leaves, with the reference's relative tie tolerance.
    groups: the weight groups :math:`\chi`. ``None`` makes every leaf its own
      group (as the reference does with tensors); otherwise a pytree of
      hashable labels with the parameters' structure, or a callable mapping
      the parameters to one. Leaves with equal labels form one group. Labels
      are matched to parameters by key path (a ``dict`` of labels fits a flax
      ``FrozenDict`` of parameters).
    mask: which leaves the weight decay applies to, as ``mask`` of
      :func:`optax.adamw`: ``None`` (all), a pytree of bools with the
      parameters' structure, or a callable ``params -> such a tree``. Mask out
      leaves of large magnitude whose scale the data set, such as energy
      offsets, output scales, normalisation parameters and large biases: the
      decay pulls every decayed weight toward :math:`|w| \le 1/d_\chi`
      (an energy shift of -1500 eV/atom would be pulled toward 10).
    maximize: ascend the objective instead of descending it.
    state_dtype: storage dtype of ``g`` and ``s`` (like ``mu_dtype`` of
      :func:`optax.adam`), for example ``jnp.bfloat16`` to keep 8 instead of
      12 bytes of state per float32 weight (12 instead of 16 with freezing).
      ``None`` keeps the parameters' dtype (at least float32). ``h`` and ``S``
      always keep at least float32: in bfloat16 the decays 0.99 and
      :math:`1 - 1/t_\mathrm{hist}` would round to 1. Arithmetic runs in float32
      either way; complex leaves keep their dtype. A real floating dtype,
      canonicalised as optax does ``mu_dtype``: without ``jax_enable_x64``,
      float64 is float32.

  Returns:
    A :class:`optax.GradientTransformationExtraArgs`. Its ``update`` takes
    ``params`` (required unless the weight decay is the number 0).

  Raises:
    ValueError: for hyperparameters out of range (including ``weight_decay >=
      1 / max_step_size`` when both are numbers) or labels that do not match;
      ``update`` raises it for gradients or params that do not match the state.
    TypeError: for arguments of the wrong type (``state_dtype`` that is no
      dtype; an integer or complex one is a ValueError), and from ``init`` and
      ``update`` for integer or boolean leaves (mask them out with
      :func:`optax.masked`).

  Notes:
    Only ``None`` decides which state is kept (no ``h`` when ``b2=None``, no
    ``S`` when ``score_history=None``), so :func:`optax.inject_hyperparams`,
    which turns numbers into arrays and leaves ``None`` alone, keeps the same
    state as the plain optimizer. An injected ``score_history`` must stay a
    whole number >= 1 (it is checked only where it is known); with a traced
    ``frozen_fraction`` the frozen count is computed in the hyperparameter
    dtype. The frozen weights
    are selected exactly, without sorting: counting passes over the scores'
    integer keys find every group's threshold (groups of similar sizes
    together), so the selection costs a few reductions per step (and
    all-reduces of counts when sharded). For complex parameters pass
    ``jnp.conj(grads)`` (optax's convention); real and imaginary parts are
    then independent weights. The state of float16 and bfloat16 leaves is
    kept in float32. ``init`` needs only shapes and dtypes: it takes
    ``jax.ShapeDtypeStruct`` leaves too (flax NNX and orbax build abstract
    states this way).

    A NaN or infinite gradient element turns that weight and its ``g``,
    ``h`` and ``S`` into NaN for good, as in the reference. To skip such steps
    instead, leaving the weights and the whole state (``tau``, ``g``, ``h``,
    ``s``, ``S``) unchanged, wrap the optimizer:
    ``optax.apply_if_finite(core(...), max_consecutive_errors=2**31 - 1)``
    (a smaller limit gives up after that many bad steps in a row and applies
    the next one). Under ``pmap``, average the gradients across devices first
    so that every replica skips the same steps.

  References:
    Eckhoff & Reiher, `CoRe Optimizer: An All-in-One Solution for Machine
    Learning <https://doi.org/10.1088/2632-2153/ad1f76>`_, Mach. Learn.: Sci.
    Technol. 5, 015018 (2024).
  """
  grouping = _groups.Grouping(groups)  # resolved once for both transformations
  tx = optax.chain(
      scale_by_core(
          max_step_size,
          min_step_size=min_step_size,
          initial_step_size=initial_step_size,
          eta_minus=eta_minus,
          eta_plus=eta_plus,
          b1_initial=b1_initial,
          b1_final=b1_final,
          b1_width=b1_width,
          b2=b2,
          eps=eps,
          score_history=score_history,
          frozen_fraction=frozen_fraction,
          groups=grouping,
          maximize=maximize,
          state_dtype=state_dtype,
      ),
      _weight_decay.add_update_scaled_weight_decay(weight_decay, groups=grouping, mask=mask),
      optax.scale(-1.0),
  )
  _checks.check_decay_below_inverse_step(weight_decay, max_step_size)  # after both are checked
  return tx
