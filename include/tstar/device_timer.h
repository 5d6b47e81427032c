// Wall time of work on a device, for benchmarks: on a CUDA device, CUDA events recorded on the current
// stream (the GPU's own clock; the host waits only in stop(), where the time is read); on the CPU,
// the steady clock. Builds without the CUDA engine refuse a CUDA device with a message.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>

namespace tstar {

class DeviceTimer {
 public:
  explicit DeviceTimer(torch::Device device);
  ~DeviceTimer();
  DeviceTimer(const DeviceTimer&) = delete;
  DeviceTimer& operator=(const DeviceTimer&) = delete;

  void start();
  // Seconds since start(): waits for the device work queued before this call.
  double stop();

 private:
  struct CudaEvents;
  torch::Device device_;
  std::unique_ptr<CudaEvents> events_;  // CUDA devices only
  std::chrono::steady_clock::time_point started_;
};

// Waits for the work queued on `device` (nothing to wait for on the CPU).
void synchronize(torch::Device device);

}  // namespace tstar
