"""Parameter groups: labels as a tree or a callable, and what they configure per group.

Freezing per group is in test_freezing.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import core_optax
from tests import helpers


def test_groups_tree_that_does_not_match_params_names_the_path():
  tx = core_optax.core(1e-3, groups={"dense": {"kernel": "k", "bias_typo": "b"}, "scale": "s"})
  with pytest.raises(ValueError, match=r"groups has no label for the parameter at "
                     r"\['dense'\]\['bias'\]"):
    tx.init(helpers.params())
  tx = core_optax.core(1e-3, groups={"dense": {"kernel": "k", "bias": "b", "extra": "e"},
                                     "scale": "s"})
  with pytest.raises(ValueError, match=r"groups has a label at \['dense'\]\['extra'\], where "
                     r"the parameters have no leaf"):
    tx.init(helpers.params())


def test_callable_groups_labels_from_params():
  def by_kind(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "bias" if "bias" in jax.tree_util.keystr(path) else "other", params)

  tx = core_optax.core(1e-3, groups=by_kind, weight_decay={"bias": 0.0, "other": 0.1})
  params, _ = helpers.train(tx, helpers.params(), 3)
  assert jnp.all(jnp.isfinite(params["dense"]["bias"]))
  with pytest.raises(ValueError, match=r"weight_decay has no value for group label\(s\)"):
    core_optax.core(1e-3, groups=by_kind, weight_decay={"bias": 0.0}).init(helpers.params())
