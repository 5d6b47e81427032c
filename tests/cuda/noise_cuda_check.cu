// noise_cuda_check: on a machine with a GPU, checks the device noise streams and the fused kernel.
//   1. uint32: curand_init/curand4 on the device at philox.h's counters == libcurand host API (exact)
//   2. cuRAND's own device normals (curand_normal4) vs the host API: max |diff| reported; fails only
//      beyond 1e-4 * max(1, |z|) (the device's __sincosf is less accurate than the host's sinf/cosf)
//   3. tstar's unit noise on the device == philox.h on the CPU (exact: same float math, -fmad=false)
//   4. the fused kernel (bf16, fp16 and fp32; gaussian/uniform/laplace; additive/multiplicative, row
//      multipliers; vector and scalar paths) == the CPU engine's per-element formula (exact), changed
//      counts equal, the sum of squares the same bits on a second launch
//   5. throughput of the fused kernel on 2^28 bf16 weights (informational)
// Prints one line per check and "noise_cuda_check: PASS" or "FAIL"; exits 1 on any mismatch, 2 when
// no GPU is usable. Build: nvcc -O3 -std=c++17 -arch=sm_90 -fmad=false -Isrc
//   tests/cuda/noise_cuda_check.cu src/noise_cuda.cu -lcurand -o noise_cuda_check   (or CMake target)
#include <cuda_runtime.h>
#include <curand.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "noise_cuda.h"
#include "tstar/noise_kernels.h"
#include "tstar/philox.h"

