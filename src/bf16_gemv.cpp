// bf16 GEMV kernels (bf16_gemv.h). Each output is one dot product of k bf16 pairs in fp32, summed
// in 32-element chunks in k order, reduced, biased and rounded once; four outputs share each pass over
// x so that x stays in registers while four weight rows stream from memory.
#include "bf16_gemv.h"

// GCC 12's AVX-512 headers read "undefined" registers on purpose (_mm512_undefined_*, reached through
// _mm512_reduce_add_ps): false uninitialised-value warnings.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <vector>

#include "tstar/error.h"
#include "tstar/noise_kernels.h"

namespace tstar::bf16_gemv {
namespace {

constexpr int64_t kChunk = 32;        // bf16 elements per 512-bit load
constexpr int64_t kOutputsAtOnce = 4;  // weight rows streamed together (8 for one or two rows: more
                                       // streams in flight, 94-106 ms against 120-126 ms per 0.5B decode step)
constexpr int64_t kPrefetchRows = 8;   // each load asks for the same columns this many rows ahead

float bias_of(const uint16_t* bias, int64_t j) { return bias ? noise_kernels::bf16_to_float(bias[j]) : 0.0f; }

// ---- portable: the reference for tests ------------------------------------------------------

void outputs_portable(const uint16_t* x, int64_t rows, const uint16_t* w, int64_t n, int64_t k,
                      const uint16_t* bias, uint16_t* y, int64_t first, int64_t last) {
  for (int64_t j = first; j < last; ++j) {
    for (int64_t r = 0; r < rows; ++r) {
      float sum = 0.0f;
      for (int64_t i = 0; i < k; ++i) {
        sum += noise_kernels::bf16_to_float(x[r * k + i]) * noise_kernels::bf16_to_float(w[j * k + i]);
      }
      y[r * n + j] = noise_kernels::float_to_bf16(sum + bias_of(bias, j));
    }
  }
}

// ---- AVX-512 -------------------------------------------------------------------------------

#define TSTAR_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define TSTAR_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

TSTAR_AVX512 inline __mmask32 chunk_mask(int64_t remaining) {
  return remaining >= kChunk ? ~__mmask32{0} : static_cast<__mmask32>((uint64_t{1} << remaining) - 1);
}

// Q outputs j..j+Q-1 for R rows, multiplying bf16 pairs with vdpbf16ps (which flushes denormal inputs
// and outputs to zero, as oneDNN's AVX-512-BF16 kernels do).
template <int R, int Q>
TSTAR_AVX512BF16 void outputs_bf16(const uint16_t* x, const uint16_t* w, int64_t n, int64_t k,
                                   const uint16_t* bias, uint16_t* y, int64_t j) {
  __m512 acc[R][Q];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q) acc[r][q] = _mm512_setzero_ps();
  for (int64_t c = 0; c < k; c += kChunk) {
    const __mmask32 mask = chunk_mask(k - c);
    __m512i wv[Q];
    for (int q = 0; q < Q; ++q) {
      wv[q] = _mm512_maskz_loadu_epi16(mask, w + (j + q) * k + c);
      _mm_prefetch(reinterpret_cast<const char*>(w + (j + q + kPrefetchRows) * k + c), _MM_HINT_T0);
    }
    for (int r = 0; r < R; ++r) {
      const __m512i xv = _mm512_maskz_loadu_epi16(mask, x + r * k + c);
      for (int q = 0; q < Q; ++q) acc[r][q] = _mm512_dpbf16_ps(acc[r][q], (__m512bh)xv, (__m512bh)wv[q]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q)
      y[r * n + j + q] = noise_kernels::float_to_bf16(_mm512_reduce_add_ps(acc[r][q]) + bias_of(bias, j + q));
}

// The same with both operands widened to fp32 and FMA: x arrives widened (xf [R, k] floats).
TSTAR_AVX512 inline __m512 widen16(__mmask16 mask, const uint16_t* p) {
  const __m256i bits = _mm256_maskz_loadu_epi16(mask, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

template <int R, int Q>
TSTAR_AVX512 void outputs_fma(const float* xf, const uint16_t* w, int64_t n, int64_t k, const uint16_t* bias,
                              uint16_t* y, int64_t j) {
  __m512 acc[R][Q];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q) acc[r][q] = _mm512_setzero_ps();
  for (int64_t c = 0; c < k; c += 16) {
    const int64_t remaining = k - c;
    const __mmask16 mask = remaining >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << remaining) - 1);
    __m512 wv[Q];
    for (int q = 0; q < Q; ++q) wv[q] = widen16(mask, w + (j + q) * k + c);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, xf + r * k + c);
      for (int q = 0; q < Q; ++q) acc[r][q] = _mm512_fmadd_ps(xv, wv[q], acc[r][q]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q)
      y[r * n + j + q] = noise_kernels::float_to_bf16(_mm512_reduce_add_ps(acc[r][q]) + bias_of(bias, j + q));
}

// ---- AVX2 + FMA: the widened kernel at 8 lanes --------------------------------------------------
// No 16-bit masked loads: whole 8-element steps in vectors, the last k % 8 products added after the
// lanes' sum, in k order.

#define TSTAR_AVX2 __attribute__((target("avx2,fma")))

TSTAR_AVX2 inline __m256 widen8(const uint16_t* p) {
  const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
}

TSTAR_AVX2 inline float sum8(__m256 v) {  // lanes (0+4, 1+5, 2+6, 3+7), then pairs, then the two
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int R, int Q>
TSTAR_AVX2 void outputs_fma8(const float* xf, const uint16_t* w, int64_t n, int64_t k, const uint16_t* bias,
                             uint16_t* y, int64_t j) {
  __m256 acc[R][Q];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q) acc[r][q] = _mm256_setzero_ps();
  const int64_t whole = k - k % 8;
  for (int64_t c = 0; c < whole; c += 8) {
    __m256 wv[Q];
    for (int q = 0; q < Q; ++q) {
      wv[q] = widen8(w + (j + q) * k + c);
      _mm_prefetch(reinterpret_cast<const char*>(w + (j + q + kPrefetchRows) * k + c), _MM_HINT_T0);
    }
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_loadu_ps(xf + r * k + c);
      for (int q = 0; q < Q; ++q) acc[r][q] = _mm256_fmadd_ps(xv, wv[q], acc[r][q]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int q = 0; q < Q; ++q) {
      float sum = sum8(acc[r][q]);
      for (int64_t i = whole; i < k; ++i) sum += xf[r * k + i] * noise_kernels::bf16_to_float(w[(j + q) * k + i]);
      y[r * n + j + q] = noise_kernels::float_to_bf16(sum + bias_of(bias, j + q));
    }
  }
}

// Outputs j..j+Q-1 by the chosen vector kernel: bf16 pairs, or widened FMA on xf (16 or 8 lanes).
template <int R, int Q>
void outputs_at(Kernel kernel, const uint16_t* x, const float* xf, const uint16_t* w, int64_t n, int64_t k,
                const uint16_t* bias, uint16_t* y, int64_t j) {
  if (kernel == Kernel::kAvx512Bf16) return outputs_bf16<R, Q>(x, w, n, k, bias, y, j);
  if (kernel == Kernel::kAvx512) return outputs_fma<R, Q>(xf, w, n, k, bias, y, j);
  outputs_fma8<R, Q>(xf, w, n, k, bias, y, j);
}

// Outputs [first, last): Q at a time (what the registers hold: 8 for one or two rows, else 4), then one
// at a time. Each output's arithmetic is the same either way, so where a thread's range starts changes
// nothing.
template <int R>
void outputs_range(Kernel kernel, const uint16_t* x, const float* xf, const uint16_t* w, int64_t n, int64_t k,
                   const uint16_t* bias, uint16_t* y, int64_t first, int64_t last) {
  constexpr int Q = R <= 2 ? 2 * kOutputsAtOnce : kOutputsAtOnce;
  int64_t j = first;
  for (; j + Q <= last; j += Q) outputs_at<R, Q>(kernel, x, xf, w, n, k, bias, y, j);
  for (; j < last; ++j) outputs_at<R, 1>(kernel, x, xf, w, n, k, bias, y, j);
}

void outputs(Kernel kernel, const uint16_t* x, const float* xf, int64_t rows, const uint16_t* w, int64_t n,
             int64_t k, const uint16_t* bias, uint16_t* y, int64_t first, int64_t last) {
  if (kernel == Kernel::kPortable) return outputs_portable(x, rows, w, n, k, bias, y, first, last);
  switch (rows) {
    case 1: return outputs_range<1>(kernel, x, xf, w, n, k, bias, y, first, last);
    case 2: return outputs_range<2>(kernel, x, xf, w, n, k, bias, y, first, last);
    case 3: return outputs_range<3>(kernel, x, xf, w, n, k, bias, y, first, last);
    case 4: return outputs_range<4>(kernel, x, xf, w, n, k, bias, y, first, last);
  }
  TSTAR_CHECK(false);
}

bool detect(Kernel kernel) {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  switch (kernel) {
    case Kernel::kPortable: return true;
    case Kernel::kAvx2: return noise_kernels::cpu_runs(noise_kernels::KernelPath::kAvx2);  // avx2 + fma
    case Kernel::kAvx512: return avx512;
    case Kernel::kAvx512Bf16: return avx512 && __builtin_cpu_supports("avx512bf16");
  }
  return false;
}

}  // namespace

bool cpu_runs(Kernel kernel) {
  static const bool avx2 = detect(Kernel::kAvx2), avx512 = detect(Kernel::kAvx512),
                    avx512_bf16 = detect(Kernel::kAvx512Bf16);
  switch (kernel) {
    case Kernel::kPortable: return true;
    case Kernel::kAvx2: return avx2;
    case Kernel::kAvx512: return avx512;
    case Kernel::kAvx512Bf16: return avx512_bf16;
  }
  return false;
}

const char* kernel_name(Kernel kernel) {
  switch (kernel) {
    case Kernel::kPortable: return "portable";
    case Kernel::kAvx2: return "avx2";
    case Kernel::kAvx512: return "avx512";
    case Kernel::kAvx512Bf16: return "avx512_bf16";
  }
  return "";
}

Kernel best_kernel() {
  const auto cap = noise_kernels::selected_path();
  if (cap == noise_kernels::KernelPath::kAvx512) {
    if (cpu_runs(Kernel::kAvx512Bf16)) return Kernel::kAvx512Bf16;
    if (cpu_runs(Kernel::kAvx512)) return Kernel::kAvx512;
  }
  if (cap >= noise_kernels::KernelPath::kAvx2 && cpu_runs(Kernel::kAvx2)) return Kernel::kAvx2;
  return Kernel::kPortable;
}

std::optional<Kernel> kernel_for(Bf16Matmul path, bool native_profile) {
  const Kernel kernel = best_kernel();
  const bool replaces_path = path == Bf16Matmul::kOneDnn || (path == Bf16Matmul::kFp32Gemm && native_profile);
  if (!replaces_path || kernel == Kernel::kPortable) return std::nullopt;
  return kernel;
}

void compute(Kernel kernel, const uint16_t* x, int64_t rows, const uint16_t* w, int64_t n, int64_t k,
             const uint16_t* bias, uint16_t* y) {
  if (rows < 1 || rows > kMaxRows || n < 1 || k < 1) {
    throw Error("bf16_gemv: " + std::to_string(rows) + " rows of " + std::to_string(k) + " for " +
                std::to_string(n) + " outputs (1 to " + std::to_string(kMaxRows) + " rows)");
  }
  if (!cpu_runs(kernel)) throw Error(std::string("bf16_gemv: this CPU does not run the ") + kernel_name(kernel) + " kernel");
  std::vector<float> xf;  // x widened once, for the FMA kernels
  if (kernel == Kernel::kAvx512 || kernel == Kernel::kAvx2) {
    xf.resize(static_cast<size_t>(rows * k));
    for (size_t i = 0; i < xf.size(); ++i) xf[i] = noise_kernels::bf16_to_float(x[i]);
  }
  // ~64 outputs per task: each streams 64 weight rows, enough to hide a task's start.
  at::parallel_for(0, n, 64, [&](int64_t first, int64_t last) {
    outputs(kernel, x, xf.data(), rows, w, n, k, bias, y, first, last);
  });
}

}  // namespace tstar::bf16_gemv
