// noise_cuda_check: on a machine with a GPU, checks the device noise streams and the fused kernel.
//   1. uint32: curand_init/curand4 on the device at philox.h's counters == libcurand host API (exact)
//   2. cuRAND's own device normals (curand_normal4) vs the host API: max |diff| reported; fails only
//      beyond 1e-4 * max(1, |z|) (the device's __sincosf is less accurate than the host's sinf/cosf)
//   3. tstar's unit noise on the device == philox.h on the CPU (exact: same float math, -fmad=false)
//   4. the fused kernel (bf16 and fp32, additive/multiplicative, row multipliers) == the CPU
//      engine's per-element formula (exact), changed counts equal
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

void check_fused(noise_cuda::DType dtype, bool multiplicative, bool per_row) {
  const int64_t rows = 321, row_length = 1237, numel = rows * row_length;  // odd sizes
  const uint64_t seed = philox::tensor_seed(7, "model.layers.3.mlp.up_proj.weight", 33);
  std::vector<float> clean_f(numel), row_mult(rows);
  for (int64_t i = 0; i < numel; ++i) clean_f[i] = 0.02f * std::sin(0.37f * float(i)) + 1e-3f * float(i % 7);
  for (int64_t r = 0; r < rows; ++r) row_mult[r] = 1e-3f * float(1 + r % 5);
  const float mult = 5e-4f;
  const bool bf16 = dtype == noise_cuda::DType::kBFloat16;
  std::vector<uint16_t> clean_b(numel);
  for (int64_t i = 0; i < numel; ++i) {
    clean_b[i] = noise_kernels::float_to_bf16(clean_f[i]);
    if (bf16) clean_f[i] = noise_kernels::bf16_to_float(clean_b[i]);
  }
  const size_t elem = bf16 ? 2 : 4;
  DeviceBuffer<char> clean(numel * elem), live(numel * elem);
  DeviceBuffer<float> rows_d(rows);
  rows_d.upload(row_mult);
  CUDA_OK(cudaMemcpy(clean.ptr, bf16 ? static_cast<const void*>(clean_b.data()) : clean_f.data(), numel * elem,
                     cudaMemcpyHostToDevice));
  DeviceBuffer<unsigned long long> changed(1);
  DeviceBuffer<double> sum_sq(1);
  CUDA_OK(cudaMemset(changed.ptr, 0, sizeof(unsigned long long)));
  CUDA_OK(cudaMemset(sum_sq.ptr, 0, sizeof(double)));
  noise_cuda::FusedArgs a;
  a.dtype = dtype;
  a.clean = clean.ptr;
  a.live = live.ptr;
  a.numel = numel;
  a.stream_seed = seed;
  a.mult = mult;
  a.row_mult = per_row ? rows_d.ptr : nullptr;
  a.row_length = row_length;
  a.multiplicative = multiplicative;
  a.changed = changed.ptr;
  a.sum_sq = sum_sq.ptr;
  CUDA_OK(noise_cuda::launch_fused_noise(a));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<char> out = live.download(numel * elem);
  int64_t mismatches = 0, cpu_changed = 0;
  for (int64_t i = 0; i < numel; ++i) {
    float z[4];
    philox::unit_block(philox::Kind::kGaussian, seed, uint64_t(i) >> 2, z);
    float m = per_row ? row_mult[i / row_length] : mult;
    float noisy = cpu_update(clean_f[i], m, multiplicative, z[i & 3]);
    if (bf16) {
      uint16_t expect = noise_kernels::float_to_bf16(noisy), got;
      std::memcpy(&got, out.data() + i * 2, 2);
      mismatches += expect != got;
      cpu_changed += noise_kernels::bf16_to_float(expect) != clean_f[i];
    } else {
      float got;
      std::memcpy(&got, out.data() + i * 4, 4);
      mismatches += std::memcmp(&got, &noisy, 4) != 0;
      cpu_changed += noisy != clean_f[i];
    }
  }
  unsigned long long device_changed = changed.download(1)[0];
  char what[96], detail[160];
  std::snprintf(what, sizeof what, "fused kernel %s %s%s vs CPU formula", bf16 ? "bf16" : "fp32",
                multiplicative ? "multiplicative" : "additive", per_row ? " row_mult" : "");
  std::snprintf(detail, sizeof detail, "%lld mismatches of %lld; changed device %llu cpu %lld",
                (long long)mismatches, (long long)numel, device_changed, (long long)cpu_changed);
  report(mismatches == 0 && (long long)device_changed == cpu_changed, what, detail);
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
  CUDA_OK(noise_cuda::launch_fused_noise(a));  // warm-up
  const int reps = 10;
  CUDA_OK(cudaEventRecord(start));
  for (int r = 0; r < reps; ++r) CUDA_OK(noise_cuda::launch_fused_noise(a));
  CUDA_OK(cudaEventRecord(stop));
  CUDA_OK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
  double seconds = ms / 1e3 / reps;
  std::printf("[INFO] fused kernel bf16 gaussian: %.3f ms per 2^28 weights, %.1f G weights/s, %.0f GB/s (read+write)\n",
              seconds * 1e3, numel / seconds / 1e9, numel * 4.0 / seconds / 1e9);
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
  for (auto dtype : {noise_cuda::DType::kBFloat16, noise_cuda::DType::kFloat32}) {
    check_fused(dtype, false, false);
    check_fused(dtype, true, false);
    check_fused(dtype, false, true);
  }
  fused_throughput();
  std::printf("noise_cuda_check: %s (%d failed)\n", failures == 0 ? "PASS" : "FAIL", failures);
  return failures == 0 ? 0 : 1;
}
