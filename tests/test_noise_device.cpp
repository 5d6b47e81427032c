// The noise engine on devices: the dispatch (which engine writes a tensor, and the refusals), the
// device kernel's conversions and formula on the host, and - on a machine with a GPU and a build
// with the CUDA engine - the CUDA engine against the CPU engine, by digest of the noised weights.
#include <gtest/gtest.h>

#include <c10/util/Half.h>

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "noise_device.h"
#include "tstar/device_timer.h"
#include "tstar/error.h"
#include "tstar/model.h"
#include "tstar/noise.h"
#include "tstar/noise_kernels.h"
#include "tstar/provenance.h"

#if TSTAR_WITH_CUDA_ENGINE
#include "noise_cuda.h"
#endif

namespace tstar {
namespace {

using noise_device::Backend;
using noise_device::backend_for;

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no tstar::Error)";
}

// ---------------------------------------------------------------- dispatch

TEST(NoiseDispatch, CpuTensorsTakeTheCpuEngineInEveryBuild) {
  for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
    EXPECT_EQ(backend_for("w", torch::kCPU, dtype, true, false), Backend::kCpu);
    EXPECT_EQ(backend_for("w", torch::kCPU, dtype, true, true), Backend::kCpu);
  }
}

TEST(NoiseDispatch, CudaTensorsTakeTheKernelOnlyWhereItIsBuilt) {
  const torch::Device gpu(torch::kCUDA, 0);  // a device description: no GPU needed
  for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf})
    EXPECT_EQ(backend_for("w", gpu, dtype, true, true), Backend::kCuda);
  const std::string refusal = message_of([&] { backend_for("model.layers.0.mlp.up_proj.weight", gpu, torch::kBFloat16, true, false); });
  EXPECT_NE(refusal.find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("no CUDA noise engine"), std::string::npos) << refusal;
}

TEST(NoiseDispatch, OtherDtypesDevicesAndLayoutsAreRefusedByName) {
  EXPECT_NE(message_of([] { backend_for("w.int", torch::kCPU, torch::kInt, true, true); }).find("w.int has dtype"),
            std::string::npos);
  EXPECT_NE(message_of([] { backend_for("w.strided", torch::kCPU, torch::kFloat, false, true); }).find("w.strided must be contiguous"),
            std::string::npos);
  EXPECT_NE(message_of([] { backend_for("w.meta", torch::kMeta, torch::kFloat, true, true); }).find("w.meta is on meta"),
            std::string::npos);
}

TEST(NoiseDispatch, TheEngineRefusesATensorItCannotWriteBeforeTouchingAny) {
  ParameterMap params;
  params.add("a.weight", torch::ones({8, 8}));
  params.add("b.weight", torch::ones({8, 8}).t());  // a transposed view: not contiguous
  EXPECT_THROW(NoiseEngine(params, {0, 1}, NoiseType{}, ScaleReference::kTensorStd), Error);
  EXPECT_TRUE(torch::equal(params.at("a.weight"), torch::ones({8, 8})));
  ParameterMap on_meta;
  on_meta.add("m.weight", torch::empty({4, 4}, torch::TensorOptions().device(torch::kMeta)));
  EXPECT_THROW(NoiseEngine(on_meta, {0}, NoiseType{}, ScaleReference::kTensorStd), Error);
}

// ---------------------------------------------------------------- the kernel's host-side math

uint32_t bits_of(float f) { return philox::float_bits(f); }

TEST(NoiseDeviceMath, HalfToFloatIsC10sForEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float expected = c10::detail::fp16_ieee_to_fp32_value(static_cast<uint16_t>(h));
    ASSERT_EQ(bits_of(noise_kernels::fp16_to_float(static_cast<uint16_t>(h))), bits_of(expected)) << std::hex << h;
  }
}

TEST(NoiseDeviceMath, FloatToHalfIsC10sRoundToNearestEven) {
  auto check = [](uint32_t u) {
    const float f = philox::bits_float(u);
    ASSERT_EQ(noise_kernels::float_to_fp16(f), c10::detail::fp16_ieee_from_fp32_value(f)) << std::hex << u;
  };
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4093) check(static_cast<uint32_t>(u));  // ~1 M patterns
  // Every float around each half and each tie between halves, both signs: the rounding boundaries.
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    const uint32_t at = bits_of(noise_kernels::fp16_to_float(static_cast<uint16_t>(h)));
    const uint32_t next = bits_of(noise_kernels::fp16_to_float(static_cast<uint16_t>(h + 1)));
    const uint32_t tie = bits_of((philox::bits_float(at) + philox::bits_float(next)) / 2);  // exact in float
    for (uint32_t u : {at, at + 1, tie - 1, tie, tie + 1, next - 1}) {
      check(u);
      check(u | 0x80000000u);
    }
  }
  for (float f : {65504.0f, 65519.996f, 65520.0f, 1e9f, INFINITY, -INFINITY, NAN, 5.9604645e-8f, 2.9802322e-8f, 0.0f, -0.0f})
    check(bits_of(f));
}

