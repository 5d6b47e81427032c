// config.json parsing: transformers' defaults, strict types, unsupported features refused with the
// file and key named; presets reproduce the published parameter counts.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tstar/config.h"
#include "loader_test_util.h"

namespace tstar {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::throws_mentioning;
using testing::write_file;

constexpr const char* kOrigin = "checkpoints/test/config.json";

// DeepSeek-R1-Distill-Qwen-1.5B's config.json as published.
json deepseek_config() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 1536, "initializer_range": 0.02,
    "intermediate_size": 8960, "max_position_embeddings": 131072, "max_window_layers": 21,
    "model_type": "qwen2", "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 10000, "sliding_window": 4096, "tie_word_embeddings": false,
    "torch_dtype": "bfloat16", "transformers_version": "4.44.0", "use_cache": true, "use_mrope": false,
    "use_sliding_window": false, "vocab_size": 151936})");
}

// The smallest Llama config: only the required keys.
json minimal_llama() {
  return json::parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 160,
                         "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 512,
                         "rms_norm_eps": 1e-5})");
}

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.o_proj_bias, b.o_proj_bias);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.layer_types, b.layer_types);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_EQ(a.norm_unit_offset, b.norm_unit_offset);
  EXPECT_EQ(a.sandwich_norms, b.sandwich_norms);
  EXPECT_EQ(a.scale_embeddings, b.scale_embeddings);
  EXPECT_EQ(a.query_pre_attn_scalar, b.query_pre_attn_scalar);
  EXPECT_EQ(a.attn_logit_softcapping, b.attn_logit_softcapping);
  EXPECT_EQ(a.final_logit_softcapping, b.final_logit_softcapping);
  EXPECT_EQ(a.local_rope_theta, b.local_rope_theta);
  EXPECT_EQ(a.fused_qkv, b.fused_qkv);
  EXPECT_EQ(a.fused_gate_up, b.fused_gate_up);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
}

TEST(ConfigParse, DeepSeekDistillConfig) {
  const ModelConfig c = ModelConfig::from_json(deepseek_config(), kOrigin);
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.hidden_size, 1536);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.eos_token_id, 151643);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  // Published size; transformers 5.24 counts the same for this config on the meta device.
  EXPECT_EQ(c.num_parameters(), 1'777'088'000);
}

TEST(ConfigParse, LlamaDefaultsFollowTransformers) {
  const ModelConfig c = ModelConfig::from_json(minimal_llama(), kOrigin);
  EXPECT_EQ(c.num_kv_heads, 4);  // defaults to num_attention_heads
  EXPECT_EQ(c.head_dim, 16);     // hidden_size / num_attention_heads
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_EQ(c.torch_dtype, "float32");
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_EQ(c.eos_token_id, -1);
  EXPECT_EQ(c.max_position_embeddings, 2048);
}

TEST(ConfigParse, LlamaAttentionBiasCoversOutputProjection) {
  json j = minimal_llama();
  j["attention_bias"] = true;
  j["num_key_value_heads"] = 2;
  const ModelConfig c = ModelConfig::from_json(j, kOrigin);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.o_proj_bias);
  // transformers 5.24, LlamaForCausalLM on the meta device: 152,256 parameters.
  EXPECT_EQ(c.num_parameters(), 152'256);
}

TEST(ConfigParse, NullMeansDefaultAndTokenListsTakeTheFirst) {
  json j = minimal_llama();
  j["num_key_value_heads"] = nullptr;
  j["rope_scaling"] = nullptr;
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = {7, 9};
  const ModelConfig c = ModelConfig::from_json(j, kOrigin);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_EQ(c.eos_token_id, 7);
}

TEST(ConfigParse, TransformersFiveRopeParametersAndDtype) {
  json j = minimal_llama();
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500000.0}};
  j["dtype"] = "bfloat16";
  j["torch_dtype"] = "float16";  // "dtype" (transformers 5) wins over the legacy key
  const ModelConfig c = ModelConfig::from_json(j, kOrigin);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
}

