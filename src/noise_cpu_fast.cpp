// The fast CPU noise generator and generate-scale-add pass: Philox4x32-10 on 16 (AVX-512) or 8
// (AVX2) lanes and a vectorised Box-Muller that evaluates philox.h's polynomials operation for
// operation, dispatched at run time (no -march flags), with portable fallbacks giving identical
// values. This file is compiled with -ffp-contract=off (src/CMakeLists.txt): a fused multiply-add
// would change results, so no path uses one even where the target allows FMA.
#include "tstar/noise_kernels.h"

// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// The lanewise templates below take and return __m256 / __m512 outside any target; being
// always_inline they are never called across that ABI boundary.
#pragma GCC diagnostic ignored "-Wpsabi"
// Lockstep<__m256, N> drops the vector types' may_alias attribute; its members are only ever
// accessed as themselves.
#pragma GCC diagnostic ignored "-Wignored-attributes"

#include <c10/util/Half.h>
#include <immintrin.h>

#include <algorithm>
#include <initializer_list>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tstar/error.h"

namespace tstar::noise_kernels {
namespace {

constexpr int kLanes = 16;

// ---------------------------------------------------------------- portable paths

void portable_blocks(philox::Kind kind, uint64_t seed, uint64_t first, int64_t count, float* out) {
  uint64_t block = first / 4;
  for (int64_t i = 0; i < count; i += 4, ++block) {
    float values[4];
    philox::unit_block(kind, seed, block, values);
    int64_t n = std::min<int64_t>(4, count - i);
    for (int64_t k = 0; k < n; ++k) out[i + k] = values[k];
  }
}

// Elements [begin, end) into lanes[i % 16] and `changed`; the reference order every path keeps.
template <typename T, typename ToFloat, typename FromFloat>
void accumulate_generic(const T* clean, T* live, const float* z, int64_t begin, int64_t end, float mult,
                        Mode mode, ToFloat to_float, FromFloat from_float, double lanes[kLanes],
                        int64_t& changed) {
  for (int64_t i = begin; i < end; ++i) {
    float c = to_float(clean[i]);
    float m = mode == Mode::kMultiplicative ? mult * c : mult;
    T rounded = from_float(c + m * z[i]);
    live[i] = rounded;
    float r = to_float(rounded);
    changed += (r != c);
    double d = static_cast<double>(r - c);
    lanes[i % kLanes] += d * d;
  }
}

ApplyStats finish(const double lanes[kLanes], int64_t changed) {
  ApplyStats stats;
  stats.changed = changed;
  for (int k = 0; k < kLanes; ++k) stats.sum_sq += lanes[k];
  return stats;
}

float same_float(float f) { return f; }

// A vector path's pass after its whole 16-element steps: elements [done, count) in the portable
// order, into the lanes and count the vector loop left.
ApplyStats finish_bf16(const uint16_t* clean, uint16_t* live, const float* z, int64_t done, int64_t count,
                       float mult, Mode mode, double lanes[kLanes], int64_t changed) {
  accumulate_generic(clean, live, z, done, count, mult, mode, bf16_to_float, float_to_bf16, lanes, changed);
  return finish(lanes, changed);
}

ApplyStats finish_f32(const float* clean, float* live, const float* z, int64_t done, int64_t count, float mult,
                      Mode mode, double lanes[kLanes], int64_t changed) {
  accumulate_generic(clean, live, z, done, count, mult, mode, same_float, same_float, lanes, changed);
  return finish(lanes, changed);
}

// Unit noise of blocks b0 .. b0 + kBlocks - 1 into out[0 .. 4 * kBlocks), element order 4 * lane + component.
using UnitChunk = void (*)(uint64_t seed, uint64_t b0, float* out);

// Elements [first, first + count): `chunk` on each whole run of kBlocks blocks starting at a
// multiple of kBlocks (65536 % kBlocks == 0, so a run shares its b >> 16), portable at either end.
template <int kBlocks>
void generate_chunked(UnitChunk chunk, philox::Kind kind, uint64_t seed, uint64_t first, int64_t count, float* out) {
  static_assert(65536 % kBlocks == 0, "a run of kBlocks blocks must not cross a multiple of 2^16");
  constexpr int64_t kPerChunk = 4 * kBlocks;
  uint64_t block = first / 4;
  int64_t i = std::min<int64_t>(count, static_cast<int64_t>((kBlocks - block % kBlocks) % kBlocks) * 4);
  portable_blocks(kind, seed, first, i, out);
  block += static_cast<uint64_t>(i / 4);
  for (; count - i >= kPerChunk; i += kPerChunk, block += kBlocks) chunk(seed, block, out + i);
  portable_blocks(kind, seed, block * 4, count - i, out + i);
}

template <typename T, typename ToFloat, typename FromFloat>
ApplyStats apply_generic(const T* clean, T* live, const float* z, int64_t count, float mult, Mode mode,
                         ToFloat to_float, FromFloat from_float) {
  double lanes[kLanes] = {};
  int64_t changed = 0;
  accumulate_generic(clean, live, z, 0, count, mult, mode, to_float, from_float, lanes, changed);
  return finish(lanes, changed);
}

// ---------------------------------------------------------------- arithmetic of both widths
// philox.h's float formulas on a GCC vector of floats (__m256 or __m512: operators act per lane and
// broadcast a float operand), written once for both vector paths. Operand order follows philox.h
// up to commuting a product; no product is fused into a sum (-ffp-contract=off). always_inline:
// each is compiled inside its caller's target.
#define TSTAR_LANEWISE inline __attribute__((always_inline))

// log_poly after the exponent split: m = mantissa - 1 (or 2 * mantissa - 1), fe its exponent.
template <typename V>
TSTAR_LANEWISE V log_from_split(const V& m, const V& fe) {
  V z = m * m;
  V y = m * philox::kLogP0 + philox::kLogP1;
  for (float p : {philox::kLogP2, philox::kLogP3, philox::kLogP4, philox::kLogP5, philox::kLogP6, philox::kLogP7,
                  philox::kLogP8})
    y = y * m + p;
  y = (y * m) * z;
  y = y + fe * philox::kLn2Lo;
  y = y + z * -0.5f;
  V r = m + y;
  return r + fe * philox::kLn2Hi;
}

// sincos_poly's polynomials of v reduced by its even octant y: sin (ps) and cos (pc) before the
// octant's swap and signs.
template <typename V>
TSTAR_LANEWISE void sincos_polys(const V& v, const V& y, V& ps, V& pc) {
  V x = ((v - y * philox::kPiOver4A) - y * philox::kPiOver4B) - y * philox::kPiOver4C;
  V z = x * x;
  ps = ((z * philox::kSinP0 + philox::kSinP1) * z + philox::kSinP2) * z * x + x;
  pc = ((z * philox::kCosP0 + philox::kCosP1) * z + philox::kCosP2) * z * z - z * 0.5f + 1.0f;
}

// box_muller's u (in (0, 1]) and v (in (0, 2pi)) from its uint32 converted to float.
template <typename V>
TSTAR_LANEWISE void box_muller_uv(const V& fx, const V& fy, V& u, V& v) {
  u = fx * philox::kTwoPow32Inv + philox::kTwoPow32Inv / 2;
  v = fy * philox::kTwoPow32Inv2Pi + philox::kTwoPow32Inv2Pi / 2;
}

// N vectors of one width in lockstep: each operation is issued for all N before the next one. One
// vector's log and sin/cos are chains of dependent multiplies and adds, and the out-of-order window
// holds too few of them to overlap the next batch's; N chains side by side keep the pipes busy
// (Zen 4, 1 thread, 4 M normals: AVX2 8.4 -> 5.5 ms with Philox on 4 groups and Box-Muller on their 8
// pairs). Same operations, same bits.
template <typename V, int N>
struct Lockstep {
  V v[N];
};
#define TSTAR_LOCKSTEP_OPERATOR(op)                                                                 \
  template <typename V, int N>                                                                      \
  TSTAR_LANEWISE Lockstep<V, N> operator op(const Lockstep<V, N>& x, const Lockstep<V, N>& y) {     \
    Lockstep<V, N> r;                                                                               \
    for (int i = 0; i < N; ++i) r.v[i] = x.v[i] op y.v[i];                                          \
    return r;                                                                                       \
  }                                                                                                 \
  template <typename V, int N>                                                                      \
  TSTAR_LANEWISE Lockstep<V, N> operator op(const Lockstep<V, N>& x, float f) {                     \
    Lockstep<V, N> r;                                                                               \
    for (int i = 0; i < N; ++i) r.v[i] = x.v[i] op f;                                               \
    return r;                                                                                       \
  }
TSTAR_LOCKSTEP_OPERATOR(+)
TSTAR_LOCKSTEP_OPERATOR(-)
TSTAR_LOCKSTEP_OPERATOR(*)
#undef TSTAR_LOCKSTEP_OPERATOR

// Lockstep groups of one Philox block per lane in each call of a vector kernel (Gaussian at either
// width, uniform and Laplace at 8 lanes): measured best at 4 on Zen 4.
constexpr int kGroups = 4;

// ---------------------------------------------------------------- AVX-512 paths

#define TSTAR_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw")))

TSTAR_AVX512 inline void mulhilo(__m512i a, __m512i m, __m512i& lo, __m512i& hi) {
  __m512i even = _mm512_mul_epu32(a, m);                         // 64-bit products of lanes 0, 2, ..
  __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);   // .. and of lanes 1, 3, ..
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

// Philox4x32-10 of N groups of 16 consecutive blocks, b0 + 16g .. b0 + 16g + 15 in r[4g .. 4g+3], in
// lockstep (b0 % (16 N) == 0 and 65536 % (16 N) == 0, so all share b >> 16).
template <int N>
TSTAR_AVX512 inline void philox16xN(uint64_t seed, uint64_t b0, __m512i* r) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  uint64_t hi = b0 >> 16;
  __m512i c0[N], c1[N], c2[N], c3[N];
  for (int g = 0; g < N; ++g) {
    c0[g] = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(hi)));
    c1[g] = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(hi >> 32)));
    c2[g] = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>((b0 & 0xFFFFu) + 16 * g)), lane);
    c3[g] = _mm512_setzero_si512();
  }
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(philox::kMul0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(philox::kMul1));
  uint32_t k0 = static_cast<uint32_t>(seed);
  uint32_t k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    __m512i key0 = _mm512_set1_epi32(static_cast<int>(k0));
    __m512i key1 = _mm512_set1_epi32(static_cast<int>(k1));
    for (int g = 0; g < N; ++g) {
      __m512i lo0, hi0, lo1, hi1;
      mulhilo(c0[g], m0, lo0, hi0);
      mulhilo(c2[g], m1, lo1, hi1);
      c0[g] = _mm512_ternarylogic_epi32(hi1, c1[g], key0, 0x96);  // three-way xor
      c2[g] = _mm512_ternarylogic_epi32(hi0, c3[g], key1, 0x96);
      c1[g] = lo1;
      c3[g] = lo0;
    }
    k0 += philox::kWeyl0;
    k1 += philox::kWeyl1;
  }
  for (int g = 0; g < N; ++g) {
    r[4 * g] = c0[g];
    r[4 * g + 1] = c1[g];
    r[4 * g + 2] = c2[g];
    r[4 * g + 3] = c3[g];
  }
}

