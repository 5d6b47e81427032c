// stats_kernels.h's loops on three paths. The kernels are written once (stats_kernels_body.inc) over
// an operations type and compiled three times: with __m128d (SSE2, portable), with __m256d under
// target("avx2") and with __m512d under target("avx512f"), selected at run time (no -march flags).
// This file is compiled with -ffp-contract=off (src/CMakeLists.txt): the AVX-512 target allows FMA,
// and a contracted multiply-add would give that path other bits.
#include "tstar/stats_kernels.h"

// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "tstar/error.h"

namespace tstar::stats_kernels {
namespace {

// Adding 1.5 * 2^52 to a double of magnitude < 2^51 rounds it to an integer (to nearest, ties to even),
// which then sits in the low bits of the sum; subtracting it again gives that integer as a double.
constexpr double kRoundMagic = 0x1.8p52;
constexpr int kTableSize = 32;
constexpr uint64_t kTableMask = kTableSize - 1;
constexpr double k32OverLn2 = 0x1.71547652b82fep+5;
// ln2 / 32 = kLn2By32Hi + kLn2By32Lo with kLn2By32Hi of 37 significant bits: n * kLn2By32Hi is exact for
// |n| < 2^16.
constexpr double kLn2By32Hi = 0x1.62e42fefa0000p-6;
constexpr double kLn2By32Lo = 0x1.cf79abc9e3b3ap-45;

// 2^(j/32) = kExp2TableHi[j] + kExp2TableLo[j], each the double nearest (Python's decimal module at 60
// digits: hi = float(v), lo = float(v - hi) with v = exp(j / 32 * ln 2)).
alignas(64) constexpr double kExp2TableHi[kTableSize] = {
    0x1.0000000000000p+0, 0x1.059b0d3158574p+0, 0x1.0b5586cf9890fp+0, 0x1.11301d0125b51p+0,
    0x1.172b83c7d517bp+0, 0x1.1d4873168b9aap+0, 0x1.2387a6e756238p+0, 0x1.29e9df51fdee1p+0,
    0x1.306fe0a31b715p+0, 0x1.371a7373aa9cbp+0, 0x1.3dea64c123422p+0, 0x1.44e086061892dp+0,
    0x1.4bfdad5362a27p+0, 0x1.5342b569d4f82p+0, 0x1.5ab07dd485429p+0, 0x1.6247eb03a5585p+0,
    0x1.6a09e667f3bcdp+0, 0x1.71f75e8ec5f74p+0, 0x1.7a11473eb0187p+0, 0x1.82589994cce13p+0,
    0x1.8ace5422aa0dbp+0, 0x1.93737b0cdc5e5p+0, 0x1.9c49182a3f090p+0, 0x1.a5503b23e255dp+0,
    0x1.ae89f995ad3adp+0, 0x1.b7f76f2fb5e47p+0, 0x1.c199bdd85529cp+0, 0x1.cb720dcef9069p+0,
    0x1.d5818dcfba487p+0, 0x1.dfc97337b9b5fp+0, 0x1.ea4afa2a490dap+0, 0x1.f50765b6e4540p+0};
alignas(64) constexpr double kExp2TableLo[kTableSize] = {
    0x0.0p+0, 0x1.d73e2a475b465p-55, 0x1.8a62e4adc610bp-54, -0x1.6c51039449b3ap-54,
    -0x1.19041b9d78a76p-55, 0x1.e016e00a2643cp-54, 0x1.9b07eb6c70573p-54, 0x1.612e8afad1255p-55,
    0x1.6f46ad23182e4p-55, -0x1.63aeabf42eae2p-54, 0x1.ada0911f09ebcp-55, 0x1.89b7a04ef80d0p-59,
    0x1.d4397afec42e2p-56, -0x1.07abe1db13cadp-55, 0x1.6324c054647adp-54, -0x1.383c17e40b497p-54,
    -0x1.bdd3413b26456p-54, -0x1.16e4786887a99p-55, -0x1.41577ee04992fp-55, -0x1.d4c1dd41532d8p-54,
    0x1.6e9f156864b27p-54, -0x1.75fc781b57ebcp-57, 0x1.c7c46b071f2bep-56, -0x1.d2f6edb8d41e1p-54,
    0x1.7a1cd345dcc81p-54, -0x1.5584f7e54ac3bp-56, 0x1.11065895048ddp-55, 0x1.503cbd1e949dbp-56,
    0x1.2ed02d75b3707p-55, -0x1.1a5cd4f184b5cp-54, -0x1.e9c23179c2893p-54, 0x1.9d3e12dd8a18bp-54};

// 1 / k!, exact enough: k! is exact in a double up to 18!, and 1.0 / k! rounds once.
struct Taylor {
  double c[7];
  constexpr Taylor() : c{} {
    double factorial = 1;
    for (int k = 0; k < 7; ++k) {
      if (k > 0) factorial *= k;
      c[k] = 1.0 / factorial;
    }
  }
};
constexpr Taylor kTaylor;
constexpr const double* kExpTaylor = kTaylor.c;

#define TSTAR_KERNEL inline __attribute__((always_inline))

// The lanes' sum in one fixed order, the same for every path.
double add_lanes(const double (&lanes)[kLanes]) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// One double. min and max pick as the SSE/AVX instructions do (the second operand unless the first
// is strictly smaller / larger).
struct Scalar {
  using V = double;
  static constexpr int kWidth = 1;
  static V load(const double* p) { return *p; }
  static void store(double* p, V v) { *p = v; }
  static V set(double v) { return v; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V min(V a, V b) { return a < b ? a : b; }
  static V max(V a, V b) { return a > b ? a : b; }
  // 2^k for an integral k in [-1022, 1023]: k + 1023 in the exponent field.
  static V pow2(V k) { return from_bits(to_bits(k + (kRoundMagic + 1023.0)) << 52); }
  static V keep_nan(V x, V result) { return x != x ? x : result; }
  static uint64_t to_bits(V v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return bits;
  }
  static V from_bits(uint64_t bits) {
    double out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
  }
  static V bits(uint64_t b) { return from_bits(b); }
  static V bit_and(V a, V b) { return from_bits(to_bits(a) & to_bits(b)); }
  static V bit_or(V a, V b) { return from_bits(to_bits(a) | to_bits(b)); }
  // table[low bits of t]: the table index exp_of keeps in t's low bits.
  static V lookup(const double* table, V t) { return table[to_bits(t) & kTableMask]; }
};

// SSE2, which every x86-64 CPU has.
namespace portable {
struct Ops {
  using V = __m128d;
  static constexpr int kWidth = 2;
  static V load(const double* p) { return _mm_loadu_pd(p); }
  static void store(double* p, V v) { _mm_storeu_pd(p, v); }
  static V set(double v) { return _mm_set1_pd(v); }
  static V add(V a, V b) { return _mm_add_pd(a, b); }
  static V sub(V a, V b) { return _mm_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm_mul_pd(a, b); }
  static V min(V a, V b) { return _mm_min_pd(a, b); }
  static V max(V a, V b) { return _mm_max_pd(a, b); }
  static V pow2(V k) {
    const __m128i biased = _mm_castpd_si128(_mm_add_pd(k, set(kRoundMagic + 1023.0)));
    return _mm_castsi128_pd(_mm_slli_epi64(biased, 52));
  }
  static V keep_nan(V x, V result) {
    const V nan = _mm_cmpunord_pd(x, x);
    return _mm_or_pd(_mm_and_pd(nan, x), _mm_andnot_pd(nan, result));
  }
  static V bits(uint64_t b) { return _mm_castsi128_pd(_mm_set1_epi64x(static_cast<int64_t>(b))); }
  static V bit_and(V a, V b) { return _mm_and_pd(a, b); }
  static V bit_or(V a, V b) { return _mm_or_pd(a, b); }
  static V lookup(const double* table, V t) {
    const __m128i index = _mm_and_si128(_mm_castpd_si128(t), _mm_set1_epi64x(kTableMask));
    return _mm_set_pd(table[_mm_cvtsi128_si64(_mm_unpackhi_epi64(index, index))], table[_mm_cvtsi128_si64(index)]);
  }
};
#include "stats_kernels_body.inc"
}  // namespace portable

#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
struct Ops {
  using V = __m256d;
  static constexpr int kWidth = 4;
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V set(double v) { return _mm256_set1_pd(v); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V min(V a, V b) { return _mm256_min_pd(a, b); }
  static V max(V a, V b) { return _mm256_max_pd(a, b); }
  static V pow2(V k) {
    const __m256i biased = _mm256_castpd_si256(_mm256_add_pd(k, set(kRoundMagic + 1023.0)));
    return _mm256_castsi256_pd(_mm256_slli_epi64(biased, 52));
  }
  static V keep_nan(V x, V result) { return _mm256_blendv_pd(result, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q)); }
  static V bits(uint64_t b) { return _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<int64_t>(b))); }
  static V bit_and(V a, V b) { return _mm256_and_pd(a, b); }
  static V bit_or(V a, V b) { return _mm256_or_pd(a, b); }
  static V lookup(const double* table, V t) {
    const __m256i index = _mm256_and_si256(_mm256_castpd_si256(t), _mm256_set1_epi64x(kTableMask));
    return _mm256_i64gather_pd(table, index, 8);
  }
};
#include "stats_kernels_body.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
struct Ops {
  using V = __m512d;
  static constexpr int kWidth = 8;
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V set(double v) { return _mm512_set1_pd(v); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V min(V a, V b) { return _mm512_min_pd(a, b); }
  static V max(V a, V b) { return _mm512_max_pd(a, b); }
  static V pow2(V k) {
    const __m512i biased = _mm512_castpd_si512(_mm512_add_pd(k, set(kRoundMagic + 1023.0)));
    return _mm512_castsi512_pd(_mm512_slli_epi64(biased, 52));
  }
  static V keep_nan(V x, V result) { return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), result, x); }
  static V bits(uint64_t b) { return _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<int64_t>(b))); }
  static V bit_and(V a, V b) {
    return _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(a), _mm512_castpd_si512(b)));
  }
  static V bit_or(V a, V b) {
    return _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(a), _mm512_castpd_si512(b)));
  }
  // Two-register permutes (entries 0-15 and 16-31 by the index's low 4 bits), picked by its bit 4:
  // cheaper than a gather.
  static V lookup(const double* table, V t) {
    const __m512i index = _mm512_castpd_si512(t);
    const V low = _mm512_permutex2var_pd(_mm512_load_pd(table), index, _mm512_load_pd(table + 8));
    const V high = _mm512_permutex2var_pd(_mm512_load_pd(table + 16), index, _mm512_load_pd(table + 24));
    return _mm512_mask_blend_pd(_mm512_test_epi64_mask(index, _mm512_set1_epi64(16)), low, high);
  }
};
#include "stats_kernels_body.inc"
}  // namespace avx512
#pragma GCC pop_options

}  // namespace

