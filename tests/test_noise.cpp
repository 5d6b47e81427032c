// The noise engine: streams against libcurand, thread-count independence, per-tensor independence,
// common random numbers, distribution shapes, bit-exact restore, realized-noise reports, bad input.
#include <gtest/gtest.h>

#include <curand_kernel.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <limits>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "cli.h"
#include "tstar/curand_host.h"
#include "tstar/error.h"
#include "tstar/model.h"
#include "tstar/noise.h"
#include "tstar/provenance.h"

namespace tstar {
namespace {

LoadOptions with_dtype(torch::ScalarType dtype) {
  LoadOptions options;
  options.dtype = dtype;
  return options;
}

// Equal digests <=> bit-identical weights (provenance.h's sha256 over names, dtypes, shapes, bytes).
std::string hash_parameters(const ParameterMap& params) { return parameters_digest(params); }

TargetSpec only(const std::string& name) {
  TargetSpec spec;
  spec.include = {name};
  return spec;
}

std::vector<float> unit_noise(philox::Kind kind, uint64_t seed, uint64_t first, int64_t count) {
  std::vector<float> out(count);
  generate_unit_noise(kind, seed, first, count, out.data());
  return out;
}

// ---------------------------------------------------------------- streams

TEST(NoiseStream, Uint32MatchesLibcurandHostApi) {
  for (uint64_t seed : {0ull, 1ull, 42ull, 0xDEADBEEFCAFEF00Dull}) {
    for (uint64_t first : {0ull, 4ull, 1000ull, (1ull << 18) - 8, (1ull << 20) + 4, 1ull << 34}) {
      const int64_t count = 4097;  // not a multiple of 4
      std::vector<uint32_t> expected = curand_host_uint32(seed, first, count);
      for (int64_t i = 0; i < count; ++i) {
        uint64_t n = first + i;
        uint32_t got = philox::stream_block(seed, n >> 2).v[n & 3];
        ASSERT_EQ(got, expected[i]) << "seed " << seed << " element " << n;
      }
    }
  }
}

TEST(NoiseStream, CounterMappingIsCurandInitOfTheDeviceApi) {
  // The documented mapping, checked through curand_kernel.h compiled as host code.
  const uint64_t seed = 0x0123456789ABCDEFull;
  for (uint64_t n : {0ull, 3ull, 5ull, 262143ull, 262144ull, 262147ull, 999999937ull, (1ull << 40) + 6}) {
    philox::CurandPosition pos = philox::curand_position(n);
    curandStatePhilox4_32_10_t state;
    curand_init(seed, pos.subsequence, pos.offset, &state);
    uint4 r = curand4(&state);
    uint32_t components[4] = {r.x, r.y, r.z, r.w};
    EXPECT_EQ(philox::stream_block(seed, n >> 2).v[n & 3], components[pos.component]) << n;
  }
}

TEST(NoiseStream, NormalsMatchLibcurandWithinTheDocumentedBound) {
  // philox.h: |tstar - cuRAND| <= 2^-20 * max(1, |z|) (float polynomials vs libm's logf/sinf/cosf).
  const double bound = std::ldexp(1.0, -20);
  for (uint64_t seed : {3ull, 77ull, 0xFFFFFFFFFFFFFFFFull}) {
    for (uint64_t first : {0ull, 262140ull, 5000000ull}) {
      const int64_t count = 200003;  // odd: tail of a block and of a Box-Muller pair
      std::vector<float> expected = curand_host_normals(seed, first, count);
      std::vector<float> got = unit_noise(philox::Kind::kGaussian, seed, first, count);
      int64_t identical = 0;
      for (int64_t i = 0; i < count; ++i) {
        double diff = std::fabs(static_cast<double>(got[i]) - expected[i]);
        ASSERT_LE(diff, bound * std::max(1.0, std::fabs(static_cast<double>(expected[i]))))
            << "seed " << seed << " element " << first + i << ": " << got[i] << " vs " << expected[i];
        identical += got[i] == expected[i];
      }
      EXPECT_GT(identical, count / 2);  // most values are bit-identical
    }
  }
}

// Every kernel path against the portable one: tests/test_noise_kernels.cpp.

TEST(NoiseStream, GeneratorIsIndependentOfThreadCount) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  std::vector<float> one = unit_noise(philox::Kind::kGaussian, 11, 0, 300001);
  at::set_num_threads(2);
  std::vector<float> two = unit_noise(philox::Kind::kGaussian, 11, 0, 300001);
  at::set_num_threads(threads);
  EXPECT_EQ(one, two);
}

TEST(NoiseStream, UniformAndLaplaceHaveUnitStdAndTheirOwnShape) {
  const int64_t count = 1000000;
  auto moments = [&](philox::Kind kind) {
    std::vector<float> z = unit_noise(kind, 2024, 0, count);
    double sum = 0, sum2 = 0, sum4 = 0;
    for (float v : z) {
      sum += v;
      sum2 += double(v) * v;
      sum4 += double(v) * v * v * v;
    }
    double mean = sum / count, var = sum2 / count - mean * mean;
    return std::make_tuple(mean, std::sqrt(var), (sum4 / count) / (var * var));
  };
  auto [g_mean, g_std, g_kurt] = moments(philox::Kind::kGaussian);
  auto [u_mean, u_std, u_kurt] = moments(philox::Kind::kUniform);
  auto [l_mean, l_std, l_kurt] = moments(philox::Kind::kLaplace);
  for (double m : {g_mean, u_mean, l_mean}) EXPECT_NEAR(m, 0.0, 0.005);
  for (double s : {g_std, u_std, l_std}) EXPECT_NEAR(s, 1.0, 0.005);
  EXPECT_NEAR(g_kurt, 3.0, 0.05);
  EXPECT_NEAR(u_kurt, 1.8, 0.02);
  EXPECT_NEAR(l_kurt, 6.0, 0.3);  // laplace is not gaussian (the notebook's fell back to it)
  std::vector<float> u = unit_noise(philox::Kind::kUniform, 2024, 0, count);
  for (float v : u) ASSERT_LE(std::fabs(v), std::sqrt(3.0f));
}

// ---------------------------------------------------------------- engine

TEST(NoiseEngine, InjectionIsIndependentOfThreadCount) {
  Model model = Model::from_preset("tiny", with_dtype(torch::kBFloat16));
  NoiseEngine engine(model, TargetSpec{});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  engine.inject(0.05, 7);
  std::string one = hash_parameters(model.parameters());
  at::set_num_threads(2);
  engine.inject(0.05, 7);
  std::string two = hash_parameters(model.parameters());
  at::set_num_threads(threads);
  engine.restore();
  EXPECT_EQ(one, two);
}

TEST(NoiseEngine, TensorNoiseDoesNotDependOnOtherTargets) {
  Model all_model = Model::from_preset("tiny");
  Model one_model = Model::from_preset("tiny");
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  NoiseEngine all(all_model, TargetSpec{});
  NoiseEngine one(one_model, only(name));
  ASSERT_EQ(one.target_names(), std::vector<std::string>{name});
  all.inject(0.1, 3);
  one.inject(0.1, 3);
  EXPECT_TRUE(torch::equal(all_model.parameters().at(name), one_model.parameters().at(name)));
  EXPECT_FALSE(torch::equal(all_model.parameters().at("model.layers.1.mlp.down_proj.weight"),
                            one_model.parameters().at("model.layers.1.mlp.down_proj.weight")));
}

TEST(NoiseEngine, NoiseIsTheDocumentedFunctionOfTheStream) {
  // fp32, tensor_std: w = clean + float(s * std) * z with z element n of the tensor's stream.
  Model model = Model::from_preset("tiny");
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  torch::Tensor clean = model.parameters().at(name).clone();
  NoiseEngine engine(model, only(name));
  engine.inject(0.02, 123);
  double std_clean = clean.to(torch::kDouble).std().item<double>();
  float mult = static_cast<float>(0.02 * std_clean);
  std::vector<float> z = unit_noise(philox::Kind::kGaussian, tensor_seed(123, name), 0, clean.numel());
  const float* c = clean.data_ptr<float>();
  const float* w = model.parameters().at(name).data_ptr<float>();
  for (int64_t i = 0; i < clean.numel(); ++i) ASSERT_EQ(w[i], c[i] + mult * z[i]) << i;
}

TEST(NoiseEngine, CommonRandomNumbersAcrossScales) {
  Model model = Model::from_preset("tiny");
  const std::string name = "model.layers.0.mlp.gate_proj.weight";
  torch::Tensor clean = model.parameters().at(name).clone();
  NoiseEngine engine(model, only(name));
  engine.inject(0.01, 5);
  torch::Tensor small = model.parameters().at(name) - clean;
  engine.inject(0.03, 5);  // no restore in between: the pass starts from the clean copy
  torch::Tensor large = model.parameters().at(name) - clean;
  engine.restore();
  // Same unit noise: the perturbations are proportional (up to float rounding).
  EXPECT_TRUE(torch::allclose(large, small * 3.0, 1e-3, 1e-7));
  engine.inject(0.01, 6);
  torch::Tensor other_seed = model.parameters().at(name) - clean;
  engine.restore();
  EXPECT_FALSE(torch::allclose(other_seed, small, 1e-2, 1e-7));
}

TEST(NoiseEngine, ReferencesScaleTheRequestedStd) {
  Model model = Model::from_preset("tiny");
  const std::string name = "model.layers.0.mlp.down_proj.weight";
  torch::Tensor clean = model.parameters().at(name).to(torch::kDouble);
  const TargetSpec spec = only(name);
  struct Case {
    ScaleReference reference;
    double expected;
  };
  for (const Case& c : {Case{ScaleReference::kTensorStd, clean.std().item<double>()},
                        Case{ScaleReference::kAbsMax, clean.abs().max().item<double>()},
                        Case{ScaleReference::kRowStd, clean.std(1).pow(2).mean().sqrt().item<double>()}}) {
    NoiseEngine engine(model, spec, NoiseType{}, c.reference);
    InjectionReport report = engine.inject(0.1, 9);
    engine.restore();
    EXPECT_NEAR(report.tensors[0].requested_std, 0.1 * c.expected, 1e-9) << scale_reference_name(c.reference);
    EXPECT_NEAR(report.realized_ratio, 1.0, 0.05) << scale_reference_name(c.reference);  // fp32 keeps it all
  }
  NoiseEngine multiplicative(model, spec, parse_noise_type("multiplicative"));
  InjectionReport report = multiplicative.inject(0.1, 9);
  torch::Tensor delta = model.parameters().at(name).to(torch::kDouble) - clean;
  multiplicative.restore();
  // w (1 + s z): the perturbation is proportional to each weight.
  EXPECT_NEAR((delta / clean).std().item<double>(), 0.1, 0.01);
  EXPECT_NEAR(report.realized_ratio, 1.0, 0.05);
}

TEST(NoiseEngine, RealizedNoiseInBf16AtTinyScaleMostlyRoundsAway) {
  Model model = Model::from_preset("tiny", with_dtype(torch::kBFloat16));
  NoiseEngine engine(model, TargetSpec{});
  InjectionReport tiny = engine.inject(0.001, 1);
  InjectionReport large = engine.inject(0.05, 1);
  engine.restore();
  EXPECT_LT(tiny.changed_fraction, 0.2);
  EXPECT_GT(large.changed_fraction, 0.8);
  EXPECT_LT(tiny.realized_ratio, large.realized_ratio);
  EXPECT_NEAR(large.realized_ratio, 1.0, 0.1);
  ASSERT_EQ(tiny.tensors.size(), engine.target_names().size());
  for (const auto& t : tiny.tensors) EXPECT_LE(t.changed, t.numel);
  nlohmann::json j = tiny.to_json();
  EXPECT_EQ(j["tensors"].size(), tiny.tensors.size());
}

// ---------------------------------------------------------------- restore

TEST(NoiseRestore, ScopeRestoresBitForBit) {
  for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
    Model model = Model::from_preset("tiny", with_dtype(dtype));
    const std::string before = hash_parameters(model.parameters());
    NoiseEngine engine(model, TargetSpec{}, parse_noise_type("laplace"), ScaleReference::kRowStd);
    {
      NoiseScope scope(engine, 0.05, 17);
      EXPECT_NE(hash_parameters(model.parameters()), before);
    }
    EXPECT_EQ(hash_parameters(model.parameters()), before) << dtype_name(dtype);
  }
}

