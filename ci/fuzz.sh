#!/usr/bin/env bash
# Builds the libFuzzer targets for the safetensors header parser with clang (ASan + UBSan) and runs
# each for a bounded time on a seed corpus generated here.
#   ci/fuzz.sh [seconds-per-target]   default 60; build tree build-fuzz/ (override: TSTAR_FUZZ_BUILD_DIR)
# Exits non-zero when a fuzzer finds a crash; the reproducer lands in build-fuzz/fuzz-artifacts/.
# Reproduce one: build-fuzz/fuzz/<target> build-fuzz/fuzz-artifacts/<crash-file>
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${TSTAR_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${TSTAR_JOBS:-2}
targets=(fuzz_safetensors_header fuzz_safetensors_json)

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTSTAR_BUILD_FUZZERS=ON -DTSTAR_BUILD_TESTS=OFF -DTSTAR_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
ninja -C "$build" -j"$jobs" "${targets[@]}"

# Seeds, written byte by byte (no binary files in git): valid headers and near misses, as whole
# images for fuzz_safetensors_header and as bare JSON for fuzz_safetensors_json.
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"
for target in "${targets[@]}"; do mkdir -p "$build/fuzz-seeds/$target" "$build/fuzz-corpus/$target"; done

le64() {  # 8-byte little-endian encoding of $1
  local value=$1 i
  for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((value >> (8 * i)) & 255)))"; done
}
seed() {  # seed NAME HEADER DATA_BYTES
  { le64 "${#2}"; printf '%s' "$2"; head -c "$3" /dev/zero; } >"$build/fuzz-seeds/fuzz_safetensors_header/$1"
  printf '%s' "$2" >"$build/fuzz-seeds/fuzz_safetensors_json/$1"
}
seed empty '{}' 0
seed padded '{}      ' 0
seed one_f32 '{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}' 16
seed mixed '{"__metadata__":{"format":"pt"},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]},"c":{"dtype":"F16","shape":[0],"data_offsets":[14,14]}}' 14
seed scalar_i32 '{"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}' 4
seed overlap '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
seed bad_dtype '{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}' 8
seed short_data '{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}' 8

for target in "${targets[@]}"; do
  echo "== $target: ${seconds}s"
  "$build/fuzz/$target" -max_total_time="$seconds" -print_final_stats=1 \
    -dict="$root/fuzz/safetensors_header.dict" -artifact_prefix="$artifacts/$target-" \
    "$build/fuzz-corpus/$target" "$build/fuzz-seeds/$target"
done
