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
// OpenMP's thread count), so a program pins them by re-executing itself with the pinned
// environment before any library work (reexec_with_pinned_environment, called first in main).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace tstar {

enum class ComputeProfile { kReference, kNative };

ComputeProfile parse_compute_profile(const std::string& name);  // reference|native, else tstar::Error
std::string compute_profile_name(ComputeProfile profile);

// Environment variable that selects the profile when no --compute flag is given.
inline constexpr const char* kComputeProfileVariable = "TSTAR_COMPUTE";

// What a program's --compute and --threads flags ask for.
struct ComputeOptions {
  ComputeProfile profile = ComputeProfile::kReference;
  int threads = 0;  // 0: all cores (native); the reference profile uses one
};

// Removes `--compute NAME` and, when `take_threads`, `--threads N` (also as --flag=value) from argv
// and returns them; without --compute, $TSTAR_COMPUTE, else reference. Throws tstar::Error on a bad
// or missing value. (`tstar train` keeps its own --threads: training sets its thread count itself.)
ComputeOptions take_compute_flags(int& argc, char** argv, bool take_threads = true);

// The --help text of those two flags (both programs print it).
extern const char* const kComputeFlagsHelp;

// The environment a profile requires before libraries load: (variable, value) pairs. Empty for
// native, which leaves the environment (and any override the user set) alone.
std::vector<std::pair<std::string, std::string>> pinned_environment(ComputeProfile profile);

// When the environment differs from pinned_environment(profile), sets it and replaces the process
// with a fresh copy of itself (execv of /proc/self/exe with the same argv). Returns only when the
// environment already matches. Throws tstar::Error when the re-execution fails.
void reexec_with_pinned_environment(ComputeProfile profile, char* const* argv);

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
//              with AVX-512 BW/VL/DQ; AVX-512-BF16/AMX kernels where the CPU has them);
//   fp32_gemm  both operands widened to fp32, fp32 BLAS, the result rounded to bf16 once: what HF's
//              bf16 matmul computes (fp32 accumulation, one rounding) up to summation order, through
//              BLAS. The reference profile, and any CPU where oneDNN's bf16 path is not taken
//              (libtorch's own bf16 loops run at ~1.4 GFLOP/s, against ~60 in fp32 BLAS);
//   libtorch   libtorch's bf16 kernels without oneDNN: only when forced, for comparison.
// $TSTAR_BF16_MATMUL (fp32_gemm|onednn|libtorch) forces one; onednn is refused where oneDNN's bf16
// path is not available.
enum class Bf16Matmul { kOneDnn, kFp32Gemm, kLibtorch };
inline constexpr const char* kBf16MatmulVariable = "TSTAR_BF16_MATMUL";
Bf16Matmul bf16_matmul_path();  // from the state now (oneDNN enabled, CPU flags, the variable)
const char* bf16_matmul_name(Bf16Matmul path);

// The processor: model name, the ISA features that decide kernel paths, and the paths chosen now
// (libtorch's CPU capability, oneDNN on/off, OpenBLAS core, tstar's noise kernels, threads).
nlohmann::json machine_provenance();

}  // namespace tstar
