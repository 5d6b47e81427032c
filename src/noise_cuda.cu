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

// Element storage: 16-bit dtypes as their bit patterns, converted with noise_kernels.h's functions
// (the CPU engine's rounding: nearest even).
struct Bf16Storage {
  using Bits = uint16_t;
  using Vec4 = uint2;  // 4 elements, 8 bytes
  __device__ static float to_float(uint16_t b) { return noise_kernels::bf16_to_float(b); }
  __device__ static uint16_t from_float(float f) { return noise_kernels::float_to_bf16(f); }
};
struct Fp16Storage {
  using Bits = uint16_t;
  using Vec4 = uint2;
  __device__ static float to_float(uint16_t h) { return noise_kernels::fp16_to_float(h); }
  __device__ static uint16_t from_float(float f) { return noise_kernels::float_to_fp16(f); }
};
struct Fp32Storage {
  using Bits = float;
  using Vec4 = float4;  // 16 bytes
  __device__ static float to_float(float f) { return f; }
  __device__ static float from_float(float f) { return f; }
};

// Running (changed, sum of squares) of one thread.
struct Tally {
  unsigned long long changed = 0;
  double sum_sq = 0.0;
};

// The update of one element (noise_kernels.h's formula); returns the stored bits.
template <typename S>
__device__ __forceinline__ typename S::Bits update(typename S::Bits clean_bits, float m, bool multiplicative, float z,
                                                   Tally& tally) {
  const float c = S::to_float(clean_bits);
  if (multiplicative) m = m * c;
  const typename S::Bits out = S::from_float(c + m * z);
  const float r = S::to_float(out);
  tally.changed += (r != c);
  const double d = static_cast<double>(r - c);
  tally.sum_sq += d * d;
  return out;
}

// Multipliers of elements 4b .. 4b+3: the tensor's, or each element's row's (rows may change inside a
// block when row_length is not a multiple of 4).
__device__ __forceinline__ void block_multipliers(const FusedArgs& a, int64_t first, float m[4]) {
  if (!a.row_mult) {
    m[0] = m[1] = m[2] = m[3] = a.mult;
    return;
  }
  int64_t row = first / a.row_length, row_end = (row + 1) * a.row_length;
  for (int k = 0; k < 4; ++k) {
    while (first + k >= row_end) {
      ++row;
      row_end += a.row_length;
    }
    m[k] = first + k < a.numel ? a.row_mult[row] : 0.0f;
  }
}

// One Philox block (elements 4b .. 4b+3); `vectorised`: one 4-element load and store.
template <typename S, bool kVectorised>
__device__ __forceinline__ void noise_block(const FusedArgs& a, int64_t b, Tally& tally) {
  using Bits = typename S::Bits;
  const int64_t first = 4 * b;
  const Bits* clean = static_cast<const Bits*>(a.clean);
  Bits* live = static_cast<Bits*>(a.live);
  float z[4], m[4];
  philox::unit_from_block(a.kind, curand_block(a.stream_seed, static_cast<uint64_t>(b)), z);
  block_multipliers(a, first, m);
  if (kVectorised && first + 4 <= a.numel) {
    typename S::Vec4 in = *reinterpret_cast<const typename S::Vec4*>(clean + first), out;
    Bits* ib = reinterpret_cast<Bits*>(&in);
    Bits* ob = reinterpret_cast<Bits*>(&out);
#pragma unroll
    for (int k = 0; k < 4; ++k) ob[k] = update<S>(ib[k], m[k], a.multiplicative, z[k], tally);
    *reinterpret_cast<typename S::Vec4*>(live + first) = out;
    return;
  }
  for (int k = 0; k < 4 && first + k < a.numel; ++k)
    live[first + k] = update<S>(clean[first + k], m[k], a.multiplicative, z[k], tally);
}

// Sum of a value over the block's threads in a fixed order (warp tree, then warps in order);
// the result is valid in thread 0.
template <typename T>
__device__ T block_sum(T value) {
  __shared__ T warp_sums[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xFFFFFFFFu, value, offset);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x / 32] = value;
  __syncthreads();
  T total = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  __syncthreads();
  return total;
}

template <typename S, bool kVectorised>
__global__ void __launch_bounds__(kThreads) fused_noise_kernel(FusedArgs a) {
  const int64_t blocks = (a.numel + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  Tally tally;
  int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  // Two blocks in flight per thread: their Philox rounds and loads overlap.
  for (; b + stride < blocks; b += 2 * stride) {
    noise_block<S, kVectorised>(a, b, tally);
    noise_block<S, kVectorised>(a, b + stride, tally);
  }
  if (b < blocks) noise_block<S, kVectorised>(a, b, tally);
  if (!a.block_changed && !a.block_sum_sq) return;
  const unsigned long long changed = block_sum(tally.changed);
  const double sum_sq = block_sum(tally.sum_sq);
  if (threadIdx.x == 0) {
    if (a.block_changed) a.block_changed[blockIdx.x] = changed;
    if (a.block_sum_sq) a.block_sum_sq[blockIdx.x] = sum_sq;
  }
}

__global__ void __launch_bounds__(kThreads) reduce_partials_kernel(const unsigned long long* block_changed,
                                                                   const double* block_sum_sq, int count,
                                                                   unsigned long long* changed_out, double* sum_sq_out) {
  unsigned long long changed = 0;
  double sum_sq = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    if (block_changed) changed += block_changed[i];
    if (block_sum_sq) sum_sq += block_sum_sq[i];
  }
  changed = block_sum(changed);
  sum_sq = block_sum(sum_sq);
  if (threadIdx.x == 0) {
    if (changed_out) *changed_out = changed;
    if (sum_sq_out) *sum_sq_out = sum_sq;
  }
}

template <typename S>
cudaError_t launch_for(const FusedArgs& a, cudaStream_t stream) {
  constexpr uintptr_t kVectorBytes = sizeof(typename S::Vec4);
  const bool aligned = (reinterpret_cast<uintptr_t>(a.clean) | reinterpret_cast<uintptr_t>(a.live)) % kVectorBytes == 0;
  if (aligned) {
    fused_noise_kernel<S, true><<<fused_grid(a.numel), kThreads, 0, stream>>>(a);
  } else {
    fused_noise_kernel<S, false><<<fused_grid(a.numel), kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
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

int fused_grid(int64_t numel) {
  constexpr int64_t kMaxGrid = 2048;  // ~16 resident blocks per SM on an H100/H200: enough in flight
  const int64_t blocks = (numel + 3) / 4;
  const int64_t grid = (blocks + 2 * kThreads - 1) / (2 * kThreads);
  return static_cast<int>(grid < 1 ? 1 : (grid > kMaxGrid ? kMaxGrid : grid));
}

cudaError_t launch_fused_noise(const FusedArgs& args, cudaStream_t stream) {
  if (args.numel <= 0) return cudaSuccess;
  if (args.row_mult && args.row_length < 1) return cudaErrorInvalidValue;
  switch (args.dtype) {
    case DType::kBFloat16: return launch_for<Bf16Storage>(args, stream);
    case DType::kFloat16: return launch_for<Fp16Storage>(args, stream);
    case DType::kFloat32: return launch_for<Fp32Storage>(args, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t reduce_partials(const unsigned long long* block_changed, const double* block_sum_sq, int count,
                            unsigned long long* changed_out, double* sum_sq_out, cudaStream_t stream) {
  reduce_partials_kernel<<<1, kThreads, 0, stream>>>(block_changed, block_sum_sq, count, changed_out, sum_sq_out);
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
