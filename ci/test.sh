#!/usr/bin/env bash
# The README's test command: set up, build, run the whole test suite under ctest (GoogleTest and the
# ci/ tools' Python tests), then the smoke suite and its statistics gate against the committed
# baseline (ci/smoke.sh: statistics must be bit-identical; times are reported, not gated).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
build_dir=${TSTAR_BUILD_DIR:-build}
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" --timeout 900
bash ci/smoke.sh