TEST(ConfigParse, ExplicitHeadDimOverridesQuotient) {
  json j = minimal_llama();
  j["head_dim"] = 32;
  EXPECT_EQ(ModelConfig::from_json(j, kOrigin).head_dim, 32);
}

class MissingKeyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MissingKeyTest, NamesKeyAndFile) {
  json j = deepseek_config();
  j.erase(GetParam());
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(j, kOrigin); }, {kOrigin, "'" + GetParam() + "'"}));
}

INSTANTIATE_TEST_SUITE_P(Required, MissingKeyTest,
                         ::testing::Values("architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
                                           "num_attention_heads", "vocab_size", "rms_norm_eps"));

struct WrongType {
  const char* key;
  json value;
};

class WrongTypeTest : public ::testing::TestWithParam<WrongType> {};

TEST_P(WrongTypeTest, NamesKeyAndFile) {
  json j = deepseek_config();
  j[GetParam().key] = GetParam().value;
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(j, kOrigin); }, {kOrigin, std::string("'") + GetParam().key + "'"}));
}

INSTANTIATE_TEST_SUITE_P(
    Keys, WrongTypeTest,
    ::testing::Values(WrongType{"hidden_size", "1536"}, WrongType{"hidden_size", 1536.5},
                      WrongType{"num_hidden_layers", true}, WrongType{"num_key_value_heads", json::array({2})},
                      WrongType{"rms_norm_eps", "1e-6"}, WrongType{"rope_theta", "10000"},
                      WrongType{"tie_word_embeddings", "false"}, WrongType{"tie_word_embeddings", 0},
                      WrongType{"architectures", "Qwen2ForCausalLM"}, WrongType{"architectures", json::array()},
                      WrongType{"torch_dtype", 16}, WrongType{"eos_token_id", "151643"},
                      WrongType{"vocab_size", 18446744073709551615ull}, WrongType{"rope_scaling", "linear"}));

TEST(ConfigErrors, UnknownArchitecture) {
  json j = deepseek_config();
  j["architectures"] = {"MistralForCausalLM"};
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(j, kOrigin); }, {kOrigin, "'MistralForCausalLM'"}));
}

TEST(ConfigErrors, ModelTypeMustMatchArchitecture) {
  json j = deepseek_config();
  j["model_type"] = "llama";
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(j, kOrigin); }, {kOrigin, "model_type", "'llama'"}));
}

TEST(ConfigErrors, UnsupportedFeatures) {
  json llama = minimal_llama();
  llama["mlp_bias"] = true;
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(llama, kOrigin); }, {kOrigin, "mlp_bias not supported"}));
  json qwen = deepseek_config();
  qwen["use_sliding_window"] = true;
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(qwen, kOrigin); }, {kOrigin, "use_sliding_window"}));
  qwen = deepseek_config();
  qwen["layer_types"] = {"full_attention", "sliding_attention"};
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(qwen, kOrigin); }, {kOrigin, "\"sliding_attention\""}));
  qwen["layer_types"] = {"full_attention", "full_attention"};
  EXPECT_NO_THROW(ModelConfig::from_json(qwen, kOrigin));
  qwen = deepseek_config();
  qwen["hidden_act"] = "gelu";
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(qwen, kOrigin); }, {kOrigin, "hidden_act 'gelu'"}));
  qwen = deepseek_config();
  qwen["torch_dtype"] = "float64";
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(qwen, kOrigin); }, {kOrigin, "'torch_dtype'", "float64"}));
}

