// Compute profiles: which CPU kernels produce the numbers.
//
// libtorch, OpenBLAS and oneDNN each pick their kernels from the CPU they run on, so the same seed
// gives slightly different statistics on different machines (bf16 matmul through oneDNN's
// AVX-512-BF16/AMX kernels on one CPU, through libtorch's own loops on another; a different
// OpenBLAS kernel set; different vector widths in reductions). Two profiles:
//
//   reference  every such choice is pinned to one path that any x86-64-v3 CPU (AVX2 + FMA) runs
//              identically: libtorch's vectorised kernels at AVX2, oneDNN off (bf16 matrix products
//              through fp32 BLAS, below), OpenBLAS's Haswell kernels, one compute thread, tstar's
//              own kernels at most AVX2. Same seed and inputs -> the same bits on every such CPU.
//   native     the fastest path this machine has; bit-identical on the same machine only.
//
// Some of these knobs are read by the libraries when they are loaded (OpenBLAS's core type,
// OpenMP's thread count): the programs' launchers pin them before libtorch loads, and a program
// started otherwise re-executes itself (compute_environment.h).
#pragma once

#include <nlohmann/json.hpp>

#include "tstar/compute_environment.h"

#include <string>

namespace tstar {

// Applies the in-process knobs (oneDNN use, thread count) and checks that every pinned knob took
// effect, throwing tstar::Error naming the knob that did not (e.g. a CPU without AVX2, or a
// process started without reexec_with_pinned_environment). `threads` <= 0 means all cores (native
// only; the reference profile computes on one thread). Returns what was chosen, for provenance.
nlohmann::json apply_compute_profile(ComputeProfile profile, int threads = 0);

// The profile in effect now: reference when every pinned knob holds (environment and in-process
// settings), else native. Recorded in every result, so a run says what it actually used.
ComputeProfile active_compute_profile();

// How the model's bf16 matrix products run:
//   onednn     libtorch's bf16 kernels, which go to oneDNN (native profile, oneDNN enabled, a CPU
//              with AVX-512 BW/VL/DQ; AVX-512-BF16/AMX kernels where the CPU has them); products of
//              at most 4 rows (a decode step) through tstar's bf16 GEMV kernel instead (fp32
//              accumulation, one rounding; provenance "bf16_gemv"), which streams the weights twice
//              as fast as oneDNN 2.6 on one row; larger products call oneDNN's matmul directly where
//              this build has its headers and it runs a bf16 brgemm kernel (src/onednn_matmul.h:
//              torch::linear's bits, faster; provenance "bf16_gemm"); the native profile on a CPU
//              without AVX-512 takes fp32_gemm below, with the same GEMV (AVX2) for decode-sized products;
//   fp32_gemm  both operands widened to fp32, fp32 BLAS, the result rounded to bf16 once: what HF's
//              bf16 matmul computes (fp32 accumulation, one rounding) up to summation order, through
//              BLAS. The reference profile, and any CPU where oneDNN's bf16 path is not taken
//              (libtorch's own bf16 loops run at ~1.4 GFLOP/s, against ~60 in fp32 BLAS);
//   libtorch   libtorch's bf16 kernels without oneDNN: only when forced, for comparison.
// $TSTAR_BF16_MATMUL (fp32_gemm|onednn|libtorch) forces one; onednn is refused where oneDNN's bf16
// path is not available.
enum class Bf16Matmul { kOneDnn, kFp32Gemm, kLibtorch };
// Whether kernels may be chosen for speed over a pinned path: false under the reference profile.
// Read per matrix product, so it asks the cheapest witness: oneDNN is off exactly there.
bool native_kernel_choices();
Bf16Matmul bf16_matmul_path();  // from the state now (oneDNN enabled, CPU flags, the variable)
const char* bf16_matmul_name(Bf16Matmul path);

// Threads one of tstar's own loops (at::parallel_for in this library: noise, restore, moments, the
// bf16 GEMV) runs on now. It is at::get_num_threads() only where the library was compiled with
// OpenMP, whose pragma does ATen's work sharing; provenance records it beside "threads".
int parallel_loop_threads();

// The processor: model name, the ISA features that decide kernel paths, and the paths chosen now
// (libtorch's CPU capability, oneDNN on/off, OpenBLAS core, tstar's noise kernels, threads).
nlohmann::json machine_provenance();

}  // namespace tstar
