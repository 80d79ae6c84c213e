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
