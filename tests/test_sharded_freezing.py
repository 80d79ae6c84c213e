"""Freezing on weights sharded over 8 (virtual CPU) devices: counted in place, exact.

The selection of eq. 5 must reduce every sharded leaf where it lives: the
compiled step has no collective of more than a few numbers per group, and
needs less temporary memory per device than its arguments. Its frozen masks
and weights must equal an unsharded run's. Each test runs cases of this file
in a fresh Python process with 8 devices, under a timeout (see
``tests/test_multidevice.py``). By hand::

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/test_sharded_freezing.py compiled
"""

from __future__ import annotations

import pathlib
import re
import sys

DEVICES = 8
TIMEOUT_S = 240
ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_COLLECTIVE_ELEMENTS = 4096
COLLECTIVES = ("all-reduce", "all-gather", "all-to-all", "collective-permute", "reduce-scatter",
               "collective-broadcast", "ragged-all-to-all")


def run_cases(*names: str) -> str:
  """Runs ``case_<name>`` for every name in one subprocess on 8 devices; returns its stdout."""
  from tests import helpers  # not at the top: this file also runs as the cases' script

  return helpers.run_on_devices(__file__, *names, timeout_s=TIMEOUT_S, devices=DEVICES)


def collectives(hlo: str) -> list[tuple[str, int]]:
  """``(op, elements)`` of every collective in compiled HLO text (elements of its result)."""
  found = []
  pattern = re.compile(r"=\s*(.*?)\s+(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
  for line in hlo.splitlines():
    match = pattern.search(line)
    if match:
      dims = re.findall(r"[a-z]+[0-9]*\[([0-9,]*)\]", match.group(1))
      elements = sum(_product(d) if d else 1 for d in dims)
      found.append((match.group(2), elements))
  return found


def _product(dims: str) -> int:
  out = 1
  for d in dims.split(","):
    out *= int(d)
  return out


def test_collectives_parser_sees_an_all_gather():
  hlo = "%ag = f32[8,1024]{1,0} all-gather(f32[1,1024]{1,0} %p), dimensions={0}\n" \
        "%ar = (s32[], s32[3]{0}) all-reduce-start(s32[] %a, s32[3]{0} %b), to_apply=%add"
  assert collectives(hlo) == [("all-gather", 8192), ("all-reduce", 4)]


def test_compiled_sharded_freezing_step_moves_only_counts_and_needs_little_memory():
  out = run_cases("compiled")
  assert "largest collective" in out


def test_sharded_freezing_equals_the_unsharded_run_exactly():
  """Auto and Explicit mesh axes; one group spans a sharded and a replicated leaf."""
  out = run_cases("equal_Auto", "equal_Explicit")
  assert out.count("masks and weights equal the unsharded run") == 2


STRESS_PROCESSES = 3
STRESS_STEPS = 150


def test_many_sharded_freezing_steps_in_concurrent_fresh_processes_never_hang():
  """XLA:CPU aborts a collective after 40 s if a device never arrives (rc 134).

  Three fresh processes at once (24 device threads on a small machine), each
  running ``STRESS_STEPS`` sharded freezing updates, every one with all-reduces
  inside the selection's loop.
  """
  from tests import helpers  # not at the top: this file also runs as the cases' script

  results = helpers.run_concurrently([[sys.executable, __file__, "stress"]] * STRESS_PROCESSES,
                                     cwd=ROOT, env=helpers.device_env(DEVICES),
                                     timeout_s=TIMEOUT_S,
                                     what="a stress process")
  for rc, out, err in results:
    assert rc == 0, f"rc {rc}:\n{out}\n{err[-6000:]}"
    assert f"{STRESS_STEPS} steps" in out


# ---------------------------------------------------------------------------------------------
# The cases; they run in the subprocess, with 8 devices.

def _shapes(scale: int):
  from jax.sharding import PartitionSpec as P

  return ({"w": (64, 256 * scale), "v": (2048 * scale,), "b": (256,)},
          {"w": P(None, "model"), "v": P("model"), "b": P()})


def _optimizer():
  import core_optax

  groups = {"w": "wb", "v": "v", "b": "wb"}  # "wb" spans a sharded and a replicated leaf
  return core_optax.core(1e-3, score_history=3, frozen_fraction={"wb": 0.1, "v": 0.2},
                         groups=groups)


def _gradient(params, i):
  import jax
  import jax.numpy as jnp

  return jax.tree.map(lambda p: jnp.sin(7 * p + i) * (1 + jnp.cos(3 * p * i)), params)


def _step(tx):
  import optax

  def step(params, state, i):
    updates, state = tx.update(_gradient(params, i), state, params)
    return optax.apply_updates(params, updates), state, updates

  return step


def _sharded_setup(axis_type: str, scale: int, dtype):
  import jax
  from jax.sharding import AxisType
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P
  import optax

  shapes, specs = _shapes(scale)
  mesh = jax.make_mesh((DEVICES,), ("model",), axis_types=(getattr(AxisType, axis_type),))
  shardings = {name: NamedSharding(mesh, spec) for name, spec in specs.items()}
  keys = dict(zip(shapes, jax.random.split(jax.random.key(0), len(shapes))))
  params = {name: jax.random.normal(keys[name], shape, dtype) for name, shape in shapes.items()}
  tx = _optimizer()
  state_shardings = optax.tree_map_params(
      tx, lambda _, sharding: sharding, jax.eval_shape(tx.init, params), shardings,
      transform_non_params=lambda _: NamedSharding(mesh, P()))
  return mesh, params, shardings, state_shardings, tx


def case_compiled():
  """1.2e6 and 9.4e6 float32 weights, compiled only: the same few counts move at both sizes,
  and temporaries stay below the arguments per device."""
  import jax
  import jax.numpy as jnp

  largest_at = []
  for scale in (64, 512):
    mesh, params, shardings, state_shardings, tx = _sharded_setup("Auto", scale, jnp.float32)
    abstract = lambda tree, sh: jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, sh)
    state = jax.eval_shape(tx.init, params)
    step = jax.jit(_step(tx), donate_argnums=(0, 1),
                   out_shardings=(shardings, state_shardings, shardings))
    compiled = step.lower(abstract(params, shardings), abstract(state, state_shardings),
                          jax.ShapeDtypeStruct((), jnp.float32)).compile()
    found = collectives(compiled.as_text())
    memory = compiled.memory_analysis()
    largest = max((n for _, n in found), default=0)
    n = sum(x.size for x in jax.tree.leaves(params))
    print(f"{n:.2e} weights: collectives: {found}")
    print(f"largest collective {largest} elements; temp {memory.temp_size_in_bytes} B, "
          f"arguments {memory.argument_size_in_bytes} B per device")
    assert largest <= MAX_COLLECTIVE_ELEMENTS, found
    assert memory.temp_size_in_bytes < memory.argument_size_in_bytes
    largest_at.append(largest)
  assert largest_at[0] == largest_at[1], largest_at  # independent of the model's size


