#!/usr/bin/env bash
# Installs (idempotently) the Debian packages tstar builds with, then configures and builds it in
# Release. Safe to run repeatedly; apt and pip are only touched when something is missing.
#
# TSTAR_TORCH picks the libtorch:
#   debian (default)  Debian's libtorch 1.13 (CPU only), build dir ./build. What CI uses.
#   pypi              the PyPI torch wheel's libtorch 2.x (with CUDA on Linux x86-64), build dir
#                     ./build-pypi: the build for GPUs (the noise engine's CUDA kernel, --device cuda).
#                     Its torch comes from TSTAR_TORCH_PYTHON (an interpreter that has torch, e.g. a
#                     GPU machine's), else from a venv in ./.venv-torch, pip-installed here (setup
#                     is the only step that downloads; TSTAR_TORCH_SPEC, default "torch", pins it).
# TSTAR_BUILD_DIR overrides the build dir, TSTAR_CMAKE_ARGS adds CMake arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_source=${TSTAR_TORCH:-debian}
case "$torch_source" in
  debian|pypi) ;;
  *) echo "ci/setup.sh: TSTAR_TORCH='$torch_source' (expected debian or pypi)" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake ninja-build pkg-config git ccache
  libtorch-dev            # libtorch 1.13 (CPU); another libtorch can be given via CMAKE_PREFIX_PATH
  libdnnl-dev             # headers of the oneDNN libtorch 1.13 links: bf16 products call it directly
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
[[ $torch_source == pypi && -z ${TSTAR_TORCH_PYTHON:-} ]] && packages+=(python3-venv python3-pip)
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

torch_args=()
if [[ $torch_source == pypi ]]; then
  python=${TSTAR_TORCH_PYTHON:-}
  if [[ -z $python ]]; then
    python=.venv-torch/bin/python
    [[ -x $python ]] || python3 -m venv .venv-torch
    if ! "$python" -c 'import torch' 2>/dev/null; then
      echo "ci/setup.sh: pip-installing ${TSTAR_TORCH_SPEC:-torch} into .venv-torch"
      "$python" -m pip install --quiet "${TSTAR_TORCH_SPEC:-torch}"
    fi
  fi
  # The torch root, not its share/cmake: TorchConfig would otherwise find /usr/lib's libtorch first.
  torch_root=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  echo "ci/setup.sh: libtorch of $("$python" -c 'import torch; print(torch.__version__)') at $torch_root"
  torch_args=(-DCMAKE_PREFIX_PATH="$torch_root" -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}")
fi

default_build_dir=build
[[ $torch_source == pypi ]] && default_build_dir=build-pypi
build_dir=${TSTAR_BUILD_DIR:-$default_build_dir}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCUDAToolkit_ROOT="$cuda_root" "${launcher[@]}" \
  "${torch_args[@]}" ${TSTAR_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$(nproc)"
