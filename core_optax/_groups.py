"""Weight groups (the paper's chi): which leaves share a frozen fraction and a decay.

A group is the set of leaves that carry the same label. Labels come from a pytree
of labels with the structure of the parameters, or from a callable that maps the
parameters to such a tree (like ``optax.masked`` and ``optax.multi_transform``).
Without labels every leaf is its own group, as in the reference implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeAlias

import jax
import optax

Label: TypeAlias = Hashable
Groups: TypeAlias = Any | Callable[[Any], Any] | None
"""``None``, a pytree of labels matching the parameters, or ``params -> labels``."""

PerGroup: TypeAlias = float | jax.typing.ArrayLike | Mapping[Label, float]
"""One value for every group, or a mapping ``{group label: value}``."""


def _label_leaves(labels: Any) -> list[tuple[Any, Label]]:
  """(path, label) pairs of a label tree; a label is anything but a container."""
  return jax.tree_util.tree_flatten_with_path(labels)[0]


def leaf_labels(groups: Groups, tree: Any) -> tuple[Label, ...]:
  """Returns the group label of every leaf of ``tree``, in ``jax.tree.leaves`` order.

  Args:
    groups: ``None`` (every leaf is its own group, labelled by its index), a
      pytree of labels with the structure of ``tree``, or a callable mapping
      ``tree`` to such a pytree.
    tree: parameters or updates.

  Raises:
    ValueError: if the label tree does not match ``tree``; the message names the
      first path where they differ.
  """
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  # A tree without leaves has nothing to label: optax.tree_map_params calls init
  # with a leafless placeholder to find the parameter-shaped parts of the state.
  if groups is None or not leaves:
    return tuple(range(len(leaves)))
  labels = groups(tree) if callable(groups) else _unmasked(groups, tree)
  labelled = _label_leaves(labels)
  tree_paths = [path for path, _ in leaves]
  label_paths = [path for path, _ in labelled]
  if tree_paths != label_paths:
    for i in range(max(len(tree_paths), len(label_paths))):
      ours = tree_paths[i] if i < len(tree_paths) else None
      theirs = label_paths[i] if i < len(label_paths) else None
      if ours != theirs:
        where = jax.tree_util.keystr(ours if ours is not None else theirs)
        raise ValueError(
            f"groups does not match the parameter tree at {where}: the parameters "
            f"have {'a leaf' if ours is not None else 'no leaf'} there and the "
            f"labels have {'a label' if theirs is not None else 'none'}. "
            "groups must be a pytree of labels with the parameters' structure."
        )
  for path, label in labelled:
    try:
      hash(label)
    except TypeError as e:
      raise ValueError(
          f"group label at {jax.tree_util.keystr(path)} is not hashable: {label!r}."
      ) from e
  return tuple(label for _, label in labelled)


def _unmasked(labels: Any, tree: Any) -> Any:
  """The label tree without the labels of leaves that ``tree`` masks out.

  Inside ``optax.masked``, ``partition`` and ``multi_transform`` the masked-out
  leaves of ``tree`` are ``optax.MaskedNode``: pytree nodes without leaves.
  Trees that do not line up are returned as they are, for the error message of
  :func:`leaf_labels`.
  """
  try:
    return jax.tree.map(
        lambda label, sub: None if isinstance(sub, optax.MaskedNode) else label, labels, tree)
  except ValueError:
    return labels


def static_labels(groups: Groups) -> frozenset[Label] | None:
  """The labels a pytree of labels holds, or ``None`` if they depend on params."""
  if groups is None or callable(groups):
    return None
  return frozenset(label for _, label in _label_leaves(groups))


def check_mapping(name: str, value: PerGroup, labels: frozenset[Label] | None) -> None:
  """Checks that a per-group mapping names exactly the labels in use.

  Args:
    name: the argument's name, for the message.
    value: a scalar (nothing to check) or a mapping ``{label: value}``.
    labels: the labels in use, or ``None`` when not known yet.

  Raises:
    ValueError: if the mapping misses a label or names a label no leaf has.
  """
  if not isinstance(value, Mapping) or labels is None:
    return
  missing = labels - value.keys()
  if missing:
    raise ValueError(
        f"{name} has no value for group label(s) {sorted(map(repr, missing))}; "
        f"give every group a value (labels in use: {sorted(map(repr, labels))})."
    )
  unknown = value.keys() - labels
  if unknown:
    raise ValueError(
        f"{name} names group label(s) {sorted(map(repr, unknown))} that label no "
        f"parameter (labels in use: {sorted(map(repr, labels))})."
    )


def per_leaf(name: str, value: PerGroup, labels: tuple[Label, ...], groups: Groups) -> list[Any]:
  """Spreads a scalar or a ``{label: value}`` mapping over the leaves.

  Args:
    name: the argument's name, for the message.
    value: a scalar or a mapping ``{label: value}``.
    labels: the leaves' labels (:func:`leaf_labels`).
    groups: the groups argument: a mapping may name every label of a pytree
      of labels, also those of leaves masked out here.

  Raises:
    ValueError: see :func:`check_mapping`.
  """
  if isinstance(value, Mapping):
    if labels:  # nothing to check on a leafless tree (see leaf_labels)
      present = frozenset(labels)
      check_mapping(name, {k: v for k, v in value.items() if k in present}
                    if static_labels(groups) is not None else value, present)
    return [value[label] for label in labels]
  return [value] * len(labels)


def members(labels: tuple[Label, ...]) -> dict[Label, list[int]]:
  """Leaf indices of each group, groups in order of first appearance."""
  out: dict[Label, list[int]] = {}
  for i, label in enumerate(labels):
    out.setdefault(label, []).append(i)
  return out
