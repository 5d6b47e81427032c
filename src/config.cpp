// config.json parsing with transformers' defaults (Qwen2Config / LlamaConfig), strict types.
#include "tstar/config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <utility>

#include "tstar/error.h"
#include "json_file.h"

namespace tstar {
namespace {

using json = nlohmann::json;

constexpr const char* kQwen2 = "Qwen2ForCausalLM";
constexpr const char* kLlama = "LlamaForCausalLM";
constexpr const char* kQwen3 = "Qwen3ForCausalLM";
constexpr const char* kMistral = "MistralForCausalLM";
constexpr const char* kGemma2 = "Gemma2ForCausalLM";
constexpr const char* kGemma3 = "Gemma3ForCausalLM";  // Gemma 3 text (model_type gemma3_text)
constexpr int64_t kMistralDefaultWindow = 4096;  // MistralConfig's sliding_window default
constexpr const char* kPhi3 = "Phi3ForCausalLM";

struct ArchitectureInfo {
  const char* architecture;
  const char* model_type;
  int64_t default_max_positions;  // transformers' default max_position_embeddings
};
constexpr ArchitectureInfo kArchitectures[] = {
    {kQwen2, "qwen2", 32768}, {kQwen3, "qwen3", 32768}, {kLlama, "llama", 2048}, {kMistral, "mistral", 131072},
    {kPhi3, "phi3", 4096}, {kGemma2, "gemma2", 8192}, {kGemma3, "gemma3_text", 131072}};

// Any single dimension above this is a corrupt config, and the bound keeps num_parameters()
// far from int64 overflow.
constexpr int64_t kMaxDimension = int64_t{1} << 24;

const ArchitectureInfo* find_architecture(const std::string& architecture) {
  for (const auto& info : kArchitectures) {
    if (architecture == info.architecture) return &info;
  }
  return nullptr;
}

const ArchitectureInfo& architecture_info(const std::string& architecture) {
  const ArchitectureInfo* info = find_architecture(architecture);
  if (!info) throw Error(fmt::format("unknown architecture '{}'", architecture));
  return *info;
}

// Parameter count in a wide integer type, so that validation can detect int64 overflow.
template <typename Int>
Int count_parameters(const ModelConfig& c) {
  const Int hidden = c.hidden_size;
  const Int q_width = Int{c.num_heads} * c.head_dim;
  const Int kv_width = Int{c.num_kv_heads} * c.head_dim;
  Int attention = hidden * q_width + 2 * hidden * kv_width + q_width * hidden;  // q, k, v, o
  if (c.attention_bias) attention += q_width + 2 * kv_width;
  if (c.o_proj_bias) attention += hidden;
  if (c.qk_norm) attention += 2 * Int{c.head_dim};
  const Int mlp = 3 * hidden * c.intermediate_size;  // gate, up, down
  const Int norms = (c.sandwich_norms ? 4 : 2) * hidden;  // input and post-attention RMSNorm (Gemma: and the MLP's two)
  const Int embedding = Int{c.vocab_size} * hidden;
  const Int lm_head = c.tie_word_embeddings ? 0 : embedding;
  return embedding + Int{c.num_layers} * (attention + mlp + norms) + hidden /* final norm */ + lm_head;
}

// Typed access to one config object; every error names the file and the key.
class ConfigReader {
 public:
  ConfigReader(const json& config, std::string origin) : config_(config), origin_(std::move(origin)) {}
  const std::string& origin() const { return origin_; }

  [[noreturn]] void fail(const std::string& what) const { throw Error(fmt::format("{}: {}", origin_, what)); }

  // Absent and JSON null both mean "use the default", as in transformers.
  bool has(const char* key) const { return config_.contains(key) && !config_[key].is_null(); }

  const json& required(const char* key) const {
    if (!has(key)) fail(fmt::format("missing required key '{}'", key));
    return config_[key];
  }

  int64_t integer(const char* key) const { return as_integer(required(key), key); }
  int64_t integer(const char* key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }

  double number(const char* key) const {
    const json& value = required(key);
    if (!value.is_number()) wrong_type(key, "a number", value);
    return value.get<double>();
  }
  double number(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }

  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& value = config_[key];
    if (!value.is_boolean()) wrong_type(key, "true or false", value);
    return value.get<bool>();
  }

  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& value = config_[key];
    if (!value.is_string()) wrong_type(key, "a string", value);
    return value.get<std::string>();
  }