// The suite skips the forward of an injection that left every bit clean; only bits may decide that.
TEST(NoiseRestore, LiveBitsEqualCleanSeesBitsNotValues) {
  for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
    Model model = Model::from_preset("tiny", with_dtype(dtype));
    const std::string name = hf_parameter_name(Weight::kQ, 0);
    torch::Tensor flat = model.parameters().at(name).view(-1);
    flat[0] = 0.0;  // +0 in the clean copy
    NoiseEngine engine(model, only(name), NoiseType{}, ScaleReference::kTensorStd);
    EXPECT_TRUE(engine.live_bits_equal_clean()) << dtype_name(dtype);
    {
      NoiseScope scope(engine, 0.0, 3);
      EXPECT_EQ(scope.report().changed, 0);
      EXPECT_TRUE(engine.live_bits_equal_clean()) << dtype_name(dtype);
    }
    {
      NoiseScope scope(engine, 0.01, 3);
      EXPECT_FALSE(engine.live_bits_equal_clean()) << dtype_name(dtype);
    }
    EXPECT_TRUE(engine.live_bits_equal_clean()) << dtype_name(dtype);
    flat[0] = -0.0;  // the same value, another bit pattern
    EXPECT_TRUE(flat[0].item<double>() == 0.0);
    EXPECT_FALSE(engine.live_bits_equal_clean()) << dtype_name(dtype);
  }
}

