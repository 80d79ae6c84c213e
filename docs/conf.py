"""Sphinx configuration: the API reference from the docstrings, and the recipe pages.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (``tests/test_docs.py``
builds it with warnings as errors).
"""

import functools
import pathlib
import pkgutil
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import core_optax  # noqa: E402  (after the path, so that the checkout is documented)

project = "core_optax"
author = "the core_optax authors"
copyright = "the core_optax authors"
release = core_optax.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style docstrings, as optax
    "sphinx.ext.mathjax",
    "myst_parser",  # the recipe pages are Markdown
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# Links between pages are written as Markdown links to the .md files (they work on GitHub
# too) and resolve to the pages; `page.md#a-heading` needs the headings' anchors.
myst_heading_anchors = 3
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Signatures keep the names of the argument types (jax's and optax's unions unexpanded); those
# that live in private modules are named as api.rst documents them.
autodoc_type_aliases = {
    "_groups.PerGroup": "PerGroup",
    "_groups.Groups": "Groups",
    "_weight_decay.Mask": "Mask",
    "Mask": "Mask",
    "jax.typing.ArrayLike": "jax.typing.ArrayLike",
    "jax.typing.DTypeLike": "jax.typing.DTypeLike",
    "optax.ScalarOrSchedule": "optax.ScalarOrSchedule",
    # chex.ArrayTree, a recursive union: evaluated, its ForwardRef('ArrayTree') fails and
    # every annotation of the signature stays unresolved.
    "optax.OptState": "optax.OptState",
    "optax.Updates": "optax.Updates",
}

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # NamedTuple fields are documented once, by their Attributes section

html_theme = "alabaster"
html_title = f"core_optax {release}"


def _named_aliases(app, what, name, obj, options, signature, return_annotation):
  """Sphinx prints an alias inside ``X | None`` as ``TypeAliasForwardRef('X') | None``."""
  named = lambda text: text and re.sub(r"TypeAliasForwardRef\('([^']*)'\)", r"\1", text)
  return named(signature), named(return_annotation)


@functools.cache
def _attribute_docstrings():
  """``{name: docstring lines}`` of the module-level attributes of core_optax's own modules."""
  from sphinx.pycode import ModuleAnalyzer

  docs = {}
  for module in pkgutil.iter_modules(core_optax.__path__):
    analyzer = ModuleAnalyzer.for_module(f"core_optax.{module.name}")
    for (scope, name), lines in analyzer.find_attr_docs().items():
      if not scope:
        docs.setdefault(name, list(lines))
  return docs


def _reexported_attribute_docstrings(app, what, name, obj, options, lines):
  """The public constants and type aliases are defined, with their docstrings, in private
  modules and re-exported by ``core_optax``, where autodoc finds no docstring (it shows the
  value's type's, e.g. ``float``'s): take the docstring from the module that defines them."""
  module, _, attribute = name.rpartition(".")
  if what == "data" and module == "core_optax" and attribute in _attribute_docstrings():
    lines[:] = _attribute_docstrings()[attribute]


def _no_expanded_alias(app, domain, objtype, contentnode):
  """Drop autodoc's "alias of ..." under a type alias: it spells out jax's ``ArrayLike`` union
  in full; the docstring says what the alias takes, and signatures name the alias."""
  from docutils import nodes

  if domain == "py" and objtype == "data":
    for paragraph in list(contentnode.findall(nodes.paragraph)):
      if paragraph.astext().startswith("alias of "):
        paragraph.parent.remove(paragraph)


def setup(app):
  app.connect("autodoc-process-signature", _named_aliases)
  app.connect("autodoc-process-docstring", _reexported_attribute_docstrings)
  app.connect("object-description-transform", _no_expanded_alias)