  // nullptr when absent or null.
  const json* object(const char* key) const {
    if (!has(key)) return nullptr;
    const json& value = config_[key];
    if (!value.is_object()) wrong_type(key, "a JSON object", value);
    return &value;
  }

  // bos/eos: an integer, or a list of integers (transformers allows several eos ids; the first
  // is kept), or absent/null/empty (-1).
  int64_t token_id(const char* key) const {
    if (!has(key)) return -1;
    const json& value = config_[key];
    if (value.is_array()) {
      if (value.empty()) return -1;
      return as_integer(value[0], key);
    }
    return as_integer(value, key);
  }

  [[noreturn]] void wrong_type(const char* key, const char* expected, const json& value) const {
    fail(fmt::format("key '{}' must be {}, got {} {}", key, expected, value.type_name(), value.dump()));
  }

 private:
  int64_t as_integer(const json& value, const char* key) const {
    if (!value.is_number_integer()) wrong_type(key, "an integer", value);
    if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail(fmt::format("key '{}' is out of range: {}", key, value.dump()));
    }
    return value.get<int64_t>();
  }

  const json& config_;
  std::string origin_;
};

std::string read_architecture(const ConfigReader& reader) {
  const json& list = reader.required("architectures");
  if (!list.is_array() || list.empty() || !list[0].is_string()) {
    reader.wrong_type("architectures", "a non-empty list of strings", list);
  }
  const std::string architecture = list[0].get<std::string>();
  const ArchitectureInfo* info = find_architecture(architecture);
  if (!info) {
    reader.fail(fmt::format("unsupported architecture '{}' (supported: {}, {}, {}, {}, {}, {}, {})", architecture,
                            kQwen2, kQwen3, kLlama, kMistral, kPhi3, kGemma2, kGemma3));
  }
  const std::string model_type = reader.string("model_type", info->model_type);
  if (model_type != info->model_type) {
    reader.fail(fmt::format("model_type '{}' does not match architecture '{}' (expected '{}')", model_type,
                            architecture, info->model_type));
  }
  return architecture;
}

// rope_theta at top level (transformers 4.x), or inside rope_parameters (5.x) / rope_scaling
// (4.x), with the scaling type and its parameters.
void read_rope(const ConfigReader& reader, ModelConfig& c) {
  c.rope_theta = reader.number("rope_theta", 10000.0);
  // transformers moves a top-level partial_rotary_factor (Phi-4-mini's form) into the RoPE parameters.
  if (reader.number("partial_rotary_factor", 1.0) != 1.0) reader.fail("partial_rotary_factor other than 1 not supported");
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    const json* rope = reader.object(key);
    if (!rope) continue;
    const ConfigReader fields(*rope, fmt::format("{} (in '{}')", reader.origin(), key));
    const std::string type = fields.string("rope_type", fields.string("type", ""));
    if (type.empty()) reader.fail(fmt::format("'{}' names no rope_type", key));
    c.rope_theta = fields.number("rope_theta", c.rope_theta);
    if (fields.number("partial_rotary_factor", 1.0) != 1.0) fields.fail("partial_rotary_factor other than 1 not supported");
    RopeScaling& s = c.rope_scaling;
    if (type == "default") {
      s = RopeScaling{};
    } else if (type == "linear") {
      s.type = RopeScaling::Type::kLinear;
      s.factor = fields.number("factor");
    } else if (type == "llama3") {
      s.type = RopeScaling::Type::kLlama3;
      s.factor = fields.number("factor");
      s.low_freq_factor = fields.number("low_freq_factor");
      s.high_freq_factor = fields.number("high_freq_factor");
      // HF falls back to max_position_embeddings when the key is absent.
      s.original_max_positions = fields.integer("original_max_position_embeddings", c.max_position_embeddings);
      if (!(s.high_freq_factor > s.low_freq_factor) || !(s.low_freq_factor > 0) || s.original_max_positions <= 0) {
        fields.fail("llama3 RoPE needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0");
      }
    } else if (type == "dynamic") {
      // Dynamic NTK: HF's threshold is max_position_embeddings itself (no original_max_position_embeddings).
      s.type = RopeScaling::Type::kDynamic;
      s.factor = fields.number("factor");
    } else {
      reader.fail(fmt::format("{} type '{}' not supported (supported: default, linear, llama3, dynamic)", key, type));
    }
    if (!(s.factor > 0) || !std::isfinite(s.factor)) fields.fail(fmt::format("key 'factor' must be positive, got {}", s.factor));
  }
}