// Engines sharing a store copy each parameter once and give the bits of engines with their own copies.
TEST(NoiseRestore, EnginesSharingACleanStoreInjectAndRestoreAsTheirOwn) {
  for (auto reference : {ScaleReference::kTensorStd, ScaleReference::kRowStd}) {
    Model own = Model::from_preset("tiny", with_dtype(torch::kBFloat16));
    Model shared = Model::from_preset("tiny", with_dtype(torch::kBFloat16));
    const std::string before = hash_parameters(shared.parameters());
    auto store = std::make_shared<CleanStore>(shared.parameters());
    TargetSpec attention, all;
    attention.groups = {"attention"};
    for (const TargetSpec& spec : {attention, all, attention}) {
      NoiseEngine mine(own, spec, NoiseType{}, reference);
      NoiseEngine theirs(shared, spec, NoiseType{}, reference, store);
      {
        NoiseScope a(mine, 0.05, 11), b(theirs, 0.05, 11);
        EXPECT_EQ(hash_parameters(own.parameters()), hash_parameters(shared.parameters()));
        EXPECT_EQ(a.report().realized_ratio, b.report().realized_ratio);
      }
      EXPECT_EQ(hash_parameters(shared.parameters()), before);
    }
    NoiseEngine everything(shared, all, NoiseType{}, reference);
    EXPECT_EQ(store->bytes(), everything.clean_bytes());  // every parameter copied once
  }
  // A parameter replaced after its copy was made is refused, not restored to the old tensor.
  Model model = Model::from_preset("tiny", with_dtype(torch::kFloat));
  auto store = std::make_shared<CleanStore>(model.parameters());
  const std::string name = hf_parameter_name(Weight::kQ, 0);
  NoiseEngine first(model, only(name), NoiseType{}, ScaleReference::kTensorStd, store);
  model.parameters().at(name) = model.parameters().at(name).clone();
  EXPECT_THROW(NoiseEngine(model, only(name), NoiseType{}, ScaleReference::kTensorStd, store), Error);
}