// The kernel's element update (noise_cuda.cu: c + m z, m = mult or mult * c, rounded by the device's
// conversions) against the CPU engine's fp16 path (c10's conversions), every kind and reference.
TEST(NoiseDeviceMath, Fp16UpdateWithTheDeviceConversionsIsTheCpuEngines) {
  for (const auto& row : noise_kinds()) {
    for (auto reference : {ScaleReference::kTensorStd, ScaleReference::kRowStd, ScaleReference::kAbsMax}) {
      if (row.type.mode == noise_kernels::Mode::kMultiplicative && reference != ScaleReference::kTensorStd) continue;
      ParameterMap params;
      torch::Tensor w = (torch::arange(0, 37 * 53, torch::kFloat).reshape({37, 53}) * 0.37).sin() * 0.05;
      params.add("w.weight", w.to(torch::kHalf).contiguous());
      const torch::Tensor clean = params.at("w.weight").clone();
      NoiseEngine engine(params, {0}, row.type, reference);
      const double scale = 0.03;
      const uint64_t seed = 11;
      engine.inject(scale, seed);
      const uint64_t stream = philox::splitmix64(philox::splitmix64(seed) ^ philox::fnv1a64("w.weight", 8));
      const auto* c = reinterpret_cast<const uint16_t*>(clean.data_ptr<at::Half>());
      const auto* got = reinterpret_cast<const uint16_t*>(params.at("w.weight").data_ptr<at::Half>());
      // The engine's statistics: two passes in double, in element order (one chunk of this size).
      auto unbiased_std = [&](int64_t begin, int64_t count) {
        double sum = 0, dev = 0;
        for (int64_t i = begin; i < begin + count; ++i) sum += noise_kernels::fp16_to_float(c[i]);
        const double mean = sum / count;
        for (int64_t i = begin; i < begin + count; ++i) dev += (noise_kernels::fp16_to_float(c[i]) - mean) * (noise_kernels::fp16_to_float(c[i]) - mean);
        return std::sqrt(dev / (count - 1));
      };
      double abs_max = 0;
      for (int64_t i = 0; i < clean.numel(); ++i) abs_max = std::max<double>(abs_max, std::fabs(noise_kernels::fp16_to_float(c[i])));
      const double tensor_std = unbiased_std(0, clean.numel());
      int64_t mismatches = 0;
      for (int64_t n = 0; n < clean.numel(); ++n) {
        float z[4];
        philox::unit_block(row.type.distribution, stream, static_cast<uint64_t>(n) >> 2, z);
        double ref = reference == ScaleReference::kAbsMax ? abs_max : tensor_std;
        if (reference == ScaleReference::kRowStd) ref = unbiased_std(n / 53 * 53, 53);
        float m = static_cast<float>(row.type.mode == noise_kernels::Mode::kMultiplicative ? scale : scale * ref);
        const float cf = noise_kernels::fp16_to_float(c[n]);
        if (row.type.mode == noise_kernels::Mode::kMultiplicative) m = m * cf;
        mismatches += noise_kernels::float_to_fp16(cf + m * z[n & 3]) != got[n];
      }
      EXPECT_EQ(mismatches, 0) << row.name << " " << scale_reference_name(reference);
    }
  }
}

// ---------------------------------------------------------------- host-side CUDA code

TEST(DeviceTimer, TimesCpuWorkAndNeedsTheCudaEngineForAGpu) {
  DeviceTimer timer(torch::kCPU);
  timer.start();
  torch::Tensor x = torch::ones({256, 256}).matmul(torch::ones({256, 256}));
  const double seconds = timer.stop();
  EXPECT_GT(seconds, 0.0);
  EXPECT_LT(seconds, 60.0);
  EXPECT_NO_THROW(synchronize(torch::kCPU));
  if (!noise_device::cuda_engine_built()) {
    EXPECT_THROW(DeviceTimer(torch::Device(torch::kCUDA, 0)), Error);
    EXPECT_THROW(synchronize(torch::Device(torch::kCUDA, 0)), Error);
  }
}