const char* read_dtype(const ConfigReader& reader) {
  // transformers 5 writes "dtype"; older versions "torch_dtype". Absent means float32.
  const char* key = reader.has("dtype") ? "dtype" : "torch_dtype";
  const std::string dtype = reader.string(key, "float32");
  for (const char* known : {"float32", "float16", "bfloat16"}) {
    if (dtype == known) return known;
  }
  reader.fail(fmt::format("key '{}': unsupported dtype '{}' (supported: float32, float16, bfloat16)", key, dtype));
}

// Keys whose non-default values change the computation in ways tstar does not implement.
void reject_unsupported_features(const ConfigReader& reader, bool llama, bool gemma) {
  if (gemma) return;  // read_gemma: hidden_activation (HF's Gemma ignores hidden_act), layer_types
  const std::string activation = reader.string("hidden_act", "silu");
  if (activation != "silu") reader.fail(fmt::format("hidden_act '{}' not supported (only silu)", activation));
  if (llama && reader.boolean("mlp_bias", false)) reader.fail("mlp_bias not supported");
  if (!llama && reader.boolean("use_sliding_window", false)) reader.fail("use_sliding_window not supported");
  // transformers 5 lists each layer's attention kind; only full causal attention is implemented.
  if (reader.has("layer_types")) {
    const json& kinds = reader.required("layer_types");
    if (!kinds.is_array()) reader.wrong_type("layer_types", "a list of strings", kinds);
    for (const auto& kind : kinds) {
      if (kind != "full_attention") reader.fail(fmt::format("layer_types entry {} not supported", kind.dump()));
    }
  }
}

void check_positive(const ConfigReader& reader, const char* key, int64_t value) {
  if (value <= 0 || value > kMaxDimension) {
    reader.fail(fmt::format("key '{}' must be between 1 and {}, got {}", key, kMaxDimension, value));
  }
}

// sliding_window: an integer, null for full attention (transformers' None, 0 here), or `when_absent`.
int64_t read_sliding_window(const ConfigReader& reader, const json& j, int64_t when_absent) {
  if (!j.contains("sliding_window")) return when_absent;
  const int64_t window = reader.integer("sliding_window", 0);
  if (!j["sliding_window"].is_null()) check_positive(reader, "sliding_window", window);
  return window;
}

// A positive finite number, or 0 for null (a soft-capping transformers skips when None); absent: the default.
double optional_positive(const ConfigReader& reader, const json& j, const char* key, double fallback) {
  if (!j.contains(key)) return fallback;
  if (j[key].is_null()) return 0;
  const double value = reader.number(key);
  if (!(value > 0) || !std::isfinite(value)) reader.fail(fmt::format("key '{}' must be positive or null, got {}", key, value));
  return value;
}

// layer_types as given (transformers 5 writes it), else HF's derivation: every `pattern`-th layer
// (counting from 1) global, the others sliding (Gemma 2: pattern 2, so the even layers slide).
std::vector<AttentionKind> read_layer_types(const ConfigReader& reader, int64_t num_layers, int64_t pattern) {
  std::vector<AttentionKind> kinds;
  if (!reader.has("layer_types")) {
    for (int64_t i = 0; i < num_layers; ++i) kinds.push_back((i + 1) % pattern ? AttentionKind::kSliding : AttentionKind::kFull);
    return kinds;
  }
  const json& list = reader.required("layer_types");
  if (!list.is_array() || static_cast<int64_t>(list.size()) != num_layers) {
    reader.wrong_type("layer_types", "a list of one entry per layer (num_hidden_layers)", list);
  }
  for (const auto& kind : list) {
    if (kind == "full_attention") {
      kinds.push_back(AttentionKind::kFull);
    } else if (kind == "sliding_attention") {
      kinds.push_back(AttentionKind::kSliding);
    } else {
      reader.fail(fmt::format("layer_types entry {} not supported (full_attention, sliding_attention)", kind.dump()));
    }
  }
  return kinds;
}

