// A Qwen2/Llama/Mistral/Gemma 2/Gemma 3 decoder that computes what HF transformers' eager implementation computes.
// Parameters keep their HF names and live in a ParameterMap; the forward pass reads the very
// tensors held there, so in-place changes (noise injection) are seen by the next forward.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tstar/config.h"

namespace tstar {

namespace onednn_matmul {  // src/onednn_matmul.h
class PackedWeights;
}  // namespace onednn_matmul

// Name -> tensor map in a stable (checkpoint) order, with O(1) look-up by name.
class ParameterMap {
 public:
  // Throws on a duplicate name. `origin`, when given, is a read-only tensor (a view of the mapped
  // checkpoint) that held the tensor's bytes when it was loaded: CleanStore keeps it as the clean
  // copy while the bytes still match, instead of copying them into fresh memory.
  void add(std::string name, torch::Tensor tensor, torch::Tensor origin = {});
  size_t size() const { return entries_.size(); }
  const torch::Tensor& origin(size_t i) const { return origins_[i]; }  // undefined when none
  const std::string& name(size_t i) const { return entries_[i].first; }
  torch::Tensor& tensor(size_t i) { return entries_[i].second; }
  const torch::Tensor& tensor(size_t i) const { return entries_[i].second; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  std::optional<size_t> find(const std::string& name) const;
  torch::Tensor& at(const std::string& name);           // throws tstar::Error naming it
  const torch::Tensor& at(const std::string& name) const;
  const std::vector<std::pair<std::string, torch::Tensor>>& entries() const { return entries_; }
  int64_t num_elements() const;

 private:
  std::vector<std::pair<std::string, torch::Tensor>> entries_;
  std::vector<torch::Tensor> origins_;  // parallel to entries_
  std::unordered_map<std::string, size_t> index_;
};

// Precision of the logits: `model` computes the final norm and lm_head as HF does in the weights'
// dtype (bf16 logits for a bf16 model); `fp32` runs both in fp32 on the (possibly noised) weights, so
// the logits carry no bf16 rounding (whose noise otherwise puts a floor under small alphas).
enum class LogitsDtype { kModel, kFloat32 };
LogitsDtype parse_logits_dtype(const std::string& name);  // "model" | "fp32"
std::string logits_dtype_name(LogitsDtype logits);

struct LoadOptions {
  torch::ScalarType dtype = torch::kFloat;  // compute/storage dtype of the weights (fp16: CUDA only)
  torch::Device device = torch::kCPU;
  LogitsDtype logits = LogitsDtype::kModel;
};

// Per-layer key/value cache for incremental decoding. Created by Model::prefill.
struct KVCache {
  std::vector<torch::Tensor> keys;    // per layer [B, Hkv, capacity, D]
  std::vector<torch::Tensor> values;  // per layer [B, Hkv, capacity, D]
  torch::Tensor key_mask;             // [B, capacity] bool: true where a real (non-pad) token is
  torch::Tensor next_position;        // [B] int64: RoPE position of the next token
  int64_t length = 0;                 // columns filled
};

// Where a parameter sits in the architecture. hf_parameter_name() is the one map from these to
// HF's checkpoint names: the loader, the forward's bindings and the noise groups all go through it.
enum class Weight {
  kEmbedding, kInputNorm, kQ, kK, kV, kO, kQNorm, kKNorm, kPostAttentionNorm,
  kPreFeedforwardNorm, kPostFeedforwardNorm,  // Gemma 2/3 (sandwich_norms)
  kGate, kUp, kDown, kFinalNorm, kLmHead,
  kQkv, kGateUp,  // Phi-3's fused q/k/v and gate/up projections
};
enum class Component { kEmbedding, kAttention, kMlp, kNorm, kLmHead };
Component component_of(Weight weight);
// e.g. (kQ, 3) -> "model.layers.3.self_attn.q_proj.weight"; `bias` names a projection's .bias.
std::string hf_parameter_name(Weight weight, int64_t layer = -1, bool bias = false);

// Every parameter a config implies, with its HF name, shape, role and place, in checkpoint order.
// A tied lm_head is not listed (the embedding matrix serves as lm_head).
struct ParameterSpec {
  enum class Role { kEmbedding, kNorm, kMatrix, kBias };
  std::string name;
  std::vector<int64_t> shape;
  Role role;
  Weight weight;
  int64_t layer = -1;  // decoder layer, -1 outside them
};
std::vector<ParameterSpec> expected_parameters(const ModelConfig& config);

// RoPE's inverse frequencies [head_dim / 2] in fp32, with the config's scaling (as HF computes them).
// `sequence_length` is a forward's longest position + 1 (HF's seq_len); only dynamic scaling reads it,
// whose frequencies change once it passes max_position_embeddings.
torch::Tensor rope_inverse_frequencies(const ModelConfig& config, int64_t sequence_length = 0);

class Model {
 public:
  // Loads config.json + safetensors from `dir` strictly (every tensor checked and used).
  static Model load(const std::filesystem::path& dir, const LoadOptions& options = {});
  // Deterministic random weights of a named shape preset (see config.h).
  static Model from_preset(const std::string& preset, const LoadOptions& options = {}, uint64_t seed = 0);
  // A directory or a preset name; directories win when both exist.
  static Model open(const std::string& dir_or_preset, const LoadOptions& options = {});
  static Model from_parameters(ModelConfig config, ParameterMap params, const LoadOptions& options);

