// bf16 products through oneDNN's matmul called directly (src/onednn_matmul.h): the bits of
// torch::linear, packed or not, at any thread count; packed copies that follow the weights.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "onednn_matmul.h"
#include "tstar/compute_profile.h"
#include "tstar/model.h"
#include "tstar/noise.h"

namespace tstar {
namespace {

// Skips (with the reason) where the direct path is not taken: a build without oneDNN's headers,
// another libtorch, or a CPU whose oneDNN has no bf16 brgemm kernel.
#define SKIP_WITHOUT_ONEDNN_MATMUL()                                                                     \
  if (!onednn_matmul::available() || bf16_matmul_path() != Bf16Matmul::kOneDnn)                         \
  GTEST_SKIP() << "bf16 products do not call oneDNN directly here (bf16_matmul_path "                  \
               << bf16_matmul_name(bf16_matmul_path()) << ", kernel '" << onednn_matmul::kernel_name() \
               << "')"

TEST(OneDnnMatmul, GivesTorchLinearBitsPackedOrNot) {
  SKIP_WITHOUT_ONEDNN_MATMUL();
  torch::manual_seed(5);
  const int threads = at::get_num_threads();
  for (int t : {1, 2}) {
    at::set_num_threads(t);
    for (auto [n, k] : {std::pair<int64_t, int64_t>{896, 896}, {128, 896}, {896, 4864}, {256, 64}, {37, 100}, {9, 67}}) {
      const auto w = (torch::randn({n, k}) * 0.05).to(torch::kBFloat16);
      const auto bias = torch::randn({n}).to(torch::kBFloat16);
      const onednn_matmul::PackedWeight packed(w);
      for (int64_t rows : {5, 20, 32, 128}) {
        const auto x = torch::randn({rows, k}).to(torch::kBFloat16);
        for (bool with_bias : {false, true}) {
          const torch::Tensor b = with_bias ? bias : torch::Tensor();
          const auto expected = torch::linear(x, w, b);
          const std::string what = fmt::format("n {} k {} rows {} bias {} threads {}", n, k, rows, with_bias, t);
          EXPECT_TRUE(torch::equal(onednn_matmul::linear(x, w, b), expected)) << what;
          EXPECT_TRUE(torch::equal(onednn_matmul::linear(x, w, b, &packed), expected)) << what << " packed";
        }
      }
      // Leading dimensions are kept: [B, T, k] -> [B, T, n].
      const auto x3 = torch::randn({2, 7, k}).to(torch::kBFloat16);
      EXPECT_TRUE(torch::equal(onednn_matmul::linear(x3, w, bias, &packed), torch::linear(x3, w, bias)));
    }
  }
  at::set_num_threads(threads);
}

TEST(OneDnnMatmul, TakesOnlyWhatItComputes) {
  SKIP_WITHOUT_ONEDNN_MATMUL();
  const auto x = torch::randn({8, 16}).to(torch::kBFloat16);
  const auto w = torch::randn({4, 16}).to(torch::kBFloat16);
  EXPECT_TRUE(onednn_matmul::takes(x, w, {}));
  EXPECT_FALSE(onednn_matmul::takes(x.to(torch::kFloat), w, {}));
  EXPECT_FALSE(onednn_matmul::takes(x, w.to(torch::kFloat), {}));
  EXPECT_FALSE(onednn_matmul::takes(x, w.t(), {}));                                 // not contiguous [n, k]
  EXPECT_FALSE(onednn_matmul::takes(x.narrow(1, 0, 8), w, {}));                     // widths differ
  EXPECT_FALSE(onednn_matmul::takes(x, w, torch::zeros({5}, torch::kBFloat16)));    // bias of another size
  EXPECT_FALSE(onednn_matmul::takes(x, w.clone().requires_grad_(), {}));            // autograd: torch::linear
}

TEST(OneDnnMatmul, PackedCopiesFollowTheWeightsVersion) {
  SKIP_WITHOUT_ONEDNN_MATMUL();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({32, 64}).to(torch::kBFloat16);
  auto w = torch::randn({48, 64}).to(torch::kBFloat16);
  onednn_matmul::PackedWeights cache;
  constexpr int64_t kBudget = int64_t{1} << 30;
  for (int round = 0; round < 2; ++round) {
    for (int use = 1; use <= onednn_matmul::PackedWeights::kUnpackedUses; ++use) {
      EXPECT_EQ(cache.for_product(0, w, kBudget), nullptr) << "round " << round << " use " << use;
    }
    const onednn_matmul::PackedWeight* packed = cache.for_product(0, w, kBudget);
    ASSERT_NE(packed, nullptr) << "round " << round;
    EXPECT_EQ(cache.for_product(0, w, kBudget), packed);
    EXPECT_TRUE(torch::equal(onednn_matmul::linear(x, w, {}, packed), torch::linear(x, w)));
    w.mul_(-2);  // an in-place write moves the version counter: the copy is stale
  }
  // A replaced tensor (version 0 again) is another weight.
  w = torch::randn({48, 64}).to(torch::kBFloat16);
  EXPECT_EQ(cache.for_product(0, w, kBudget), nullptr);
  onednn_matmul::PackedWeights no_room;
  for (int use = 0; use < 2 * onednn_matmul::PackedWeights::kUnpackedUses; ++use) {
    EXPECT_EQ(no_room.for_product(0, w, /*budget_bytes=*/100), nullptr);
  }
  EXPECT_EQ(no_room.bytes(), 0);
}

// A model's forwards pack its weights from the kUnpackedUses + 1-th: each forward must compute what
// a model built from copies of its current weights (unpacked) computes, after noise is injected, after
// a restore and after parameters are replaced.
TEST(OneDnnMatmul, ModelForwardsGiveTheSameBitsAsWeightsArePacked) {
  SKIP_WITHOUT_ONEDNN_MATMUL();
  LoadOptions options;
  options.dtype = torch::kBFloat16;
  Model model = Model::from_preset("tiny", options);
  // Eight prompts: every product has more rows than the decode-sized GEMV takes.
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t p = 0; p < 8; ++p) prompts.push_back({1 + p, 5, 9 + p, 2, 7, 3 + p});
  auto rebuilt_logits = [&](const Model& source) {
    ParameterMap copies;
    for (const auto& [name, tensor] : source.parameters().entries()) copies.add(name, tensor.clone());
    return Model::from_parameters(source.config(), std::move(copies), options).last_logits(prompts);
  };
  const int forwards = onednn_matmul::PackedWeights::kUnpackedUses + 3;
  auto expect_forwards_equal = [&](const Model& m, const torch::Tensor& expected, const std::string& what) {
    for (int f = 0; f < forwards; ++f) EXPECT_TRUE(torch::equal(m.last_logits(prompts), expected)) << what << " forward " << f;
  };
  const torch::Tensor clean = rebuilt_logits(model);
  expect_forwards_equal(model, clean, "clean");
  {
    const TargetSpec every_parameter{/*groups=*/{}, /*include=*/{"."}, /*regex=*/true, /*exclude=*/{}};
    NoiseEngine engine(model, every_parameter);
    engine.inject(0.05, 3);
    const torch::Tensor noisy = rebuilt_logits(model);
    EXPECT_FALSE(torch::equal(noisy, clean));
    expect_forwards_equal(model, noisy, "noisy");
    engine.restore();
    expect_forwards_equal(model, clean, "restored");
  }
  for (size_t i = 0; i < model.parameters().size(); ++i) {  // new tensors, at version 0 again
    model.parameters().tensor(i) = model.parameters().tensor(i).neg();
  }
  const torch::Tensor replaced = rebuilt_logits(model);
  EXPECT_FALSE(torch::equal(replaced, clean));
  expect_forwards_equal(model, replaced, "replaced");
}

// Provenance names the kernel and the packing rule wherever the direct path is taken.
TEST(OneDnnMatmul, ProvenanceNamesTheKernel) {
  SKIP_WITHOUT_ONEDNN_MATMUL();
  const std::string gemm = machine_provenance().at("bf16_gemm").get<std::string>();
  EXPECT_NE(gemm.find("onednn_matmul " + onednn_matmul::kernel_name()), std::string::npos) << gemm;
  EXPECT_NE(gemm.find(std::to_string(onednn_matmul::PackedWeights::kUnpackedUses + 1) + "th product"),
            std::string::npos) << gemm;
}

}  // namespace
}  // namespace tstar
