// Model configuration parsed from a Hugging Face config.json (Qwen2ForCausalLM, LlamaForCausalLM),
// or built from a named shape preset.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tstar {

// RoPE's frequency scaling (HF's rope_type): default (none), linear (every inverse frequency divided
// by `factor`), llama3 (Llama 3.1+: wavelengths beyond original_max_positions / low_freq_factor
// divided by `factor`, those below original_max_positions / high_freq_factor kept, a smooth blend
// between) or dynamic (dynamic NTK: once a forward's longest position passes max_position_embeddings,
// theta grows with it; see rope_inverse_frequencies in model.h).
struct RopeScaling {
  enum class Type { kDefault, kLinear, kLlama3, kDynamic };
  Type type = Type::kDefault;
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int64_t original_max_positions = 0;  // llama3: original_max_position_embeddings
};
const char* rope_type_name(RopeScaling::Type type);

// The MLP's gate activation (HF hidden_act; Gemma: hidden_activation).
enum class Activation { kSilu, kGeluTanh };  // "silu", "gelu_pytorch_tanh"
// A layer's attention (HF layer_types): over every earlier key, or over the last sliding_window keys.
enum class AttentionKind { kFull, kSliding };

struct ModelConfig {
  std::string architecture;      // "Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM", "MistralForCausalLM",
                                 // "Phi3ForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;        // num_hidden_layers
  int64_t num_heads = 0;         // num_attention_heads
  int64_t num_kv_heads = 0;      // num_key_value_heads
  int64_t head_dim = 0;          // head_dim when present, else hidden_size / num_heads
  int64_t vocab_size = 0;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;   // q/k/v bias (Qwen2: always; Llama: attention_bias key)
  bool o_proj_bias = false;      // o_proj bias (Qwen2: never; Llama, Qwen3: attention_bias key, as in HF)
  bool qk_norm = false;          // per-head RMSNorm of q and k before RoPE (Qwen3)
  int64_t sliding_window = 0;    // Mistral, Phi-3: a query sees the last `sliding_window` keys (itself included); 0: all
  // Which layers the window applies to; empty: every layer (Mistral, Phi-3). Gemma: HF's layer_types.
  std::vector<AttentionKind> layer_types;
  // Phi-3 stores q/k/v as one qkv_proj [(H + 2 Hkv) D, hidden] and gate/up as one gate_up_proj
  // [2 I, hidden]: the fused tensors are the parameters (checkpoint names, noise), split per forward.
  bool fused_qkv = false;
  bool fused_gate_up = false;
  // Gemma 2/3. The defaults are the Qwen2/Llama computation.
  Activation activation = Activation::kSilu;
  bool norm_unit_offset = false;    // RMSNorm scales by (1 + w) in fp32 before the cast back (Gemma)
  bool sandwich_norms = false;      // post_attention_layernorm on the attention's output, pre_/post_feedforward_layernorm around the MLP
  bool scale_embeddings = false;    // embeddings times sqrt(hidden_size), the factor in the weights' dtype (Gemma)
  double query_pre_attn_scalar = 0;    // attention scores scaled by query_pre_attn_scalar^-0.5; 0: head_dim^-0.5
  double attn_logit_softcapping = 0;   // scores -> cap tanh(scores / cap) before the mask; 0: none (Gemma 2)
  double final_logit_softcapping = 0;  // logits -> cap tanh(logits / cap); 0: none (Gemma 2)
  double local_rope_theta = 0;         // RoPE base of the sliding layers (Gemma 3's rope_local_base_freq); 0: rope_theta
  int64_t max_position_embeddings = 0;  // dynamic RoPE's threshold, else informational; HF default when absent
  std::string torch_dtype = "float32";
  int64_t bos_token_id = -1;     // -1 when absent
  int64_t eos_token_id = -1;

  // Throws tstar::Error naming `origin` and the key on a missing/ill-typed key or unknown architecture.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& origin);
  static ModelConfig from_file(const std::filesystem::path& config_json);
  nlohmann::json to_json() const;  // HF-compatible config.json
  int64_t num_parameters() const;
  bool is_sliding(int64_t layer) const;  // whether the layer's attention is windowed
};

// Named shape presets with deterministic random weights (see presets.cpp).
std::vector<std::string> preset_names();
bool is_preset(const std::string& name);
ModelConfig preset_config(const std::string& name);  // throws listing the known names

}  // namespace tstar
