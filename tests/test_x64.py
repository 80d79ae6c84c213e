"""tests/x64_suite.py passes in a fresh process with ``jax_enable_x64`` on globally."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_x64_suite_passes_in_a_process_with_x64_on_globally():
  result = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/x64_suite.py"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  out = result.stdout + result.stderr
  assert result.returncode == 0, out[-6000:]
  summary = out.strip().splitlines()[-1]
  assert re.fullmatch(r"\d+ passed in .*", summary), out[-6000:]  # nothing skipped or failed
