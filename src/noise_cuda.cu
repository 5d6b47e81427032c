// Fused generate-scale-add noise kernel (see noise_cuda.h). Compile with -fmad=false: the noise
// formulas are defined by unfused float multiplies and adds (philox.h).
#include <curand_kernel.h>

#include <type_traits>

#include "noise_cuda.h"
#include "tstar/noise_kernels.h"

namespace tstar::noise_cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ philox::Block curand_block(uint64_t seed, uint64_t block) {
  // cuRAND's Philox4x32-10 at counter {lo32(b >> 16), hi32(b >> 16), b & 0xFFFF, 0} (philox.h).
  uint64_t hi = block >> 16;
  uint4 ctr = make_uint4(static_cast<uint32_t>(hi), static_cast<uint32_t>(hi >> 32),
                         static_cast<uint32_t>(block & 0xFFFFu), 0u);
  uint2 key = make_uint2(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  uint4 r = curand_Philox4x32_10(ctr, key);
  return philox::Block{{r.x, r.y, r.z, r.w}};
}

__device__ __forceinline__ float load(DType dtype, const void* p, int64_t i) {
  if (dtype == DType::kBFloat16) return noise_kernels::bf16_to_float(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

__device__ __forceinline__ float store(DType dtype, void* p, int64_t i, float value) {
  if (dtype == DType::kBFloat16) {
    uint16_t b = noise_kernels::float_to_bf16(value);
    static_cast<uint16_t*>(p)[i] = b;
    return noise_kernels::bf16_to_float(b);
  }
  static_cast<float*>(p)[i] = value;
  return value;
}

__global__ void fused_noise_kernel(FusedArgs a) {
  const int64_t blocks = (a.numel + 3) / 4;
  unsigned long long changed = 0;
  double sum_sq = 0.0;
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < blocks;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float z[4];
    philox::unit_from_block(a.kind, curand_block(a.stream_seed, static_cast<uint64_t>(b)), z);
    for (int k = 0; k < 4; ++k) {
      const int64_t n = 4 * b + k;
      if (n >= a.numel) break;
      const float c = load(a.dtype, a.clean, n);
      float m = a.row_mult ? a.row_mult[n / a.row_length] : a.mult;
      if (a.multiplicative) m = m * c;
      const float r = store(a.dtype, a.live, n, c + m * z[k]);
      changed += (r != c);
      const double d = static_cast<double>(r - c);
      sum_sq += d * d;
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    changed += __shfl_down_sync(0xFFFFFFFFu, changed, offset);
    sum_sq += __shfl_down_sync(0xFFFFFFFFu, sum_sq, offset);
  }
  if ((threadIdx.x & 31) == 0) {
    if (a.changed) atomicAdd(a.changed, changed);
    if (a.sum_sq) atomicAdd(a.sum_sq, sum_sq);
  }
}

// Element i of the output: component of curand4 (uint32) or curand_normal4 (float) after
// curand_init at the element's documented position.
template <typename T>
__global__ void curand_device_api_kernel(uint64_t seed, uint64_t first, int64_t count, T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    philox::CurandPosition pos = philox::curand_position(first + i);
    curandStatePhilox4_32_10_t state;
    curand_init(seed, pos.subsequence, pos.offset, &state);
    if constexpr (std::is_same_v<T, uint32_t>) {
      uint4 r = curand4(&state);
      const uint32_t c[4] = {r.x, r.y, r.z, r.w};
      out[i] = c[pos.component];
    } else {
      float4 r = curand_normal4(&state);
      const float c[4] = {r.x, r.y, r.z, r.w};
      out[i] = c[pos.component];
    }
  }
}

__global__ void tstar_unit_kernel(philox::Kind kind, uint64_t seed, uint64_t first, int64_t count, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t n = first + i;
    float z[4];
    philox::unit_from_block(kind, curand_block(seed, n >> 2), z);
    out[i] = z[n & 3];
  }
}

int grid_for(int64_t work) {
  int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

}  // namespace

cudaError_t launch_fused_noise(const FusedArgs& args, cudaStream_t stream) {
  if (args.numel <= 0) return cudaSuccess;
  fused_noise_kernel<<<grid_for((args.numel + 3) / 4), kThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

cudaError_t curand_device_uint32(uint64_t seed, uint64_t first, int64_t count, uint32_t* out_device) {
  if (count <= 0) return cudaSuccess;
  curand_device_api_kernel<uint32_t><<<grid_for(count), kThreads>>>(seed, first, count, out_device);
  return cudaGetLastError();
}

cudaError_t curand_device_normals(uint64_t seed, uint64_t first, int64_t count, float* out_device) {
  if (count <= 0) return cudaSuccess;
  curand_device_api_kernel<float><<<grid_for(count), kThreads>>>(seed, first, count, out_device);
  return cudaGetLastError();
}

cudaError_t tstar_device_unit_noise(philox::Kind kind, uint64_t seed, uint64_t first, int64_t count,
                                    float* out_device) {
  if (count <= 0) return cudaSuccess;
  tstar_unit_kernel<<<grid_for(count), kThreads>>>(kind, seed, first, count, out_device);
  return cudaGetLastError();
}

}  // namespace tstar::noise_cuda
