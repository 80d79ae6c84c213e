"""optax's sharding contract holds for CoRe: abstract init, and stable state types on a mesh.

optax checks two things of its optimizers (``optax/_src/sharding_test.py``, and
``optax/contrib/_sharding_test.py`` for contributed ones): ``init`` works on
``jax.ShapeDtypeStruct`` leaves (flax NNX and orbax restore build abstract states
this way), and with float16 params sharded ``P(None, "x")`` over an Explicit mesh
axis the state's ``jax.typeof`` tree (shapes, dtypes and shardings) is the same
after ``init`` and after ``update``, with and without ``jax.jit``.

Where the installed optax ships those files, they run for CoRe's configurations
as ``tests/test_optax_contract.py`` runs the common suite: the file's optimizer
tables are rebound to CoRe's, nothing else is changed, and nothing is copied into
this repository. Our own test of the same contract runs too, for float16 and
float32 and over a few updates (so that weights freeze): optax 0.2.8's
``sharding_test.py`` compares version strings (``jax.__version__ < '0.7.2'``)
and so skips its mesh checks on jax 0.10. Run the mesh case by hand with::

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/test_sharding_contract.py \
      explicit_mesh
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
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

OPTAX_FILES = ("_src/sharding_test.py", "contrib/_sharding_test.py")
"""optax's sharding tests, relative to the installed package."""

DTYPES = ("float16", "float32")
UPDATES = 3
"""Updates checked on the mesh; freezing configurations freeze from the third (t_hist = 2)."""


def _one_group(params: Any) -> Any:
  import jax

  return jax.tree.map(lambda _: "w", params)


CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "sign_mode": {"b2": None},
    "freezing": {"score_history": 2, "frozen_fraction": 0.25},
    "grouped_freezing": {"score_history": 2, "frozen_fraction": {"w": 0.25},
                         "groups": _one_group},
}


FACTORIES = ("core", "scale_by_core")
NAMES = tuple(f"{factory}_{name}" for factory in FACTORIES for name in CONFIGURATIONS)


def optimizers() -> dict[str, Any]:
  """``core`` and ``scale_by_core`` in every configuration, by the names in ``NAMES``.

  core_optax is imported here, not when this file is: run as the 8-device cases'
  script, the file first puts its repository on the path.
  """
  import core_optax

  return {f"{factory}_{name}": getattr(core_optax, factory)(1e-2, **kwargs)
          for factory in FACTORIES for name, kwargs in CONFIGURATIONS.items()}


# ---------------------------------------------------------------------------------------------
# Abstract init, in this process.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_init_of_shape_dtype_structs_equals_init_of_arrays(name, dtype):
  import jax
  import jax.numpy as jnp
  import numpy as np

  tx = optimizers()[name]
  abstract = tx.init(jax.ShapeDtypeStruct((2, 4, 8), jnp.dtype(dtype)))
  concrete = tx.init(jnp.zeros((2, 4, 8), dtype))
  assert jax.tree.map(jax.typeof, abstract) == jax.tree.map(jax.typeof, concrete)
  jax.tree.map(np.testing.assert_array_equal, abstract, concrete)


def test_update_still_refuses_shape_dtype_structs():
  import jax
  import jax.numpy as jnp

  import core_optax

  tx = core_optax.scale_by_core(1e-2)
  params = jax.ShapeDtypeStruct((3,), jnp.float32)
  with pytest.raises(TypeError, match=r"updates is ShapeDtypeStruct, not an array"):
    tx.update(params, tx.init(params))


# ---------------------------------------------------------------------------------------------
# optax's own sharding tests, for CoRe's optimizers.

OVERRIDE = textwrap.dedent("""
    # --- core_optax: the optimizers under test are CoRe's (tests/test_sharding_contract.py) ---
    from tests import test_sharding_contract as _core_contract

    {bindings}
    # --- end of core_optax's change ---

""")


def with_core_as_the_optimizers(source: str) -> tuple[str, list[str]]:
  """optax's test file with every optimizer table rebound to CoRe's, and the tests using them.

  An optimizer table is a module-level name that parameterises a test method of
  the file's test class. The tables are rebound right before the class.

  Raises:
    AssertionError: if the file has no such class or table (its layout changed),
      or a table is not a dict (this test would not know what to put there).
  """
  tree = ast.parse(source)
  values = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}
  classes = [node for node in tree.body
             if isinstance(node, ast.ClassDef) and node.name.endswith("Test")]
  assert len(classes) == 1, (f"optax's sharding tests changed: {len(classes)} test classes; "
                             "update tests/test_sharding_contract.py to the new layout.")
  (test_class,) = classes
  tables, tests = set(), []
  for method in test_class.body:
    if not isinstance(method, ast.FunctionDef):
      continue
    used = {node.id for decorator in method.decorator_list for node in ast.walk(decorator)
            if isinstance(node, ast.Name) and node.id in values}
    if used:
      tables |= used
      tests.append(method.name)
  assert tables, ("optax's sharding tests changed: no test is parameterised by a module-level "
                  "table of optimizers; update tests/test_sharding_contract.py.")
  odd = sorted(name for name in tables if not isinstance(values[name], ast.Dict))
  assert not odd, (f"optax's sharding tests changed: {odd} are no dicts of optimizers; update "
                   "tests/test_sharding_contract.py.")
  bindings = "\n".join(f"{name} = _core_contract.optimizers()" for name in sorted(tables))
  lines = source.splitlines(keepends=True)
  at = test_class.lineno - 1 - len(test_class.decorator_list)
  return "".join(lines[:at]) + OVERRIDE.format(bindings=bindings) + "".join(lines[at:]), tests


