// Model behaviour that needs no golden file: batching, padding, the KV cache and presets agree
// with each other. Parity with HF transformers is in test_parity.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "tstar/compute_environment.h"
#include "tstar/config.h"
#include "tstar/error.h"
#include "tstar/model.h"
#include "tstar/noise.h"

namespace tstar {
namespace {

LoadOptions fp32() { return LoadOptions{}; }

std::vector<std::vector<int64_t>> mixed_length_prompts() {
  return {{5, 17, 301, 2, 99, 4, 8}, {42}, {7, 7, 7, 100, 250}, {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8}};
}

float max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<float>();
}

TEST(Model, PresetIsDeterministic) {
  Model a = Model::from_preset("tiny", fp32());
  Model b = Model::from_preset("tiny", fp32());
  ASSERT_EQ(a.parameters().size(), b.parameters().size());
  for (size_t i = 0; i < a.parameters().size(); ++i) {
    EXPECT_TRUE(torch::equal(a.parameters().tensor(i), b.parameters().tensor(i))) << a.parameters().name(i);
  }
  Model other_seed = Model::from_preset("tiny", fp32(), 7);
  EXPECT_FALSE(torch::equal(a.parameters().tensor(1), other_seed.parameters().tensor(1)));
}

TEST(Model, ParameterCountMatchesConfig) {
  for (const std::string& name : preset_names()) {
    ModelConfig config = preset_config(name);
    int64_t total = 0;
    for (const auto& spec : expected_parameters(config)) {
      int64_t numel = 1;
      for (int64_t d : spec.shape) numel *= d;
      total += numel;
    }
    EXPECT_EQ(total, config.num_parameters()) << name;
  }
}

TEST(Model, BatchedWithPaddingEqualsOneAtATime) {
  Model model = Model::from_preset("tiny", fp32());
  const auto prompts = mixed_length_prompts();
  torch::Tensor batched = model.last_logits(prompts);  // [B, V]
  ASSERT_EQ(batched.size(0), static_cast<int64_t>(prompts.size()));
  for (size_t b = 0; b < prompts.size(); ++b) {
    torch::Tensor single = model.last_logits({prompts[b]}).squeeze(0);
    // Same math on differently shaped matmuls: only summation order may differ.
    EXPECT_LT(max_abs_diff(batched[static_cast<int64_t>(b)], single), 1e-5) << "prompt " << b;
  }
}

// A padded batch's norms, projections and MLP run on its token rows only: the recorded residual
// has one row per token (not B x longest), and pads stay zero on the returned grid.
TEST(Model, PaddedBatchComputesItsTokenRowsOnly) {
  Model model = Model::from_preset("tiny", fp32());
  const auto prompts = mixed_length_prompts();
  int64_t tokens = 0;
  for (const auto& prompt : prompts) tokens += static_cast<int64_t>(prompt.size());
  Model::LayerInputs recorded;
  model.last_logits_layered(prompts, &recorded, nullptr, 0);
  for (const torch::Tensor& residual : recorded.residual) {
    EXPECT_EQ(residual.sizes(), (std::vector<int64_t>{tokens, model.config().hidden_size}));
  }
  auto key_mask = torch::tensor({1, 1, 0, 1}, torch::kBool).view({2, 2});  // row 1 is left-padded
  const auto grid = Model::Grid::of(key_mask);
  ASSERT_TRUE(grid.token_rows.defined());
  EXPECT_TRUE(torch::equal(grid.token_rows, torch::tensor({0, 1, 3}, torch::kLong)));
  const auto rows = torch::arange(1, 7, torch::kFloat).view({3, 2});
  const auto placed = grid.to_grid(rows);  // [2, 2, 2]
  EXPECT_TRUE(torch::equal(placed[1][0], torch::zeros({2})));
  EXPECT_TRUE(torch::equal(grid.to_rows(placed), rows));
  EXPECT_FALSE(Model::Grid::of(torch::ones({2, 3}, torch::kBool)).token_rows.defined());
}

TEST(Model, BatchedWithPaddingEqualsOneAtATimeBf16) {
  LoadOptions bf16;
  bf16.dtype = torch::kBFloat16;
  Model model = Model::from_preset("tiny", bf16);
  const auto prompts = mixed_length_prompts();
  torch::Tensor batched = model.last_logits(prompts);
  for (size_t b = 0; b < prompts.size(); ++b) {
    torch::Tensor single = model.last_logits({prompts[b]}).squeeze(0);
    EXPECT_EQ(batched[static_cast<int64_t>(b)].argmax().item<int64_t>(), single.argmax().item<int64_t>());
    EXPECT_LT(max_abs_diff(batched[static_cast<int64_t>(b)], single), 0.05) << "prompt " << b;
  }
}

// bf16 products through fp32 BLAS and the fp32 logits use cached fp32 copies of the bf16 weights:
// after the noise engine writes them, after a restore and after a parameter is replaced, the model
// must compute what a model built from copies of its current weights computes.
TEST(Model, Fp32CopiesOfBf16WeightsFollowTheWeights) {
  setenv(kBf16MatmulVariable, "fp32_gemm", 1);
  LoadOptions options;
  options.dtype = torch::kBFloat16;
  options.logits = LogitsDtype::kFloat32;
  Model model = Model::from_preset("tiny", options);
  const auto prompts = mixed_length_prompts();
  auto rebuilt_for = [&](const Model& source) {
    ParameterMap copies;
    for (const auto& [name, tensor] : source.parameters().entries()) copies.add(name, tensor.clone());
    return Model::from_parameters(source.config(), std::move(copies), options).last_logits(prompts);
  };
  auto rebuilt_logits = [&] { return rebuilt_for(model); };
  const torch::Tensor clean = model.last_logits(prompts);  // fills the copies
  {
    TargetSpec everything;
    everything.include = {"."};
    everything.regex = true;
    everything.exclude = {};
    NoiseEngine engine(model, everything);
    engine.inject(0.05, 3);
    const torch::Tensor noisy = model.last_logits(prompts);
    EXPECT_FALSE(torch::equal(noisy, clean));
    EXPECT_TRUE(torch::equal(noisy, rebuilt_logits()));
    engine.restore();
    EXPECT_TRUE(torch::equal(model.last_logits(prompts), clean));
  }
  Model replaced = Model::from_preset("tiny", options);
  const torch::Tensor before = replaced.last_logits(prompts);  // copies at version 0
  for (size_t i = 0; i < replaced.parameters().size(); ++i) {  // new tensors, also at version 0
    replaced.parameters().tensor(i) = replaced.parameters().tensor(i).neg();
  }
  const torch::Tensor after = replaced.last_logits(prompts);
  EXPECT_FALSE(torch::equal(after, before));
  EXPECT_TRUE(torch::equal(after, rebuilt_for(replaced)));
  unsetenv(kBf16MatmulVariable);
}

// A forward that starts at the first layer a noise group changes, from the clean pass's recording,
// gives the full forward's bits, for every group (layer:N, depth thirds, lm_head, all ...).
TEST(Model, ResumingAtTheFirstNoisedLayerEqualsAFullForward) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kBFloat16}) {
    LoadOptions options;
    options.dtype = dtype;
    Model model = Model::from_preset("tiny", options);
    const auto prompts = mixed_length_prompts();
    Model::LayerInputs clean;
    const torch::Tensor clean_logits = model.last_logits_layered(prompts, &clean, nullptr, 0);
    ASSERT_EQ(clean.residual.size(), static_cast<size_t>(model.config().num_layers + 1));
    EXPECT_TRUE(torch::equal(clean_logits, model.last_logits(prompts)));
    int resumed_groups = 0;
    for (const std::string& group : group_names(model.config(), DepthGroups::kThirds)) {
      TargetSpec spec;
      spec.groups = {group};
      spec.depth = DepthGroups::kThirds;
      NoiseEngine engine(model, spec);
      const auto first = model.first_layer_changed_by(engine.target_names());
      engine.inject(0.05, 11);
      const torch::Tensor full = model.last_logits(prompts);
      EXPECT_FALSE(torch::equal(full, clean_logits)) << group;
      if (first) {
        ++resumed_groups;
        EXPECT_TRUE(torch::equal(model.last_logits_layered(prompts, nullptr, &clean, *first), full)) << group;
      }
      engine.restore();
    }
    EXPECT_GE(resumed_groups, 3);
  }
  Model model = Model::from_preset("tiny", LoadOptions{});
  const int64_t layers = model.config().num_layers;
  EXPECT_EQ(model.first_layer_changed_by({hf_parameter_name(Weight::kFinalNorm)}), layers);
  EXPECT_EQ(model.first_layer_changed_by({hf_parameter_name(Weight::kUp, 1), hf_parameter_name(Weight::kQ, 0, true)}), 0);
  EXPECT_EQ(model.first_layer_changed_by({hf_parameter_name(Weight::kDown, layers - 1)}), layers - 1);
  EXPECT_EQ(model.first_layer_changed_by({hf_parameter_name(Weight::kEmbedding)}), std::nullopt);
  EXPECT_THROW(model.first_layer_changed_by({"model.no_such.weight"}), Error);
  Model::LayerInputs other;
  model.last_logits_layered({{1, 2, 3}}, &other, nullptr, 0);
  EXPECT_THROW(model.last_logits_layered({{1, 2, 4}}, nullptr, &other, 1), Error);
}