// log's exponent split of x: the m and fe of log_from_split.
TSTAR_AVX512 inline void log_split16(__m512 x, __m512& m, __m512& fe) {
  __m512i bits = _mm512_castps_si512(x);
  __m512i e = _mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(0xFF)),
                               _mm512_set1_epi32(126));
  __m512 mantissa = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32(0x007FFFFF)),
                                                        _mm512_set1_epi32(0x3F000000)));
  const __m512 one = _mm512_set1_ps(1.0f);
  __mmask16 small = _mm512_cmp_ps_mask(mantissa, _mm512_set1_ps(philox::kSqrtHalf), _CMP_LT_OQ);
  e = _mm512_mask_sub_epi32(e, small, e, _mm512_set1_epi32(1));
  m = _mm512_mask_blend_ps(small, _mm512_sub_ps(mantissa, one), _mm512_sub_ps(_mm512_add_ps(mantissa, mantissa), one));
  fe = _mm512_cvtepi32_ps(e);
}

// sincos's even octant of v.
TSTAR_AVX512 inline __m512i octant16(__m512 v) {
  __m512i j = _mm512_cvttps_epi32(_mm512_mul_ps(v, _mm512_set1_ps(philox::kFourOverPi)));
  return _mm512_and_si512(_mm512_add_epi32(j, _mm512_set1_epi32(1)), _mm512_set1_epi32(~1));
}

