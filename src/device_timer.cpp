#include "tstar/device_timer.h"

#include <fmt/format.h>

#include "tstar/error.h"

#ifndef TSTAR_WITH_CUDA_ENGINE
#define TSTAR_WITH_CUDA_ENGINE 0
#endif
#if TSTAR_WITH_CUDA_ENGINE
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

namespace tstar {

#if TSTAR_WITH_CUDA_ENGINE

namespace {
void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw Error(fmt::format("device timer: {}: CUDA error {} ({})", what, cudaGetErrorName(status), cudaGetErrorString(status)));
}
}  // namespace

struct DeviceTimer::CudaEvents {
  cudaEvent_t start = nullptr, stop = nullptr;
  explicit CudaEvents(torch::Device device) {
    const c10::cuda::CUDAGuard guard(device);
    check_cuda(cudaEventCreate(&start), "cudaEventCreate");
    if (cudaError_t status = cudaEventCreate(&stop); status != cudaSuccess) {
      cudaEventDestroy(start);
      check_cuda(status, "cudaEventCreate");
    }
  }
  ~CudaEvents() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
};

DeviceTimer::DeviceTimer(torch::Device device) : device_(device) {
  if (device_.is_cuda()) events_ = std::make_unique<CudaEvents>(device_);
}

void DeviceTimer::start() {
  if (!events_) {
    started_ = std::chrono::steady_clock::now();
    return;
  }
  check_cuda(cudaEventRecord(events_->start, c10::cuda::getCurrentCUDAStream(device_.index()).stream()), "cudaEventRecord");
}

double DeviceTimer::stop() {
  if (!events_) return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  check_cuda(cudaEventRecord(events_->stop, c10::cuda::getCurrentCUDAStream(device_.index()).stream()), "cudaEventRecord");
  check_cuda(cudaEventSynchronize(events_->stop), "cudaEventSynchronize");
  float ms = 0;
  check_cuda(cudaEventElapsedTime(&ms, events_->start, events_->stop), "cudaEventElapsedTime");
  return ms / 1e3;
}

void synchronize(torch::Device device) {
  if (!device.is_cuda()) return;
  const c10::cuda::CUDAGuard guard(device);
  check_cuda(cudaStreamSynchronize(c10::cuda::getCurrentCUDAStream(device.index()).stream()), "cudaStreamSynchronize");
}

#else

struct DeviceTimer::CudaEvents {};

DeviceTimer::DeviceTimer(torch::Device device) : device_(device) {
  if (!device_.is_cpu())
    throw Error(fmt::format("device timer: {} needs a build with the CUDA engine (README \"GPU\")", device_.str()));
}

void DeviceTimer::start() { started_ = std::chrono::steady_clock::now(); }

double DeviceTimer::stop() { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count(); }

void synchronize(torch::Device device) {
  if (!device.is_cpu()) throw Error(fmt::format("synchronize: {} needs a build with the CUDA engine", device.str()));
}

#endif

DeviceTimer::~DeviceTimer() = default;

}  // namespace tstar