// Dynamic NTK RoPE: the default frequencies up to max_position_embeddings, then theta grows with the
// forward's length, theta * (factor * L / max - (factor - 1))^(D / (D - 2)) (HF's formula).
TEST(Model, DynamicRopeFrequenciesFollowTheLongestPosition) {
  ModelConfig c = preset_config("tiny");
  const torch::Tensor plain = rope_inverse_frequencies(c);
  c.rope_scaling.type = RopeScaling::Type::kDynamic;
  c.rope_scaling.factor = 4.0;
  c.max_position_embeddings = 16;
  EXPECT_TRUE(torch::equal(rope_inverse_frequencies(c), plain));
  EXPECT_TRUE(torch::equal(rope_inverse_frequencies(c, 16), plain));
  const torch::Tensor at_32 = rope_inverse_frequencies(c, 32);
  const double dim = static_cast<double>(c.head_dim);
  const double theta_32 = c.rope_theta * std::pow(4.0 * 32 / 16 - 3.0, dim / (dim - 2));
  EXPECT_NEAR(at_32[1].item<double>(), std::pow(theta_32, -2.0 / dim), 1e-6 * std::pow(theta_32, -2.0 / dim));
  EXPECT_EQ(at_32[0].item<float>(), 1.0f);
  EXPECT_TRUE((at_32.slice(0, 1) < rope_inverse_frequencies(c, 17).slice(0, 1)).all().item<bool>());
  EXPECT_TRUE((rope_inverse_frequencies(c, 17).slice(0, 1) < plain.slice(0, 1)).all().item<bool>());
}