// A checkpoint loaded without conversion keeps its mapped bytes as each parameter's origin; the
// store takes the origin as the clean copy only while the live bytes equal it, and restores the
// live bytes either way.
TEST(NoiseRestore, CleanStoreKeepsTheCheckpointBytesOnlyWhileTheLiveBytesMatch) {
  const std::string dir = "fixtures/models/qwen2-tiny";  // fp32 on disk
  Model converted = Model::load(dir, with_dtype(torch::kBFloat16));
  const std::string q0 = hf_parameter_name(Weight::kQ, 0), k0 = hf_parameter_name(Weight::kK, 0);
  EXPECT_FALSE(converted.parameters().origin(*converted.parameters().find(q0)).defined());

  Model model = Model::load(dir, with_dtype(torch::kFloat));
  ParameterMap& params = model.parameters();
  const size_t q = *params.find(q0), k = *params.find(k0);
  ASSERT_TRUE(params.origin(q).defined());
  ASSERT_TRUE(params.origin(k).defined());
  params.tensor(k).view(-1)[0] += 1.0f;  // k0 no longer holds the checkpoint's bytes
  const std::string before = hash_parameters(params);
  auto store = std::make_shared<CleanStore>(params);
  TargetSpec both;
  both.include = {q0, k0};
  NoiseEngine engine(model, both, NoiseType{}, ScaleReference::kTensorStd, store);
  EXPECT_EQ(store->entry(q, false).clean.data_ptr(), params.origin(q).data_ptr());
  EXPECT_NE(store->entry(k, false).clean.data_ptr(), params.origin(k).data_ptr());
  EXPECT_TRUE(torch::equal(store->entry(k, false).clean, params.tensor(k)));
  {
    NoiseScope scope(engine, 0.05, 4);
    EXPECT_NE(hash_parameters(params), before);
  }
  EXPECT_EQ(hash_parameters(params), before);
}