// sin and cos from sincos_polys' ps and pc by the octant j.
TSTAR_AVX512 inline void octant_signs16(__m512i j, __m512 ps, __m512 pc, __m512& s, __m512& c) {
  // Octant j & 7 in {0, 2, 4, 6}: bit 1 swaps sin and cos; sin is negative when bit 2 is set,
  // cos when bit 1 xor bit 2 is.
  __mmask16 swap = _mm512_test_epi32_mask(j, _mm512_set1_epi32(2));
  __mmask16 neg_sin = _mm512_test_epi32_mask(j, _mm512_set1_epi32(4));
  __mmask16 neg_cos = static_cast<__mmask16>(swap ^ neg_sin);
  __m512 sin_v = _mm512_mask_blend_ps(swap, ps, pc);
  __m512 cos_v = _mm512_mask_blend_ps(swap, pc, ps);
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  s = _mm512_castsi512_ps(_mm512_mask_xor_epi32(_mm512_castps_si512(sin_v), neg_sin, _mm512_castps_si512(sin_v), sign));
  c = _mm512_castsi512_ps(_mm512_mask_xor_epi32(_mm512_castps_si512(cos_v), neg_cos, _mm512_castps_si512(cos_v), sign));
}

// box_muller of N pairs (x[i], y[i]) in lockstep: the normals a[i] (sin) and b[i] (cos).
template <int N>
TSTAR_AVX512 inline void box_muller16xN(const __m512i* x, const __m512i* y, __m512* a, __m512* b) {
  Lockstep<__m512, N> fx, fy, u, v, m, fe, fj, ps, pc;
  __m512i j[N];
  for (int i = 0; i < N; ++i) {
    fx.v[i] = _mm512_cvtepu32_ps(x[i]);
    fy.v[i] = _mm512_cvtepu32_ps(y[i]);
  }
  box_muller_uv(fx, fy, u, v);
  for (int i = 0; i < N; ++i) {
    log_split16(u.v[i], m.v[i], fe.v[i]);
    j[i] = octant16(v.v[i]);
    fj.v[i] = _mm512_cvtepi32_ps(j[i]);
  }
  Lockstep<__m512, N> minus_two_log = log_from_split(m, fe) * -2.0f;
  sincos_polys(v, fj, ps, pc);
  for (int i = 0; i < N; ++i) {
    __m512 r = _mm512_sqrt_ps(minus_two_log.v[i]), s, c;
    octant_signs16(j[i], ps.v[i], pc.v[i], s, c);
    a[i] = s * r;
    b[i] = c * r;
  }
}