def test_override_rebinds_every_table_and_refuses_a_layout_it_does_not_know():
  source = textwrap.dedent("""
      A = {"adam": 1}
      B = {**A, "dog": 2}
      class ShardingTest:
        @parameterized.named_parameters(A.items())
        def test_abstract(self, optimizer): pass
        @parameterized.named_parameters(B.items())
        def test_mesh(self, optimizer): pass
        @parameterized.named_parameters(("one", 1))
        def test_other(self, spec): pass
  """)
  rebound, tests = with_core_as_the_optimizers(source)
  assert tests == ["test_abstract", "test_mesh"]
  assert "A = _core_contract.optimizers()\nB = _core_contract.optimizers()" in rebound
  assert rebound.index("_core_contract.optimizers()") < rebound.index("class ShardingTest")
  with pytest.raises(AssertionError, match="no test is parameterised"):
    with_core_as_the_optimizers("class ShardingTest:\n  def test_x(self): pass\n")
  with pytest.raises(AssertionError, match=r"\['A'\] are no dicts"):
    with_core_as_the_optimizers(source.replace('A = {"adam": 1}', "A = [1]"))


def _optax_file(relative: str) -> pathlib.Path:
  spec = importlib.util.find_spec("optax")
  assert spec is not None and spec.submodule_search_locations, "optax is not installed"
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / relative


@pytest.mark.parametrize("relative", OPTAX_FILES)
def test_optax_sharding_tests_pass_for_core(relative, tmp_path):
  suite = _optax_file(relative)
  if not suite.exists():
    pytest.skip(f"this optax has no {suite}; the contract is checked by this file's own tests")
  source, tests = with_core_as_the_optimizers(suite.read_text())
  test_file = tmp_path / f"core_{suite.stem.lstrip('_')}.py"
  test_file.write_text(source)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
                 [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
  result = subprocess.run(
      [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider",
       "--rootdir", str(tmp_path), "-k", " or ".join(tests), str(test_file)],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
  out = result.stdout + result.stderr
  assert result.returncode == 0, out[-6000:]
  outcomes = dict(re.findall(r"::(\w+) (PASSED|SKIPPED|FAILED|ERROR)", out))
  for name in NAMES:
    for test in tests:  # every optimizer ran through every test; abstract init was not skipped
      outcome = outcomes.get(f"{test}_{name}")
      allowed = ("PASSED",) if "abstract" in test else ("PASSED", "SKIPPED")
      assert outcome in allowed, (f"{test}_{name}: {outcome}", out[-6000:])
  print(out)


# ---------------------------------------------------------------------------------------------
# Our own test of the mesh contract, in a subprocess with 8 devices.

def test_state_types_on_an_explicit_mesh_are_the_same_after_init_and_update_with_and_without_jit():
  from tests import test_multidevice

  out = test_multidevice.run_case("explicit_mesh", script=__file__)
  assert out.count("state types stable") == len(DTYPES) * len(NAMES), out


def case_explicit_mesh():
  import jax
  from jax.sharding import AxisType
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P
  import numpy as np

  def types(tree):
    return jax.tree.map(jax.typeof, tree)

  def assert_same(actual, expected, what):
    assert actual == expected, f"{what}:\n{actual}\n!=\n{expected}"

  mesh = jax.make_mesh((8,), ("x",), axis_types=(AxisType.Explicit,))
  sharding = NamedSharding(mesh, P(None, "x"))
  rng = np.random.default_rng(0)
  with jax.set_mesh(mesh):
    for dtype in DTYPES:
      params = jax.device_put(rng.normal(size=(2, 8, 4)).astype(dtype), sharding)
      for name, tx in optimizers().items():
        state = tx.init(params)
        expected = types(state)
        assert_same(types(jax.jit(tx.init)(params)), expected, f"{name} {dtype}: jit(init)")
        update = jax.jit(tx.update)
        for step in range(UPDATES):
          grads = jax.tree.map(lambda p, step=step: p * (step - 1.5), params)
          _, eager = tx.update(grads, state, params)
          _, state = update(grads, state, params)
          assert_same(types(eager), expected, f"{name} {dtype}: update {step + 1}")
          assert_same(types(state), expected, f"{name} {dtype}: jit(update) {step + 1}")
        print(f"{name} {dtype}: state types stable over init and {UPDATES} updates, with and "
              f"without jit: {jax.typeof(jax.tree.leaves(state)[1])}")


if __name__ == "__main__":
  sys.path.insert(0, str(ROOT))
  import jax

  assert jax.device_count() == 8, "set XLA_FLAGS before running this file"
  globals()[f"case_{sys.argv[1]}"]()