TEST(NoiseRestore, ExceptionThroughTheScopeRestores) {
  Model model = Model::from_preset("tiny", with_dtype(torch::kBFloat16));
  const std::string before = hash_parameters(model.parameters());
  NoiseEngine engine(model, TargetSpec{});
  EXPECT_THROW(
      {
        NoiseScope scope(engine, 0.02, 1);
        throw std::runtime_error("experiment failed");
      },
      std::runtime_error);
  EXPECT_EQ(hash_parameters(model.parameters()), before);
}

TEST(NoiseRestore, ExceptionMidInjectionRestoresTouchedTensors) {
  Model model = Model::from_preset("tiny", with_dtype(torch::kBFloat16));
  const std::string before = hash_parameters(model.parameters());
  NoiseEngine engine(model, TargetSpec{});
  ASSERT_GT(engine.target_names().size(), 3u);
  size_t written = 0;
  engine.set_after_tensor_hook([&](size_t index) {
    written = index + 1;
    if (index == 2) throw std::runtime_error("interrupted after three tensors");
  });
  EXPECT_THROW(NoiseScope(engine, 0.05, 1), std::runtime_error);
  EXPECT_EQ(written, 3u);
  EXPECT_EQ(hash_parameters(model.parameters()), before);
  EXPECT_FALSE(engine.injected());
}

TEST(NoiseRestore, ThousandsOfCyclesStayBitExact) {
  Model model = Model::from_preset("tiny", with_dtype(torch::kBFloat16));
  const std::string before = hash_parameters(model.parameters());
  NoiseEngine engine(model, TargetSpec{});
  for (int cycle = 0; cycle < 2000; ++cycle) {
    NoiseScope scope(engine, 0.01 * (1 + cycle % 5), static_cast<uint64_t>(cycle));
  }
  EXPECT_EQ(hash_parameters(model.parameters()), before);
}

// ---------------------------------------------------------------- targeting

// The notebook noises every parameter whose name contains "weight" except names containing
// "layernorm", "ln" or "embed": the final norm and lm_head are in, per-layer norms, embeddings and
// biases out. The default reproduces that set exactly, name for name.
TEST(NoiseTargets, DefaultsFollowTheNotebooksRule) {
  Model model = Model::from_preset("tiny");
  NoiseEngine engine(model, TargetSpec{});
  std::vector<std::string> notebook;
  for (const auto& [name, tensor] : model.parameters().entries()) {
    const bool excluded = name.find("layernorm") != std::string::npos || name.find("ln") != std::string::npos ||
                          name.find("embed") != std::string::npos;
    if (name.find("weight") != std::string::npos && !excluded) notebook.push_back(name);
  }
  EXPECT_EQ(engine.target_names(), notebook);
  EXPECT_NE(std::find(notebook.begin(), notebook.end(), "model.norm.weight"), notebook.end());
  TargetSpec all_norms;
  all_norms.exclude = exclusion_convention("all-norms");
  NoiseEngine without_final_norm(model, all_norms);
  EXPECT_EQ(without_final_norm.target_names().size() + 1, notebook.size());
  for (const auto& name : without_final_norm.target_names()) {
    EXPECT_EQ(name.find("norm"), std::string::npos) << name;
    EXPECT_EQ(name.find("embed"), std::string::npos) << name;
    EXPECT_EQ(name.find(".bias"), std::string::npos) << name;
  }
  EXPECT_THROW(exclusion_convention("none-at-all"), Error);
  TargetSpec everything;
  everything.exclude = {};
  EXPECT_EQ(select_targets(model.parameters(), model.config(), everything).size(), model.parameters().size());
}