// The normals n0..n3 (components 0..3) of 16 blocks into out[0..64), element order 4 * lane + component.
TSTAR_AVX512 inline void store_blocks16(__m512 n0, __m512 n1, __m512 n2, __m512 n3, float* out) {
  // 4 x 16 transpose: within each 128-bit quarter q, lanes 4q .. 4q+3.
  __m512 lo01 = _mm512_unpacklo_ps(n0, n1), hi01 = _mm512_unpackhi_ps(n0, n1);
  __m512 lo23 = _mm512_unpacklo_ps(n2, n3), hi23 = _mm512_unpackhi_ps(n2, n3);
  __m512 l0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(lo01), _mm512_castps_pd(lo23)));
  __m512 l1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(lo01), _mm512_castps_pd(lo23)));
  __m512 l2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(hi01), _mm512_castps_pd(hi23)));
  __m512 l3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(hi01), _mm512_castps_pd(hi23)));
  // lX holds lane 4q + X in quarter q; lane L goes to out[4L .. 4L+3].
  // Interleave quarters: [l0.q0 l1.q0 l2.q0 l3.q0] [l0.q1 ...] ...
  __m512 a = _mm512_shuffle_f32x4(l0, l1, _MM_SHUFFLE(1, 0, 1, 0));  // l0.q0 l0.q1 l1.q0 l1.q1
  __m512 b = _mm512_shuffle_f32x4(l2, l3, _MM_SHUFFLE(1, 0, 1, 0));  // l2.q0 l2.q1 l3.q0 l3.q1
  __m512 c = _mm512_shuffle_f32x4(l0, l1, _MM_SHUFFLE(3, 2, 3, 2));  // l0.q2 l0.q3 l1.q2 l1.q3
  __m512 d = _mm512_shuffle_f32x4(l2, l3, _MM_SHUFFLE(3, 2, 3, 2));  // l2.q2 l2.q3 l3.q2 l3.q3
  _mm512_storeu_ps(out + 0, _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)));   // lanes 0..3
  _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));  // lanes 4..7
  _mm512_storeu_ps(out + 32, _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(2, 0, 2, 0)));  // lanes 8..11
  _mm512_storeu_ps(out + 48, _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(3, 1, 3, 1)));  // lanes 12..15
}

// Normals of blocks b0 .. b0 + 16 kGroups - 1 into out[0 .. 64 kGroups).
TSTAR_AVX512 void normals16(uint64_t seed, uint64_t b0, float* out) {
  __m512i r[4 * kGroups];
  philox16xN<kGroups>(seed, b0, r);
  // Pairs (words 0, 1) and (2, 3) of every group.
  __m512i x[2 * kGroups], y[2 * kGroups];
  for (int i = 0; i < 2 * kGroups; ++i) {
    x[i] = r[2 * i];
    y[i] = r[2 * i + 1];
  }
  __m512 a[2 * kGroups], b[2 * kGroups];
  box_muller16xN<2 * kGroups>(x, y, a, b);
  for (int g = 0; g < kGroups; ++g) store_blocks16(a[2 * g], b[2 * g], a[2 * g + 1], b[2 * g + 1], out + 64 * g);
}

// 16 elements' tallies: changed (r != c, NaN counted) and (r - c)^2 in double, lanes 0-7 and 8-15.
TSTAR_AVX512 inline void tally16(__m512 r, __m512 c, int64_t& changed, __m512d& acc_lo, __m512d& acc_hi) {
  changed += __builtin_popcount(_mm512_cmp_ps_mask(r, c, _CMP_NEQ_UQ));
  __m512 d = _mm512_sub_ps(r, c);
  __m512d d_lo = _mm512_cvtps_pd(_mm512_castps512_ps256(d));
  __m512d d_hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(d, 1));
  acc_lo = _mm512_add_pd(acc_lo, _mm512_mul_pd(d_lo, d_lo));
  acc_hi = _mm512_add_pd(acc_hi, _mm512_mul_pd(d_hi, d_hi));
}

TSTAR_AVX512 ApplyStats apply_bf16_avx512(const uint16_t* clean, uint16_t* live, const float* z,
                                        int64_t count, float mult, Mode mode) {
  __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
  int64_t changed = 0;
  const __m512 mult_v = _mm512_set1_ps(mult);
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    __m512i c16 = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(clean + i)));
    __m512 c = _mm512_castsi512_ps(_mm512_slli_epi32(c16, 16));
    __m512 m = mode == Mode::kMultiplicative ? _mm512_mul_ps(mult_v, c) : mult_v;
    __m512 noisy = _mm512_add_ps(c, _mm512_mul_ps(m, _mm512_loadu_ps(z + i)));
    __m512i bits = _mm512_castps_si512(noisy);
    __m512i bias = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1)),
                                    _mm512_set1_epi32(0x7FFF));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(noisy, noisy, _CMP_UNORD_Q);
    rounded = _mm512_mask_mov_epi32(rounded, nan, _mm512_set1_epi32(0x7FC0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(live + i), _mm512_cvtepi32_epi16(rounded));
    __m512 r = _mm512_castsi512_ps(_mm512_slli_epi32(rounded, 16));
    tally16(r, c, changed, acc_lo, acc_hi);
  }
  double lanes[kLanes];
  _mm512_storeu_pd(lanes, acc_lo);
  _mm512_storeu_pd(lanes + 8, acc_hi);
  return finish_bf16(clean, live, z, i, count, mult, mode, lanes, changed);
}

// The fp32 pass: no rounding step, otherwise apply_bf16_avx512's arithmetic and lanes.
TSTAR_AVX512 ApplyStats apply_f32_avx512(const float* clean, float* live, const float* z, int64_t count, float mult,
                                       Mode mode) {
  __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
  int64_t changed = 0;
  const __m512 mult_v = _mm512_set1_ps(mult);
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    __m512 c = _mm512_loadu_ps(clean + i);
    __m512 m = mode == Mode::kMultiplicative ? _mm512_mul_ps(mult_v, c) : mult_v;
    __m512 r = _mm512_add_ps(c, _mm512_mul_ps(m, _mm512_loadu_ps(z + i)));
    _mm512_storeu_ps(live + i, r);
    tally16(r, c, changed, acc_lo, acc_hi);
  }
  double lanes[kLanes];
  _mm512_storeu_pd(lanes, acc_lo);
  _mm512_storeu_pd(lanes + 8, acc_hi);
  return finish_f32(clean, live, z, i, count, mult, mode, lanes, changed);
}

