"""``mask``: the leaves CoRe's weight decay applies to, exactly as ``optax.adamw(mask=...)``.

A mask is ``None`` (decay everything), a pytree of bools with the parameters'
structure or a prefix of it, or a callable ``params -> such a tree``; it is
``optax.masked`` around the decay, so its structure rules are optax's (unlike
``groups``, whose labels are matched by key path, a mask's containers must be the
parameters' containers). Masked-out leaves move as with ``weight_decay=0``; the
others as without a mask. Use it for leaves whose scale the data sets (energy
offsets, output scales, normalisation parameters, large biases): the decay pulls
every decayed weight toward ``|w| <= 1/d``.
"""

from __future__ import annotations

from flax.core import FrozenDict
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import core_optax
from tests import helpers

# apax-like: a layer, and a per-element energy shift of large magnitude.
PARAMS = {"dense": {"kernel": jnp.arange(1.0, 7.0).reshape(2, 3) / 4, "bias": jnp.ones(3)},
          "shift": jnp.array([-1500.0, -3.0])}
MASKS = {
    "tree": {"dense": {"kernel": True, "bias": False}, "shift": False},
    "prefix": {"dense": True, "shift": False},
    "callable": lambda params: jax.tree.map(lambda p: p.ndim > 1, params),
    "none": None,
}
EXPECTED = {  # the leaves that are decayed
    "tree": {"dense": {"kernel": True, "bias": False}, "shift": False},
    "prefix": {"dense": {"kernel": True, "bias": True}, "shift": False},
    "callable": {"dense": {"kernel": True, "bias": False}, "shift": False},
    "none": {"dense": {"kernel": True, "bias": True}, "shift": True},
}


def _grads(step, params):
  return jax.tree.map(lambda p: p + jnp.sin(3.0 * p + step), params)


def _run(tx, steps=6):
  params = PARAMS
  state = tx.init(params)
  update = jax.jit(tx.update)
  for step in range(steps):
    updates, state = update(_grads(step, params), state, params)
    params = optax.apply_updates(params, updates)
  return params


def _decayed_leaves(make):
  """Where ``make(weight_decay)``'s first update depends on the decay."""
  def first_update(weight_decay):
    tx = make(weight_decay)
    return tx.update(_grads(0, PARAMS), tx.init(PARAMS), PARAMS)[0]
  return jax.tree.map(lambda a, b: bool(jnp.any(a != b)), first_update(0.1), first_update(0.0))


@pytest.mark.parametrize("name", sorted(MASKS))
def test_mask_decays_the_leaves_that_adamw_decays(name):
  ours = _decayed_leaves(lambda d: core_optax.core(1e-2, weight_decay=d, mask=MASKS[name]))
  adamw = _decayed_leaves(lambda d: optax.adamw(1e-2, weight_decay=d, mask=MASKS[name]))
  assert ours == adamw == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(MASKS))
def test_masked_out_leaves_move_as_without_decay_and_the_rest_as_without_a_mask(name):
  kwargs = dict(score_history=2, frozen_fraction=0.5)  # with freezing from update 3 on
  masked = _run(core_optax.core(1e-2, weight_decay=0.5, mask=MASKS[name], **kwargs))
  unmasked = _run(core_optax.core(1e-2, weight_decay=0.5, **kwargs))
  undecayed = _run(core_optax.core(1e-2, weight_decay=0.0, **kwargs))
  for decayed, got, want_decayed, want_undecayed in zip(
      jax.tree.leaves(EXPECTED[name]), jax.tree.leaves(masked), jax.tree.leaves(unmasked),
      jax.tree.leaves(undecayed)):
    np.testing.assert_array_equal(got, want_decayed if decayed else want_undecayed)
  assert not np.array_equal(unmasked["shift"], undecayed["shift"])  # the decay acts there


def test_add_update_scaled_weight_decay_takes_the_same_mask():
  updates = jax.tree.map(lambda p: jnp.full_like(p, 0.5), PARAMS)
  for name, mask in MASKS.items():
    tx = core_optax.add_update_scaled_weight_decay(0.1, mask=mask)
    got, _ = tx.update(updates, tx.init(PARAMS), PARAMS)
    want = jax.tree.map(lambda u, w, on: u + 0.1 * jnp.abs(u) * w if on else u,
                        updates, PARAMS, EXPECTED[name])
    jax.tree.map(np.testing.assert_array_equal, got, want)


def test_mask_with_per_group_decays_decays_only_the_masked_in_leaves_of_each_group():
  groups = {"dense": {"kernel": "layer", "bias": "layer"}, "shift": "shift"}
  tx = core_optax.core(1e-2, groups=groups, weight_decay={"layer": 0.5, "shift": 0.1},
                       mask=MASKS["tree"])
  ours = _decayed_leaves(lambda d: core_optax.core(
      1e-2, groups=groups, weight_decay={"layer": d, "shift": d}, mask=MASKS["tree"]))
  assert ours == EXPECTED["tree"]
  _run(tx)  # the masked-out "shift" group's value is not needed, but allowed


@pytest.mark.parametrize("mask, params", [
    ({"dense": {"kernel": True, "bias": False}}, PARAMS),                       # a key missing
    ({**MASKS["tree"], "extra": True}, PARAMS),                                 # a key too many
    ({"dense": {"kernel": [True, False], "bias": True}, "shift": True}, PARAMS),  # below a leaf
    ({"a": True, "b": False}, FrozenDict({"a": jnp.ones(2), "b": jnp.ones(3)})),  # container
], ids=["missing", "extra", "below_a_leaf", "dict_for_frozendict"])
def test_a_mask_that_adamw_refuses_is_refused(mask, params):
  grads = jax.tree.map(jnp.ones_like, params)
  errors = []
  for tx in (optax.adamw(1e-2, mask=mask), core_optax.core(1e-2, mask=mask)):
    with pytest.raises(ValueError, match="pytree structure error") as raised:
      tx.update(grads, tx.init(params), params)
    errors.append(type(raised.value))
  assert errors[0] is errors[1]


def test_frozendict_parameters_take_labels_and_mappings_given_as_dicts():
  # groups, unlike mask, are matched by key path: a dict of labels fits a FrozenDict.
  params = helpers.params()
  groups = {"dense": {"kernel": "a", "bias": "b"}, "scale": "a"}
  kwargs = dict(score_history=2, frozen_fraction={"a": 0.25, "b": 0.5}, groups=groups,
                weight_decay={"a": 0.1, "b": 0.0})
  frozen_params = FrozenDict(params)
  got, got_state = helpers.train(core_optax.core(1e-2, **kwargs), frozen_params, 5)
  want, want_state = helpers.train(core_optax.core(1e-2, **kwargs), params, 5)
  assert isinstance(got, FrozenDict)
  jax.tree.map(np.testing.assert_array_equal, jax.tree.leaves(got), jax.tree.leaves(want))
  assert helpers.bits(got_state) == helpers.bits(want_state)