// Gemma's extra norms (pre/post feed-forward, the attention output's post_attention_layernorm) are
// norms: in no attention or mlp group, and out under the notebook's rule ("layernorm"); Gemma 3's
// q_norm/k_norm sit in self_attn and count as attention, as Qwen3's do (docs/design.md).
TEST(NoiseTargets, GemmaNormsAreNormsAndQkNormsAreAttention) {
  Model model = Model::load("fixtures/models/gemma3-tiny");
  auto selected = [&](const std::string& group, std::vector<std::string> exclude) {
    TargetSpec spec;
    spec.groups = {group};
    spec.exclude = std::move(exclude);
    std::vector<std::string> names;
    for (size_t i : select_targets(model.parameters(), model.config(), spec)) names.push_back(model.parameters().name(i));
    return names;
  };
  const auto stems = [](const std::vector<std::string>& names) {
    std::set<std::string> out;
    for (const auto& name : names) out.insert(name.substr(name.find('.', name.find("layers.") + 7) + 1));
    return out;
  };
  EXPECT_EQ(stems(selected("attention", {})),
            (std::set<std::string>{"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                                   "self_attn.o_proj.weight", "self_attn.q_norm.weight", "self_attn.k_norm.weight"}));
  EXPECT_EQ(stems(selected("mlp", {})),
            (std::set<std::string>{"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"}));
  const auto layer = selected("layer:1", {});
  for (const char* norm : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                           "post_feedforward_layernorm"}) {
    const std::string name = fmt::format("model.layers.1.{}.weight", norm);
    EXPECT_NE(std::find(layer.begin(), layer.end(), name), layer.end()) << name;
  }
  for (const auto& name : selected("layer:1", default_excludes())) EXPECT_EQ(name.find("layernorm"), std::string::npos) << name;
}

// The notebook's depth groups are literal layer ranges 0-7, 8-23, 24-31, cut at the model's depth.
TEST(NoiseTargets, NotebookDepthGroupsAreLiteralRangesAndThirdsSplitTheDepth) {
  ModelConfig deep = preset_config("deepseek-r1-distill-qwen-1.5b");
  ASSERT_EQ(deep.num_layers, 28);
  const auto ranges = [](const nlohmann::json& d) { return d.at("depth_ranges"); };
  Model model = Model::from_preset("tiny");
  const auto notebook = describe_groups(model.parameters(), deep, default_excludes(), DepthGroups::kNotebook);
  EXPECT_EQ(ranges(notebook).at("early"), nlohmann::json({0, 7}));
  EXPECT_EQ(ranges(notebook).at("middle"), nlohmann::json({8, 23}));
  EXPECT_EQ(ranges(notebook).at("late"), nlohmann::json({24, 27}));
  const auto thirds = describe_groups(model.parameters(), deep, default_excludes(), DepthGroups::kThirds);
  EXPECT_EQ(ranges(thirds).at("early"), nlohmann::json({0, 9}));
  EXPECT_EQ(ranges(thirds).at("middle"), nlohmann::json({10, 18}));
  EXPECT_EQ(ranges(thirds).at("late"), nlohmann::json({19, 27}));
  ModelConfig shallow = deep;
  shallow.num_layers = 4;
  const auto names = group_names(shallow, DepthGroups::kNotebook);
  EXPECT_NE(std::find(names.begin(), names.end(), "early"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "middle"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "late"), names.end());
  EXPECT_EQ(parse_depth_groups("thirds"), DepthGroups::kThirds);
  EXPECT_THROW(parse_depth_groups("quarters"), Error);
}

TEST(NoiseTargets, GroupsFollowTheModelsDepth) {
  Model model = Model::from_preset("tiny");
  const int64_t layers = model.config().num_layers;
  ASSERT_GE(layers, 2);
  int64_t covered = 0;
  for (const std::string group : {"early", "middle", "late"}) {
    TargetSpec spec;
    spec.groups = {group};
    if (layers < 3 && group != "early") continue;
    for (size_t i : select_targets(model.parameters(), model.config(), spec))
      EXPECT_NE(model.parameters().name(i).find("model.layers."), std::string::npos);
    covered += static_cast<int64_t>(select_targets(model.parameters(), model.config(), spec).size());
  }
  TargetSpec per_layer;
  for (int64_t l = 0; l < layers; ++l) per_layer.groups.push_back("layer:" + std::to_string(l));
  if (layers >= 3) EXPECT_EQ(covered, static_cast<int64_t>(select_targets(model.parameters(), model.config(), per_layer).size()));
  TargetSpec attention;
  attention.groups = {"attention"};
  for (size_t i : select_targets(model.parameters(), model.config(), attention))
    EXPECT_NE(model.parameters().name(i).find("self_attn"), std::string::npos);
  nlohmann::json groups = describe_groups(model);
  EXPECT_EQ(groups["groups"].size(), group_names(model.config()).size());
}

TEST(NoiseTargets, RegexAndSubstringPatterns) {
  Model model = Model::from_preset("tiny");
  TargetSpec spec;
  spec.include = {R"(layers\.0\..*(q|k)_proj)"};
  spec.regex = true;
  auto picked = select_targets(model.parameters(), model.config(), spec);
  ASSERT_EQ(picked.size(), 2u);
  EXPECT_EQ(model.parameters().name(picked[0]), "model.layers.0.self_attn.q_proj.weight");
}

// Phi-3 keeps q/k/v in one qkv_proj and gate/up in one gate_up_proj, as HF does. The groups then
// select what the notebook's substring filters select on HF's parameter names: attention
// (self_attn, q/k/v/o_proj) the whole fused qkv_proj and o_proj, mlp (mlp, gate/up/down_proj) the
// whole gate_up_proj and down_proj. A bare "v_proj" pattern matches "qkv_proj", as on HF's names.
TEST(NoiseTargets, PhiThreeFusedTensorsAreSelectedAsTheNotebooksFiltersSelectThem) {
  Model model = Model::load("fixtures/models/phi3-tiny");
  auto notebook_filter = [&](const std::vector<std::string>& patterns) {
    std::vector<std::string> names;
    for (const auto& [name, tensor] : model.parameters().entries()) {
      const bool excluded = name.find("layernorm") != std::string::npos || name.find("ln") != std::string::npos ||
                            name.find("embed") != std::string::npos;
      const bool targeted = std::any_of(patterns.begin(), patterns.end(),
                                        [&](const std::string& p) { return name.find(p) != std::string::npos; });
      if (name.find("weight") != std::string::npos && !excluded && targeted) names.push_back(name);
    }
    return names;
  };
  auto group = [&](const std::string& name) {
    TargetSpec spec;
    spec.groups = {name};
    std::vector<std::string> names;
    for (size_t i : select_targets(model.parameters(), model.config(), spec)) names.push_back(model.parameters().name(i));
    return names;
  };
  const auto attention = group("attention");
  EXPECT_EQ(attention, notebook_filter({"self_attn", "q_proj", "k_proj", "v_proj", "o_proj"}));
  EXPECT_EQ(group("mlp"), notebook_filter({"mlp", "gate_proj", "up_proj", "down_proj"}));
  EXPECT_NE(std::find(attention.begin(), attention.end(), "model.layers.1.self_attn.qkv_proj.weight"), attention.end());
  EXPECT_EQ(attention.size(), 4u);  // qkv_proj and o_proj of 2 layers
  NoiseEngine v_proj(model, only("v_proj"));
  EXPECT_EQ(v_proj.target_names(), (std::vector<std::string>{"model.layers.0.self_attn.qkv_proj.weight",
                                                               "model.layers.1.self_attn.qkv_proj.weight"}));
}

// row_std on a fused tensor: rows are still output rows (q rows, then k rows, then v rows), each
// scaled by its own std; and the forward reads the fused parameter, so its noise moves the logits and
// the restore brings them back bit for bit.
TEST(NoiseEngine, RowStdOnAFusedTensorScalesEachOutputRowAndTheForwardSeesIt) {
  Model model = Model::load("fixtures/models/phi3-tiny");
  const std::string name = "model.layers.0.self_attn.qkv_proj.weight";
  const torch::Tensor clean = model.parameters().at(name).clone();
  const std::vector<std::vector<int64_t>> prompt = {{5, 17, 42, 99, 3}};
  const torch::Tensor clean_logits = model.last_logits(prompt);
  NoiseEngine engine(model, only(name), NoiseType{}, ScaleReference::kRowStd);
  engine.inject(0.05, 11);
  const torch::Tensor delta = (model.parameters().at(name) - clean).to(torch::kDouble);  // [rows, hidden]
  const auto z_values = unit_noise(philox::Kind::kGaussian, tensor_seed(11, name), 0, clean.numel());
  const torch::Tensor z = torch::tensor(z_values).to(torch::kDouble).view(clean.sizes());
  // Each row's multiplier, by least squares on its elements, against 0.05 x that row's std.
  const torch::Tensor multiplier = (delta * z).sum(1) / (z * z).sum(1);
  const torch::Tensor expected = 0.05 * clean.to(torch::kDouble).std(1);
  EXPECT_LT(((multiplier - expected).abs() / expected).max().item<double>(), 1e-5);
  const auto& c = model.config();
  ASSERT_EQ(clean.size(0), (c.num_heads + 2 * c.num_kv_heads) * c.head_dim);
  EXPECT_GT((expected.max() / expected.min()).item<double>(), 1.01);  // the rows' own stds differ
  EXPECT_FALSE(torch::equal(model.last_logits(prompt), clean_logits));
  engine.restore();
  EXPECT_TRUE(torch::equal(model.last_logits(prompt), clean_logits));
}

// ---------------------------------------------------------------- bad input

// The table of noise kinds: every name parses back to its row, rows are distinct kinds, and each
// row's distribution has unit variance (the formula in philox.h exists for it).
TEST(NoiseKinds, TableRoundTripsAndEachDistributionHasUnitVariance) {
  std::vector<NoiseType> seen;
  for (const auto& row : noise_kinds()) {
    const NoiseType type = parse_noise_type(row.name);
    EXPECT_EQ(type, row.type) << row.name;
    EXPECT_EQ(noise_type_name(type), row.name);
    EXPECT_EQ(std::count(seen.begin(), seen.end(), type), 0) << row.name << " duplicates a row";
    seen.push_back(type);
    const std::vector<float> z = unit_noise(row.type.distribution, 99, 0, 1 << 16);
    double sum_sq = 0;
    for (float v : z) sum_sq += static_cast<double>(v) * v;
    EXPECT_NEAR(sum_sq / z.size(), 1.0, 0.03) << row.name;
  }
}

TEST(NoiseBadInput, RejectedBeforeAnyWeightIsTouched) {
  Model model = Model::from_preset("tiny", with_dtype(torch::kBFloat16));
  const std::string before = hash_parameters(model.parameters());
  NoiseEngine engine(model, TargetSpec{});
  const double inf = std::numeric_limits<double>::infinity();
  for (double scale : {-0.1, std::nan(""), inf, -inf}) {
    EXPECT_THROW(engine.inject(scale, 1), Error) << scale;
    EXPECT_EQ(hash_parameters(model.parameters()), before);
  }
  EXPECT_THROW(parse_noise_type("pink"), Error);
  EXPECT_THROW(parse_scale_reference("row_max"), Error);
  // A reference multiplicative noise would ignore is refused, not recorded.
  for (auto reference : {ScaleReference::kRowStd, ScaleReference::kAbsMax}) {
    EXPECT_THROW(NoiseEngine(model, TargetSpec{}, parse_noise_type("multiplicative"), reference), Error);
  }
  EXPECT_EQ(hash_parameters(model.parameters()), before);
  for (const std::string seed : {"abc", "-1", "1.5", "", "18446744073709551616", "12x"})
    EXPECT_THROW(parse_seed(seed), Error) << seed;
  EXPECT_EQ(parse_seed("18446744073709551615"), 18446744073709551615ull);

  TargetSpec typo;
  typo.include = {"q_prj"};
  try {
    select_targets(model.parameters(), model.config(), typo);
    FAIL() << "a pattern that matches nothing must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q_proj"), std::string::npos) << e.what();  // closest names listed
  }
  TargetSpec bad_regex;
  bad_regex.include = {"layers.(0"};
  bad_regex.regex = true;
  EXPECT_THROW(select_targets(model.parameters(), model.config(), bad_regex), Error);
  TargetSpec excluded_only;
  excluded_only.include = {"input_layernorm"};
  EXPECT_THROW(select_targets(model.parameters(), model.config(), excluded_only), Error);
  TargetSpec bad_group;
  bad_group.groups = {"layer:999"};
  EXPECT_THROW(select_targets(model.parameters(), model.config(), bad_group), Error);
  EXPECT_EQ(hash_parameters(model.parameters()), before);
}

