#!/usr/bin/env bash
# Builds noise_cuda_check with nvcc alone (no CMake, no libtorch) and runs it: one command for a
# machine with a GPU. Prints one PASS/FAIL line per check and a final "noise_cuda_check: PASS|FAIL";
# exits 0 on PASS, 1 on a mismatch, 2 when no GPU is visible.
#   NVCC=path/to/nvcc  CUDA_ARCH=sm_90 (default)  OUT_DIR=/tmp (where the binary goes)
set -euo pipefail
cd "$(dirname "$0")/../.."
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
binary=${OUT_DIR:-/tmp}/noise_cuda_check
"$nvcc" -O3 -std=c++17 -arch="${CUDA_ARCH:-sm_90}" -fmad=false -Isrc -Iinclude \
  tests/cuda/noise_cuda_check.cu src/noise_cuda.cu -lcurand -o "$binary"
"$binary"