// Gemma 3's RoPE: rope_theta (default 1e6) and rope_scaling for the global layers, rope_local_base_freq
// (default 1e4) for the sliding ones (transformers 4); or rope_parameters per layer type (5). The
// global part goes through read_rope; the sliding layers' RoPE is unscaled in both forms.
void read_gemma3_rope(const ConfigReader& reader, const json& j, ModelConfig& c) {
  json global = j;
  if (!reader.has("rope_theta")) global["rope_theta"] = 1e6;
  c.local_rope_theta = reader.number("rope_local_base_freq", 10000.0);
  const json* per_kind = reader.object("rope_parameters");
  if (per_kind && (per_kind->contains("full_attention") || per_kind->contains("sliding_attention"))) {
    const ConfigReader kinds(*per_kind, fmt::format("{} (in 'rope_parameters')", reader.origin()));
    global.erase("rope_parameters");
    if (const json* full = kinds.object("full_attention")) global["rope_parameters"] = *full;
    if (const json* local = kinds.object("sliding_attention")) {
      const ConfigReader fields(*local, fmt::format("{} (in 'rope_parameters.sliding_attention')", reader.origin()));
      const std::string type = fields.string("rope_type", "default");
      if (type != "default") fields.fail(fmt::format("rope_type '{}' not supported for the sliding layers (only default)", type));
      c.local_rope_theta = fields.number("rope_theta", c.local_rope_theta);
    }
  }
  read_rope(ConfigReader(global, reader.origin()), c);
  if (!(c.local_rope_theta > 0) || !std::isfinite(c.local_rope_theta)) {
    reader.fail(fmt::format("key 'rope_local_base_freq' must be positive, got {}", c.local_rope_theta));
  }
}

// Gemma 2 and 3 (text): what HF's Gemma2Config / Gemma3TextConfig and their modeling files do, with
// their defaults. Needs num_hidden_layers.
void read_gemma(const ConfigReader& reader, const json& j, bool gemma3, ModelConfig& c) {
  const std::string activation = reader.string("hidden_activation", "gelu_pytorch_tanh");
  if (activation != "gelu_pytorch_tanh") {
    reader.fail(fmt::format("hidden_activation '{}' not supported (only gelu_pytorch_tanh)", activation));
  }
  if (reader.boolean("use_bidirectional_attention", false)) reader.fail("use_bidirectional_attention not supported");
  c.activation = Activation::kGeluTanh;
  c.norm_unit_offset = true;
  c.sandwich_norms = true;
  c.scale_embeddings = true;
  c.qk_norm = gemma3;
  c.query_pre_attn_scalar = reader.number("query_pre_attn_scalar", 256.0);
  if (!(c.query_pre_attn_scalar > 0) || !std::isfinite(c.query_pre_attn_scalar)) {
    reader.fail(fmt::format("key 'query_pre_attn_scalar' must be positive, got {}", c.query_pre_attn_scalar));
  }
  c.final_logit_softcapping = optional_positive(reader, j, "final_logit_softcapping", gemma3 ? 0.0 : 30.0);
  c.attn_logit_softcapping = optional_positive(reader, j, "attn_logit_softcapping", gemma3 ? 0.0 : 50.0);
  // HF's Gemma3Attention keeps the key but never passes it to the attention: refused, not guessed.
  if (gemma3 && c.attn_logit_softcapping > 0) {
    reader.fail("attn_logit_softcapping not supported for Gemma 3 (transformers' Gemma3 attention does not apply it)");
  }
  if (j.contains("sliding_window") && j["sliding_window"].is_null()) {
    reader.fail("key 'sliding_window' must be an integer for Gemma (its sliding layers need a window), got null");
  }
  c.sliding_window = reader.integer("sliding_window", 4096);
  check_positive(reader, "sliding_window", c.sliding_window);
  int64_t pattern = 2;
  if (gemma3) {
    const char* key = reader.has("sliding_window_pattern") ? "sliding_window_pattern" : "_sliding_window_pattern";
    pattern = reader.integer(key, 6);
    check_positive(reader, key, pattern);
  }
  c.layer_types = read_layer_types(reader, c.num_layers, pattern);
  if (gemma3) read_gemma3_rope(reader, j, c);
}

