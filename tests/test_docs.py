"""The documentation builds without a warning, covers the public API, and its examples run."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import core_optax

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MODULES = sorted(f"core_optax.{m.name}" for m in pkgutil.iter_modules(core_optax.__path__))
RECIPES = sorted((DOCS / "recipes").glob("*.md"))


def test_docs_build_with_warnings_as_errors(tmp_path):
  pytest.importorskip("sphinx")
  pytest.importorskip("myst_parser")
  result = subprocess.run(
      [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q", str(DOCS),
       str(tmp_path / "html")],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
  api = (tmp_path / "html" / "api.html").read_text()
  assert 'id="core_optax.core"' in api  # autodoc found the docstrings
  # Signatures name argument types as documented, not by private modules or expanded unions.
  signatures = re.sub(r"<[^>]+>", "", api)
  for unwanted in ("_groups.", "_weight_decay.", "TypeAliasForwardRef", "ndarray | bool"):
    assert unwanted not in signatures, unwanted
  # The re-exported constants show their own docstrings, not their type's (float's, dict's).
  for name in ("TIE_TOLERANCE", "MAX_STEP_SIZE", "STABILITY_PLASTICITY"):
    assert f'id="core_optax.{name}"' in api, name
  for type_docstring in ("Convert a string or number", "dict() -&gt; new empty dictionary"):
    assert type_docstring not in api, type_docstring
  # The tie-band trap reaches the rendered recipes.
  failure_modes = (tmp_path / "html" / "recipes" / "failure_modes.html").read_text()
  assert "A group that freezes entirely" in failure_modes


def test_api_reference_lists_every_public_name():
  api = (DOCS / "api.rst").read_text()
  documented = set(re.findall(r"^\.\. (?:auto\w+|py:\w+):: (\w+)", api, flags=re.M))
  assert documented == set(core_optax.__all__)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
  module = importlib.import_module(name)
  tests = doctest.DocTestFinder(exclude_empty=False).find(module, name)
  runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
  for test in tests:
    if test.docstring and "Examples:" in test.docstring:
      assert test.examples, f"{test.name}: its Examples: block has no >>> lines"
    runner.run(test, out=lambda text: pytest.fail(text, pytrace=False))
  assert runner.summarize(verbose=False).failed == 0


def test_every_examples_block_in_the_source_is_one_the_doctests_run():
  in_source = sum(len(re.findall(r"^\s*Examples:\s*$", path.read_text(), flags=re.M))
                  for path in (ROOT / "core_optax").glob("*.py"))
  run = [test.name for name in MODULES
         for test in doctest.DocTestFinder().find(importlib.import_module(name), name)
         if test.examples and "Examples:" in test.docstring]
  assert len(run) == in_source >= 4, run


def test_recipe_pages_are_self_contained():
  """A page that included README sections by heading text would pick up whatever the README
  puts under those headings."""
  for page in RECIPES:
    assert "{include}" not in page.read_text(), page.name


@pytest.mark.parametrize("page", RECIPES, ids=lambda page: page.name)
def test_recipe_python_blocks_run(page):
  """Each page's Python blocks run as written, in order, with the imports they show."""
  namespace = {}
  for index, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)):
    exec(compile(block, f"{page.name}, block {index}", "exec"), namespace)
