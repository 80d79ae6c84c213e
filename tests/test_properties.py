"""tests/properties_suite.py (hypothesis invariants of CoRe) passes in a fresh process.

Run in the suite's worker process after most other files, the suite's first property test
crashed the worker twice (a segfault in libgcc's unwinder, reading unmapped memory; it passed
alone, under load, and after the compile-size tests): a fresh process keeps its hundreds of
compiled freezing steps apart from the other files' executables.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_properties_suite_passes_in_a_fresh_process():
  result = subprocess.run(
      [sys.executable, "-X", "faulthandler", "-m", "pytest", "-q", "-n", "0", "-p",
       "no:cacheprovider", "tests/properties_suite.py"],
      cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
  out = result.stdout + result.stderr
  assert result.returncode == 0, out[-6000:]
  summary = out.strip().splitlines()[-1]
  assert re.fullmatch(r"\d+ passed in .*", summary), out[-6000:]  # nothing skipped or failed