void validate(const ModelConfig& c, const ConfigReader& reader) {
  check_positive(reader, "hidden_size", c.hidden_size);
  check_positive(reader, "intermediate_size", c.intermediate_size);
  check_positive(reader, "num_hidden_layers", c.num_layers);
  check_positive(reader, "num_attention_heads", c.num_heads);
  check_positive(reader, "num_key_value_heads", c.num_kv_heads);
  check_positive(reader, "head_dim", c.head_dim);
  check_positive(reader, "vocab_size", c.vocab_size);
  check_positive(reader, "max_position_embeddings", c.max_position_embeddings);
  if (c.num_heads % c.num_kv_heads != 0) {
    reader.fail(fmt::format("num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", c.num_heads,
                            c.num_kv_heads));
  }
  if (c.head_dim % 2 != 0) reader.fail(fmt::format("head_dim must be even for RoPE, got {}", c.head_dim));
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    reader.fail(fmt::format("key 'rms_norm_eps' must be positive, got {}", c.rms_norm_eps));
  }
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
    reader.fail(fmt::format("key 'rope_theta' must be positive, got {}", c.rope_theta));
  }
  for (const auto& [key, id] : {std::pair{"bos_token_id", c.bos_token_id}, std::pair{"eos_token_id", c.eos_token_id}}) {
    if (id < -1 || id >= c.vocab_size) {
      reader.fail(fmt::format("key '{}' = {} lies outside the vocabulary (size {})", key, id, c.vocab_size));
    }
  }
  if (count_parameters<__int128>(c) > std::numeric_limits<int64_t>::max()) {
    reader.fail("the configuration describes more than 2^63 parameters");
  }
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& origin) {
  const ConfigReader reader(j, origin);
  if (!j.is_object()) reader.fail("config is not a JSON object");
  ModelConfig c;
  c.architecture = read_architecture(reader);
  const bool mistral = c.architecture == kMistral;
  const bool llama = c.architecture == kLlama || mistral;  // Mistral: Llama's weights plus a window
  const bool qwen3 = c.architecture == kQwen3;
  const bool phi3 = c.architecture == kPhi3;
  const bool gemma3 = c.architecture == kGemma3;
  const bool gemma = c.architecture == kGemma2 || gemma3;
  reject_unsupported_features(reader, llama, gemma);

  c.hidden_size = reader.integer("hidden_size");
  c.intermediate_size = reader.integer("intermediate_size");
  c.num_layers = reader.integer("num_hidden_layers");
  c.num_heads = reader.integer("num_attention_heads");
  c.vocab_size = reader.integer("vocab_size");
  c.rms_norm_eps = reader.number("rms_norm_eps");
  check_positive(reader, "num_attention_heads", c.num_heads);
  c.num_kv_heads = reader.integer("num_key_value_heads", c.num_heads);
  if (!reader.has("head_dim") && !gemma && c.hidden_size % c.num_heads != 0) {
    reader.fail(fmt::format("hidden_size ({}) is not a multiple of num_attention_heads ({}) and head_dim is absent",
                            c.hidden_size, c.num_heads));
  }
  c.head_dim = reader.integer("head_dim", gemma ? 256 : c.hidden_size / c.num_heads);  // Gemma configs' default: 256
  c.tie_word_embeddings = reader.boolean("tie_word_embeddings", gemma);
  // Qwen2 always has q/k/v bias and never o_proj bias; Llama's, Qwen3's and Gemma's attention_bias covers q/k/v/o.
  c.attention_bias = llama || qwen3 || gemma ? reader.boolean("attention_bias", false) : true;
  c.o_proj_bias = (llama || qwen3 || gemma) && c.attention_bias;
  c.qk_norm = qwen3;
  // Absent: MistralConfig's default window, Phi3Config's None.
  if (mistral) c.sliding_window = read_sliding_window(reader, j, kMistralDefaultWindow);
  if (phi3) {
    // Phi-3's projections have no bias whatever attention_bias says (HF ignores the key).
    c.attention_bias = c.o_proj_bias = false;
    c.fused_qkv = c.fused_gate_up = true;
    c.sliding_window = read_sliding_window(reader, j, 0);
    // Read only to be checked: HF uses it for longrope (refused below) and to restart generation
    // without the cache when a sequence first passes it (the same logits, up to rounding).
    check_positive(reader, "original_max_position_embeddings", reader.integer("original_max_position_embeddings", 4096));
  }
  c.torch_dtype = read_dtype(reader);
  c.bos_token_id = reader.token_id("bos_token_id");
  c.eos_token_id = reader.token_id("eos_token_id");
  c.max_position_embeddings =
      reader.integer("max_position_embeddings", architecture_info(c.architecture).default_max_positions);
  if (gemma) read_gemma(reader, j, gemma3, c);
  if (!gemma3) read_rope(reader, c);  // after max_position_embeddings, llama3's fallback (Gemma 3: in read_gemma)
  if (phi3 && c.rope_scaling.type != RopeScaling::Type::kDefault) {
    reader.fail(fmt::format("rope_scaling type '{}' not supported for {} (HF's Phi3Config takes default or longrope; "
                            "tstar: default)", rope_type_name(c.rope_scaling.type), kPhi3));
  }
  validate(c, reader);
  return c;
}

