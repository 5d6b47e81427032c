#!/usr/bin/env bash
# The whole suite on a GPU machine, as one command, into one log under results/gpu/. Runs on a machine
# with an NVIDIA GPU, PyTorch 2.x with CUDA, transformers and nvcc, and no network: what it lacks
# comes from .gpu-deps/ (made by ci/gpu/prepare.sh on a machine with network, carried along).
#
#   bash ci/gpu/check.sh                  the GPU check (device cuda, the 1.5B preset), ~8 min
#   bash ci/gpu/check.sh --dry-run        the same steps on the CPU at small sizes (device cpu, the
#                                         embedded model, 2 seeds, the tiny preset): checks the script
#   options: --device cpu|cuda  --build-dir DIR (default build-gpu; reused when configured; TSTAR_BUILD_JOBS=N)
#            --no-build (use the build dir as it is)
#            --python PY (the interpreter with torch, default python3)  --model DIR (a real
#            checkpoint for the protocol; default: the preset's random weights)  --budget SECONDS (520)
#
# Steps (each logged with its exit status and time; later steps are skipped when the budget is spent):
#   1. machine: GPU, driver, torch/CUDA/transformers versions, CPU
#   2. dependencies: .gpu-deps/debs unpacked with dpkg -x into .gpu-deps/prefix (never into /)
#   3. configure (libtorch of --python's torch, TSTAR_TORCH=pypi's way) and build
#   4. noise_cuda_check: device cuRAND stream == libcurand host, fused kernel == CPU formula (every
#      dtype, kind, mode, vector and scalar path), fused kernel vs device-to-device copy
#   5. GPU tests: the CUDA engine's noised weights == the CPU engine's (digests), RAII on the device,
#      HF parity on the GPU (fp32 and bf16 goldens), the dispatch tests
#   6. the default protocol (the four experiment families, 8 seeds, bf16) on the 1.5B preset
#   7. throughput: NoiseBandwidth (inject, restore, inject+restore vs copy), Inject/Restore,
#      Forward/Decode in fp32, bf16, fp16
#   8. HF eager tokens/s on the same GPU and dtypes (ci/hf_speed.py) and the ratios
#   9. the notebook's protocol with its own code vs tstar's (ci/notebook_speed.py, 1 seed, bf16)
#  10. the whole ctest suite but the ci/ tools' Python tests (CPU-only tools, tested by CI)
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

device=cuda dry_run=0 build_dir=build-gpu python=python3 model="" budget=520 build=1
while (($#)); do
  case "$1" in
    --dry-run) dry_run=1; device=cpu ;;
    --device) device=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --python) python=$2; shift ;;
    --model) model=$2; shift ;;
    --budget) budget=$2; shift ;;
    --no-build) build=0 ;;
    *) echo "ci/gpu/check.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
  shift
done
[[ $device == cpu || $device == cuda ]] || { echo "ci/gpu/check.sh: --device cpu|cuda, got '$device'" >&2; exit 2; }
[[ $device == cpu ]] && dry_run=1

# Sizes: the issue's on the GPU, small ones for a dry run on the CPU.
if ((dry_run)); then
  preset=tiny seeds=2 min_time=0.05 protocol_model=${model:-} tokenizer_args=() notebook_model_args=()
  ctest_filter=(-R 'Noise(Dispatch|DeviceMath|Cuda)|Parity')  # the whole suite is CI's job on the CPU
else
  preset=deepseek-r1-distill-qwen-1.5b seeds=8 min_time=0.2 protocol_model=${model:-$preset}
  tokenizer_args=(--tokenizer "$root/.gpu-deps/qwen2-tokenizer")
  notebook_model_args=(--make-deepseek-1.5b /tmp/tstar-deepseek-1.5b-random --tokenizer "$root/.gpu-deps/qwen2-tokenizer")
  [[ -n $model ]] && notebook_model_args=(--model "$model")
  ctest_filter=()
fi

settings=(root device dry_run build_dir python model preset seeds min_time protocol_model tokenizer_args
          notebook_model_args ctest_filter work prefix bench)
mkdir -p results/gpu results/runs
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log=results/gpu/check-$stamp-$device.log
work=results/runs/gpu-check-$stamp
mkdir -p "$work"
exec > >(tee "$log") 2>&1
deadline=$((SECONDS + budget))
summary=()

# step NAME COMMAND...: runs COMMAND with what is left of the budget, logs its status and time.
step() {
  local name=$1 left=$((deadline - SECONDS)) start=$SECONDS status
  shift
  if ((left < 15)); then
    echo "=== $name: SKIPPED (budget of $budget s spent)"
    summary+=("$name: skipped, out of time")
    return 1
  fi
  echo "=== $name ($(date -u +%T), $left s left)"
  # timeout runs programs, not functions: the step runs in a bash that gets this script's settings
  # and functions, in timeout's own process group (killed whole when the budget ends).
  timeout "$left" bash -c "$(declare -p "${settings[@]}"; declare -f); \"\$@\"" step "$@"
  status=$?
  echo "--- $name: exit $status, $((SECONDS - start)) s"
  summary+=("$name: exit $status, $((SECONDS - start)) s")
  return $status
}