TEST(ConfigErrors, InconsistentShapes) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"hidden_size", 0}}, "'hidden_size'"},
      {{{"intermediate_size", -4}}, "'intermediate_size'"},
      {{{"num_hidden_layers", 0}}, "'num_hidden_layers'"},
      {{{"num_attention_heads", 0}}, "'num_attention_heads'"},
      {{{"num_key_value_heads", 5}}, "num_key_value_heads (5)"},
      {{{"head_dim", 127}}, "head_dim"},
      {{{"vocab_size", 100000000}}, "'vocab_size'"},
      {{{"rms_norm_eps", 0.0}}, "'rms_norm_eps'"},
      {{{"rope_theta", -1.0}}, "'rope_theta'"},
      {{{"bos_token_id", 151936}}, "'bos_token_id'"},
      {{{"num_attention_heads", 7}}, "not a multiple of num_attention_heads (7)"},
  };
  for (const auto& [patch, needle] : cases) {
    json j = deepseek_config();
    j.update(patch);
    EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(j, kOrigin); }, {kOrigin, needle})) << patch.dump();
  }
}

TEST(ConfigErrors, NotAnObject) {
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(json::array({1}), kOrigin); }, {kOrigin, "not a JSON object"}));
}

TEST(ConfigFile, ReadsAndReportsFileProblems) {
  TempDir dir;
  const auto good = dir / "config.json";
  write_file(good, deepseek_config().dump(2));
  EXPECT_EQ(ModelConfig::from_file(good).hidden_size, 1536);

  const auto missing = (dir / "absent.json").string();
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_file(missing); }, {missing, "no such file"}));

  const auto broken = dir / "broken.json";
  write_file(broken, "{\n  \"hidden_size\": 1536,\n  \"vocab_size\": \n}");
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_file(broken); }, {broken.string(), "invalid JSON", "line 4"}));

  const auto truncated_by_nul = dir / "nul.json";
  write_file(truncated_by_nul, deepseek_config().dump() + std::string("\0{", 2));
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_file(truncated_by_nul); },
                                {truncated_by_nul.string(), "NUL byte"}));

  const auto wrong = dir / "wrong.json";
  json j = deepseek_config();
  j["hidden_size"] = "big";
  write_file(wrong, j.dump());
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_file(wrong); }, {wrong.string(), "'hidden_size'"}));

  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_file(dir.path()); }, {dir.path().string(), "directory"}));
}

TEST(ConfigJson, RoundTripsEveryPresetAndLlama) {
  for (const auto& name : preset_names()) {
    SCOPED_TRACE(name);
    const ModelConfig preset = preset_config(name);
    expect_same(ModelConfig::from_json(preset.to_json(), name), preset);
  }
  json j = minimal_llama();
  j["attention_bias"] = true;
  j["tie_word_embeddings"] = true;
  const ModelConfig llama = ModelConfig::from_json(j, kOrigin);
  expect_same(ModelConfig::from_json(llama.to_json(), "llama"), llama);
}

TEST(Presets, NamesAndLookup) {
  const auto names = preset_names();
  EXPECT_EQ(names, (std::vector<std::string>{"deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-llama-8b",
                                             "gemma-2-2b", "gemma-3-1b", "llama-3.2-1b", "phi-3-mini", "qwen2.5-0.5b",
                                             "qwen3-0.6b", "qwen3-1.7b", "tiny"}));
  for (const auto& name : names) EXPECT_TRUE(is_preset(name));
  EXPECT_FALSE(is_preset("qwen2.5-7b"));
  EXPECT_TRUE(throws_mentioning([] { preset_config("qwen2.5-7b"); },
                                {"'qwen2.5-7b'", "deepseek-r1-distill-qwen-1.5b", "qwen2.5-0.5b", "tiny"}));
}