// ---------------------------------------------------------------- AVX2 paths
// The AVX-512 paths at half width: AVX2 lacks mask registers (compares give all-ones lanes, blends
// pick by sign bit), unsigned conversions and 16-bit narrowing, each rebuilt from what it has.

#define TSTAR_AVX2 __attribute__((target("avx2,fma")))

TSTAR_AVX2 inline __m256i set8(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }

// No 32x32 -> 64 high multiply: 64-bit products of the even lanes, then of the odd lanes shifted down.
TSTAR_AVX2 inline void mulhilo8(__m256i a, __m256i m, __m256i& lo, __m256i& hi) {
  __m256i even = _mm256_mul_epu32(a, m);
  __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// Philox4x32-10 of N groups of 8 consecutive blocks, b0 + 8g .. b0 + 8g + 7 in r[4g .. 4g+3], in
// lockstep (b0 % (8 N) == 0 and 65536 % (8 N) == 0, so all share b >> 16).
template <int N>
TSTAR_AVX2 inline void philox8xN(uint64_t seed, uint64_t b0, __m256i* r) {
  uint64_t hi = b0 >> 16;
  const __m256i first = _mm256_add_epi32(set8(static_cast<uint32_t>(b0 & 0xFFFFu)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256i c0[N], c1[N], c2[N], c3[N];
  for (int g = 0; g < N; ++g) {
    c0[g] = set8(static_cast<uint32_t>(hi));
    c1[g] = set8(static_cast<uint32_t>(hi >> 32));
    c2[g] = _mm256_add_epi32(first, set8(8u * g));
    c3[g] = _mm256_setzero_si256();
  }
  const __m256i m0 = set8(philox::kMul0);
  const __m256i m1 = set8(philox::kMul1);
  uint32_t k0 = static_cast<uint32_t>(seed);
  uint32_t k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m256i key0 = set8(k0), key1 = set8(k1);
    for (int g = 0; g < N; ++g) {
      __m256i lo0, hi0, lo1, hi1;
      mulhilo8(c0[g], m0, lo0, hi0);
      mulhilo8(c2[g], m1, lo1, hi1);
      c0[g] = _mm256_xor_si256(hi1, _mm256_xor_si256(c1[g], key0));
      c2[g] = _mm256_xor_si256(hi0, _mm256_xor_si256(c3[g], key1));
      c1[g] = lo1;
      c3[g] = lo0;
    }
    k0 += philox::kWeyl0;
    k1 += philox::kWeyl1;
  }
  for (int g = 0; g < N; ++g) {
    r[4 * g] = c0[g];
    r[4 * g + 1] = c1[g];
    r[4 * g + 2] = c2[g];
    r[4 * g + 3] = c3[g];
  }
}

// static_cast<float>(uint32) without an unsigned conversion: hi * 2^16 and lo are exact in float,
// so their sum is rounded once, to the same nearest float.
TSTAR_AVX2 inline __m256 u32_to_float8(__m256i x) {
  __m256 hi = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x, 16)), _mm256_set1_ps(65536.0f));
  return _mm256_add_ps(hi, _mm256_cvtepi32_ps(_mm256_and_si256(x, set8(0xFFFFu))));
}

// log's exponent split of x: the m and fe of log_from_split.
TSTAR_AVX2 inline void log_split8(__m256 x, __m256& m, __m256& fe) {
  __m256i bits = _mm256_castps_si256(x);
  __m256i e = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(bits, 23), set8(0xFFu)), set8(126));
  __m256 mantissa = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, set8(0x007FFFFFu)), set8(0x3F000000u)));
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 small = _mm256_cmp_ps(mantissa, _mm256_set1_ps(philox::kSqrtHalf), _CMP_LT_OQ);
  e = _mm256_add_epi32(e, _mm256_castps_si256(small));  // all-ones lanes: e - 1
  m = _mm256_blendv_ps(_mm256_sub_ps(mantissa, one), _mm256_sub_ps(_mm256_add_ps(mantissa, mantissa), one), small);
  fe = _mm256_cvtepi32_ps(e);
}

TSTAR_AVX2 inline __m256i octant8(__m256 v) {
  __m256i j = _mm256_cvttps_epi32(_mm256_mul_ps(v, _mm256_set1_ps(philox::kFourOverPi)));
  return _mm256_and_si256(_mm256_add_epi32(j, set8(1)), set8(~1u));
}

TSTAR_AVX2 inline void octant_signs8(__m256i j, __m256 ps, __m256 pc, __m256& s, __m256& c) {
  // As octant_signs16, with the octant bits moved to the sign bit: bit 1 (swap) by << 30, bit 2
  // (sin negative) by << 29; cos is negative when they differ.
  __m256 swap = _mm256_castsi256_ps(_mm256_slli_epi32(j, 30));
  __m256 neg_sin = _mm256_castsi256_ps(_mm256_slli_epi32(j, 29));
  const __m256 sign = _mm256_castsi256_ps(set8(0x80000000u));
  __m256 sin_v = _mm256_blendv_ps(ps, pc, swap);
  __m256 cos_v = _mm256_blendv_ps(pc, ps, swap);
  s = _mm256_xor_ps(sin_v, _mm256_and_ps(neg_sin, sign));
  c = _mm256_xor_ps(cos_v, _mm256_and_ps(_mm256_xor_ps(swap, neg_sin), sign));
}

