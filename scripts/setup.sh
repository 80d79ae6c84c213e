#!/usr/bin/env bash
# Sets up ./.venv for one purpose, from scratch if needed. Idempotent.
#   bash scripts/setup.sh test    # the library, its tests, examples and benchmark code
#   bash scripts/setup.sh bench   # the library and the benchmark suite
# Both also install two Debian data packages (root and apt-get needed; without root the
# script names the command and stops), so nothing is downloaded at run time:
#   dataset-fashion-mnist  Fashion-MNIST idx files under /usr/share/datasets/fashion-mnist,
#                          read by the benchmark's AEF and ICF tasks
#   fortunes               text under /usr/share/games/fortunes, read by the benchmark's
#                          language-model task
# The library needs neither: `pip install .` installs it alone, and its tests that read
# these files skip when they are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:?usage: bash scripts/setup.sh test|bench}"
case "$purpose" in
  test) extras="test,bench,examples,cluster" ;;
  bench) extras="bench" ;;
  *) echo "unknown purpose '$purpose' (test or bench)" >&2; exit 2 ;;
esac

# Debian package, a file it installs.
data=(
  "dataset-fashion-mnist /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
  "fortunes /usr/share/games/fortunes/computers"
)
missing=()
for entry in "${data[@]}"; do
  read -r package file <<<"$entry"
  [ -f "$file" ] || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing data packages: run 'sudo apt-get install -y ${missing[*]}'" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# torch==2.13.0 (pinned in the extras) is the CPU build; any other version pulls gigabytes.
.venv/bin/pip install -q --disable-pip-version-check -e ".[$extras]"