namespace {

using namespace tstar;

int failures = 0;

void report(bool ok, const char* what, const char* detail) {
  std::printf("[%s] %s: %s\n", ok ? "PASS" : "FAIL", what, detail);
  if (!ok) ++failures;
}

#define CUDA_OK(call)                                                                             \
  do {                                                                                            \
    cudaError_t err_ = (call);                                                                    \
    if (err_ != cudaSuccess) {                                                                    \
      std::printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorString(err_), __FILE__, __LINE__, #call); \
      std::printf("noise_cuda_check: FAIL\n");                                                    \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

#define CURAND_OK(call)                                                                           \
  do {                                                                                            \
    curandStatus_t status_ = (call);                                                              \
    if (status_ != CURAND_STATUS_SUCCESS) {                                                       \
      std::printf("cuRAND status %d at %s:%d: %s\n", static_cast<int>(status_), __FILE__, __LINE__, #call); \
      std::printf("noise_cuda_check: FAIL\n");                                                    \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(size_t n) { CUDA_OK(cudaMalloc(&ptr, n * sizeof(T) + 16)); }
  ~DeviceBuffer() { cudaFree(ptr); }
  std::vector<T> download(size_t n) const {
    std::vector<T> out(n);
    CUDA_OK(cudaMemcpy(out.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return out;
  }
  void upload(const std::vector<T>& v) { CUDA_OK(cudaMemcpy(ptr, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice)); }
};

curandGenerator_t host_generator(uint64_t seed, uint64_t offset) {
  curandGenerator_t gen;
  CURAND_OK(curandCreateGeneratorHost(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10));
  CURAND_OK(curandSetPseudoRandomGeneratorSeed(gen, seed));
  CURAND_OK(curandSetGeneratorOrdering(gen, CURAND_ORDERING_PSEUDO_LEGACY));
  CURAND_OK(curandSetGeneratorOffset(gen, offset));
  return gen;
}

const uint64_t kSeeds[] = {0ull, 42ull, 0xDEADBEEFCAFEF00Dull};
const uint64_t kFirsts[] = {0ull, 262140ull, (1ull << 32) + 8};
constexpr int64_t kCount = 1000003;  // not a multiple of 4

void check_uint32() {
  int64_t mismatches = 0;
  for (uint64_t seed : kSeeds) {
    for (uint64_t first : kFirsts) {
      DeviceBuffer<uint32_t> d(kCount);
      CUDA_OK(noise_cuda::curand_device_uint32(seed, first, kCount, d.ptr));
      std::vector<uint32_t> device = d.download(kCount), host(kCount);
      curandGenerator_t gen = host_generator(seed, first);
      CURAND_OK(curandGenerate(gen, host.data(), kCount));
      curandDestroyGenerator(gen);
      for (int64_t i = 0; i < kCount; ++i) mismatches += device[i] != host[i];
    }
  }
  char detail[128];
  std::snprintf(detail, sizeof detail, "%lld mismatches over %lld values", (long long)mismatches, (long long)(9 * kCount));
  report(mismatches == 0, "uint32 device curand4 vs libcurand host", detail);
}

void check_curand_normals() {
  double worst = 0, worst_rel = 0;
  for (uint64_t seed : kSeeds) {
    const int64_t count = kCount + 1;  // the host API needs an even count
    DeviceBuffer<float> d(count);
    CUDA_OK(noise_cuda::curand_device_normals(seed, 0, count, d.ptr));
    std::vector<float> device = d.download(count), host(count);
    curandGenerator_t gen = host_generator(seed, 0);
    CURAND_OK(curandGenerateNormal(gen, host.data(), count, 0.0f, 1.0f));
    curandDestroyGenerator(gen);
    for (int64_t i = 0; i < count; ++i) {
      double diff = std::fabs(double(device[i]) - host[i]);
      worst = std::max(worst, diff);
      worst_rel = std::max(worst_rel, diff / std::max(1.0, std::fabs(double(host[i]))));
    }
  }
  char detail[160];
  std::snprintf(detail, sizeof detail, "max |diff| %.3g, max |diff|/max(1,|z|) %.3g", worst, worst_rel);
  report(worst_rel <= 1e-4, "normals device curand_normal4 vs libcurand host", detail);
}

void check_tstar_unit_noise() {
  int64_t mismatches = 0;
  for (auto kind : {philox::Kind::kGaussian, philox::Kind::kUniform, philox::Kind::kLaplace}) {
    for (uint64_t seed : kSeeds) {
      for (uint64_t first : kFirsts) {
        DeviceBuffer<float> d(kCount);
        CUDA_OK(noise_cuda::tstar_device_unit_noise(kind, seed, first, kCount, d.ptr));
        std::vector<float> device = d.download(kCount);
        for (int64_t i = 0; i < kCount; ++i) {
          uint64_t n = first + i;
          float z[4];
          philox::unit_block(kind, seed, n >> 2, z);
          mismatches += std::memcmp(&device[i], &z[n & 3], sizeof(float)) != 0;
        }
      }
    }
  }
  char detail[128];
  std::snprintf(detail, sizeof detail, "%lld bit mismatches over %lld values", (long long)mismatches, (long long)(27 * kCount));
  report(mismatches == 0, "tstar unit noise device vs CPU (gaussian/uniform/laplace)", detail);
}

// CPU reference of the fused update (noise_kernels.h's formula).
float cpu_update(float c, float m, bool multiplicative, float z) { return c + (multiplicative ? m * c : m) * z; }

const char* dtype_label(noise_cuda::DType dtype) {
  switch (dtype) {
    case noise_cuda::DType::kBFloat16: return "bf16";
    case noise_cuda::DType::kFloat16: return "fp16";
    case noise_cuda::DType::kFloat32: return "fp32";
  }
  return "?";
}

// The dtype's bits of a float and back (the CPU engine's conversions).
uint32_t to_bits(noise_cuda::DType dtype, float f) {
  if (dtype == noise_cuda::DType::kBFloat16) return noise_kernels::float_to_bf16(f);
  if (dtype == noise_cuda::DType::kFloat16) return noise_kernels::float_to_fp16(f);
  return philox::float_bits(f);
}
float from_bits(noise_cuda::DType dtype, uint32_t b) {
  if (dtype == noise_cuda::DType::kBFloat16) return noise_kernels::bf16_to_float(static_cast<uint16_t>(b));
  if (dtype == noise_cuda::DType::kFloat16) return noise_kernels::fp16_to_float(static_cast<uint16_t>(b));
  return philox::bits_float(b);
}

struct FusedCase {
  noise_cuda::DType dtype;
  philox::Kind kind;
  bool multiplicative, per_row;
  int64_t misalign;  // elements the tensors start past an aligned address: 1 takes the scalar path
};

// The fused kernel against the CPU formula for every element, the changed count against the CPU's,
// and the sum of squares: the same bits on a second launch (fixed reduction order).
void check_fused(const FusedCase& fc) {
  const int64_t rows = 321, row_length = 1237, numel = rows * row_length;  // odd sizes
  const uint64_t seed = philox::tensor_seed(7, "model.layers.3.mlp.up_proj.weight", 33);
  const size_t elem = fc.dtype == noise_cuda::DType::kFloat32 ? 4 : 2;
  std::vector<float> clean_f(numel), row_mult(rows);
  std::vector<char> clean_bits(numel * elem);
  for (int64_t i = 0; i < numel; ++i) {
    const uint32_t b = to_bits(fc.dtype, 0.02f * std::sin(0.37f * float(i)) + 1e-3f * float(i % 7));
    std::memcpy(clean_bits.data() + i * elem, &b, elem);  // little endian: the low bytes
    clean_f[i] = from_bits(fc.dtype, b);
  }
  for (int64_t r = 0; r < rows; ++r) row_mult[r] = 1e-3f * float(1 + r % 5);
  const float mult = fc.multiplicative ? 0.01f : 5e-4f;
  DeviceBuffer<char> clean((numel + fc.misalign) * elem), live((numel + fc.misalign) * elem);
  char* clean_ptr = clean.ptr + fc.misalign * elem;
  char* live_ptr = live.ptr + fc.misalign * elem;
  DeviceBuffer<float> rows_d(rows);
  rows_d.upload(row_mult);
  CUDA_OK(cudaMemcpy(clean_ptr, clean_bits.data(), numel * elem, cudaMemcpyHostToDevice));
  const int grid = noise_cuda::fused_grid(numel);
  DeviceBuffer<unsigned long long> block_changed(grid), changed(1);
  DeviceBuffer<double> block_sum_sq(grid), sum_sq(1);
  noise_cuda::FusedArgs a;
  a.dtype = fc.dtype;
  a.clean = clean_ptr;
  a.live = live_ptr;
  a.numel = numel;
  a.stream_seed = seed;
  a.kind = fc.kind;
  a.mult = mult;
  a.row_mult = fc.per_row ? rows_d.ptr : nullptr;
  a.row_length = row_length;
  a.multiplicative = fc.multiplicative;
  a.block_changed = block_changed.ptr;
  a.block_sum_sq = block_sum_sq.ptr;
  double sums[2];
  unsigned long long device_changed = 0;
  for (double& total : sums) {
    CUDA_OK(noise_cuda::launch_fused_noise(a));
    CUDA_OK(noise_cuda::reduce_partials(block_changed.ptr, block_sum_sq.ptr, grid, changed.ptr, sum_sq.ptr));
    CUDA_OK(cudaDeviceSynchronize());
    total = sum_sq.download(1)[0];
    device_changed = changed.download(1)[0];
  }
  std::vector<char> out(numel * elem);
  CUDA_OK(cudaMemcpy(out.data(), live_ptr, numel * elem, cudaMemcpyDeviceToHost));
  int64_t mismatches = 0, cpu_changed = 0;
  double cpu_sum_sq = 0;
  for (int64_t i = 0; i < numel; ++i) {
    float z[4];
    philox::unit_block(fc.kind, seed, uint64_t(i) >> 2, z);
    float m = fc.per_row ? row_mult[i / row_length] : mult;
    const uint32_t expect = to_bits(fc.dtype, cpu_update(clean_f[i], m, fc.multiplicative, z[i & 3]));
    uint32_t got = 0;
    std::memcpy(&got, out.data() + i * elem, elem);
    mismatches += expect != got;
    const float r = from_bits(fc.dtype, expect);
    cpu_changed += r != clean_f[i];
    cpu_sum_sq += double(r - clean_f[i]) * double(r - clean_f[i]);
  }
  char what[128], detail[200];
  std::snprintf(what, sizeof what, "fused kernel %s %s %s%s%s vs CPU formula", dtype_label(fc.dtype),
                fc.kind == philox::Kind::kGaussian ? "gaussian" : fc.kind == philox::Kind::kUniform ? "uniform" : "laplace",
                fc.multiplicative ? "multiplicative" : "additive", fc.per_row ? " row_mult" : "",
                fc.misalign ? " unaligned" : "");
  const bool sums_repeat = std::memcmp(&sums[0], &sums[1], sizeof(double)) == 0;
  const double rel = std::fabs(sums[0] - cpu_sum_sq) / std::max(1e-300, cpu_sum_sq);
  std::snprintf(detail, sizeof detail, "%lld mismatches of %lld; changed device %llu cpu %lld; sum_sq repeat %s, rel diff to CPU %.2g",
                (long long)mismatches, (long long)numel, device_changed, (long long)cpu_changed,
                sums_repeat ? "bit-equal" : "DIFFERS", rel);
  report(mismatches == 0 && (long long)device_changed == cpu_changed && sums_repeat && rel < 1e-9, what, detail);
}

void fused_throughput() {
  const int64_t numel = int64_t{1} << 28;  // 256 M bf16 weights, 512 MiB
  DeviceBuffer<uint16_t> clean(numel), live(numel);
  CUDA_OK(cudaMemset(clean.ptr, 0x3c, numel * 2));
  noise_cuda::FusedArgs a;
  a.clean = clean.ptr;
  a.live = live.ptr;
  a.numel = numel;
  a.stream_seed = 1;
  a.mult = 1e-3f;
  cudaEvent_t start, stop;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  const int reps = 10;
  // Seconds per call of `step`, after one warm-up call.
  auto time_it = [&](auto step) {
    step();
    CUDA_OK(cudaEventRecord(start));
    for (int r = 0; r < reps; ++r) step();
    CUDA_OK(cudaEventRecord(stop));
    CUDA_OK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
    return ms / 1e3 / reps;
  };
  const double fused = time_it([&] { CUDA_OK(noise_cuda::launch_fused_noise(a)); });
  const double copy = time_it([&] { CUDA_OK(cudaMemcpyAsync(live.ptr, clean.ptr, numel * 2, cudaMemcpyDeviceToDevice)); });
  std::printf("[INFO] fused kernel bf16 gaussian: %.3f ms per 2^28 weights, %.1f G weights/s, %.0f GB/s (read+write); "
              "device-to-device copy %.0f GB/s; fused/copy %.2f\n",
              fused * 1e3, numel / fused / 1e9, numel * 4.0 / fused / 1e9, numel * 4.0 / copy / 1e9, copy / fused);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("noise_cuda_check: no CUDA device visible; nothing checked\n");
    return 2;
  }
  cudaDeviceProp prop;
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  check_uint32();
  check_curand_normals();
  check_tstar_unit_noise();
  using noise_cuda::DType;
  for (DType dtype : {DType::kBFloat16, DType::kFloat16, DType::kFloat32}) {
    for (auto kind : {philox::Kind::kGaussian, philox::Kind::kUniform, philox::Kind::kLaplace})
      check_fused({dtype, kind, false, false, 0});
    check_fused({dtype, philox::Kind::kGaussian, true, false, 0});
    check_fused({dtype, philox::Kind::kGaussian, false, true, 0});
    check_fused({dtype, philox::Kind::kGaussian, false, false, 1});
    check_fused({dtype, philox::Kind::kUniform, false, true, 1});
  }
  fused_throughput();
  std::printf("noise_cuda_check: %s (%d failed)\n", failures == 0 ? "PASS" : "FAIL", failures);
  return failures == 0 ? 0 : 1;
}