// Expected counts: the published sizes, which transformers 5.24 reproduces from these shapes on
// the meta device (Qwen2ForCausalLM, no weights).
TEST(Presets, ParameterCountsMatchPublishedSizes) {
  EXPECT_EQ(preset_config("deepseek-r1-distill-qwen-1.5b").num_parameters(), 1'777'088'000);
  EXPECT_EQ(preset_config("qwen2.5-0.5b").num_parameters(), 494'032'768);
  EXPECT_EQ(preset_config("tiny").num_parameters(), 152'128);
}

TEST(Presets, ShapesOfTheRealModels) {
  const ModelConfig ds = preset_config("deepseek-r1-distill-qwen-1.5b");
  const ModelConfig from_file = ModelConfig::from_json(deepseek_config(), kOrigin);
  EXPECT_EQ(ds.bos_token_id, 151646);  // generation_config.json, which differs from config.json
  ModelConfig with_config_bos = ds;
  with_config_bos.bos_token_id = from_file.bos_token_id;
  expect_same(with_config_bos, from_file);

  const ModelConfig qwen = preset_config("qwen2.5-0.5b");
  EXPECT_EQ(qwen.head_dim, 64);
  EXPECT_EQ(qwen.rope_theta, 1e6);
  EXPECT_TRUE(qwen.tie_word_embeddings);

  const ModelConfig tiny = preset_config("tiny");
  EXPECT_EQ(tiny.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(tiny.num_kv_heads, 2);
  EXPECT_EQ(tiny.torch_dtype, "float32");
  EXPECT_FALSE(tiny.tie_word_embeddings);
}

// The published config.json of meta-llama/Llama-3.2-1B (transformers 4 form: rope_scaling).
nlohmann::json llama_3_2_1b_config() {
  return nlohmann::json::parse(R"({"architectures": ["LlamaForCausalLM"], "attention_bias": false,
    "attention_dropout": 0.0, "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32,
    "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

TEST(Presets, LlamaThreeShapesAndParameterCounts) {
  const ModelConfig from_file = ModelConfig::from_json(llama_3_2_1b_config(), kOrigin);
  const ModelConfig preset = preset_config("llama-3.2-1b");
  expect_same(preset, from_file);
  EXPECT_EQ(preset.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(preset.rope_scaling.factor, 32.0);
  EXPECT_EQ(preset.rope_scaling.original_max_positions, 8192);
  EXPECT_EQ(preset.num_parameters(), 1235814400);  // Llama-3.2-1B: 1.24 B
  // DeepSeek-R1-Distill-Llama-8B has Llama-3.1-8B's shape: 8 030 261 248 parameters, untied.
  const ModelConfig distill = preset_config("deepseek-r1-distill-llama-8b");
  EXPECT_EQ(distill.num_parameters(), 8030261248);
  EXPECT_FALSE(distill.tie_word_embeddings);
  EXPECT_EQ(distill.rope_scaling.factor, 8.0);
  // The transformers 5 form (rope_parameters, rope_theta inside) parses to the same config.
  nlohmann::json v5 = llama_3_2_1b_config();
  v5["rope_parameters"] = v5["rope_scaling"];
  v5["rope_parameters"]["rope_theta"] = v5["rope_theta"];
  v5.erase("rope_scaling");
  v5.erase("rope_theta");
  expect_same(ModelConfig::from_json(v5, kOrigin), from_file);
  // to_json round-trips the scaling.
  expect_same(ModelConfig::from_json(preset.to_json(), kOrigin), preset);
}

TEST(ConfigErrors, RopeScalingNamesTheKey) {
  auto expect_error = [](const nlohmann::json& j, const std::string& message) {
    EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(j, kOrigin); }, {kOrigin, message})) << message;
  };
  auto with_rope = [](nlohmann::json rope) {
    nlohmann::json j = llama_3_2_1b_config();
    j["rope_scaling"] = std::move(rope);
    return j;
  };
  expect_error(with_rope({{"rope_type", "yarn"}, {"factor", 4.0}}), "'yarn' not supported");
  expect_error(with_rope({{"rope_type", "dynamic"}}), "missing required key 'factor'");
  expect_error(with_rope({{"rope_type", "llama3"}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0}}),
               "missing required key 'factor'");
  // An unknown type is refused in either form of the key.
  nlohmann::json v5 = llama_3_2_1b_config();
  v5.erase("rope_scaling");
  v5["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 500000.0}};
  expect_error(v5, "rope_parameters type 'longrope' not supported");
  expect_error(with_rope({{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0}, {"high_freq_factor", 1.0}}),
               "low_freq_factor < high_freq_factor");
  expect_error(with_rope({{"rope_type", "linear"}, {"factor", -2.0}}), "key 'factor' must be positive");
  expect_error(with_rope({{"rope_type", "default"}, {"partial_rotary_factor", 0.5}}), "partial_rotary_factor");
  nlohmann::json top_level_partial = llama_3_2_1b_config();
  top_level_partial["partial_rotary_factor"] = 0.75;  // Phi-4-mini's form, outside rope_scaling
  expect_error(top_level_partial, "partial_rotary_factor");
  const ModelConfig linear = ModelConfig::from_json(with_rope({{"type", "linear"}, {"factor", 2.0}}), kOrigin);
  EXPECT_EQ(linear.rope_scaling.type, RopeScaling::Type::kLinear);
}

// The published config.json of Qwen/Qwen3-0.6B.
nlohmann::json qwen3_0_6b_config() {
  return nlohmann::json::parse(R"({"architectures": ["Qwen3ForCausalLM"], "attention_bias": false,
    "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128,
    "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
    "use_sliding_window": false, "vocab_size": 151936})");
}

TEST(Presets, QwenThreeShapesAndParameterCounts) {
  const ModelConfig from_file = ModelConfig::from_json(qwen3_0_6b_config(), kOrigin);
  const ModelConfig preset = preset_config("qwen3-0.6b");
  expect_same(preset, from_file);
  EXPECT_TRUE(preset.qk_norm);
  EXPECT_FALSE(preset.attention_bias);
  EXPECT_EQ(preset.num_heads * preset.head_dim, 2048);  // != hidden_size
  EXPECT_EQ(preset.num_parameters(), 596049920);         // Qwen3-0.6B: 0.6 B
  EXPECT_EQ(preset_config("qwen3-1.7b").num_parameters(), 1720574976);  // Qwen3-1.7B: 1.7 B
  expect_same(ModelConfig::from_json(preset.to_json(), kOrigin), preset);
  EXPECT_TRUE(ModelConfig::from_json(preset.to_json(), kOrigin).qk_norm);
}

// Mistral's sliding_window: an integer, null (full attention) or absent (MistralConfig's 4096).
TEST(ConfigParse, MistralSlidingWindow) {
  nlohmann::json j = minimal_llama();
  j["architectures"] = {"MistralForCausalLM"};
  EXPECT_EQ(ModelConfig::from_json(j, kOrigin).sliding_window, 4096);
  j["sliding_window"] = nullptr;
  EXPECT_EQ(ModelConfig::from_json(j, kOrigin).sliding_window, 0);
  j["sliding_window"] = 5;
  const ModelConfig c = ModelConfig::from_json(j, kOrigin);
  EXPECT_EQ(c.sliding_window, 5);
  EXPECT_EQ(ModelConfig::from_json(c.to_json(), kOrigin).sliding_window, 5);
  j["sliding_window"] = -3;
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(j, kOrigin); }, {kOrigin, "sliding_window"}));
}

