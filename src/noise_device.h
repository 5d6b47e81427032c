// Where the noise engine runs a tensor, and its CUDA side (noise_device.cpp): the fused kernel of
// noise_cuda.h launched on libtorch's current CUDA stream, with each tensor's realized-noise tallies
// reduced on the device in a fixed order and read back once per injection. Built into every libtorch;
// the CUDA parts exist only where the libtorch has CUDA and nvcc compiled the kernel
// (TSTAR_WITH_CUDA_ENGINE), elsewhere CUDA tensors are refused with a message saying so.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tstar/noise_kernels.h"
#include "tstar/philox.h"

namespace tstar::noise_device {

enum class Backend { kCpu, kCuda };

// True when this build runs the engine on CUDA tensors.
bool cuda_engine_built();

// The engine that writes tensor `name`: kCpu for CPU tensors, kCuda for CUDA tensors when `cuda_engine`;
// throws tstar::Error naming the tensor for another dtype than fp32/bf16/fp16, a non-contiguous
// tensor, a CUDA tensor without the CUDA engine, or another device.
Backend backend_for(const std::string& name, torch::Device device, torch::ScalarType dtype, bool contiguous,
                    bool cuda_engine = cuda_engine_built());

// One tensor's pass: live := round(clean + mult * z) (additive) or clean + (mult * clean) * z.
struct KernelPass {
  uint64_t stream_seed = 0;
  philox::Kind kind = philox::Kind::kGaussian;
  noise_kernels::Mode mode = noise_kernels::Mode::kAdditive;
  float mult = 0.0f;            // the whole tensor's, unless row_mult is given
  std::vector<float> row_mult;  // per row of row_length elements (the row_std reference), or empty
  int64_t row_length = 1;
};

// The device buffers of one engine's injections: per-CUDA-block partials (reused tensor after
// tensor, in stream order) and per-target totals.
class DeviceTallies {
 public:
  DeviceTallies() = default;
  DeviceTallies(torch::Device device, size_t targets);
  bool defined() const { return changed_.defined(); }
  torch::Device device() const { return changed_.device(); }
  // Launches the pass for one tensor on the current CUDA stream and reduces its tallies into slot
  // `slot`; asynchronous. Throws tstar::Error naming the tensor when a launch fails.
  void launch(const std::string& name, const torch::Tensor& clean, const torch::Tensor& live, const KernelPass& pass,
              size_t slot);
  // Every slot's (changed, sum of squares), after the launches have finished: one synchronisation.
  // Throws tstar::Error when a kernel failed.
  std::vector<noise_kernels::ApplyStats> read() const;

 private:
  torch::Tensor block_changed_, block_sum_sq_, changed_, sum_sq_;
};

}  // namespace tstar::noise_device
