// The device side of the noise engine (noise_cuda.cu; built only where nvcc exists): a fused
// generate-scale-add kernel over raw fp32/bf16 device pointers. The uint32 stream comes from
// cuRAND's own Philox4x32-10 (curand_kernel.h) at the counters philox.h documents; the unit noise
// and the update use philox.h's float math, compiled with -fmad=false, so the device writes the
// same weights as the CPU engine bit for bit. No torch here: noise_cuda_check links it standalone.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "tstar/philox.h"

namespace tstar::noise_cuda {

enum class DType { kFloat32, kBFloat16, kFloat16 };

struct FusedArgs {
  DType dtype = DType::kBFloat16;
  const void* clean = nullptr;  // device, numel elements
  void* live = nullptr;         // device, numel elements
  int64_t numel = 0;
  uint64_t stream_seed = 0;     // philox::tensor_seed(user seed, name)
  philox::Kind kind = philox::Kind::kGaussian;
  float mult = 0.0f;            // s * ref (or s for multiplicative)
  const float* row_mult = nullptr;  // device, per-row multipliers (row_std); overrides mult
  int64_t row_length = 1;
  bool multiplicative = false;
  // Per CUDA block of the launch (fused_grid(numel) entries each, overwritten), or null: elements
  // whose value changed and the sum of (rounded - clean)^2, each block's in a fixed order, so
  // reduce_partials() gives the same totals on every run.
  unsigned long long* block_changed = nullptr;
  double* block_sum_sq = nullptr;
};

// CUDA blocks of launch_fused_noise for a tensor of numel elements: a function of numel alone (not of
// the device), so the partial sums and their reduction order are too.
int fused_grid(int64_t numel);

// live = round(clean + delta) in one pass; see noise_kernels.h for the per-element formula. Each
// thread takes whole Philox blocks (4 normals per call, grid-stride, two blocks in flight), with
// 8-byte (16-bit dtypes) or 16-byte (fp32) loads and stores where both pointers allow them.
cudaError_t launch_fused_noise(const FusedArgs& args, cudaStream_t stream = nullptr);

// changed_out[0] / sum_sq_out[0] := the sums of `count` block partials in block order (one CUDA block,
// fixed reduction tree), on `stream`.
cudaError_t reduce_partials(const unsigned long long* block_changed, const double* block_sum_sq, int count,
                            unsigned long long* changed_out, double* sum_sq_out, cudaStream_t stream = nullptr);

// Stream elements [first, first + count) on the device, for checks against libcurand:
// curand_init(seed, (n >> 2) & 65535, 4 * (n >> 18)) + curand4 (uint32) or curand_normal4 (cuRAND's
// own device normals), and tstar's unit noise (philox.h math on the device).
cudaError_t curand_device_uint32(uint64_t seed, uint64_t first, int64_t count, uint32_t* out_device);
cudaError_t curand_device_normals(uint64_t seed, uint64_t first, int64_t count, float* out_device);
cudaError_t tstar_device_unit_noise(philox::Kind kind, uint64_t seed, uint64_t first, int64_t count,
                                    float* out_device);

}  // namespace tstar::noise_cuda