// box_muller16xN at half width.
template <int N>
TSTAR_AVX2 inline void box_muller8xN(const __m256i* x, const __m256i* y, __m256* a, __m256* b) {
  Lockstep<__m256, N> fx, fy, u, v, m, fe, fj, ps, pc;
  __m256i j[N];
  for (int i = 0; i < N; ++i) {
    fx.v[i] = u32_to_float8(x[i]);
    fy.v[i] = u32_to_float8(y[i]);
  }
  box_muller_uv(fx, fy, u, v);
  for (int i = 0; i < N; ++i) {
    log_split8(u.v[i], m.v[i], fe.v[i]);
    j[i] = octant8(v.v[i]);
    fj.v[i] = _mm256_cvtepi32_ps(j[i]);
  }
  Lockstep<__m256, N> minus_two_log = log_from_split(m, fe) * -2.0f;
  sincos_polys(v, fj, ps, pc);
  for (int i = 0; i < N; ++i) {
    __m256 r = _mm256_sqrt_ps(minus_two_log.v[i]), s, c;
    octant_signs8(j[i], ps.v[i], pc.v[i], s, c);
    a[i] = s * r;
    b[i] = c * r;
  }
}

// open_uniform23: x >> 9 < 2^23 converts exactly through the signed conversion.
TSTAR_AVX2 inline __m256 open_uniform8(__m256i x) {
  __m256 half_steps = _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x, 9)), _mm256_set1_ps(0.5f));
  return _mm256_mul_ps(half_steps, _mm256_set1_ps(1.1920928955078125e-7f));
}

TSTAR_AVX2 inline __m256 uniform8(__m256i x) {
  __m256 u = open_uniform8(x);
  return _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), u), _mm256_set1_ps(1.0f)),
                       _mm256_set1_ps(philox::kSqrt3));
}

// laplace_unit of N words in lockstep: its two branches as one (the log's argument and factor picked
// per lane), then one log.
template <int N>
TSTAR_AVX2 inline void laplace8xN(const __m256i* x, __m256* out) {
  Lockstep<__m256, N> m, fe;
  __m256 factor[N];
  for (int i = 0; i < N; ++i) {
    __m256 u = open_uniform8(x[i]);
    __m256 two_u = _mm256_mul_ps(_mm256_set1_ps(2.0f), u);
    __m256 lower = _mm256_cmp_ps(u, _mm256_set1_ps(0.5f), _CMP_LT_OQ);
    __m256 arg = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.0f), two_u), two_u, lower);
    factor[i] = _mm256_blendv_ps(_mm256_set1_ps(-philox::kLaplaceB), _mm256_set1_ps(philox::kLaplaceB), lower);
    log_split8(arg, m.v[i], fe.v[i]);
  }
  const Lockstep<__m256, N> log_arg = log_from_split(m, fe);
  for (int i = 0; i < N; ++i) out[i] = _mm256_mul_ps(factor[i], log_arg.v[i]);
}

// The unit noise n[0..3] (components 0..3) of 8 blocks into out[0..32), element order 4 * lane + component.
TSTAR_AVX2 inline void store_blocks8(const __m256 n[4], float* out) {
  // 4 x 8 transpose: lX holds lane X in its low half and lane X + 4 in its high half.
  __m256 lo01 = _mm256_unpacklo_ps(n[0], n[1]), hi01 = _mm256_unpackhi_ps(n[0], n[1]);
  __m256 lo23 = _mm256_unpacklo_ps(n[2], n[3]), hi23 = _mm256_unpackhi_ps(n[2], n[3]);
  __m256 l0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(lo01), _mm256_castps_pd(lo23)));
  __m256 l1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(lo01), _mm256_castps_pd(lo23)));
  __m256 l2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(hi01), _mm256_castps_pd(hi23)));
  __m256 l3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(hi01), _mm256_castps_pd(hi23)));
  _mm256_storeu_ps(out + 0, _mm256_permute2f128_ps(l0, l1, 0x20));   // lanes 0, 1
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(l2, l3, 0x20));   // lanes 2, 3
  _mm256_storeu_ps(out + 16, _mm256_permute2f128_ps(l0, l1, 0x31));  // lanes 4, 5
  _mm256_storeu_ps(out + 24, _mm256_permute2f128_ps(l2, l3, 0x31));  // lanes 6, 7
}

// Normals of blocks b0 .. b0 + 8 kGroups - 1 into out[0 .. 32 kGroups).
TSTAR_AVX2 void normals8(uint64_t seed, uint64_t b0, float* out) {
  __m256i r[4 * kGroups];
  philox8xN<kGroups>(seed, b0, r);
  // Pairs (words 0, 1) and (2, 3) of every group.
  __m256i x[2 * kGroups], y[2 * kGroups];
  for (int i = 0; i < 2 * kGroups; ++i) {
    x[i] = r[2 * i];
    y[i] = r[2 * i + 1];
  }
  __m256 a[2 * kGroups], b[2 * kGroups];
  box_muller8xN<2 * kGroups>(x, y, a, b);
  for (int g = 0; g < kGroups; ++g) {
    const __m256 n[4] = {a[2 * g], b[2 * g], a[2 * g + 1], b[2 * g + 1]};
    store_blocks8(n, out + 32 * g);
  }
}

