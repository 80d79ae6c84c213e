"""optax's own test suite for contributed optimizers passes with CoRe in it.

optax ships that suite in its wheel (``optax/contrib/_common_test.py``): every
contributed optimizer accepts extra arguments to ``update`` without recompiling,
converges on a parabola, Rosenbrock's function, a matrix and a mixed tree, keeps
its state under ``optax.tree.map_params``, gives the same updates and state when
wrapped in ``optax.inject_hyperparams``, keeps bfloat16/float32 dtypes, works
under ``optax.MultiSteps`` and keeps its state's shapes, dtypes and shardings.

The test reads the installed suite, replaces its optimizer lists by two CoRe
configurations and the name lookup by ``core_optax.core``, writes the result
to a temporary directory and runs it with pytest in a subprocess. Nothing else
of the suite is changed, and it is not copied into this repository.

Sign mode (``b2=None``) is not among the configurations: the suite's convergence
check on Rosenbrock's function is out of its reach (sign updates stall in the
curved valley, as the reference's do: 0.75, 0.53 after 30000 steps). Its
``inject_hyperparams`` check (same updates, same state) is run for sign mode, and
every other combination, in ``tests/test_inject_hyperparams.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

CONFIGURATIONS = [
    {"max_step_size": 1e-2},
    {"max_step_size": 1e-2, "score_history": 5, "frozen_fraction": 0.1},
]

# The suite's module-level names that this test rebinds: its two lists of optimizer
# configurations and the function that maps an ``opt_name`` to a factory.
LISTS = ("_MAIN_OPTIMIZERS_UNDER_TEST", "_ALL_OPTIMIZERS_UNDER_TEST")
FACTORY = "_get_opt_factory"
TEST_CLASS = "ContribTest"

OVERRIDE = textwrap.dedent(f"""
    # --- core_optax: the optimizers under test are CoRe's (tests/test_optax_contract.py) ---
    import core_optax as _core_optax

    _MAIN_OPTIMIZERS_UNDER_TEST = tuple(
        dict(opt_name="core", opt_kwargs=kwargs, wrapper_name=None, wrapper_kwargs=None)
        for kwargs in {CONFIGURATIONS!r})
    _ALL_OPTIMIZERS_UNDER_TEST = _MAIN_OPTIMIZERS_UNDER_TEST


    def _get_opt_factory(opt_name):
      if opt_name != "core":
        raise ValueError(f"Unknown optimizer: {{opt_name}}")
      return _core_optax.core
    # --- end of core_optax's change ---

""")


def _suite_path() -> pathlib.Path:
  spec = importlib.util.find_spec("optax")
  assert spec is not None and spec.submodule_search_locations, "optax is not installed"
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / "contrib" / "_common_test.py"


def with_core_as_the_optimizers(source: str) -> str:
  """The suite's source with CoRe's configurations bound right before the test class.

  Raises:
    AssertionError: if the suite no longer has the names rebound here, or if a
      test of the class is parameterised by a module-level name that is not
      rebound (it would test optax's optimizers instead of CoRe).
  """
  tree = ast.parse(source)
  assigned = {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AugAssign))
              for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
              if isinstance(target, ast.Name)}
  functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
  classes = [node for node in tree.body
             if isinstance(node, ast.ClassDef) and node.name == TEST_CLASS]
  missing = [name for name in LISTS if name not in assigned]
  missing += [FACTORY] if FACTORY not in functions else []
  missing += [TEST_CLASS] if not classes else []
  assert not missing, (f"optax's contrib suite changed: no module-level {missing}; update "
                       "tests/test_optax_contract.py to its new layout.")
  (test_class,) = classes
  for method in test_class.body:
    if not isinstance(method, ast.FunctionDef):
      continue
    used = {node.id for decorator in method.decorator_list for node in ast.walk(decorator)
            if isinstance(node, ast.Name) and node.id in assigned}
    unknown = sorted(used - set(LISTS))
    assert not unknown, (f"optax's contrib suite changed: {method.name} is parameterised by "
                         f"{unknown}, which this test does not replace by CoRe's configurations.")
  lines = source.splitlines(keepends=True)
  at = test_class.lineno - 1 - len(test_class.decorator_list)
  return "".join(lines[:at]) + OVERRIDE + "".join(lines[at:])


def test_override_refuses_a_suite_whose_layout_it_does_not_know():
  with pytest.raises(AssertionError, match=r"no module-level \['_ALL_OPTIMIZERS_UNDER_TEST'\]"):
    with_core_as_the_optimizers("_MAIN_OPTIMIZERS_UNDER_TEST = []\n"
                                "def _get_opt_factory(name): pass\nclass ContribTest: pass\n")
  with pytest.raises(AssertionError, match=r"parameterised by \['_BASE_OPTIMIZERS'\]"):
    with_core_as_the_optimizers(textwrap.dedent("""
        _MAIN_OPTIMIZERS_UNDER_TEST = _ALL_OPTIMIZERS_UNDER_TEST = _BASE_OPTIMIZERS = []
        def _get_opt_factory(name): pass
        class ContribTest:
          @parameterized.product(_BASE_OPTIMIZERS)
          def test_new(self): pass
    """))


def test_optax_contrib_suite_passes_for_core(tmp_path):
  suite = _suite_path()
  if not suite.exists():  # optax wheels before the suite shipped in them
    pytest.skip(f"this optax has no {suite}")
  test_file = tmp_path / "core_contrib_test.py"
  test_file.write_text(with_core_as_the_optimizers(suite.read_text()))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
  result = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
       "--rootdir", str(tmp_path), str(test_file)],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200, check=False)
  out = result.stdout + result.stderr
  assert result.returncode == 0, out[-6000:]
  assert not re.search(r"\b(failed|error)", out.splitlines()[-1]), out[-6000:]
  # Both configurations went through the inject_hyperparams check (not skipped).
  injected = re.findall(r"PASSED \S*test_optimizers_can_be_wrapped_in_inject_hyperparams", out)
  assert len(injected) == len(CONFIGURATIONS), out[-6000:]
