"""Weight groups (the paper's chi): which leaves share a frozen fraction and a decay.

A group is the set of leaves that carry the same label. Labels come from a pytree
of labels with the structure of the parameters, or from a callable that maps the
parameters to such a tree (like ``optax.masked`` and ``optax.multi_transform``).
Without labels every leaf is its own group, as in the reference implementation.

Labels are matched to the parameters by key path, so a label tree of plain dicts
labels parameters held in flax ``FrozenDict`` or other mappings with the same keys.
:class:`Grouping` resolves the labels once per tree structure; :func:`core_optax.core`
hands one to both of its transformations.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
import math
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import optax

Label: TypeAlias = Hashable
Groups: TypeAlias = Any | Callable[[Any], Any] | None
"""``None``, a pytree of labels matching the parameters, or ``params -> labels``."""

PerGroup: TypeAlias = float | jax.typing.ArrayLike | Mapping[Label, float]
"""One value for every group, or a mapping ``{group label: value}``."""

_KeyPath: TypeAlias = tuple[Any, ...]


def _is_masked(x: Any) -> bool:
  return isinstance(x, optax.MaskedNode)


class Partition(NamedTuple):
  """The groups of one tree's leaves (in ``jax.tree.leaves`` order).

  Attributes:
    labels: every leaf's label.
    members: every group's leaf indices, groups in order of first appearance.
    sizes: every group's number of weights (a complex element counts once, as in
      the reference's ``floor(p n)``).
    part: whether some leaves of the tree are masked out (``optax.MaskedNode``):
      inside ``optax.masked`` or ``multi_transform`` a tree holds some groups only.
  """

  labels: tuple[Label, ...]
  members: tuple[tuple[int, ...], ...]
  sizes: tuple[int, ...]
  part: bool

  def per_group(self, name: str, value: PerGroup) -> list[Any]:
    """``value`` for every group: a scalar repeated, or a mapping looked up by label.

    Raises:
      ValueError: if a mapping has no value for a group's label, or names a label
        that no leaf has. Only a :attr:`part` may lack labels of the mapping
        (inside ``optax.multi_transform`` each part holds some groups only).
    """
    if not isinstance(value, Mapping) or not self.labels:  # nothing to check without leaves
      return [value] * len(self.members)
    labels = [self.labels[ids[0]] for ids in self.members]
    check_labels(name, value, labels, part=self.part)
    return [value[label] for label in labels]

  def per_leaf(self, name: str, value: PerGroup) -> list[Any]:
    """``value`` for every leaf, from :meth:`per_group`."""
    out: list[Any] = [None] * len(self.labels)
    for ids, v in zip(self.members, self.per_group(name, value)):
      for i in ids:
        out[i] = v
    return out


def _flatten_labels(labels: Any) -> list[tuple[_KeyPath, Label]]:
  """``(key path, label)`` pairs of a label tree.

  Raises:
    ValueError: if ``labels`` is no pytree (e.g. a dict whose keys cannot be sorted).
  """
  try:
    return jax.tree_util.tree_flatten_with_path(labels)[0]
  except ValueError as error:
    raise ValueError(f"groups is not a valid pytree of labels: {error}") from error


def _labels_by_path(labels: Any, tree: Any) -> list[Label]:
  """The label of every leaf of ``tree`` that is not masked out, matched by key path.

  Leaves of ``tree`` that ``optax.masked``, ``partition`` or ``multi_transform``
  masked out (``optax.MaskedNode``) need no label; their labels are ignored.

  Raises:
    ValueError: naming the first path where a leaf has no label or a label has no
      leaf, or a label that is not hashable.
  """
  by_path = dict(_flatten_labels(labels))
  paths = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_masked)[0]
  out = []
  for path, leaf in paths:
    if _is_masked(leaf):
      continue
    if path not in by_path:
      raise ValueError(
          f"groups has no label for the parameter at {jax.tree_util.keystr(path)}; groups "
          "must be a pytree of labels with the parameters' keys (or params -> such a tree)."
      )
    out.append(by_path[path])
  extra = by_path.keys() - {path for path, _ in paths}
  if extra:
    where = jax.tree_util.keystr(min(extra, key=jax.tree_util.keystr))
    raise ValueError(
        f"groups has a label at {where}, where the parameters have no leaf; groups must "
        "be a pytree of labels with the parameters' keys (or params -> such a tree)."
    )
  for path, label in zip((p for p, leaf in paths if not _is_masked(leaf)), out):
    try:
      hash(label)
    except TypeError as e:
      raise ValueError(
          f"group label at {jax.tree_util.keystr(path)} is not hashable: {label!r}."
      ) from e
  return out


def _partition(groups: Groups, tree: Any) -> Partition:
  leaves = jax.tree.leaves(tree)
  # A tree without leaves has nothing to label: optax.tree_map_params calls init
  # with a leafless placeholder to find the parameter-shaped parts of the state.
  if groups is None or not leaves:
    labels: Sequence[Label] = range(len(leaves))
  else:
    labels = _labels_by_path(groups(tree) if callable(groups) else groups, tree)
  members: dict[Label, list[int]] = {}
  for i, label in enumerate(labels):
    members.setdefault(label, []).append(i)
  return Partition(
      part=any(map(_is_masked, jax.tree.leaves(tree, is_leaf=_is_masked))),
      labels=tuple(labels),
      members=tuple(tuple(ids) for ids in members.values()),
      sizes=tuple(sum(math.prod(jnp.shape(leaves[i])) for i in ids) for ids in members.values()),
  )


class Grouping:
  """The ``groups`` argument, resolved once per tree structure and leaf shapes.

  A callable ``groups`` is called once per tree structure: its labels may depend
  on the tree's structure, leaf shapes and dtypes (all that is known under
  ``jit``), not on values.
  """

  def __init__(self, groups: Groups):
    self.groups = groups
    self._partitions: dict[Any, Partition] = {}

  def __call__(self, tree: Any) -> Partition:
    leaves, treedef = jax.tree.flatten(tree)
    key = (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
    if key not in self._partitions:
      self._partitions[key] = _partition(self.groups, tree)
    return self._partitions[key]

  def static_labels(self) -> frozenset[Label] | None:
    """The labels a pytree of labels holds, or ``None`` if they depend on the tree."""
    if self.groups is None or callable(self.groups):
      return None
    return frozenset(label for _, label in _flatten_labels(self.groups))


def as_grouping(groups: Groups | Grouping) -> Grouping:
  """``groups`` as a :class:`Grouping` (a shared one is passed through)."""
  return groups if isinstance(groups, Grouping) else Grouping(groups)


def check_mapping(name: str, value: PerGroup, grouping: Grouping) -> None:
  """Checks, where the labels are known now, that a per-group mapping names them exactly.

  Raises:
    ValueError: if ``value`` is a mapping and ``groups`` is ``None``, or the
      mapping misses a label of a pytree of labels, or names a label it lacks.
  """
  if not isinstance(value, Mapping):
    return
  if grouping.groups is None:
    raise ValueError(f"{name} is a mapping {{label: value}}; it needs groups=...")
  labels = grouping.static_labels()
  if labels is not None:
    check_labels(name, value, labels)


def check_labels(name: str, value: Mapping[Label, Any], labels: Collection[Label], *,
                 part: bool = False) -> None:
  """Checks that a per-group mapping has a value for every label, and no other keys.

  Args:
    name: the argument's name, for the message.
    value: the mapping ``{label: value}``.
    labels: the labels of the parameters' groups.
    part: whether the parameters are a part of the tree (inside
      ``optax.multi_transform`` each part holds some groups only): then the
      mapping may name labels that ``labels`` lacks.

  Raises:
    ValueError: naming the labels that have no value, or the keys that label no
      parameter.
  """
  in_use = sorted(map(repr, labels))
  missing = [label for label in labels if label not in value]
  if missing:
    raise ValueError(
        f"{name} has no value for group label(s) {sorted(map(repr, missing))}; give "
        f"every group a value (the groups' labels: {in_use})."
    )
  unknown = [label for label in value if label not in labels]
  if unknown and not part:
    raise ValueError(
        f"{name} names group label(s) {sorted(map(repr, unknown))} that label no "
        f"parameter (the groups' labels: {in_use})."
    )