  const ModelConfig& config() const { return config_; }
  ParameterMap& parameters() { return params_; }
  const ParameterMap& parameters() const { return params_; }
  torch::ScalarType dtype() const { return options_.dtype; }
  torch::Device device() const { return options_.device; }
  const std::filesystem::path& source_dir() const { return source_dir_; }  // empty for presets

  // Batched prefill of prompts of different lengths (left padded). Returns last-position logits
  // [B, V] in fp32. With a cache pointer the cache is (re)initialised for `extra_capacity` more tokens.
  // With `model_dtype_logits`, also the logits the model-dtype head gives from the same hidden state.
  // With `pre_softcap_logits`, also the returned logits before final_logit_softcapping (Gemma 2; the
  // returned ones where a model has none): the sampler sees the capped ones.
  torch::Tensor last_logits(const std::vector<std::vector<int64_t>>& prompts, KVCache* cache = nullptr,
                            int64_t extra_capacity = 0, torch::Tensor* model_dtype_logits = nullptr,
                            torch::Tensor* pre_softcap_logits = nullptr) const;
  // The [B, T] grid of a forward. Position-wise work (norms, projections, MLP, residual adds) runs on
  // its N token rows only, [N, H]: a padded batch's pads cost nothing there. Attention places the rows
  // on the grid (pads zero; they are masked as keys and their queries are never read).
  struct Grid {
    int64_t batch = 0, length = 0;
    torch::Tensor token_rows;  // [N] int64 indices into B * T; undefined when every row is a token
    static Grid of(const torch::Tensor& key_mask);           // the token rows of a [B, T] key mask
    torch::Tensor to_rows(const torch::Tensor& grid) const;  // [B, T, C] -> [N, C]
    torch::Tensor to_grid(const torch::Tensor& rows) const;  // [N, C] -> [B, T, C]
  };
  // The residual stream of one batch of prompts entering each decoder layer (and leaving the last),
  // recorded by last_logits so that a forward whose changed weights all sit in layers >= l can start
  // at layer l: the layers below would compute exactly what they computed (same inputs, same
  // operations), so the logits are bit-identical to a full forward's.
  struct LayerInputs {
    std::vector<std::vector<int64_t>> prompts;
    std::vector<torch::Tensor> residual;  // [num_layers + 1] of [N, H]: the batch's token rows (Grid)
    int64_t bytes() const;
  };
  // last_logits without a cache that records `record` (when given) or, with `resume`, starts at
  // layer `first_layer` from a recording of the same prompts (throws tstar::Error otherwise).
  torch::Tensor last_logits_layered(const std::vector<std::vector<int64_t>>& prompts, LayerInputs* record,
                                    const LayerInputs* resume, int64_t first_layer,
                                    torch::Tensor* model_dtype_logits = nullptr,
                                    torch::Tensor* pre_softcap_logits = nullptr) const;
  // The first layer whose input the named parameters change: num_layers when only the final norm and
  // lm_head are named, std::nullopt when the embedding is (nothing before it to reuse).
  std::optional<int64_t> first_layer_changed_by(const std::vector<std::string>& parameter_names) const;
  // One token per sequence appended to the cache; returns [B, V] fp32 logits, from the head of the
  // given precision (default: the model's LoadOptions::logits).
  torch::Tensor decode_step(const std::vector<int64_t>& tokens, KVCache& cache,
                            std::optional<LogitsDtype> precision = std::nullopt) const;
  // Logits at every position of one unpadded sequence: [T, V] fp32.
  torch::Tensor full_logits(const std::vector<int64_t>& ids) const;
  // Logits at the last `count` positions of one unpadded sequence, [count, V] fp32, from one forward:
  // scores a known continuation (teacher forcing) reading the weights once, not once per token.
  torch::Tensor tail_logits(const std::vector<int64_t>& ids, int64_t count) const;
  // True when a position's logits in a forward of `length` tokens depend on that length, not only on
  // the position's prefix (dynamic RoPE past max_position_embeddings): there one forward of a sequence
  // is not the forwards of its prefixes.
  bool logits_depend_on_length(int64_t length) const;
  // Logits at every position of equal-length unpadded sequences [B, T] -> [B, T, V] fp32. Records
  // autograd history when parameters require grad (used by the training tool).
  torch::Tensor sequence_logits(const torch::Tensor& ids) const;
  // Greedy continuation with the KV cache; returns the new token ids per prompt.
  std::vector<std::vector<int64_t>> generate_greedy(const std::vector<std::vector<int64_t>>& prompts,
                                                    int64_t max_new, int64_t stop_token = -1) const;