// ---------------------------------------------------------------- command line

TEST(NoiseCli, PrintsTheStreamWithItsCurandPositions) {
  const std::string name = "model.layers.2.self_attn.o_proj.weight";
  std::ostringstream out;
  ASSERT_EQ(cli::cmd_noise({"--seed", "77", "--param", name, "--count", "11", "--first", "6"}, out), 0);
  nlohmann::json j = nlohmann::json::parse(out.str());
  const uint64_t stream = tensor_seed(77, name);
  EXPECT_EQ(j["curand_seed"].get<uint64_t>(), stream);
  ASSERT_EQ(j["values"].size(), 11u);
  std::vector<uint32_t> raw = curand_host_uint32(stream, 6, 11);
  std::vector<float> normals = curand_host_normals(stream, 6, 11);
  std::vector<float> ours = unit_noise(philox::Kind::kGaussian, stream, 4, 13);
  for (size_t i = 0; i < 11; ++i) {
    const auto& v = j["values"][i];
    EXPECT_EQ(v["index"].get<uint64_t>(), 6 + i);
    EXPECT_EQ(v["uint32"].get<uint32_t>(), raw[i]);
    EXPECT_EQ(v["value"].get<float>(), ours[i + 2]);
    EXPECT_NEAR(v["value"].get<float>(), normals[i], 1e-5);
    EXPECT_EQ(v["subsequence"].get<uint64_t>(), ((6 + i) >> 2) & 65535);
  }
  EXPECT_THROW(cli::cmd_noise({"--seed", "x1", "--param", name}, out), Error);
  EXPECT_THROW(cli::cmd_noise({"--seed", "1", "--param", name, "--type", "pink"}, out), Error);
}

}  // namespace
}  // namespace tstar
