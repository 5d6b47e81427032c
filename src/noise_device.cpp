// The noise engine's dispatch and CUDA side (see noise_device.h).
#include "noise_device.h"

#include <fmt/format.h>

#include <limits>

#include "tstar/error.h"

#ifndef TSTAR_WITH_CUDA_ENGINE
#define TSTAR_WITH_CUDA_ENGINE 0
#endif
#if TSTAR_WITH_CUDA_ENGINE
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "noise_cuda.h"
#endif

namespace tstar::noise_device {

bool cuda_engine_built() { return TSTAR_WITH_CUDA_ENGINE != 0; }

Backend backend_for(const std::string& name, torch::Device device, torch::ScalarType dtype, bool contiguous,
                    bool cuda_engine) {
  if (dtype != torch::kFloat && dtype != torch::kBFloat16 && dtype != torch::kHalf)
    throw Error(fmt::format("noise: tensor {} has dtype {}; fp32, bf16 and fp16 are supported", name,
                            c10::toString(dtype)));
  if (!contiguous) throw Error(fmt::format("noise: tensor {} must be contiguous", name));
  if (device.is_cpu()) return Backend::kCpu;
  if (device.is_cuda()) {
    if (cuda_engine) return Backend::kCuda;
    throw Error(fmt::format("noise: tensor {} is on {}, but this build has no CUDA noise engine (it needs a "
                            "libtorch with CUDA and nvcc when configuring: TSTAR_TORCH=pypi, README \"GPU\")",
                            name, device.str()));
  }
  throw Error(fmt::format("noise: tensor {} is on {}; the engine runs on cpu and cuda tensors", name, device.str()));
}

#if TSTAR_WITH_CUDA_ENGINE

namespace {

void check_cuda(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess)
    throw Error(fmt::format("{}: CUDA error {} ({})", what, cudaGetErrorName(status), cudaGetErrorString(status)));
}

noise_cuda::DType kernel_dtype(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kBFloat16: return noise_cuda::DType::kBFloat16;
    case torch::kHalf: return noise_cuda::DType::kFloat16;
    default: return noise_cuda::DType::kFloat32;  // backend_for admitted fp32/bf16/fp16 only
  }
}

}  // namespace

DeviceTallies::DeviceTallies(torch::Device device, size_t targets) {
  const int64_t most_blocks = noise_cuda::fused_grid(std::numeric_limits<int64_t>::max() / 2);
  const auto on = torch::TensorOptions().device(device);
  block_changed_ = torch::zeros({most_blocks}, on.dtype(torch::kLong));  // read as unsigned long long
  block_sum_sq_ = torch::zeros({most_blocks}, on.dtype(torch::kDouble));
  changed_ = torch::zeros({static_cast<int64_t>(targets)}, on.dtype(torch::kLong));
  sum_sq_ = torch::zeros({static_cast<int64_t>(targets)}, on.dtype(torch::kDouble));
}

void DeviceTallies::launch(const std::string& name, const torch::Tensor& clean, const torch::Tensor& live,
                           const KernelPass& pass, size_t slot) {
  TSTAR_CHECK(defined() && slot < static_cast<size_t>(changed_.numel()));
  const c10::cuda::CUDAGuard guard(live.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(live.device().index()).stream();
  torch::Tensor row_mult;
  if (!pass.row_mult.empty()) {
    row_mult = torch::tensor(pass.row_mult, torch::kFloat).to(live.device());
  }
  noise_cuda::FusedArgs a;
  a.dtype = kernel_dtype(live.scalar_type());
  a.clean = clean.data_ptr();
  a.live = live.data_ptr();
  a.numel = live.numel();
  a.stream_seed = pass.stream_seed;
  a.kind = pass.kind;
  a.mult = pass.mult;
  a.row_mult = row_mult.defined() ? row_mult.data_ptr<float>() : nullptr;
  a.row_length = pass.row_length;
  a.multiplicative = pass.mode == noise_kernels::Mode::kMultiplicative;
  a.block_changed = reinterpret_cast<unsigned long long*>(block_changed_.data_ptr<int64_t>());
  a.block_sum_sq = block_sum_sq_.data_ptr<double>();
  check_cuda(noise_cuda::launch_fused_noise(a, stream), fmt::format("noise kernel for {}", name));
  // An empty tensor launches no kernel: its tallies are a sum over no blocks.
  const int blocks = a.numel > 0 ? noise_cuda::fused_grid(a.numel) : 0;
  check_cuda(noise_cuda::reduce_partials(a.block_changed, a.block_sum_sq, blocks,
                                         reinterpret_cast<unsigned long long*>(changed_.data_ptr<int64_t>()) + slot,
                                         sum_sq_.data_ptr<double>() + slot, stream),
             fmt::format("noise tallies of {}", name));
}

std::vector<noise_kernels::ApplyStats> DeviceTallies::read() const {
  torch::Tensor changed, sum_sq;
  try {
    changed = changed_.to(torch::kCPU);  // synchronises with the launches
    sum_sq = sum_sq_.to(torch::kCPU);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("noise kernels on {}: {}", changed_.device().str(), e.what_without_backtrace()));
  }
  std::vector<noise_kernels::ApplyStats> out(static_cast<size_t>(changed.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].changed = changed.data_ptr<int64_t>()[i];
    out[i].sum_sq = sum_sq.data_ptr<double>()[i];
  }
  return out;
}

#else

namespace {
[[noreturn]] void no_cuda_engine() {
  throw Error("noise: this build has no CUDA noise engine (README \"GPU\")");
}
}  // namespace

DeviceTallies::DeviceTallies(torch::Device, size_t) { no_cuda_engine(); }
void DeviceTallies::launch(const std::string&, const torch::Tensor&, const torch::Tensor&, const KernelPass&, size_t) {
  no_cuda_engine();
}
std::vector<noise_kernels::ApplyStats> DeviceTallies::read() const { no_cuda_engine(); }

#endif

}  // namespace tstar::noise_device
