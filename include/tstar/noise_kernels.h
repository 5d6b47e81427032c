// Single-threaded building blocks of the noise engine (noise_cpu_fast.cpp): unit-noise generation
// of a stretch of a tensor's stream, and the generate-scale-add pass over a stretch of weights.
// Each has an AVX-512 path, an AVX2 path (chosen at run time) and a portable path, all computing the
// same values with the same operations in the same order, so results do not depend on the machine.
#pragma once

#include <cstdint>

#include "tstar/philox.h"

namespace tstar::noise_kernels {

// The kernel paths, in order of preference from last to first.
enum class KernelPath { kPortable, kAvx2, kAvx512 };

// True when this CPU runs `path`: kAvx2 needs avx2 + fma, kAvx512 those and avx512f + avx512dq +
// avx512bw.
bool cpu_runs(KernelPath path);

// The kernel path generate() and apply_bf16() take: the best this CPU runs, capped by the
// environment variable below (portable|avx2|avx512; read once per process), so that tests and the
// reference compute profile can force a lower path. Every path gives the same values.
inline constexpr const char* kIsaVariable = "TSTAR_CPU_ISA";
KernelPath selected_path();
const char* path_name(KernelPath path);

// Unit noise of elements [first, first + count) of the stream with this cuRAND seed (philox.h).
// `first` must be a multiple of 4. generate() takes selected_path(); generate_with() forces a path
// (tests and benchmarks comparing paths; the CPU must run it, see cpu_runs). The AVX-512 path
// computes uniform and laplace noise with the AVX2 kernels.
void generate(philox::Kind kind, uint64_t seed, uint64_t first, int64_t count, float* out);
void generate_with(KernelPath path, philox::Kind kind, uint64_t seed, uint64_t first, int64_t count,
                   float* out);

// What one pass changed: elements whose value differs from the clean one, and the sum of squared
// realized perturbations (rounded - clean, in float, squared in double; summed in 16 lanes, lane
// i % 16, then the lanes in order, so every path gives the same sum).
struct ApplyStats {
  int64_t changed = 0;
  double sum_sq = 0.0;
};

// live[i] = round_to_dtype(clean[i] + delta[i]) with delta[i] = mult * z[i] (additive) or
// (mult * clean[i]) * z[i] (multiplicative); float arithmetic, round to nearest even.
// apply_bf16() takes selected_path(), apply_bf16_with() forces a path as generate_with() does; f32
// and f16 have the portable path only.
enum class Mode { kAdditive, kMultiplicative };
ApplyStats apply_bf16(const uint16_t* clean, uint16_t* live, const float* z, int64_t count,
                      float mult, Mode mode);
ApplyStats apply_bf16_with(KernelPath path, const uint16_t* clean, uint16_t* live, const float* z, int64_t count,
                           float mult, Mode mode);
ApplyStats apply_f32(const float* clean, float* live, const float* z, int64_t count, float mult,
                     Mode mode);
ApplyStats apply_f16(const uint16_t* clean, uint16_t* live, const float* z, int64_t count, float mult,
                     Mode mode);

// bfloat16 <-> float as c10::BFloat16 does it (round to nearest even; NaN -> 0x7FC0).
TSTAR_HD float bf16_to_float(uint16_t b) { return philox::bits_float(static_cast<uint32_t>(b) << 16); }
TSTAR_HD uint16_t float_to_bf16(float f) {
  if (f != f) return 0x7FC0;
  uint32_t u = philox::float_bits(f);
  return static_cast<uint16_t>((u + (((u >> 16) & 1u) + 0x7FFFu)) >> 16);
}

}  // namespace tstar::noise_kernels
