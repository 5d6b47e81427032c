// Header-only Philox4x32-10 and the unit-noise transforms of tstar's noise streams. The uint32
// stream is cuRAND's bit for bit (curand_init / curand4 of curand_kernel.h, and the host API's
// CURAND_RNG_PSEUDO_PHILOX4_32_10 generator with CURAND_ORDERING_PSEUDO_LEGACY). Compiles as plain
// C++ and as CUDA (__host__ __device__), so the CPU engine and the fused CUDA kernel share the math.
//
// Counter mapping (one stream per tensor; n = row-major flat element index):
//   block  b = n >> 2, component k = n & 3
//   Philox key     = tensor seed (key.x = low 32 bits, key.y = high 32 bits)
//   Philox counter = { lo32(b >> 16), hi32(b >> 16), b & 0xFFFF, 0 }
//   uint32 of element n = component k of Philox4x32_10(counter, key)
// which is component k of curand4() right after
//   curand_init(seed, subsequence = (n >> 2) & 65535, offset = 4 * (n >> 18), &state)
// and element n of the host API's curandGenerate() (docs/design.md, "Noise streams"; checked by tests/test_noise.cpp).
// curandGenerateNormal() maps normals the same way: element n is component k of curand_normal4()
// after the same curand_init (measured on 1.5 M values: identical on this machine's host library).
//
// Unit noise of element n (all arithmetic in IEEE float, round to nearest, no fused multiply-add;
// the CUDA build uses -fmad=false so the device computes the very same values):
//   gaussian: Box-Muller on the pair of the block that holds n, as cuRAND's _curand_box_muller:
//             u = x * 2^-32 + 2^-33, v = y * (2pi * 2^-32) + pi * 2^-32, r = sqrt(-2 log u),
//             components (0, 1) = (r sin v, r cos v) from uint32 (x, y) = components (0, 1),
//             components (2, 3) likewise from (2, 3). tstar evaluates log/sin/cos with its own
//             float polynomials (below), so its normals equal cuRAND's to within a few float ulps
//             (tests bound the difference: |tstar - cuRAND| <= 2^-20 * max(1, |z|)).
//   uniform:  u = ((x >> 9) + 0.5) * 2^-23 in (0, 1) (exact), z = (2 u - 1) * sqrt(3): std 1.
//   laplace:  b = 1/sqrt(2) (std 1): z = b log(2 u) when u < 0.5, else -b log(2 - 2 u).
//   Both use the element's own uint32 x (component k of its block).
#pragma once

#include <cstdint>
#include <cmath>
#include <cstring>

#if defined(__CUDACC__)
#define TSTAR_HD __host__ __device__ __forceinline__
#else
#define TSTAR_HD inline
#endif

namespace tstar::philox {

constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;

// cuRAND's uniform constants (curand_globals.h), as float.
constexpr float kTwoPow32Inv = 2.3283064e-10f;
constexpr float kTwoPow32Inv2Pi = 2.3283064e-10f * 6.2831855f;

struct Block {
  uint32_t v[4];
};

TSTAR_HD Block philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint64_t key) {
  uint32_t k0 = static_cast<uint32_t>(key);
  uint32_t k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
    uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return Block{{c0, c1, c2, c3}};
}

// The 4 uint32 of block b (elements 4b .. 4b+3) of the stream with this seed.
TSTAR_HD Block stream_block(uint64_t seed, uint64_t block) {
  uint64_t hi = block >> 16;
  return philox4x32_10(static_cast<uint32_t>(hi), static_cast<uint32_t>(hi >> 32),
                       static_cast<uint32_t>(block & 0xFFFFu), 0u, seed);
}

// The curand_init(seed, subsequence, offset) arguments whose first curand4() holds element n.
struct CurandPosition {
  uint64_t subsequence;
  uint64_t offset;
  uint32_t component;
};
TSTAR_HD CurandPosition curand_position(uint64_t n) {
  return CurandPosition{(n >> 2) & 65535u, 4 * (n >> 18), static_cast<uint32_t>(n & 3)};
}

// ---- float helpers shared with the vectorised generator (same operations, same order) ----

