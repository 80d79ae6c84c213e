#!/usr/bin/env bash
# Runs the tests at pyproject's lower bounds, in two throwaway venvs under ${TMPDIR:-/tmp}:
#   1. jax/jaxlib 0.9.0, optax 0.2.5 (and flax 0.12.6, the last flax for that jax): all tests
#      but the examples';
#   2. jax/jaxlib 0.10.0, optax 0.2.5, flax 0.12.7 (the examples' bound): the whole suite.
# Needs what scripts/setup.sh test needs (Fashion-MNIST installed). About 30 minutes (two
# whole suites).
set -euo pipefail
cd "$(dirname "$0")/.."
# The test, bench and cluster extras of pyproject.toml, but flax, pinned per run below.
mapfile -t deps < <(python3 -c '
import tomllib
extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]
print("\n".join(sorted({r for e in ("test", "bench", "cluster") for r in extras[e]
                         if not r.startswith("flax")})))')

run() {  # run NAME "CONSTRAINTS" PYTEST_ARGS...
  local venv="${TMPDIR:-/tmp}/core_optax_$1" constraints=$2
  shift 2
  rm -rf "$venv" && python3 -m venv "$venv"
  printf '%s\n' $constraints > "$venv/constraints.txt"
  "$venv/bin/pip" install -q --disable-pip-version-check -c "$venv/constraints.txt" -e . flax \
      "${deps[@]}"
  "$venv/bin/python" -c "import jax, optax, flax; print('jax', jax.__version__, \
'optax', optax.__version__, 'flax', flax.__version__)"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
}

run jax0.9 "jax==0.9.0 jaxlib==0.9.0 optax==0.2.5 flax==0.12.6" --ignore=tests/test_examples.py
run jax0.10 "jax==0.10.0 jaxlib==0.10.0 optax==0.2.5 flax==0.12.7"