// Uniform or Laplace unit noise (unit_from_block) of blocks b0 .. b0 + 8 kGroups - 1 into
// out[0 .. 32 kGroups), Philox and Laplace's log in lockstep as normals8.
template <philox::Kind kKind>
TSTAR_AVX2 void units8(uint64_t seed, uint64_t b0, float* out) {
  __m256i r[4 * kGroups];
  philox8xN<kGroups>(seed, b0, r);
  __m256 n[4 * kGroups];
  if constexpr (kKind == philox::Kind::kUniform) {
    for (int i = 0; i < 4 * kGroups; ++i) n[i] = uniform8(r[i]);
  } else {
    laplace8xN<4 * kGroups>(r, n);
  }
  for (int g = 0; g < kGroups; ++g) store_blocks8(n + 4 * g, out + 32 * g);
}

// float_to_bf16 of 8 floats, one per 32-bit lane.
TSTAR_AVX2 inline __m256i float_to_bf16x8(__m256 f) {
  __m256i bits = _mm256_castps_si256(f);
  __m256i bias = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(bits, 16), set8(1)), set8(0x7FFF));
  __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
  __m256 nan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
  return _mm256_blendv_epi8(rounded, set8(0x7FC0), _mm256_castps_si256(nan));
}

// 8 elements' tallies, as tally16: changed, and squares into two 4-wide double accumulators.
TSTAR_AVX2 inline void tally8(__m256 r, __m256 c, int64_t& changed, __m256d acc[2]) {
  changed += __builtin_popcount(_mm256_movemask_ps(_mm256_cmp_ps(r, c, _CMP_NEQ_UQ)));
  __m256 d = _mm256_sub_ps(r, c);
  __m256d d_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
  __m256d d_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
  acc[0] = _mm256_add_pd(acc[0], _mm256_mul_pd(d_lo, d_lo));
  acc[1] = _mm256_add_pd(acc[1], _mm256_mul_pd(d_hi, d_hi));
}

// Elements i .. i+7 of the bf16 pass: their rounded bf16 (one per 32-bit lane) back, the changed
// count and squares (lanes i % 16 .. i % 16 + 7, as two 4-wide double accumulators) added to.
TSTAR_AVX2 inline __m256i apply8_bf16(const uint16_t* clean, const float* z, __m256 mult_v, Mode mode,
                                      int64_t& changed, __m256d acc[2]) {
  __m256i c16 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(clean)));
  __m256 c = _mm256_castsi256_ps(_mm256_slli_epi32(c16, 16));
  __m256 m = mode == Mode::kMultiplicative ? _mm256_mul_ps(mult_v, c) : mult_v;
  __m256i rounded = float_to_bf16x8(_mm256_add_ps(c, _mm256_mul_ps(m, _mm256_loadu_ps(z))));
  __m256 r = _mm256_castsi256_ps(_mm256_slli_epi32(rounded, 16));
  tally8(r, c, changed, acc);
  return rounded;
}

// 16 elements a step, so the four accumulators are lanes 0-3, 4-7, 8-11 and 12-15 of ApplyStats.
TSTAR_AVX2 ApplyStats apply_bf16_avx2(const uint16_t* clean, uint16_t* live, const float* z, int64_t count,
                                      float mult, Mode mode) {
  __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  int64_t changed = 0;
  const __m256 mult_v = _mm256_set1_ps(mult);
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    __m256i r0 = apply8_bf16(clean + i, z + i, mult_v, mode, changed, acc);
    __m256i r1 = apply8_bf16(clean + i + 8, z + i + 8, mult_v, mode, changed, acc + 2);
    // packus narrows within 128-bit halves (r0.lo r1.lo r0.hi r1.hi); the permute restores order.
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r0, r1), _MM_SHUFFLE(3, 1, 2, 0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(live + i), packed);
  }
  double lanes[kLanes];
  for (int k = 0; k < 4; ++k) _mm256_storeu_pd(lanes + 4 * k, acc[k]);
  return finish_bf16(clean, live, z, i, count, mult, mode, lanes, changed);
}

// Elements i .. i+7 of the fp32 pass, written to live; counts and squares as apply8_bf16.
TSTAR_AVX2 inline void apply8_f32(const float* clean, float* live, const float* z, __m256 mult_v, Mode mode,
                                  int64_t& changed, __m256d acc[2]) {
  __m256 c = _mm256_loadu_ps(clean);
  __m256 m = mode == Mode::kMultiplicative ? _mm256_mul_ps(mult_v, c) : mult_v;
  __m256 r = _mm256_add_ps(c, _mm256_mul_ps(m, _mm256_loadu_ps(z)));
  _mm256_storeu_ps(live, r);
  tally8(r, c, changed, acc);
}

TSTAR_AVX2 ApplyStats apply_f32_avx2(const float* clean, float* live, const float* z, int64_t count, float mult,
                                     Mode mode) {
  __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  int64_t changed = 0;
  const __m256 mult_v = _mm256_set1_ps(mult);
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    apply8_f32(clean + i, live + i, z + i, mult_v, mode, changed, acc);
    apply8_f32(clean + i + 8, live + i + 8, z + i + 8, mult_v, mode, changed, acc + 2);
  }
  double lanes[kLanes];
  for (int k = 0; k < 4; ++k) _mm256_storeu_pd(lanes + 4 * k, acc[k]);
  return finish_f32(clean, live, z, i, count, mult, mode, lanes, changed);
}