// Dynamic NTK RoPE: factor in either form of the key; max_position_embeddings is its threshold.
TEST(ConfigParse, DynamicRopeInBothForms) {
  nlohmann::json v4 = minimal_llama();
  v4["max_position_embeddings"] = 4096;
  v4["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  const ModelConfig c = ModelConfig::from_json(v4, kOrigin);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDynamic);
  EXPECT_EQ(c.rope_scaling.factor, 2.0);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  nlohmann::json v5 = minimal_llama();
  v5["max_position_embeddings"] = 4096;
  v5["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}, {"rope_theta", 10000.0}};
  expect_same(ModelConfig::from_json(v5, kOrigin), c);
  expect_same(ModelConfig::from_json(c.to_json(), kOrigin), c);
  EXPECT_STREQ(rope_type_name(RopeScaling::Type::kDynamic), "dynamic");
}

// The published config.json of microsoft/Phi-3-mini-4k-instruct (transformers 4 form).
nlohmann::json phi_3_mini_config() {
  return nlohmann::json::parse(R"({"architectures": ["Phi3ForCausalLM"], "attention_dropout": 0.0,
    "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config", "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM"},
    "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072,
    "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "phi3",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
    "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05,
    "rope_scaling": null, "rope_theta": 10000.0, "sliding_window": 2047, "tie_word_embeddings": false,
    "torch_dtype": "bfloat16", "transformers_version": "4.40.2", "use_cache": true, "attention_bias": false,
    "vocab_size": 32064})");
}