TEST(Model, LastLogitsAreTheLastRowOfFullLogits) {
  Model model = Model::from_preset("tiny", fp32());
  const std::vector<int64_t> ids = {11, 22, 33, 44, 55, 66};
  torch::Tensor full = model.full_logits(ids);  // [T, V]
  ASSERT_EQ(full.size(0), 6);
  EXPECT_LT(max_abs_diff(full[5], model.last_logits({ids}).squeeze(0)), 1e-5);
  // Each prefix's last logits equal the corresponding row: causality holds.
  EXPECT_LT(max_abs_diff(full[2], model.last_logits({{11, 22, 33}}).squeeze(0)), 1e-5);
}

// Teacher forcing: one forward scores a known continuation; its rows are the cached decode's steps.
TEST(Model, TailLogitsAreTheCachedDecodeSteps) {
  Model model = Model::from_preset("tiny", fp32());
  const std::vector<int64_t> prompt = {11, 22, 33}, continuation = {44, 55, 66};
  std::vector<int64_t> ids = prompt;
  ids.insert(ids.end(), continuation.begin(), continuation.end());
  torch::Tensor tail = model.tail_logits(ids, 4);  // [4, V]: the predictions after 33, 44, 55, 66
  ASSERT_EQ(tail.size(0), 4);
  EXPECT_LT(max_abs_diff(tail, model.full_logits(ids).slice(0, 2)), 1e-5);
  KVCache cache;
  torch::Tensor step = model.last_logits({prompt}, &cache, 3);
  for (int64_t k = 0; k < 4; ++k) {
    EXPECT_LT(max_abs_diff(tail[k], step.squeeze(0)), 1e-5) << "step " << k;
    if (k < 3) step = model.decode_step({continuation[static_cast<size_t>(k)]}, cache);
  }
  EXPECT_THROW(model.tail_logits(ids, 0), Error);
  EXPECT_THROW(model.tail_logits(ids, 7), Error);
  EXPECT_THROW(model.tail_logits({1, 100000}, 1), Error);
  // Only dynamic RoPE past its threshold makes a position's logits depend on the forward's length.
  EXPECT_FALSE(model.logits_depend_on_length(1 << 20));
  ModelConfig dynamic = model.config();
  dynamic.rope_scaling.type = RopeScaling::Type::kDynamic;
  dynamic.rope_scaling.factor = 4;
  dynamic.max_position_embeddings = 8;
  Model scaled = Model::from_parameters(dynamic, model.parameters(), fp32());
  EXPECT_FALSE(scaled.logits_depend_on_length(8));
  EXPECT_TRUE(scaled.logits_depend_on_length(9));
}

