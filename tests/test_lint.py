"""``ruff check .`` is clean under the rule set pyproject.toml names, so config and code agree."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_rule_set_is_named_explicitly():
  lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
  assert {"E", "F", "W", "I"} <= set(lint["select"])  # not ruff's implicit default


def test_ruff_check_is_clean():
  pytest.importorskip("ruff")
  result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