// Phi-3-mini: 3 821 079 552 parameters, which transformers 5.24 gives for this config on the meta
// device (Phi3ForCausalLM: qkv_proj [9216, 3072], gate_up_proj [16384, 3072], untied lm_head).
TEST(Presets, PhiThreeMiniShapeAndParameterCount) {
  const ModelConfig preset = preset_config("phi-3-mini");
  EXPECT_EQ(preset.num_parameters(), 3821079552);
  EXPECT_TRUE(preset.fused_qkv && preset.fused_gate_up);
  EXPECT_EQ(preset.sliding_window, 2047);
  const ModelConfig from_file = ModelConfig::from_json(phi_3_mini_config(), kOrigin);
  expect_same(preset, from_file);
  // The transformers 5 form: rope_parameters with partial_rotary_factor 1, dtype.
  nlohmann::json v5 = phi_3_mini_config();
  v5.erase("rope_scaling");
  v5.erase("rope_theta");
  v5.erase("torch_dtype");
  v5["dtype"] = "bfloat16";
  v5["rope_parameters"] = {{"partial_rotary_factor", 1.0}, {"rope_theta", 10000.0}, {"rope_type", "default"}};
  expect_same(ModelConfig::from_json(v5, kOrigin), from_file);
  // Phi3Config's defaults: no window when absent or null.
  v5.erase("sliding_window");
  EXPECT_EQ(ModelConfig::from_json(v5, kOrigin).sliding_window, 0);
  v5["sliding_window"] = nullptr;
  EXPECT_EQ(ModelConfig::from_json(v5, kOrigin).sliding_window, 0);
}

// Phi-3's RoPE options tstar does not implement are refused naming the key: longrope (Phi-3-mini-128k,
// Phi-3.5), and any type HF's Phi3Config itself refuses.
TEST(ConfigErrors, PhiThreeRopeScalingNamesTheKey) {
  nlohmann::json longrope = phi_3_mini_config();
  longrope["rope_scaling"] = {{"type", "longrope"}, {"long_factor", {1.0}}, {"short_factor", {1.0}}};
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(longrope, kOrigin); },
                                {kOrigin, "rope_scaling", "'longrope' not supported"}));
  nlohmann::json dynamic = phi_3_mini_config();
  dynamic["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(dynamic, kOrigin); },
                                {kOrigin, "rope_scaling type 'dynamic'", "Phi3ForCausalLM"}));
  nlohmann::json bad_original = phi_3_mini_config();
  bad_original["original_max_position_embeddings"] = 0;
  EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(bad_original, kOrigin); },
                                {kOrigin, "original_max_position_embeddings"}));
}

// The published config.json of google/gemma-2-2b (transformers 4.42's form: no layer_types, top-level
// rope_theta, hidden_act beside hidden_activation, no tie_word_embeddings key: Gemma2Config's True).
json gemma_2_2b_config() {
  return json::parse(R"({"architectures": ["Gemma2ForCausalLM"], "attention_bias": false,
    "attention_dropout": 0.0, "attn_logit_softcapping": 50.0, "bos_token_id": 2,
    "cache_implementation": "hybrid", "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304,
    "initializer_range": 0.02, "intermediate_size": 9216, "max_position_embeddings": 8192,
    "model_type": "gemma2", "num_attention_heads": 8, "num_hidden_layers": 26, "num_key_value_heads": 4,
    "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
    "sliding_window": 4096, "torch_dtype": "float32", "transformers_version": "4.42.4", "use_cache": true,
    "vocab_size": 256000})");
}

