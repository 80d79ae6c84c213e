"""CoRe on 8 (virtual CPU) devices: data parallelism and sharded parameters.

Each test runs one case of this file in a fresh Python process with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the flag must be set
before jax is imported), under a timeout: a hang in XLA's CPU collectives is a
failure, not a stuck test run. Run one case by hand with::

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/test_multidevice.py pmap
"""

from __future__ import annotations

import pathlib
import sys

DEVICES = 8
TIMEOUT_S = 150
ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_case(name: str, script: str = __file__) -> str:
  """Runs ``case_<name>`` of ``script`` (this file, below) on 8 devices in a subprocess.

  ``script`` runs its case when called as ``python script name``, as this file does.
  Returns the case's stdout.
  """
  from tests import helpers  # not at the top: this file also runs as the cases' script

  return helpers.run_on_devices(script, name, timeout_s=TIMEOUT_S, devices=DEVICES)


def test_pmap_replicas_stay_identical_and_match_one_device_on_the_full_batch():
  assert "replicas identical" in run_case("pmap")


def test_shard_map_data_parallel_matches_one_device_on_the_full_batch():
  assert "matches one device" in run_case("shard_map")


def test_sharded_weights_give_the_state_their_sharding_and_the_unsharded_result():
  """With freezing on: each group's top-k must be taken over all its shards."""
  out = run_case("named_sharding_freezing")
  assert "state sharded like params" in out and "matches unsharded" in out
  assert "frozen counts per group" in out


def test_sharded_weights_with_an_explicit_sharding_mesh():
  """``jax.make_mesh`` makes Explicit axes by default (JAX 0.7 and later)."""
  out = run_case("explicit_mesh")
  assert "state sharded like params" in out and "matches unsharded" in out


def test_freezing_across_shards_with_an_explicit_sharding_mesh():
  out = run_case("explicit_mesh_freezing")
  assert "frozen counts per group" in out and "matches unsharded" in out


# ---------------------------------------------------------------------------------------------
# The cases; they run in the subprocess, with 8 devices.

def _problem(freezing: bool):
  """A two-layer regression and CoRe with two groups (kernels, biases), each spanning two leaves.

  core_optax._search packs the keys of leaves whole on every device into blocks and counts
  sharded leaves in place (their counts all-reduced). Sharded as in _named_sharding_case,
  the kernel group (1536 weights) is sharded only and the bias group (72) mixes a sharded
  leaf (the hidden bias) with a whole one (the output bias); unsharded, both are packed.
  """
  import jax
  import jax.numpy as jnp

  import core_optax

  k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
  params = {
      "hidden": {"kernel": jax.random.normal(k1, (16, 64)) / 4, "bias": jnp.zeros(64)},
      "out": {"kernel": jax.random.normal(k2, (64, 8)) / 8, "bias": jnp.zeros(8)},
  }
  x = jax.random.normal(k3, (64, 16))
  y = jnp.tanh(x @ jax.random.normal(k4, (16, 8)))

  def loss_fn(params, x, y):
    h = jnp.tanh(x @ params["hidden"]["kernel"] + params["hidden"]["bias"])
    return jnp.mean((h @ params["out"]["kernel"] + params["out"]["bias"] - y) ** 2)

  def labels(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key, params)

  if freezing:
    tx = core_optax.core(1e-2, score_history=2, frozen_fraction={"kernel": 0.25, "bias": 0.25},
                         groups=labels)
  else:
    tx = core_optax.core(1e-2)
  return params, x, y, loss_fn, tx, labels


def _single_device_run(params, x, y, loss_fn, tx, steps):
  import jax
  import optax

  @jax.jit
  def step(params, opt_state):
    grads = jax.grad(loss_fn)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, updates

  opt_state = tx.init(params)
  for _ in range(steps):
    params, opt_state, updates = step(params, opt_state)
  return params, opt_state, updates


def _assert_close(actual, expected, what):
  import jax
  import numpy as np

  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-6,
                               err_msg=f"{what}{jax.tree_util.keystr(path)}")


def case_pmap():
  import jax
  import numpy as np
  import optax

  assert jax.device_count() == 8
  params, x, y, loss_fn, tx, _ = _problem(freezing=True)
  steps = 6

  def step(params, opt_state, x, y):
    grads = jax.lax.pmean(jax.grad(loss_fn)(params, x, y), axis_name="batch")
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  p_step = jax.pmap(step, axis_name="batch")
  replicate = lambda tree: jax.tree.map(lambda a: np.broadcast_to(a, (8, *a.shape)), tree)
  shard = lambda a: a.reshape(8, -1, *a.shape[1:])
  p_params = replicate(params)
  p_state = jax.pmap(tx.init)(p_params)
  for _ in range(steps):
    p_params, p_state = p_step(p_params, p_state, shard(x), shard(y))

  for path, leaf in jax.tree_util.tree_leaves_with_path((p_params, p_state)):
    leaf = np.asarray(leaf)
    assert (leaf == leaf[:1]).all(), f"replicas differ at {jax.tree_util.keystr(path)}"
  print("replicas identical (params and optimizer state, bitwise)")
  want_params, want_state, _ = _single_device_run(params, x, y, loss_fn, tx, steps)
  first = lambda tree: jax.tree.map(lambda a: a[0], tree)
  _assert_close(first(p_params), want_params, "params")
  _assert_close(first(p_state), want_state, "state")
  print("matches one device on the full batch")


