"""The measuring parts of the step-speed study: copied bytes, the data-movement step, the steps.

What the studies share is in ``benchmarks/studies/timing.py``, the rest in ``step_speed.py``.
"""

import mmap

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.studies import step_speed
from benchmarks.studies import timing
import core_optax


def test_copied_bytes_sums_the_copy_instructions_per_parameter():
  hlo = """
  %copy.1 = f32[10,10]{1,0} copy(%g)
  %copy.2 = bf16[100]{0} copy(%s)
  %copy.3 = pred[4]{0} copy(%mask)
  %add.1 = f32[10,10]{1,0} add(%copy.1, %copy.1)
  """
  assert timing.copied_bytes(hlo, 100) == (400 + 200 + 4) / 100


@pytest.mark.parametrize("scores", [False, True])
def test_data_movement_reads_and_writes_what_core_does(scores):
  grads = [jnp.arange(3.0)]
  tx = step_speed.data_movement(scores)
  state = tx.init(grads)
  assert len(state) == (4 if scores else 3)  # g, h, s, and S with scores
  updates, state = tx.update(grads, state)
  np.testing.assert_array_equal(updates[0], grads[0])
  for tree in state:
    np.testing.assert_array_equal(tree[0], grads[0])


def test_freezing_runs_start_past_t_hist_and_step():
  shapes = timing.mlp_shapes(5000)
  run = timing.Jax(core_optax.core(1e-3, score_history=timing.T_HIST,
                                       frozen_fraction=timing.P_FROZEN), shapes, freezing=True)
  assert round(run.bytes) == 16 and int(run.state[0].tau) == timing.T_HIST  # + thresholds
  before = [np.asarray(p) for p in run.params]
  run()
  assert int(run.state[0].tau) == timing.T_HIST + 1
  frozen = [np.asarray(p) == b for p, b in zip(run.params, before)]
  n_frozen = sum(int(f.sum()) for f in frozen)
  n = sum(f.size for f in frozen)
  assert 0 < n_frozen < n  # some weights frozen (about P_FROZEN of each group), most moved
  adam = timing.Jax(optax.adam(1e-3), shapes)
  assert adam.bytes == 8 and adam.copies == 0


def test_timing_counts_the_page_faults_of_fresh_memory():
  size = 16 << 20

  def touch():  # fresh pages, each touched once
    with mmap.mmap(-1, size) as memory:
      memory[::mmap.PAGESIZE] = b"x" * (size // mmap.PAGESIZE)

  timings = timing.time_interleaved({"touch": touch, "idle": lambda: None}, reps=3)
  assert timings["touch"].faults >= size // mmap.PAGESIZE
  assert timings["idle"].faults < 100
  assert timings["touch"].seconds > 0


def test_region_analysis_compiles_a_core_step_with_fewer_copies():
  """The README's advice: on CPU, these compiler options drop the copy of ``s``."""
  shapes = timing.mlp_shapes(5000)
  plain = timing.Jax(core_optax.core(1e-3), shapes)
  fewer = timing.Jax(core_optax.core(1e-3), shapes,
                         compiler_options=step_speed.REGION_ANALYSIS)
  assert round(plain.copies) == 8  # g and s
  assert round(fewer.copies) == 4  # g
  plain()
  fewer()
  for a, b in zip(plain.params, fewer.params):
    np.testing.assert_array_equal(a, b)


def test_torch_freezing_runs_start_past_t_hist_and_step_on_their_device():
  shapes = timing.mlp_shapes(5000)
  runs = step_speed.optimizers(shapes, torch_device="cpu")
  run = runs["torch CoRe freezing"]()
  assert all(p.device.type == "cpu" for p in run.params) and round(run.bytes) == 16
  before = [p.detach().clone() for p in run.params]
  run()
  assert all(run.opt.state[p]["step"] == timing.T_HIST + 1 for p in run.params)
  frozen = [(p == b).numpy() for p, b in zip(run.params, before)]
  assert 0 < sum(int(f.sum()) for f in frozen) < sum(f.size for f in frozen)
