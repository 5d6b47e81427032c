#!/usr/bin/env bash
# The README's main command: set up, build, run tstar's main job on the embedded default model (the
# notebook's four experiments), then draw its figures and summary with ci/report.
# Extra arguments go to bench (e.g. --seeds 16, --model DIR, --benchmark_filter=...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
default_build_dir=build
[[ ${TSTAR_TORCH:-debian} == pypi ]] && default_build_dir=build-pypi
build_dir=${TSTAR_BUILD_DIR:-$default_build_dir}
python=${TSTAR_PYTHON:-/usr/bin/python3}  # Debian's, which has python3-matplotlib (as ci/smoke.sh)
mkdir -p results/runs
run_root=$(mktemp -d results/runs/main.XXXXXX)
# Every experiment family the bench binary registers (bench --list-families), none of the throughput ones.
families=$("$build_dir/bench/bench" --list-families | paste -sd'|')
"$build_dir/bench/bench" --results "$run_root" --benchmark_filter="^($families)/" "$@"
run_dir=$(find "$run_root" -mindepth 1 -maxdepth 1 -type d | head -n 1)
if [[ -n "$run_dir" && -f "$run_dir/results.json" ]]; then
  "$python" ci/report "$run_dir"
else
  echo "ci/main.sh: no results.json under $run_root (nothing to report)"
fi
