#!/usr/bin/env bash
# Makes results/baseline/cpu-spread.json: how far the native compute profile's statistics move from
# the reference profile's (ci/spread; README "Reproducibility"). Pairs, each native vs reference:
#   1. this machine, the smoke suite (ci/smoke.sh's arguments);
#   2. this machine, the main job's suite (ci/main.sh's families, default settings);
#   3. an Intel Xeon with AVX-512/AMX (bf16 through oneDNN/AMX): the smoke baseline committed at
#      5b0bdbc, recorded there before the profiles existed (= native), against the reference
#      baseline committed now. Skipped when git history lacks it.
# More machines: run `ci/make_cpu_spread.sh --pair NATIVE_RUN REFERENCE_RUN` there and commit;
# extra --pair arguments are passed on to ci/spread.
#
# Assumes a build in ${TSTAR_BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${TSTAR_BUILD_DIR:-build}
python=${TSTAR_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

smoke=(--seeds 2 --scales 0,0.005,0.02 --detail-scales 0.02
       "--benchmark_filter=^(WeightNoise|Layer|Evolution|TempSweep|Synthetic/V:2000/)" --benchmark_min_time=0.001)
main=("--benchmark_filter=^(WeightNoise|Layer|Evolution|TempSweep)/" --benchmark_min_time=0.001)
run() {  # run NAME PROFILE ARGS...: one bench run into $work/NAME
  local name=$1 profile=$2
  shift 2
  echo "ci/make_cpu_spread.sh: $name" >&2
  "$build_dir/bench/bench" --compute "$profile" --results "$work/$name" "$@" > "$work/$name.log" 2>&1
  find "$work/$name" -mindepth 1 -maxdepth 1 -type d | head -n 1
}
pairs=(--pair "$(run smoke-native native "${smoke[@]}")" "$(run smoke-reference reference "${smoke[@]}")"
       --pair "$(run main-native native "${main[@]}")" "$(run main-reference reference "${main[@]}")")

intel=5b0bdbc  # the last commit whose smoke baseline was recorded on the Intel Xeon (AVX-512, AMX)
if git cat-file -e "$intel:results/baseline/embedded-smoke/benchmark.json" 2>/dev/null; then
  mkdir -p "$work/intel-amx-native"
  for f in benchmark.json results.json; do
    git show "$intel:results/baseline/embedded-smoke/$f" > "$work/intel-amx-native/$f"
  done
  pairs+=(--pair "$work/intel-amx-native" results/baseline/embedded-smoke)
fi
"$python" ci/spread "${pairs[@]}" "$@" --out results/baseline/cpu-spread.json