// ---------------------------------------------------------------- dispatch

bool detect_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// The AVX-512 path runs AVX2 kernels too (uniform, laplace), so it needs both.
bool detect_avx512() {
  return detect_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw");
}

// The cap named by TSTAR_CPU_ISA; unset means no cap. A bad value is a broken invariant of the
// environment, reported with the accepted names.
KernelPath isa_cap() {
  const char* value = std::getenv(kIsaVariable);
  if (!value || !*value || std::strcmp(value, "avx512") == 0) return KernelPath::kAvx512;
  if (std::strcmp(value, "avx2") == 0) return KernelPath::kAvx2;
  if (std::strcmp(value, "portable") == 0) return KernelPath::kPortable;
  throw Error(std::string(kIsaVariable) + "='" + value + "': expected portable, avx2 or avx512");
}

// The best path the CPU runs, at most the cap.
KernelPath detect_path() {
  const KernelPath cap = isa_cap();
  for (KernelPath path : {KernelPath::kAvx512, KernelPath::kAvx2}) {
    if (path <= cap && cpu_runs(path)) return path;
  }
  return KernelPath::kPortable;
}

}  // namespace

bool cpu_runs(KernelPath path) {
  static const bool avx2 = detect_avx2();
  static const bool avx512 = detect_avx512();
  switch (path) {
    case KernelPath::kPortable: return true;
    case KernelPath::kAvx2: return avx2;
    case KernelPath::kAvx512: return avx512;
  }
  std::abort();
}

KernelPath selected_path() {
  static const KernelPath path = detect_path();
  return path;
}

const char* path_name(KernelPath path) {
  switch (path) {
    case KernelPath::kPortable: return "portable";
    case KernelPath::kAvx2: return "avx2";
    case KernelPath::kAvx512: return "avx512";
  }
  std::abort();
}

void generate_with(KernelPath path, philox::Kind kind, uint64_t seed, uint64_t first, int64_t count,
                   float* out) {
  TSTAR_CHECK(first % 4 == 0);
  TSTAR_CHECK(cpu_runs(path));
  if (path == KernelPath::kPortable) return portable_blocks(kind, seed, first, count, out);
  switch (kind) {
    case philox::Kind::kGaussian:
      if (path == KernelPath::kAvx512) return generate_chunked<16 * kGroups>(normals16, kind, seed, first, count, out);
      return generate_chunked<8 * kGroups>(normals8, kind, seed, first, count, out);
    // Only gaussian noise has 16-lane kernels; uniform and laplace take the AVX2 ones, which every
    // AVX-512 CPU runs.
    case philox::Kind::kUniform: return generate_chunked<8 * kGroups>(units8<philox::Kind::kUniform>, kind, seed, first, count, out);
    case philox::Kind::kLaplace: return generate_chunked<8 * kGroups>(units8<philox::Kind::kLaplace>, kind, seed, first, count, out);
  }
}

void generate(philox::Kind kind, uint64_t seed, uint64_t first, int64_t count, float* out) {
  generate_with(selected_path(), kind, seed, first, count, out);
}

ApplyStats apply_bf16_with(KernelPath path, const uint16_t* clean, uint16_t* live, const float* z, int64_t count,
                           float mult, Mode mode) {
  TSTAR_CHECK(cpu_runs(path));
  switch (path) {
    case KernelPath::kPortable: return apply_generic(clean, live, z, count, mult, mode, bf16_to_float, float_to_bf16);
    case KernelPath::kAvx2: return apply_bf16_avx2(clean, live, z, count, mult, mode);
    case KernelPath::kAvx512: return apply_bf16_avx512(clean, live, z, count, mult, mode);
  }
  std::abort();
}

ApplyStats apply_bf16(const uint16_t* clean, uint16_t* live, const float* z, int64_t count, float mult,
                      Mode mode) {
  return apply_bf16_with(selected_path(), clean, live, z, count, mult, mode);
}

ApplyStats apply_f32_with(KernelPath path, const float* clean, float* live, const float* z, int64_t count, float mult,
                          Mode mode) {
  TSTAR_CHECK(cpu_runs(path));
  switch (path) {
    case KernelPath::kPortable: return apply_generic(clean, live, z, count, mult, mode, same_float, same_float);
    case KernelPath::kAvx2: return apply_f32_avx2(clean, live, z, count, mult, mode);
    case KernelPath::kAvx512: return apply_f32_avx512(clean, live, z, count, mult, mode);
  }
  std::abort();
}

ApplyStats apply_f32(const float* clean, float* live, const float* z, int64_t count, float mult,
                     Mode mode) {
  return apply_f32_with(selected_path(), clean, live, z, count, mult, mode);
}

ApplyStats apply_f16(const uint16_t* clean, uint16_t* live, const float* z, int64_t count, float mult,
                     Mode mode) {
  auto to_float = [](uint16_t h) { return c10::detail::fp16_ieee_to_fp32_value(h); };
  auto from_float = [](float f) { return c10::detail::fp16_ieee_from_fp32_value(f); };
  return apply_generic(clean, live, z, count, mult, mode, to_float, from_float);
}

}  // namespace tstar::noise_kernels
