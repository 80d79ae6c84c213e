"""The README's Python code runs as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
  assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
  namespace = {}
  exec(compile("import jax, jax.numpy as jnp, optax, core_optax\n" + BLOCKS[index],
               f"README block {index}", "exec"), namespace)
