// Named model shapes. The two real ones copy the published config.json of their checkpoints, so a
// preset with random weights has exactly the tensor shapes (and cost) of the real model.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <utility>

#include "tstar/config.h"
#include "tstar/error.h"

namespace tstar {
namespace {

// The dimensions every preset states; head_dim is hidden / heads unless a preset overrides it.
ModelConfig model_shape(const char* architecture, int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads,
                        int64_t kv_heads, int64_t vocab) {
  ModelConfig c;
  c.architecture = architecture;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = vocab;
  return c;
}

ModelConfig qwen2_shape(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads, int64_t kv_heads,
                        int64_t vocab) {
  ModelConfig c = model_shape("Qwen2ForCausalLM", hidden, intermediate, layers, heads, kv_heads, vocab);
  c.rms_norm_eps = 1e-6;
  c.attention_bias = true;  // Qwen2: q/k/v always carry a bias
  return c;
}

// deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B: config.json, with bos from generation_config.json.
ModelConfig deepseek_r1_distill_qwen_1_5b() {
  ModelConfig c = qwen2_shape(1536, 8960, 28, 12, 2, 151936);
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = false;
  c.torch_dtype = "bfloat16";
  c.bos_token_id = 151646;
  c.eos_token_id = 151643;
  c.max_position_embeddings = 131072;
  return c;
}

// Qwen/Qwen2.5-0.5B: config.json.
ModelConfig qwen2_5_0_5b() {
  ModelConfig c = qwen2_shape(896, 4864, 24, 14, 2, 151936);
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = true;
  c.torch_dtype = "bfloat16";
  c.bos_token_id = 151643;
  c.eos_token_id = 151643;
  c.max_position_embeddings = 32768;
  return c;
}

ModelConfig llama3_shape(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads, int64_t kv_heads) {
  ModelConfig c = model_shape("LlamaForCausalLM", hidden, intermediate, layers, heads, kv_heads, 128256);
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.rope_scaling = {RopeScaling::Type::kLlama3, /*factor=*/8.0, /*low_freq_factor=*/1.0, /*high_freq_factor=*/4.0,
                    /*original_max_positions=*/8192};
  c.max_position_embeddings = 131072;
  c.torch_dtype = "bfloat16";
  c.bos_token_id = 128000;
  return c;
}

// meta-llama/Llama-3.2-1B: config.json (tied embeddings, llama3 RoPE with factor 32).
ModelConfig llama_3_2_1b() {
  ModelConfig c = llama3_shape(2048, 8192, 16, 32, 8);
  c.rope_scaling.factor = 32.0;
  c.tie_word_embeddings = true;
  c.eos_token_id = 128001;
  return c;
}

// deepseek-ai/DeepSeek-R1-Distill-Llama-8B: config.json (Llama-3.1-8B's shape).
ModelConfig deepseek_r1_distill_llama_8b() {
  ModelConfig c = llama3_shape(4096, 14336, 32, 32, 8);
  c.tie_word_embeddings = false;
  c.eos_token_id = 128001;
  return c;
}

// Qwen/Qwen3-0.6B and Qwen/Qwen3-1.7B: config.json (q/k norms, no biases, head_dim 128 whatever the
// width, tied embeddings).
ModelConfig qwen3_shape(int64_t hidden, int64_t intermediate) {
  ModelConfig c = model_shape("Qwen3ForCausalLM", hidden, intermediate, 28, 16, 8, 151936);
  c.head_dim = 128;
  c.rms_norm_eps = 1e-6;
  c.qk_norm = true;
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = true;
  c.torch_dtype = "bfloat16";
  c.bos_token_id = 151643;
  c.eos_token_id = 151645;
  c.max_position_embeddings = 40960;
  return c;
}
ModelConfig qwen3_0_6b() { return qwen3_shape(1024, 3072); }
ModelConfig qwen3_1_7b() { return qwen3_shape(2048, 6144); }

// microsoft/Phi-3-mini-4k-instruct: config.json (fused qkv_proj and gate_up_proj, 32 KV heads, untied,
// a 2047-token sliding window).
ModelConfig phi_3_mini() {
  ModelConfig c = model_shape("Phi3ForCausalLM", 3072, 8192, 32, 32, 32, 32064);
  c.fused_qkv = c.fused_gate_up = true;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.sliding_window = 2047;
  c.max_position_embeddings = 4096;
  c.torch_dtype = "bfloat16";
  c.bos_token_id = 1;
  c.eos_token_id = 32000;
  return c;
}

// Gemma 2 and 3 (text): (1 + w) norms around every attention and MLP, scaled embeddings, GeLU (tanh),
// tied embeddings, head_dim 256, a sliding window on all but every `pattern`-th layer.
ModelConfig gemma_shape(const char* architecture, int64_t hidden, int64_t intermediate, int64_t heads,
                        int64_t kv_heads, int64_t vocab, int64_t window, int64_t pattern) {
  ModelConfig c = model_shape(architecture, hidden, intermediate, 26, heads, kv_heads, vocab);
  c.head_dim = 256;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  c.activation = Activation::kGeluTanh;
  c.norm_unit_offset = true;
  c.sandwich_norms = true;
  c.scale_embeddings = true;
  c.query_pre_attn_scalar = 256;
  c.sliding_window = window;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    c.layer_types.push_back((i + 1) % pattern ? AttentionKind::kSliding : AttentionKind::kFull);
  }
  c.bos_token_id = 2;
  c.eos_token_id = 1;
  return c;
}

// google/gemma-2-2b: config.json (soft-capping of attention scores at 50 and of logits at 30).
ModelConfig gemma_2_2b() {
  ModelConfig c = gemma_shape("Gemma2ForCausalLM", 2304, 9216, 8, 4, 256000, 4096, 2);
  c.attn_logit_softcapping = 50.0;
  c.final_logit_softcapping = 30.0;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = 8192;
  c.torch_dtype = "float32";
  return c;
}

// google/gemma-3-1b-it: config.json (q/k norms, 5 local layers per global one, local RoPE base 1e4).
ModelConfig gemma_3_1b() {
  ModelConfig c = gemma_shape("Gemma3ForCausalLM", 1152, 6912, 4, 1, 262144, 512, 6);
  c.qk_norm = true;
  c.rope_theta = 1000000.0;
  c.local_rope_theta = 10000.0;
  c.max_position_embeddings = 32768;
  c.torch_dtype = "bfloat16";
  return c;
}

// A Qwen2-shaped toy for fast tests: every code path (GQA, biases, untied head) at small size.
ModelConfig tiny() {
  ModelConfig c = qwen2_shape(64, 160, 2, 4, 2, 512);
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = false;
  c.torch_dtype = "float32";
  c.max_position_embeddings = 2048;
  return c;
}

std::vector<std::pair<std::string, ModelConfig (*)()>> presets() {
  return {{"deepseek-r1-distill-qwen-1.5b", deepseek_r1_distill_qwen_1_5b},
          {"deepseek-r1-distill-llama-8b", deepseek_r1_distill_llama_8b},
          {"gemma-2-2b", gemma_2_2b},
          {"gemma-3-1b", gemma_3_1b},
          {"llama-3.2-1b", llama_3_2_1b},
          {"phi-3-mini", phi_3_mini},
          {"qwen2.5-0.5b", qwen2_5_0_5b},
          {"qwen3-0.6b", qwen3_0_6b},
          {"qwen3-1.7b", qwen3_1_7b},
          {"tiny", tiny}};
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& preset : presets()) names.push_back(preset.first);
  return names;
}

bool is_preset(const std::string& name) {
  for (const auto& preset : presets()) {
    if (preset.first == name) return true;
  }
  return false;
}

ModelConfig preset_config(const std::string& name) {
  for (const auto& [preset, make] : presets()) {
    if (preset == name) return make();
  }
  throw Error(fmt::format("unknown preset '{}' (known presets: {})", name, fmt::join(preset_names(), ", ")));
}

}  // namespace tstar