TSTAR_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
TSTAR_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Natural log for normal positive floats (Cephes-style: mantissa in [sqrt(1/2), sqrt(2)), degree-8
// minimax polynomial, ln 2 split in two parts). Max error ~1 ulp on (0, 1].
constexpr float kSqrtHalf = 0.707106781186547524f;
// Scalars, not arrays: CUDA device code may read constexpr scalars only.
constexpr float kLogP0 = 7.0376836292e-2f, kLogP1 = -1.1514610310e-1f, kLogP2 = 1.1676998740e-1f,
                kLogP3 = -1.2420140846e-1f, kLogP4 = 1.4249322787e-1f, kLogP5 = -1.6668057665e-1f,
                kLogP6 = 2.0000714765e-1f, kLogP7 = -2.4999993993e-1f, kLogP8 = 3.3333331174e-1f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;

TSTAR_HD float log_poly(float x) {
  uint32_t bits = float_bits(x);
  int32_t e = static_cast<int32_t>((bits >> 23) & 0xFFu) - 126;     // x = m * 2^e, m in [0.5, 1)
  float m = bits_float((bits & 0x007FFFFFu) | 0x3F000000u);
  if (m < kSqrtHalf) {
    e -= 1;
    m = (m + m) - 1.0f;
  } else {
    m = m - 1.0f;
  }
  float fe = static_cast<float>(e);
  float z = m * m;
  float y = kLogP0;
  y = y * m + kLogP1;
  y = y * m + kLogP2;
  y = y * m + kLogP3;
  y = y * m + kLogP4;
  y = y * m + kLogP5;
  y = y * m + kLogP6;
  y = y * m + kLogP7;
  y = y * m + kLogP8;
  y = (y * m) * z;
  y = y + kLn2Lo * fe;
  y = y + (-0.5f * z);
  float r = m + y;
  return r + kLn2Hi * fe;
}

// sin and cos of v in [0, 2pi] (Cephes-style: octant reduction with pi/4 in three parts).
constexpr float kFourOverPi = 1.27323954473516f;
constexpr float kPiOver4A = 0.78515625f;
constexpr float kPiOver4B = 2.4187564849853515625e-4f;
constexpr float kPiOver4C = 3.77489497744594108e-8f;
constexpr float kSinP0 = -1.9515295891e-4f, kSinP1 = 8.3321608736e-3f, kSinP2 = -1.6666654611e-1f;
constexpr float kCosP0 = 2.443315711809948e-5f, kCosP1 = -1.388731625493765e-3f, kCosP2 = 4.166664568298827e-2f;

struct SinCos {
  float s, c;
};

TSTAR_HD SinCos sincos_poly(float v) {
  int32_t j = static_cast<int32_t>(v * kFourOverPi);  // truncation, v >= 0
  j = (j + 1) & ~1;                                    // nearest even octant
  float y = static_cast<float>(j);
  float x = ((v - y * kPiOver4A) - y * kPiOver4B) - y * kPiOver4C;  // in [-pi/4, pi/4]
  float z = x * x;
  float ps = ((kSinP0 * z + kSinP1) * z + kSinP2) * z * x + x;
  float pc = ((kCosP0 * z + kCosP1) * z + kCosP2) * z * z - 0.5f * z + 1.0f;
  switch (j & 7) {
    case 0: return SinCos{ps, pc};
    case 2: return SinCos{pc, -ps};
    case 4: return SinCos{-ps, -pc};
    default: return SinCos{-pc, ps};
  }
}

struct Pair {
  float a, b;
};

// cuRAND's Box-Muller (curand_normal.h) with tstar's log/sin/cos.
TSTAR_HD Pair box_muller(uint32_t x, uint32_t y) {
  float u = static_cast<float>(x) * kTwoPow32Inv + (kTwoPow32Inv / 2);
  float v = static_cast<float>(y) * kTwoPow32Inv2Pi + (kTwoPow32Inv2Pi / 2);
#if defined(__CUDA_ARCH__)
  float r = sqrtf(-2.0f * log_poly(u));  // IEEE round to nearest (no fast-math)
#else
  float r = std::sqrt(-2.0f * log_poly(u));
#endif
  SinCos sc = sincos_poly(v);
  return Pair{sc.s * r, sc.c * r};
}

constexpr float kSqrt3 = 1.7320508075688772f;
constexpr float kLaplaceB = 0.70710678118654752f;  // 1/sqrt(2): unit variance

// ((x >> 9) + 0.5) * 2^-23: exact in float (24 significant bits), strictly inside (0, 1).
TSTAR_HD float open_uniform23(uint32_t x) {
  return (static_cast<float>(x >> 9) + 0.5f) * 1.1920928955078125e-7f;
}
TSTAR_HD float uniform_unit(uint32_t x) { return (2.0f * open_uniform23(x) - 1.0f) * kSqrt3; }
TSTAR_HD float laplace_unit(uint32_t x) {
  float u = open_uniform23(x);
  return u < 0.5f ? kLaplaceB * log_poly(2.0f * u) : -kLaplaceB * log_poly(2.0f - 2.0f * u);
}

enum class Kind : int { kGaussian = 0, kUniform = 1, kLaplace = 2 };

// Unit noise of the 4 elements of a block from its 4 uint32.
TSTAR_HD void unit_from_block(Kind kind, const Block& r, float out[4]) {
  switch (kind) {  // exhaustive, no default: -Werror=switch catches a kind without its formula
    case Kind::kGaussian: {
      Pair p = box_muller(r.v[0], r.v[1]);
      Pair q = box_muller(r.v[2], r.v[3]);
      out[0] = p.a;
      out[1] = p.b;
      out[2] = q.a;
      out[3] = q.b;
      return;
    }
    case Kind::kUniform:
      for (int k = 0; k < 4; ++k) out[k] = uniform_unit(r.v[k]);
      return;
    case Kind::kLaplace:
      for (int k = 0; k < 4; ++k) out[k] = laplace_unit(r.v[k]);
      return;
  }
}

// Unit noise of the 4 elements of block b.
TSTAR_HD void unit_block(Kind kind, uint64_t seed, uint64_t block, float out[4]) {
  unit_from_block(kind, stream_block(seed, block), out);
}

// ---- per-tensor seeds ----

// FNV-1a 64 of the bytes of a (UTF-8) name.
inline uint64_t fnv1a64(const char* data, size_t size) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (size_t i = 0; i < size; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 0x100000001B3ull;
  }
  return h;
}

// splitmix64's output function.
TSTAR_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// cuRAND seed of a tensor's stream: splitmix64(splitmix64(user seed) ^ fnv1a64(name)). Depends on
// nothing but the user seed and the parameter name, so a tensor's noise is the same whichever
// other tensors are targeted.
inline uint64_t tensor_seed(uint64_t user_seed, const char* name, size_t name_size) {
  return splitmix64(splitmix64(user_seed) ^ fnv1a64(name, name_size));
}

}  // namespace tstar::philox