// The published config.json of google/gemma-3-1b-it (transformers 4.50: sliding_window_pattern and
// rope_local_base_freq instead of layer_types and per-type rope_parameters; eos a list).
json gemma_3_1b_config() {
  return json::parse(R"({"architectures": ["Gemma3ForCausalLM"], "attention_bias": false,
    "attention_dropout": 0.0, "attn_logit_softcapping": null, "bos_token_id": 2,
    "cache_implementation": "hybrid", "eos_token_id": [1, 106], "final_logit_softcapping": null,
    "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152,
    "initializer_range": 0.02, "intermediate_size": 6912, "max_position_embeddings": 32768,
    "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 26,
    "num_key_value_heads": 1, "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
    "rope_local_base_freq": 10000, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": 512,
    "sliding_window_pattern": 6, "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
    "use_cache": true, "vocab_size": 262144})");
}

// The layers HF makes global (full_attention) from these configs (transformers 5.24's config.layer_types).
std::vector<int64_t> global_layers(const ModelConfig& c) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    if (!c.is_sliding(i)) out.push_back(i);
  }
  return out;
}

// Expected counts: transformers 5.24 builds Gemma2ForCausalLM / Gemma3ForCausalLM from these configs
// on the meta device and counts 2 614 341 888 and 999 885 952 parameters (tied lm_head counted once).
TEST(Presets, GemmaShapesAndParameterCounts) {
  const ModelConfig gemma2 = ModelConfig::from_json(gemma_2_2b_config(), kOrigin);
  expect_same(preset_config("gemma-2-2b"), gemma2);
  EXPECT_EQ(gemma2.num_parameters(), 2'614'341'888);  // Gemma 2 2B
  EXPECT_TRUE(gemma2.tie_word_embeddings);
  EXPECT_EQ(gemma2.attn_logit_softcapping, 50.0);
  EXPECT_EQ(gemma2.final_logit_softcapping, 30.0);
  EXPECT_EQ(gemma2.local_rope_theta, 0.0);
  EXPECT_FALSE(gemma2.qk_norm);
  EXPECT_EQ(global_layers(gemma2), (std::vector<int64_t>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25}));
  expect_same(ModelConfig::from_json(gemma2.to_json(), kOrigin), gemma2);

  const ModelConfig gemma3 = ModelConfig::from_json(gemma_3_1b_config(), kOrigin);
  expect_same(preset_config("gemma-3-1b"), gemma3);
  EXPECT_EQ(gemma3.num_parameters(), 999'885'952);  // Gemma 3 1B
  EXPECT_TRUE(gemma3.qk_norm);
  EXPECT_EQ(gemma3.eos_token_id, 1);
  EXPECT_EQ(gemma3.rope_theta, 1e6);
  EXPECT_EQ(gemma3.local_rope_theta, 1e4);
  EXPECT_EQ(gemma3.attn_logit_softcapping, 0.0);
  EXPECT_EQ(gemma3.final_logit_softcapping, 0.0);
  EXPECT_EQ(gemma3.num_heads * gemma3.head_dim, 1024);  // != hidden_size
  EXPECT_EQ(global_layers(gemma3), (std::vector<int64_t>{5, 11, 17, 23}));
  expect_same(ModelConfig::from_json(gemma3.to_json(), kOrigin), gemma3);
}

