#!/usr/bin/env bash
# Installs (idempotently) the Debian packages tstar builds with, then configures and builds it in
# Release under ./build. Safe to run repeatedly; apt is only touched when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git ccache
  libtorch-dev            # libtorch 1.13 (CPU); another libtorch can be given via CMAKE_PREFIX_PATH
  libopenblas0-openmp     # fp32 matmul is ~40x slower with Debian's default reference BLAS
  libbenchmark-dev libgtest-dev googletest
  nlohmann-json3-dev libfmt-dev libpcre2-dev libutf8proc-dev
  libssl-dev              # libcrypto's SHA-256 for the weight files' provenance digests
  python3                 # ci/ scripts (report, compare, export, dashboard)
  python3-matplotlib      # ci/report's figures
  fonts-dejavu-core       # the figures' font
  chromium                # headless screenshot test of ci/dashboard's page
  slurmctld slurmd slurm-client munge   # the Slurm test: a single-node cluster on localhost
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ci/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# cuRAND comes from the machine's CUDA toolkit (Debian main has none).
cuda_root=${CUDA_HOME:-/usr/local/cuda}
if [[ ! -e "$cuda_root/include/curand.h" ]]; then
  echo "ci/setup.sh: no CUDA toolkit at $cuda_root (cuRAND is needed; set CUDA_HOME)" >&2
  exit 1
fi

build_dir=${TSTAR_BUILD_DIR:-build}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCUDAToolkit_ROOT="$cuda_root" "${launcher[@]}" \
  ${TSTAR_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$(nproc)"