machine() {
  echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown) ($(git status --short 2>/dev/null | wc -l) changed paths)"
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  "$python" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available(), "| transformers", transformers.__version__)'
}

prefix=$root/.gpu-deps/prefix
dependencies() {
  if [[ ! -d .gpu-deps/debs ]]; then
    echo "no .gpu-deps/debs (run ci/gpu/prepare.sh where there is network, carry .gpu-deps): using the system's"
    return 0
  fi
  # The .pc files name the prefix's absolute path: unpack again when the tree has moved.
  if [[ $(cat "$prefix/.unpacked" 2>/dev/null) != "$prefix" ]]; then
    rm -rf "$prefix"
    mkdir -p "$prefix"
    for deb in .gpu-deps/debs/*.deb; do dpkg -x "$deb" "$prefix" || return 1; done
    # pkg-config files name /usr: point them at the prefix (CMake's package files are relocatable).
    sed -i -E "s#^(prefix|exec_prefix|libdir|includedir)=/usr#\\1=$prefix/usr#" \
      "$prefix"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc
    echo "$prefix" >"$prefix/.unpacked"
  fi
  ls .gpu-deps/debs
}

configure_and_build() {
  local torch_root
  torch_root=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') || return 1
  if [[ ! -f $build_dir/build.ninja ]]; then
    local args=(-DCMAKE_PREFIX_PATH="$torch_root;$prefix/usr" -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CUDA_ARCHITECTURES=90)
    [[ -x $prefix/usr/bin/pkgconf ]] && ! command -v pkg-config >/dev/null && args+=(-DPKG_CONFIG_EXECUTABLE="$prefix/usr/bin/pkgconf")
    local cuda_root=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")}
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCUDAToolkit_ROOT="$cuda_root" "${args[@]}" || return 1
  fi
  cmake --build "$build_dir" -j "${TSTAR_BUILD_JOBS:-$(nproc)}"
}

export PKG_CONFIG_PATH=$prefix/usr/lib/x86_64-linux-gnu/pkgconfig:$prefix/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export LD_LIBRARY_PATH=$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
bench=$build_dir/bench/bench

protocol() {
  local families start status
  families=$("$bench" --list-families | paste -sd'|') || return 1
  local model_args=()
  [[ -n $protocol_model ]] && model_args=(--model "$protocol_model")
  ((dry_run)) || [[ -n $model ]] || echo "model: the $preset preset's random weights (no checkpoint here)"
  start=$EPOCHREALTIME
  "$bench" "${model_args[@]}" "${tokenizer_args[@]}" --device "$device" --dtype bf16 --seeds "$seeds" --compute native \
    --results "$work/runs" --benchmark_filter="^($families)/" \
    --benchmark_out="$work/protocol.json" --benchmark_out_format=json >"$work/protocol.txt"
  status=$?
  local wall
  wall=$(python3 -c "print(round($EPOCHREALTIME - $start, 3))")
  tail -n 5 "$work/protocol.txt"
  ((status == 0)) || return $status
  python3 ci/gpu/summarize.py protocol "$work/protocol.json" "$wall"
}

throughput() {
  "$bench" --presets="$preset" --device "$device" --dtype bf16 --compute native \
    --benchmark_filter="^(NoiseBandwidth|Inject|Restore|Forward|Decode)/$preset/" --benchmark_min_time="$min_time" \
    --benchmark_out="$work/throughput.json" --benchmark_out_format=json >"$work/throughput.txt" || return 1
  python3 ci/gpu/summarize.py throughput "$work/throughput.json"
}

hf_eager() {
  "$python" ci/hf_speed.py --compare "$work/throughput.json" --device "$device" --threads 1 \
    --prefill 128 --decode-steps 32 --repeats 3
}

notebook() {
  python3 ci/notebook_speed.py --python "$python" --bench "$bench" --device "$device" --dtype bf16 \
    "${notebook_model_args[@]}"
}

whole_ctest() {
  ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" --timeout 300 -E '^python\.' "${ctest_filter[@]}"
}

echo "ci/gpu/check.sh: device $device, dry run $dry_run, preset $preset, $seeds seeds, log $log"
step "machine" machine
step "dependencies" dependencies
if ((!build)) && [[ -x $bench ]] || step "configure and build" configure_and_build; then
  if [[ $device == cuda ]]; then
    step "noise_cuda_check" "$build_dir/src/noise_cuda_check"
  fi
  step "GPU tests (digests, RAII, parity, dispatch)" "$build_dir/tests/tstar_tests" \
    --gtest_filter='NoiseCuda*:NoiseDispatch*:NoiseDeviceMath*:*Parity*Cuda*'
  step "protocol ($preset, $seeds seeds, bf16)" protocol
  step "throughput ($preset)" throughput && step "HF eager tokens/s and ratios" hf_eager
  step "notebook protocol vs tstar" notebook
  step "ctest" whole_ctest
fi
echo "=== summary ($log)"
printf '  %s\n' "${summary[@]}"
failed=$(printf '%s\n' "${summary[@]}" | grep -cv 'exit 0,')
echo "ci/gpu/check.sh: $([[ $failed == 0 ]] && echo PASS || echo "FAIL ($failed steps not passed)")"
[[ $failed == 0 ]]