// transformers 5 writes layer_types and rope_parameters per layer type: the same model as the 4.x form.
TEST(ConfigParse, GemmaThreeInBothTransformersForms) {
  json v5 = gemma_3_1b_config();
  for (const char* key : {"rope_theta", "rope_local_base_freq", "rope_scaling", "sliding_window_pattern", "torch_dtype"}) {
    v5.erase(key);
  }
  v5["dtype"] = "bfloat16";
  v5["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e6}}},
                           {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}};
  json kinds = json::array();
  for (int i = 0; i < 26; ++i) kinds.push_back((i + 1) % 6 ? "sliding_attention" : "full_attention");
  v5["layer_types"] = kinds;
  expect_same(ModelConfig::from_json(v5, kOrigin), ModelConfig::from_json(gemma_3_1b_config(), kOrigin));
  // Given layer_types win over the pattern, as in HF; rope_scaling (4.x) scales the global layers only.
  v5["layer_types"][0] = "full_attention";
  EXPECT_EQ(global_layers(ModelConfig::from_json(v5, kOrigin)), (std::vector<int64_t>{0, 5, 11, 17, 23}));
  json scaled = gemma_3_1b_config();
  scaled["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  const ModelConfig linear = ModelConfig::from_json(scaled, kOrigin);
  EXPECT_EQ(linear.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_EQ(linear.local_rope_theta, 1e4);
  // Gemma3TextConfig's defaults: rope_theta 1e6, rope_local_base_freq 1e4, a pattern of 6.
  json bare = gemma_3_1b_config();
  for (const char* key : {"rope_theta", "rope_local_base_freq", "sliding_window_pattern"}) bare.erase(key);
  expect_same(ModelConfig::from_json(bare, kOrigin), ModelConfig::from_json(gemma_3_1b_config(), kOrigin));
  // Gemma 2 in transformers 5's form.
  json gemma2 = gemma_2_2b_config();
  gemma2.erase("rope_theta");
  gemma2["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000.0}};
  json pairs = json::array();
  for (int i = 0; i < 26; ++i) pairs.push_back(i % 2 ? "full_attention" : "sliding_attention");
  gemma2["layer_types"] = pairs;
  expect_same(ModelConfig::from_json(gemma2, kOrigin), ModelConfig::from_json(gemma_2_2b_config(), kOrigin));
}

TEST(ConfigErrors, GemmaUnsupportedOptionsNameTheKey) {
  auto expect_error = [](json j, const char* key, json value, const std::string& message) {
    j[key] = std::move(value);
    EXPECT_TRUE(throws_mentioning([&] { ModelConfig::from_json(j, kOrigin); }, {kOrigin, message})) << message;
  };
  expect_error(gemma_2_2b_config(), "hidden_activation", "gelu", "hidden_activation 'gelu' not supported");
  expect_error(gemma_2_2b_config(), "use_bidirectional_attention", true, "use_bidirectional_attention");
  expect_error(gemma_2_2b_config(), "attn_logit_softcapping", -5.0, "key 'attn_logit_softcapping' must be positive");
  expect_error(gemma_2_2b_config(), "final_logit_softcapping", "30", "key 'final_logit_softcapping' must be a number");
  expect_error(gemma_2_2b_config(), "query_pre_attn_scalar", 0, "key 'query_pre_attn_scalar' must be positive");
  expect_error(gemma_2_2b_config(), "sliding_window", nullptr, "key 'sliding_window'");
  expect_error(gemma_2_2b_config(), "layer_types", json::array({"full_attention"}), "layer_types");
  expect_error(gemma_3_1b_config(), "attn_logit_softcapping", 50.0, "attn_logit_softcapping not supported for Gemma 3");
  expect_error(gemma_3_1b_config(), "sliding_window_pattern", 0, "key 'sliding_window_pattern'");
  expect_error(gemma_3_1b_config(), "rope_scaling", json{{"rope_type", "yarn"}, {"factor", 4.0}}, "'yarn' not supported");
  expect_error(gemma_3_1b_config(), "rope_parameters",
               json{{"full_attention", {{"rope_type", "default"}}}, {"sliding_attention", {{"rope_type", "linear"}, {"factor", 2.0}}}},
               "rope_parameters.sliding_attention");
  json chunked = json::array();
  for (int i = 0; i < 26; ++i) chunked.push_back("chunked_attention");
  expect_error(gemma_3_1b_config(), "layer_types", chunked, "layer_types entry \"chunked_attention\" not supported");
  // Gemma's hidden_act is not read (HF's Gemma 2/3 use hidden_activation), as in the published 2B file.
  json other_act = gemma_2_2b_config();
  other_act["hidden_act"] = "gelu";
  EXPECT_EQ(ModelConfig::from_json(other_act, kOrigin).activation, Activation::kGeluTanh);
}

}  // namespace
}  // namespace tstar
