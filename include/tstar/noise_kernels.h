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

// The kernel path generate(), apply_bf16() and apply_f32() take: the best this CPU runs, capped by the
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
// apply_bf16() and apply_f32() take selected_path(), the _with forms force a path as generate_with()
// does; f16 has the portable path only.
enum class Mode { kAdditive, kMultiplicative };
ApplyStats apply_bf16(const uint16_t* clean, uint16_t* live, const float* z, int64_t count,
                      float mult, Mode mode);
ApplyStats apply_bf16_with(KernelPath path, const uint16_t* clean, uint16_t* live, const float* z, int64_t count,
                           float mult, Mode mode);
ApplyStats apply_f32(const float* clean, float* live, const float* z, int64_t count, float mult,
                     Mode mode);
ApplyStats apply_f32_with(KernelPath path, const float* clean, float* live, const float* z, int64_t count, float mult,
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

// IEEE half <-> float, round to nearest even, overflow to infinity, NaN to the quiet NaN 0x7E00 (sign
// kept): what c10::detail::fp16_ieee_{to,from}_fp32_value compute (apply_f16's conversions; checked
// against them by tests/test_noise_device.cpp), in integer arithmetic so the CUDA kernel computes the
// same bits without c10.
TSTAR_HD float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return philox::bits_float(philox::float_bits(magnitude) | sign);
  }
  if (exponent == 31)  // infinity, or a NaN made quiet (c10 converts by a float multiply, which quiets it)
    return philox::bits_float(sign | 0x7F800000u | (mantissa ? 0x400000u | (mantissa << 13) : 0u));
  return philox::bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}
TSTAR_HD uint16_t float_to_fp16(float f) {
  const uint32_t u = philox::float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t magnitude = u & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;                  // NaN
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;                 // >= 65520: rounds to infinity
  if (magnitude >= 0x38800000u) {                                      // normal half (>= 2^-14)
    const uint32_t rounded = magnitude + 0xFFFu + ((magnitude >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rounded - (112u << 23)) >> 13));
  }
  if (magnitude < 0x33000000u) return sign;                            // below 2^-25: zero
  const uint32_t exponent = magnitude >> 23;                           // 102 .. 112: subnormal half
  const uint32_t significand = (magnitude & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - exponent;                              // to units of 2^-24
  uint32_t result = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (result & 1u))) ++result;
  return static_cast<uint16_t>(sign | result);
}

}  // namespace tstar::noise_kernels