#if TSTAR_WITH_CUDA_ENGINE
// The launch's decisions that need no device: the grid (a function of the size alone, which fixes the
// order of the tallies' reduction) and the refusals that return before any launch.
TEST(NoiseCudaLaunch, GridDependsOnTheSizeAloneAndBadArgumentsAreRefusedBeforeLaunching) {
  EXPECT_EQ(noise_cuda::fused_grid(0), 1);
  EXPECT_EQ(noise_cuda::fused_grid(1), 1);
  EXPECT_EQ(noise_cuda::fused_grid(4 * 512), 1);      // 512 Philox blocks: two per thread of one CUDA block
  EXPECT_EQ(noise_cuda::fused_grid(4 * 512 + 1), 2);
  EXPECT_EQ(noise_cuda::fused_grid(int64_t{1} << 40), 2048);
  for (int64_t n = 1; n < (int64_t{1} << 34); n = n * 3 + 1)
    EXPECT_LE(noise_cuda::fused_grid(n), noise_cuda::fused_grid(n * 3 + 1));
  noise_cuda::FusedArgs empty;
  EXPECT_EQ(noise_cuda::launch_fused_noise(empty), cudaSuccess);  // nothing to do: no launch
  noise_cuda::FusedArgs bad_rows;
  bad_rows.numel = 8;
  bad_rows.row_mult = reinterpret_cast<const float*>(16);
  bad_rows.row_length = 0;
  EXPECT_EQ(noise_cuda::launch_fused_noise(bad_rows), cudaErrorInvalidValue);
}
#endif

// ---------------------------------------------------------------- on a GPU

// Why a CUDA test cannot run here, or "" when it can.
std::string cuda_unavailable() {
  if (!noise_device::cuda_engine_built())
    return "this build has no CUDA noise engine (a CPU-only libtorch, e.g. Debian's; build with TSTAR_TORCH=pypi)";
  if (!torch::cuda::is_available()) return "no CUDA device visible to libtorch";
  return "";
}

Model preset_on(torch::Device device, torch::ScalarType dtype) {
  LoadOptions options;
  options.dtype = dtype;
  options.device = device;
  return Model::from_preset("tiny", options);  // weights drawn on the CPU, then moved: the same on both
}

TEST(NoiseCuda, NoisedWeightsAreTheCpuEnginesBitForBit) {
  if (const std::string why = cuda_unavailable(); !why.empty()) GTEST_SKIP() << why;
  for (auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat}) {
    Model cpu = preset_on(torch::kCPU, dtype);
    Model gpu = preset_on(torch::Device(torch::kCUDA, 0), dtype);
    const std::string clean = parameters_digest(cpu.parameters());
    ASSERT_EQ(parameters_digest(gpu.parameters()), clean);
    for (const auto& row : noise_kinds()) {
      for (auto reference : {ScaleReference::kTensorStd, ScaleReference::kRowStd, ScaleReference::kAbsMax}) {
        if (row.type.mode == noise_kernels::Mode::kMultiplicative && reference != ScaleReference::kTensorStd) continue;
        const std::string what = dtype_name(dtype) + " " + row.name + " " + scale_reference_name(reference);
        NoiseEngine on_cpu(cpu, TargetSpec{}, row.type, reference);
        NoiseEngine on_gpu(gpu, TargetSpec{}, row.type, reference);
        for (uint64_t seed : {1ull, 0xFEEDull}) {
          const InjectionReport a = on_cpu.inject(0.02, seed);
          const InjectionReport b = on_gpu.inject(0.02, seed);
          EXPECT_EQ(parameters_digest(gpu.parameters()), parameters_digest(cpu.parameters())) << what;
          EXPECT_NE(parameters_digest(gpu.parameters()), clean) << what;
          EXPECT_EQ(a.changed, b.changed) << what;
          EXPECT_NEAR(b.realized_ratio, a.realized_ratio, 1e-12 * a.realized_ratio) << what;  // sum order differs
          const InjectionReport again = on_gpu.inject(0.02, seed);  // fixed device reduction order
          EXPECT_EQ(std::memcmp(&again.realized_ratio, &b.realized_ratio, sizeof(double)), 0) << what;
        }
        on_gpu.restore();
        on_cpu.restore();
        EXPECT_EQ(parameters_digest(gpu.parameters()), clean) << what;
      }
    }
  }
}

TEST(NoiseCuda, ExceptionMidInjectionRestoresTheDevice) {
  if (const std::string why = cuda_unavailable(); !why.empty()) GTEST_SKIP() << why;
  Model gpu = preset_on(torch::Device(torch::kCUDA, 0), torch::kBFloat16);
  const std::string before = parameters_digest(gpu.parameters());
  NoiseEngine engine(gpu, TargetSpec{});
  engine.set_after_tensor_hook([](size_t index) {
    if (index == 2) throw std::runtime_error("interrupted after three tensors");
  });
  EXPECT_THROW(NoiseScope(engine, 0.05, 1), std::runtime_error);
  EXPECT_EQ(parameters_digest(gpu.parameters()), before);
  EXPECT_FALSE(engine.injected());
}

}  // namespace
}  // namespace tstar