def case_shard_map():
  import jax
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P
  import optax

  params, x, y, loss_fn, tx, _ = _problem(freezing=True)
  steps = 6
  mesh = jax.make_mesh((8,), ("batch",))

  @jax.jit
  @jax.shard_map(mesh=mesh, in_specs=(P(), P(), P("batch"), P("batch")), out_specs=(P(), P()))
  def step(params, opt_state, x, y):
    # params are replicated (invariant over "batch"), so shard_map's autodiff
    # already sums their per-device gradients: differentiate the global mean loss.
    grads = jax.grad(lambda p: jax.lax.pmean(loss_fn(p, x, y), "batch"))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  replicated = NamedSharding(mesh, P())
  dp_params = jax.device_put(params, replicated)
  opt_state = jax.device_put(tx.init(params), replicated)
  x_sharded, y_sharded = jax.device_put((x, y), NamedSharding(mesh, P("batch")))
  for _ in range(steps):
    dp_params, opt_state = step(dp_params, opt_state, x_sharded, y_sharded)
  want_params, want_state, _ = _single_device_run(params, x, y, loss_fn, tx, steps)
  _assert_close(dp_params, want_params, "params")
  _assert_close(opt_state, want_state, "state")
  print("matches one device on the full batch")


def _named_sharding_case(freezing: bool, axis_type: str):
  import contextlib

  import jax
  import jax.numpy as jnp
  from jax.sharding import AxisType
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P
  import optax

  import core_optax

  params, x, y, loss_fn, tx, labels = _problem(freezing)
  steps = 6
  mesh = jax.make_mesh((8,), ("model",), axis_types=(getattr(AxisType, axis_type),))
  specs = {"hidden": {"kernel": P(None, "model"), "bias": P("model")},
           "out": {"kernel": P("model", None), "bias": P()}}
  shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs)
  sharded = jax.device_put(params, shardings)
  step_loss = loss_fn
  if axis_type == "Explicit":  # the model's matmuls need replicated weights in explicit mode
    step_loss = lambda p, x, y: loss_fn(jax.tree.map(lambda a: jax.reshard(a, P()), p), x, y)
  # Explicit axes need the mesh in context for jit; Auto axes work with or without.
  with jax.set_mesh(mesh) if axis_type == "Explicit" else contextlib.nullcontext():
    opt_state = tx.init(sharded)  # eagerly: zeros_like keeps each leaf's sharding
    # Under jit, say where the state goes: optax.tree_map_params finds the
    # parameter-shaped parts of the state (g, h, s, S) and gives them the params' shardings.
    state_shardings = optax.tree_map_params(
        tx, lambda _, sharding: sharding, jax.eval_shape(tx.init, params), shardings,
        transform_non_params=lambda _: NamedSharding(mesh, P()))
    jit_state = jax.jit(tx.init, out_shardings=state_shardings)(sharded)

    print("optimizer state shardings:")
    for state in (opt_state, jit_state):
      core_state = state[0]
      assert isinstance(core_state, core_optax.ScaleByCoreState)
      for field in ("g", "h", "s", "S"):
        tree = getattr(core_state, field)
        if tree is None:
          continue
        for (path, leaf), want in zip(jax.tree_util.tree_leaves_with_path(tree),
                                      jax.tree.leaves(shardings)):
          if state is opt_state:
            print(f"  {field}{jax.tree_util.keystr(path)}: {leaf.sharding.spec}")
          assert leaf.sharding.is_equivalent_to(want, leaf.ndim), (field, path, leaf.sharding)

    @jax.jit
    def step(params, opt_state):
      grads = jax.grad(step_loss)(params, x, y)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, updates

    for _ in range(steps):
      sharded, opt_state, updates = step(sharded, opt_state)
  for (path, leaf), want in zip(jax.tree_util.tree_leaves_with_path((sharded, opt_state[0].s)),
                                2 * jax.tree.leaves(shardings)):
    assert leaf.sharding.is_equivalent_to(want, leaf.ndim), (path, leaf.sharding)
  print("state sharded like params, also after training")

  if freezing:
    frozen = {"kernel": 0, "bias": 0}
    for label, u in zip(jax.tree.leaves(labels(updates)), jax.tree.leaves(updates)):
      frozen[label] += int(jnp.sum(u == 0))
    expected = {"kernel": int(0.25 * (16 * 64 + 64 * 8)), "bias": int(0.25 * (64 + 8))}
    print(f"frozen counts per group: {frozen} (floor(p * n): {expected})")
    assert frozen == expected

  want_params, want_state, _ = _single_device_run(params, x, y, loss_fn, tx, steps)
  _assert_close(sharded, want_params, "params")
  _assert_close(opt_state, want_state, "state")
  print("matches unsharded")


def case_named_sharding_freezing():
  _named_sharding_case(freezing=True, axis_type="Auto")


def case_explicit_mesh():
  _named_sharding_case(freezing=False, axis_type="Explicit")


def case_explicit_mesh_freezing():
  _named_sharding_case(freezing=True, axis_type="Explicit")


if __name__ == "__main__":
  sys.path.insert(0, str(ROOT))
  import jax

  assert jax.device_count() == DEVICES, "set XLA_FLAGS before running this file"
  globals()[f"case_{sys.argv[1]}"]()
