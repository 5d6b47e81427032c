// The bf16 GEMV kernels (src/bf16_gemv.h) against libtorch's fp32 product of the same bf16 values,
// rounded once to bf16: every kernel this CPU runs, ragged sizes, with and without bias, any thread count.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <cmath>
#include <iostream>

#include "bf16_gemv.h"
#include "tstar/error.h"

namespace tstar {
namespace {

using bf16_gemv::Kernel;

const uint16_t* bits(const torch::Tensor& t) { return t.defined() ? static_cast<const uint16_t*>(t.data_ptr()) : nullptr; }

torch::Tensor run(Kernel kernel, const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
  auto y = torch::empty({x.size(0), w.size(0)}, torch::kBFloat16);
  bf16_gemv::compute(kernel, bits(x), x.size(0), bits(w), w.size(0), w.size(1), bits(bias),
                     static_cast<uint16_t*>(y.data_ptr()));
  return y;
}

// One rounding of the fp32 sum, in another summation order: within one bf16 step of the value (2^-8
// relative, plus a floor for sums that cancel), and most outputs equal to it exactly.
void expect_one_rounding(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& w,
                         const torch::Tensor& bias, const std::string& what) {
  auto exact = torch::matmul(x.to(torch::kDouble), w.to(torch::kDouble).t());
  if (bias.defined()) exact = exact + bias.to(torch::kDouble);
  const auto magnitude = torch::matmul(x.to(torch::kDouble).abs(), w.to(torch::kDouble).abs().t());
  const auto error = (y.to(torch::kDouble) - exact).abs();
  const auto allowed = exact.abs() * std::ldexp(1.0, -8) + magnitude * 1e-6 + 1e-30;
  EXPECT_TRUE((error <= allowed).all().item<bool>()) << what << ": worst error/allowed "
                                                      << (error / allowed).max().item<double>();
  const auto reference = exact.to(torch::kFloat).to(torch::kBFloat16);
  const double same = y.eq(reference).to(torch::kDouble).mean().item<double>();
  EXPECT_GT(same, 0.9) << what << ": only " << same << " of the outputs are the correctly rounded value";
}

TEST(Bf16Gemv, EveryKernelIsOneRoundingOfTheProducts) {
  torch::manual_seed(3);
  for (Kernel kernel : {Kernel::kPortable, Kernel::kAvx2, Kernel::kAvx512, Kernel::kAvx512Bf16}) {
    if (!bf16_gemv::cpu_runs(kernel)) continue;  // the kernels this CPU lacks are reported below
    for (auto [n, k] : {std::pair<int64_t, int64_t>{37, 67}, {64, 896}, {9, 31}, {19, 4864}}) {
      for (int64_t rows = 1; rows <= bf16_gemv::kMaxRows; ++rows) {
        const auto x = torch::randn({rows, k}).to(torch::kBFloat16);
        const auto w = (torch::randn({n, k}) * 0.05).to(torch::kBFloat16);
        const auto bias = torch::randn({n}).to(torch::kBFloat16);
        const std::string what = fmt::format("{} rows {} n {} k {}", bf16_gemv::kernel_name(kernel), rows, n, k);
        expect_one_rounding(run(kernel, x, w, {}), x, w, {}, what);
        expect_one_rounding(run(kernel, x, w, bias), x, w, bias, what + " bias");
      }
    }
  }
  for (Kernel kernel : {Kernel::kAvx2, Kernel::kAvx512, Kernel::kAvx512Bf16}) {
    if (!bf16_gemv::cpu_runs(kernel)) std::cout << "this CPU does not run " << bf16_gemv::kernel_name(kernel) << "\n";
  }
}

// Each output is computed alone: the same bits on any number of threads, and a row of a batch is the
// row alone.
TEST(Bf16Gemv, SameBitsOnAnyThreadCountAndBatch) {
  if (bf16_gemv::best_kernel() == Kernel::kPortable) GTEST_SKIP() << "no vector kernel on this CPU";
  torch::manual_seed(4);
  const auto x = torch::randn({3, 899}).to(torch::kBFloat16);  // k % 8 != 0: the AVX2 kernel's tail
  const auto w = (torch::randn({1001, 899}) * 0.05).to(torch::kBFloat16);
  for (Kernel kernel : {Kernel::kAvx2, Kernel::kAvx512, Kernel::kAvx512Bf16}) {
    if (!bf16_gemv::cpu_runs(kernel)) continue;
    const int threads = at::get_num_threads();
    at::set_num_threads(1);
    const auto one = run(kernel, x, w, {});
    at::set_num_threads(2);
    const auto two = run(kernel, x, w, {});
    at::set_num_threads(threads);
    EXPECT_TRUE(torch::equal(one, two)) << bf16_gemv::kernel_name(kernel);
    for (int64_t r = 0; r < 3; ++r) {
      EXPECT_TRUE(torch::equal(run(kernel, x.slice(0, r, r + 1).contiguous(), w, {})[0], one[r]))
          << bf16_gemv::kernel_name(kernel) << " row " << r;
    }
  }
}

// Where the GEMV replaces a path: oneDNN's always, fp32 BLAS only in the native profile (the
// reference profile's pinned products keep their bits), libtorch's own loops never.
TEST(Bf16Gemv, ReplacesOneDnnAndNativeFp32GemmOnly) {
  const Kernel best = bf16_gemv::best_kernel();
  if (best == Kernel::kPortable) GTEST_SKIP() << "no vector kernel on this CPU";
  for (bool native : {false, true}) {
    EXPECT_EQ(bf16_gemv::kernel_for(Bf16Matmul::kOneDnn, native), best);
    EXPECT_EQ(bf16_gemv::kernel_for(Bf16Matmul::kLibtorch, native), std::nullopt);
  }
  EXPECT_EQ(bf16_gemv::kernel_for(Bf16Matmul::kFp32Gemm, true), best);
  EXPECT_EQ(bf16_gemv::kernel_for(Bf16Matmul::kFp32Gemm, false), std::nullopt);
}

TEST(Bf16Gemv, RefusesWhatItCannotCompute) {
  const auto x = torch::zeros({5, 8}, torch::kBFloat16), w = torch::zeros({4, 8}, torch::kBFloat16);
  EXPECT_THROW(run(Kernel::kPortable, x, w, {}), Error);  // more rows than kMaxRows
  EXPECT_THROW(run(Kernel::kPortable, x.slice(0, 0, 0), w, {}), Error);
  for (Kernel kernel : {Kernel::kAvx2, Kernel::kAvx512, Kernel::kAvx512Bf16}) {
    if (!bf16_gemv::cpu_runs(kernel)) EXPECT_THROW(run(kernel, x.slice(0, 0, 1), w, {}), Error);
  }
}

}  // namespace
}  // namespace tstar
