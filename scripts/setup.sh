#!/usr/bin/env bash
# Sets up ./.venv for one purpose, from scratch if needed. Idempotent.
#   bash scripts/setup.sh test    # the library, its tests, examples and benchmark code
#   bash scripts/setup.sh bench   # the library and the benchmark suite
# Both also install the Fashion-MNIST idx files from Debian's `dataset-fashion-mnist`
# package (needs root and apt-get; /usr/share/datasets/fashion-mnist), which the
# benchmark's AEF and ICF tasks read. Nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:?usage: bash scripts/setup.sh test|bench}"
case "$purpose" in
  test) extras="test,bench,examples,cluster" ;;
  bench) extras="bench" ;;
  *) echo "unknown purpose '$purpose' (test or bench)" >&2; exit 2 ;;
esac

fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$fmnist" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "Fashion-MNIST is missing: run 'sudo apt-get install -y dataset-fashion-mnist'" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# torch==2.13.0 (pinned in the extras) is the CPU build; any other version pulls gigabytes.
.venv/bin/pip install -q --disable-pip-version-check -e ".[$extras]"