 private:
  // Positions of one block's tensors in params_ (bias slots are npos when the config has none).
  struct LayerSlots {
    size_t input_norm, q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, o_weight, o_bias;
    size_t q_norm, k_norm;  // per-head RMSNorm of q and k (Qwen3); npos without
    size_t post_norm, gate, up, down;  // post_norm: the MLP's input norm (Gemma: pre_feedforward_layernorm)
    size_t qkv, gate_up;  // Phi-3's fused projections; npos without (and q/k/v, gate/up are npos with)
    // Gemma's norms of the attention's and the MLP's outputs (post_attention_layernorm,
    // post_feedforward_layernorm); npos without
    size_t attention_out_norm, mlp_out_norm;
  };
  // Additive masks [B, 1, T, S]: causal, and causal within the sliding window (undefined without one).
  struct AttentionMasks {
    torch::Tensor full, sliding;
  };
  AttentionMasks attention_masks(const torch::Tensor& key_mask, int64_t offset, int64_t T) const;
  struct Rope;     // cos/sin for a batch of positions
  Model() = default;
  void bind();     // resolves names into slots; throws on a missing parameter
  const torch::Tensor& p(size_t slot) const { return params_.tensor(slot); }
  // `slot`'s parameter in fp32, for the products that run in fp32 on bf16 weights (the fp32 logits;
  // bf16 through fp32 BLAS): the parameter itself when it is fp32, else a widened copy kept while
  // the copies fit their budget (a quarter of the machine's memory) and refreshed when the
  // parameter's version counter moves (in-place writes; the noise engine moves it too). Widening
  // per call allocated and page-faulted up to 545 MB for Qwen2.5-0.5B's lm_head at every step.
  // Not thread-safe: a Model is used from one thread at a time.
  torch::Tensor fp32_parameter(size_t slot) const;
  // The weight a product with activations `x` takes: fp32_parameter() where bf16 products run
  // through fp32 BLAS (bf16_matmul_path), else the parameter.
  torch::Tensor operand(const torch::Tensor& x, size_t slot) const;
  // x W^T (+ b) with the weight in `weight_slot` and the bias in `bias_slot` (none by default); a
  // GEMM-sized bf16 product on the onednn path through the weight's packed copy once it has one
  // (onednn_matmul::PackedWeights).
  torch::Tensor linear(const torch::Tensor& x, size_t weight_slot, size_t bias_slot = SIZE_MAX) const;

