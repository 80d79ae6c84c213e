"""CoRe with freezing on two hosts: 2 processes x 4 CPU devices on localhost.

The weights are sharded over all 8 devices of both processes, so every count
of the selection (eq. 5) is an all-reduce across the processes (gloo). After
12 updates with freezing active, the weights gathered on every process must
equal a one-device run. Both processes run under a timeout: a hang fails the
test. This is the recipe for multi-host training::

  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts only
  jax.distributed.initialize(coordinator_address="HOST:PORT", num_processes=N, process_id=i)
  mesh = jax.make_mesh((jax.device_count(),), ("model",))
  params = jax.make_array_from_callback(shape, NamedSharding(mesh, spec), lambda idx: full[idx])
"""

from __future__ import annotations

import os
import pathlib
import socket
import sys

PROCESSES = 2
LOCAL_DEVICES = 4
TIMEOUT_S = 180
STEPS = 12
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_train_like_one_device():
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={LOCAL_DEVICES}",
             JAX_PLATFORMS="cpu")
  address = f"127.0.0.1:{_free_port()}"
  from tests import helpers  # not at the top: this file also runs as the processes' script

  results = helpers.run_concurrently(
      [[sys.executable, __file__, address, str(i)] for i in range(PROCESSES)], cwd=ROOT, env=env,
      timeout_s=TIMEOUT_S, what=f"the {PROCESSES} processes")
  for i, (rc, out, err) in enumerate(results):
    assert rc == 0, f"process {i} failed:\n{out}\n{err[-6000:]}"
    assert "equal to one device" in out, out
  print(results[0][1])


def _problem():
  import jax
  import jax.numpy as jnp
  from jax.sharding import PartitionSpec as P
  import numpy as np

  import core_optax

  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(16, 256)), "v": rng.normal(size=(2048,)),
            "b": rng.normal(size=(64,))}
  specs = {"w": P(None, "model"), "v": P("model"), "b": P()}
  tx = core_optax.core(1e-3, score_history=3, frozen_fraction={"wb": 0.1, "v": 0.2},
                       groups={"w": "wb", "v": "v", "b": "wb"})

  def step(params, state, i):
    grads = jax.tree.map(lambda p: jnp.sin(7 * p + i) * (1 + jnp.cos(3 * p * i)), params)
    updates, state = tx.update(grads, state, params)
    return jax.tree.map(jnp.add, params, updates), state, updates

  return params, specs, tx, step


def _main(address: str, process_id: int) -> None:
  import jax

  jax.config.update("jax_enable_x64", True)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=address, num_processes=PROCESSES,
                             process_id=process_id, initialization_timeout=60)
  from jax.experimental import multihost_utils
  import jax.numpy as jnp
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P
  import numpy as np
  import optax

  assert jax.device_count() == PROCESSES * LOCAL_DEVICES and jax.process_count() == PROCESSES
  params, specs, tx, step = _problem()
  mesh = jax.make_mesh((jax.device_count(),), ("model",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  shardings = {name: NamedSharding(mesh, spec) for name, spec in specs.items()}
  sharded = {name: jax.make_array_from_callback(a.shape, shardings[name], lambda idx, a=a: a[idx])
             for name, a in params.items()}
  state_shardings = optax.tree_map_params(
      tx, lambda _, sharding: sharding, jax.eval_shape(tx.init, params), shardings,
      transform_non_params=lambda _: NamedSharding(mesh, P()))
  state = jax.jit(tx.init, out_shardings=state_shardings)(sharded)
  sharded_step = jax.jit(step, out_shardings=(shardings, state_shardings, shardings))
  frozen = 0
  for i in range(STEPS):
    sharded, state, updates = sharded_step(sharded, state, jnp.float64(i))
    frozen += sum(int(jnp.sum(u == 0)) for u in jax.tree.leaves(updates))
  gathered = multihost_utils.process_allgather(sharded, tiled=True)

  one = jax.local_devices()[0]
  local = jax.device_put(params, one)
  local_state = jax.jit(tx.init)(local)
  for i in range(STEPS):
    local, local_state, _ = jax.jit(step)(local, local_state, jnp.float64(i))
  for name in params:
    np.testing.assert_allclose(gathered[name], np.asarray(local[name]), rtol=1e-12, atol=0,
                               err_msg=name)
  assert frozen > 0
  print(f"process {process_id}: {frozen} frozen weight-updates in {STEPS} updates on "
        f"{jax.device_count()} devices; weights equal to one device")
  jax.distributed.shutdown()


if __name__ == "__main__":
  sys.path.insert(0, str(ROOT))
  _main(sys.argv[1], int(sys.argv[2]))
