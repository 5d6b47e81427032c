#!/usr/bin/env bash
# Builds the libFuzzer target for the safetensors header parser with clang (ASan + UBSan) and runs
# it for a bounded time on a seed corpus generated here.
#   ci/fuzz.sh [seconds]          default 60; the build tree is build-fuzz/ (override: TSTAR_FUZZ_BUILD_DIR)
# Exit status is non-zero when the fuzzer finds a crash; the reproducer lands in build-fuzz/fuzz-artifacts/.
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${TSTAR_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${TSTAR_JOBS:-2}

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTSTAR_BUILD_FUZZERS=ON -DTSTAR_BUILD_TESTS=OFF -DTSTAR_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
ninja -C "$build" -j"$jobs" fuzz_safetensors_header

# Seeds: a few valid files and near misses, written byte by byte (no binary files in git).
seeds=$build/fuzz-seeds
corpus=$build/fuzz-corpus
artifacts=$build/fuzz-artifacts
mkdir -p "$seeds" "$corpus" "$artifacts"

le64() {  # 8-byte little-endian encoding of $1
  local value=$1 i
  for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((value >> (8 * i)) & 255)))"; done
}
seed() {  # seed NAME HEADER DATA_BYTES
  { le64 "${#2}"; printf '%s' "$2"; head -c "$3" /dev/zero; } >"$seeds/$1"
}
seed empty '{}' 0
seed padded '{}      ' 0
seed one_f32 '{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}' 16
seed mixed '{"__metadata__":{"format":"pt"},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]},"c":{"dtype":"F16","shape":[0],"data_offsets":[14,14]}}' 14
seed scalar_i32 '{"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}' 4
seed overlap '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
seed bad_dtype '{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}' 8
seed short_data '{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}' 8

"$build/fuzz/fuzz_safetensors_header" -max_total_time="$seconds" -print_final_stats=1 \
  -dict="$root/fuzz/safetensors_header.dict" -artifact_prefix="$artifacts/" "$corpus" "$seeds"