def _equal_case(axis_type: str):
  import contextlib

  import jax
  import jax.numpy as jnp
  import numpy as np

  jax.config.update("jax_enable_x64", True)
  mesh, params, shardings, state_shardings, tx = _sharded_setup(axis_type, 8, jnp.float64)
  steps = 10  # freezing from the 4th update on (score_history 3)
  one = jax.devices()[0]
  context = jax.set_mesh(mesh) if axis_type == "Explicit" else contextlib.nullcontext()
  with context:
    sharded = jax.device_put(params, shardings)
    sharded_state = jax.jit(tx.init, out_shardings=state_shardings)(sharded)
    sharded_step = jax.jit(_step(tx), out_shardings=(shardings, state_shardings, shardings))
    sharded_masks = []
    for i in range(steps):
      sharded, sharded_state, updates = sharded_step(sharded, sharded_state, jnp.float64(i))
      sharded_masks.append(jax.tree.map(lambda u: np.asarray(u == 0), updates))
  for name, leaf in sharded.items():
    assert leaf.sharding.is_equivalent_to(shardings[name], leaf.ndim), (name, leaf.sharding)

  local = jax.device_put(params, one)
  local_state = jax.jit(tx.init)(local)
  local_step = jax.jit(_step(tx))
  frozen = 0
  for i in range(steps):
    local, local_state, updates = local_step(local, local_state, jnp.float64(i))
    for name, u in updates.items():
      mask = np.asarray(u == 0)
      np.testing.assert_array_equal(sharded_masks[i][name], mask, err_msg=f"mask {name} step {i}")
      frozen += int(mask.sum())
  for name in params:
    np.testing.assert_allclose(np.asarray(sharded[name]), np.asarray(local[name]), rtol=1e-12,
                               atol=0, err_msg=name)
  assert frozen > 0
  print(f"{axis_type}: {frozen} frozen weight-updates; "
        "masks and weights equal the unsharded run")


def case_stress():
  import jax
  import jax.numpy as jnp

  _, params, shardings, state_shardings, tx = _sharded_setup("Auto", 2, jnp.float32)
  sharded = jax.device_put(params, shardings)
  state = jax.jit(tx.init, out_shardings=state_shardings)(sharded)
  step = jax.jit(_step(tx), donate_argnums=(0, 1),
                 out_shardings=(shardings, state_shardings, shardings))
  for i in range(STRESS_STEPS):
    sharded, state, _ = step(sharded, state, jnp.float32(i))
  jax.block_until_ready(sharded)
  print(f"{STRESS_STEPS} steps without a hang")


def case_equal_Auto():
  _equal_case("Auto")


def case_equal_Explicit():
  _equal_case("Explicit")


if __name__ == "__main__":
  sys.path.insert(0, str(ROOT))
  import jax

  assert jax.device_count() == DEVICES, "set XLA_FLAGS before running this file"
  for name in sys.argv[1:]:
    globals()[f"case_{name}"]()