double exp(double x) { return portable::exp_of<Scalar>(x); }

// Calls the kernel `name` of the path's namespace with the arguments after `path`.
#define TSTAR_DISPATCH(name, ...)                                  \
  TSTAR_CHECK(noise_kernels::cpu_runs(path));                      \
  switch (path) {                                                  \
    case KernelPath::kPortable: return portable::name(__VA_ARGS__); \
    case KernelPath::kAvx2: return avx2::name(__VA_ARGS__);         \
    case KernelPath::kAvx512: return avx512::name(__VA_ARGS__);     \
  }                                                                \
  std::abort()

double exp_sum(KernelPath path, const double* y, int64_t n, double b, double shift) {
  TSTAR_DISPATCH(exp_sum, y, n, b, shift);
}

ExpSumAndGap exp_sum_and_gap(KernelPath path, const double* y, const double* z, const double* p, int64_t n,
                             double b, double shift) {
  TSTAR_DISPATCH(exp_sum_and_gap, y, z, p, n, b, shift);
}

TiltedMoments tilted_moments(KernelPath path, const double* x, const double* y, int64_t n, double b, double shift,
                             double center) {
  TSTAR_DISPATCH(tilted_moments, x, y, n, b, shift, center);
}

void exp_shifted(KernelPath path, const double* x, int64_t n, double shift, double* out) {
  TSTAR_DISPATCH(exp_shifted, x, n, shift, out);
}

}  // namespace tstar::stats_kernels