TEST(Model, CachedDecodeMatchesRecomputation) {
  Model model = Model::from_preset("tiny", fp32());
  const auto prompts = mixed_length_prompts();
  KVCache cache;
  torch::Tensor logits = model.last_logits(prompts, &cache, 4);
  std::vector<std::vector<int64_t>> sequences = prompts;
  for (int step = 0; step < 4; ++step) {
    std::vector<int64_t> next;
    for (int64_t b = 0; b < logits.size(0); ++b) next.push_back(logits[b].argmax().item<int64_t>());
    for (size_t b = 0; b < sequences.size(); ++b) sequences[b].push_back(next[b]);
    logits = model.decode_step(next, cache);
    for (size_t b = 0; b < sequences.size(); ++b) {
      torch::Tensor recomputed = model.last_logits({sequences[b]}).squeeze(0);
      EXPECT_LT(max_abs_diff(logits[static_cast<int64_t>(b)], recomputed), 1e-5) << "step " << step << " b " << b;
    }
  }
  EXPECT_THROW(model.decode_step({1, 2, 3, 4}, cache), Error);  // capacity 4 is used up
}

TEST(Model, GreedyGenerationMatchesCachedSteps) {
  Model model = Model::from_preset("tiny", fp32());
  const auto prompts = mixed_length_prompts();
  auto together = model.generate_greedy(prompts, 6);
  for (size_t b = 0; b < prompts.size(); ++b) {
    EXPECT_EQ(together[b], model.generate_greedy({prompts[b]}, 6).front()) << "prompt " << b;
  }
}

TEST(Model, RejectsBadTokenIdsAndEmptyInput) {
  Model model = Model::from_preset("tiny", fp32());
  EXPECT_THROW(model.last_logits({{1, 2, 100000}}), Error);
  EXPECT_THROW(model.last_logits({{-1}}), Error);
  EXPECT_THROW(model.last_logits({}), Error);
  EXPECT_THROW(model.last_logits({{}}), Error);
  EXPECT_THROW(model.full_logits({}), Error);
  EXPECT_THROW(model.generate_greedy({{1}}, -1), Error);
}

TEST(Model, OpenRejectsUnknownNames) {
  try {
    Model::open("no-such-model-or-dir");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-model-or-dir"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("qwen2.5-0.5b"), std::string::npos);  // lists the presets
  }
}

TEST(Model, Fp16OnCpuIsAClearError) {
  LoadOptions fp16;
  fp16.dtype = torch::kHalf;
  Model model = Model::from_preset("tiny", fp16);  // holding fp16 weights is fine (the noise engine does)
  try {
    model.last_logits({{1, 2}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp16"), std::string::npos) << e.what();
  }
}

TEST(Model, DtypeNames) {
  EXPECT_EQ(parse_dtype("bf16"), torch::kBFloat16);
  EXPECT_EQ(parse_dtype("float32"), torch::kFloat);
  EXPECT_EQ(dtype_name(torch::kHalf), "fp16");
  EXPECT_THROW(parse_dtype("int8"), Error);
}

}  // namespace
}  // namespace tstar
