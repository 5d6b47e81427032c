#!/usr/bin/env bash
# Makes results/baseline/cpu-spread.json: how far the native compute profile's statistics move from
# the reference profile's (ci/spread; README "Reproducibility"). Pairs, each native vs reference:
#   1. this machine, the smoke suite (ci/smoke.sh's arguments);
#   2. this machine, the main job's suite (ci/main.sh's families, default settings).
# More machines: extra arguments go to ci/spread, so on a machine with saved runs of another CPU,
# `ci/make_cpu_spread.sh --pair NATIVE_RUN REFERENCE_RUN` adds them (runs of the same tstar
# statistics: the Intel AVX-512/AMX smoke baseline of 5b0bdbc predates the pooled predictors, exact
# best T and fp32 logits, so it measures other statistics and is no longer paired).
#
# Assumes a build in ${TSTAR_BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${TSTAR_BUILD_DIR:-build}
python=${TSTAR_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

families=$("$build_dir/bench/bench" --list-families | paste -sd'|')
smoke=(--seeds 2 --scales 0,0.005,0.02 --detail-scales 0.02
       "--benchmark_filter=^($families|Synthetic/V:2000)/" --benchmark_min_time=0.001)
main=("--benchmark_filter=^($families)/" --benchmark_min_time=0.001)
run() {  # run NAME PROFILE ARGS...: one bench run into $work/NAME
  local name=$1 profile=$2
  shift 2
  echo "ci/make_cpu_spread.sh: $name" >&2
  "$build_dir/bench/bench" --compute "$profile" --results "$work/$name" "$@" > "$work/$name.log" 2>&1
  find "$work/$name" -mindepth 1 -maxdepth 1 -type d | head -n 1
}
pairs=(--pair "$(run smoke-native native "${smoke[@]}")" "$(run smoke-reference reference "${smoke[@]}")"
       --pair "$(run main-native native "${main[@]}")" "$(run main-reference reference "${main[@]}")")

"$python" ci/spread "${pairs[@]}" "$@" --out results/baseline/cpu-spread.json