ModelConfig ModelConfig::from_file(const std::filesystem::path& config_json) {
  return from_json(read_json_file(config_json), config_json.string());
}

namespace {

// Gemma's keys in the transformers 4 form (rope_local_base_freq beside rope_theta), layer_types as in 5.
void gemma_to_json(const ModelConfig& c, json& j) {
  j.erase("hidden_act");
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["attention_bias"] = c.attention_bias;
  j["query_pre_attn_scalar"] = c.query_pre_attn_scalar;
  j["sliding_window"] = c.sliding_window;
  auto cap = [](double value) { return value > 0 ? json(value) : json(nullptr); };
  j["attn_logit_softcapping"] = cap(c.attn_logit_softcapping);
  j["final_logit_softcapping"] = cap(c.final_logit_softcapping);
  json kinds = json::array();
  for (AttentionKind kind : c.layer_types) kinds.push_back(kind == AttentionKind::kSliding ? "sliding_attention" : "full_attention");
  j["layer_types"] = kinds;
  if (c.architecture == kGemma3) j["rope_local_base_freq"] = c.local_rope_theta;
}

}  // namespace

json ModelConfig::to_json() const {
  const ArchitectureInfo& info = architecture_info(architecture);
  json j = {
      {"architectures", {architecture}},
      {"model_type", info.model_type},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_layers},
      {"num_attention_heads", num_heads},
      {"num_key_value_heads", num_kv_heads},
      {"head_dim", head_dim},
      {"vocab_size", vocab_size},
      {"rms_norm_eps", rms_norm_eps},
      {"rope_theta", rope_theta},
      {"tie_word_embeddings", tie_word_embeddings},
      {"hidden_act", "silu"},
      {"max_position_embeddings", max_position_embeddings},
      {"torch_dtype", torch_dtype},
  };
  if (architecture == kLlama) {
    j["attention_bias"] = attention_bias;
    j["mlp_bias"] = false;
  } else if (architecture == kMistral) {
    j["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
  } else if (architecture == kQwen3) {
    j["attention_bias"] = attention_bias;
    j["use_sliding_window"] = false;
  } else if (architecture == kPhi3) {
    j["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
    j["original_max_position_embeddings"] = max_position_embeddings;
  } else if (architecture == kGemma2 || architecture == kGemma3) {
    gemma_to_json(*this, j);
  } else {
    j["use_sliding_window"] = false;
  }
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  if (rope_scaling.type != RopeScaling::Type::kDefault) {
    json scaling = {{"rope_type", rope_type_name(rope_scaling.type)}, {"factor", rope_scaling.factor}};
    if (rope_scaling.type == RopeScaling::Type::kLlama3) {
      scaling["low_freq_factor"] = rope_scaling.low_freq_factor;
      scaling["high_freq_factor"] = rope_scaling.high_freq_factor;
      scaling["original_max_position_embeddings"] = rope_scaling.original_max_positions;
    }
    j["rope_scaling"] = scaling;
  }
  return j;
}

bool ModelConfig::is_sliding(int64_t layer) const {
  return sliding_window > 0 && (layer_types.empty() || layer_types.at(static_cast<size_t>(layer)) == AttentionKind::kSliding);
}

const char* rope_type_name(RopeScaling::Type type) {
  switch (type) {
    case RopeScaling::Type::kDefault: return "default";
    case RopeScaling::Type::kLinear: return "linear";
    case RopeScaling::Type::kLlama3: return "llama3";
    case RopeScaling::Type::kDynamic: return "dynamic";
  }
  TSTAR_CHECK(false);
}

int64_t ModelConfig::num_parameters() const { return count_parameters<int64_t>(*this); }

}  // namespace tstar
