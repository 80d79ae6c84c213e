"""The accelerator-cost study on 8 virtual CPU devices: every pass counted, no gathered scores.

The study's TPU path needs libtpu; its CPU path compiles the same programs for 8 host devices,
in a fresh process (the device count is read at start-up).
"""

import json
import subprocess
import sys

from benchmarks.studies import accelerator_cost

N = 1 << 16  # w (64, 512) P(None, "model"), v (32768,) P("model"), b (256,) P()
MAX_COLLECTIVE_ELEMENTS = 4096  # a few numbers per group; a gather of w would move 32768

_SCRIPT = f"""
import json
from benchmarks.studies import accelerator_cost as study
print(json.dumps(study.rows(study.mesh("cpu"), [{N}], [1, 6, 9])))
"""


def test_every_pass_adds_one_pass_per_pass_beyond_the_counted_one():
  assert accelerator_cost.every_pass(100.0, 7.0, 1) == 100.0
  assert accelerator_cost.every_pass(100.0, 7.0, 6) == 135.0


def test_freezing_step_on_8_devices_moves_only_counts_and_its_estimate_counts_every_pass():
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=accelerator_cost.environment("cpu"),
                        capture_output=True, text=True, timeout=240)
  assert proc.returncode == 0, proc.stderr[-6000:]
  adam, core, scores, freezing = json.loads(proc.stdout.splitlines()[-1])
  assert ([r["optimizer"] for r in (adam, core, scores, freezing)]
          == list(accelerator_cost.optimizers()))
  for row in (adam, core, scores):
    assert set(row["estimates"].values()) == {row["bytes"]}  # no selection, no passes
  selection = freezing["selection"]
  per_device = 4 * N / 8  # a pass reads every score of the device's shards
  assert per_device <= selection["count"] and per_device <= selection["cut"]
  assert selection["pass"] == max(selection["count"], selection["cut"])
  for passes, estimate in freezing["estimates"].items():  # JSON keys: "1", "6", "9"
    assert estimate == freezing["bytes"] + (float(passes) - 1) * selection["pass"]
  assert freezing["estimates"]["9"] > freezing["estimates"]["6"] > freezing["bytes"]
  assert adam["bytes"] < core["bytes"] < scores["bytes"] < freezing["bytes"]
  assert freezing["collectives"], "the counts of a sharded selection are all-reduced"
  assert max(elements for _, elements in freezing["collectives"]) <= MAX_COLLECTIVE_ELEMENTS
  lines = accelerator_cost.table([adam, core, scores, freezing])
  assert len(lines) == 6 and lines[2].split("|")[4].strip() == "1.00"  # adam's own ratio
