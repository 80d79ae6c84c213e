"""Sphinx configuration: the API reference from the docstrings, the README's recipes as pages.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (``tests/test_docs.py``
builds it with warnings as errors).
"""

import pathlib
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
    "myst_parser",  # the recipe pages include sections of README.md
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# README's links point into the repository (benchmarks/README.md, examples/...), not at
# pages of these docs: keep them as links instead of resolving them as cross-references.
myst_all_links_external = True
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
}

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # NamedTuple fields are documented once, by their Attributes section

html_theme = "alabaster"
html_title = f"core_optax {release}"


def _named_aliases(app, what, name, obj, options, signature, return_annotation):
  """Sphinx prints an alias inside ``X | None`` as ``TypeAliasForwardRef('X') | None``."""
  if signature:
    signature = re.sub(r"TypeAliasForwardRef\('([^']*)'\)", r"\1", signature)
  return signature, return_annotation


def setup(app):
  app.connect("autodoc-process-signature", _named_aliases)