  torch::Tensor rms_norm(const torch::Tensor& x, size_t weight) const;  // over the last dimension
  // The q, k, v projections of x [B, T, hidden], each [B, T, heads * D]: three products, or one fused.
  std::array<torch::Tensor, 3> qkv_projections(const torch::Tensor& x, const LayerSlots& layer) const;
  // RoPE's inverse frequencies for a forward at `positions` [B, T] (inv_freq_ unless dynamic).
  torch::Tensor inverse_frequencies(const torch::Tensor& positions) const;
  torch::Tensor embed(const torch::Tensor& ids) const;  // [B, T] -> [B, T, H] (Gemma: scaled)
  torch::Tensor attention(const torch::Tensor& x, const Grid& grid, const LayerSlots& layer, int64_t layer_index,
                          const torch::Tensor& positions, const AttentionMasks& masks, KVCache* cache) const;
  torch::Tensor mlp(const torch::Tensor& x, const LayerSlots& layer) const;
  // Runs every block; returns the residual stream after the last one [B, T, H] (before the final norm).
  // last_logits and last_logits_layered: batched, left-padded prefill of every prompt.
  torch::Tensor prefill(const std::vector<std::vector<int64_t>>& prompts, KVCache* cache, int64_t extra_capacity,
                        torch::Tensor* model_dtype_logits, LayerInputs* record, const LayerInputs* resume,
                        int64_t first_layer, torch::Tensor* pre_softcap_logits) const;
  // With `record`, the residual entering each layer is appended to it; with `resume`, the blocks
  // start at `first_layer` from resume->residual[first_layer] (ids then unused). [B, T, H], zero at pads.
  torch::Tensor hidden_states(const torch::Tensor& ids, const torch::Tensor& positions, const Grid& grid,
                              const AttentionMasks& masks, KVCache* cache, LayerInputs* record = nullptr,
                              const LayerInputs* resume = nullptr, int64_t first_layer = 0) const;
  torch::Tensor unpadded_hidden_states(const torch::Tensor& ids) const;  // [B, T] equal lengths -> [B, T, H]
  // Final norm + lm_head (+ final soft-capping): [..., H] residual -> [..., V] fp32 logits, in the given
  // precision; `before_softcap` receives them before the capping.
  torch::Tensor logits(const torch::Tensor& residual, LogitsDtype precision, torch::Tensor* before_softcap = nullptr) const;
  torch::Tensor logits(const torch::Tensor& residual) const { return logits(residual, options_.logits); }

  ModelConfig config_;
  ParameterMap params_;
  LoadOptions options_;
  std::filesystem::path source_dir_;
  std::vector<LayerSlots> layers_;
  size_t embed_ = 0, final_norm_ = 0, lm_head_ = 0;
  torch::Tensor inv_freq_;  // [D/2] fp32
  torch::Tensor local_inv_freq_;  // the sliding layers' own (Gemma 3's rope_local_base_freq); undefined without
  struct WidenedCopy {
    torch::Tensor source;  // the parameter copied (a replaced parameter is a different tensor)
    int64_t version = -1;  // its version counter when copied
    torch::Tensor fp32;
  };
  mutable std::vector<WidenedCopy> widened_;  // by slot
  mutable int64_t widened_bytes_ = 0;
  // Created at the first packed product; copies of a Model share it, as they share its parameters.
  mutable std::shared_ptr<onednn_matmul::PackedWeights> packed_;
};

// The configuration of a directory (its config.json) or preset, without loading weights. Throws
// naming the argument and the presets when it is neither.
ModelConfig config_of(const std::string& dir_or_preset);

// What --model means when not given: the embedded default model (see model.cpp).
std::string default_model();

torch::ScalarType parse_dtype(const std::string& name);  // "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16"
std::string dtype_name(torch::ScalarType dtype);

}  // namespace tstar
