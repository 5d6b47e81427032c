#!/usr/bin/env bash
# The README's main command: set up, build, and run tstar's main job on the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
build_dir=${TSTAR_BUILD_DIR:-build}
# The notebook's four experiments on the embedded model; extra arguments go to bench.
"$build_dir/bench/bench" --benchmark_filter='^(WeightNoise|Layer|Evolution|TempSweep)/' "$@"
