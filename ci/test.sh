#!/usr/bin/env bash
# The README's test command: set up, build, run the whole test suite under ctest (GoogleTest and the
# ci/ tools' Python tests), then the smoke suite and its statistics gate against the committed
# baseline (ci/smoke.sh: statistics must be bit-identical; times are reported, not gated).
# TSTAR_TORCH=pypi (ci/setup.sh) tests the PyPI-libtorch build instead, without the smoke gate: its
# committed baseline holds Debian libtorch's bits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
default_build_dir=build
[[ ${TSTAR_TORCH:-debian} == pypi ]] && default_build_dir=build-pypi
build_dir=${TSTAR_BUILD_DIR:-$default_build_dir}
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" --timeout 900
if [[ ${TSTAR_TORCH:-debian} == pypi ]]; then
  echo "ci/test.sh: no smoke gate for TSTAR_TORCH=pypi (the baseline is Debian libtorch's bits)"
  exit 0
fi
bash ci/smoke.sh
