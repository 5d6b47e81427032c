#!/usr/bin/env bash
# The README's test command: set up, build, and run the whole GoogleTest suite under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
build_dir=${TSTAR_BUILD_DIR:-build}
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" --timeout 900
