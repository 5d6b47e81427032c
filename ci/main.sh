#!/usr/bin/env bash
# The README's main command: set up, build, and run tstar's main job on the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
build_dir=${TSTAR_BUILD_DIR:-build}
"$build_dir/bench/bench" --presets=tiny "$@"
