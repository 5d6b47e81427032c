// A Qwen2/Llama decoder, written to compute what HF transformers' eager path computes
// (modeling_qwen2.py / modeling_llama.py; Qwen3, Mistral, Phi-3, Gemma 2 and Gemma 3 text differ in
// data: ModelConfig's fields, never in a second copy of the forward). Reads top to bottom like the
// architecture: parameters, loading, RMSNorm, RoPE, attention, MLP, blocks, model entry points.
#include "tstar/model.h"

#include <unistd.h>

#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>

#include "bf16_gemv.h"
#include "onednn_matmul.h"
#include "embedded_model.h"
#include "tstar/compute_profile.h"
#include "tstar/error.h"
#include "tstar/safetensors.h"

namespace tstar {

namespace {
constexpr size_t kNoSlot = std::numeric_limits<size_t>::max();

std::string shape_string(c10::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }
}  // namespace

// ---------------------------------------------------------------------------------------------
// Parameters

void ParameterMap::add(std::string name, torch::Tensor tensor, torch::Tensor origin) {
  if (index_.count(name)) throw Error(fmt::format("duplicate parameter '{}'", name));
  index_.emplace(name, entries_.size());
  entries_.emplace_back(std::move(name), std::move(tensor));
  origins_.push_back(std::move(origin));
}

torch::Tensor& ParameterMap::at(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(fmt::format("no parameter named '{}'", name));
  return entries_[it->second].second;
}

std::optional<size_t> ParameterMap::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

const torch::Tensor& ParameterMap::at(const std::string& name) const {
  return const_cast<ParameterMap*>(this)->at(name);
}

int64_t ParameterMap::num_elements() const {
  int64_t total = 0;
  for (const auto& entry : entries_) total += entry.second.numel();
  return total;
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32" || name == "float") return torch::kFloat;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16" || name == "half") return torch::kHalf;
  throw Error(fmt::format("unknown dtype '{}' (expected fp32, bf16 or fp16)", name));
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat: return "fp32";
    case torch::kBFloat16: return "bf16";
    case torch::kHalf: return "fp16";
    default: return c10::toString(dtype);
  }
}

LogitsDtype parse_logits_dtype(const std::string& name) {
  if (name == "model") return LogitsDtype::kModel;
  if (name == "fp32") return LogitsDtype::kFloat32;
  throw Error(fmt::format("unknown logits dtype '{}' (expected fp32 or model)", name));
}

std::string logits_dtype_name(LogitsDtype logits) { return logits == LogitsDtype::kFloat32 ? "fp32" : "model"; }

Component component_of(Weight weight) {
  switch (weight) {
    case Weight::kEmbedding: return Component::kEmbedding;
    case Weight::kQ:
    case Weight::kK:
    case Weight::kV:
    case Weight::kO:
    // Qwen3's per-head q/k norms sit inside self_attn: what the notebook's substring filter on
    // attention selects (and its exclusion rule, on layernorm/ln, does not exclude).
    case Weight::kQNorm:
    case Weight::kKNorm:
    // Phi-3's fused qkv_proj is attention as a whole, as the notebook's substring filter "self_attn" has it.
    case Weight::kQkv: return Component::kAttention;
    case Weight::kGate:
    case Weight::kUp:
    case Weight::kDown:
    case Weight::kGateUp: return Component::kMlp;
    case Weight::kInputNorm:
    case Weight::kPostAttentionNorm:
    case Weight::kPreFeedforwardNorm:
    case Weight::kPostFeedforwardNorm:
    case Weight::kFinalNorm: return Component::kNorm;
    case Weight::kLmHead: return Component::kLmHead;
  }
  TSTAR_CHECK(false);
  return Component::kNorm;
}

std::string hf_parameter_name(Weight weight, int64_t layer, bool bias) {
  auto in_layer = [&](const char* rest) { return fmt::format("model.layers.{}.{}", layer, rest); };
  std::string stem;
  switch (weight) {
    case Weight::kEmbedding: stem = "model.embed_tokens"; break;
    case Weight::kInputNorm: stem = in_layer("input_layernorm"); break;
    case Weight::kQ: stem = in_layer("self_attn.q_proj"); break;
    case Weight::kK: stem = in_layer("self_attn.k_proj"); break;
    case Weight::kV: stem = in_layer("self_attn.v_proj"); break;
    case Weight::kO: stem = in_layer("self_attn.o_proj"); break;
    case Weight::kQNorm: stem = in_layer("self_attn.q_norm"); break;
    case Weight::kKNorm: stem = in_layer("self_attn.k_norm"); break;
    case Weight::kPostAttentionNorm: stem = in_layer("post_attention_layernorm"); break;
    case Weight::kPreFeedforwardNorm: stem = in_layer("pre_feedforward_layernorm"); break;
    case Weight::kPostFeedforwardNorm: stem = in_layer("post_feedforward_layernorm"); break;
    case Weight::kGate: stem = in_layer("mlp.gate_proj"); break;
    case Weight::kUp: stem = in_layer("mlp.up_proj"); break;
    case Weight::kDown: stem = in_layer("mlp.down_proj"); break;
    case Weight::kFinalNorm: stem = "model.norm"; break;
    case Weight::kLmHead: stem = "lm_head"; break;
    case Weight::kQkv: stem = in_layer("self_attn.qkv_proj"); break;
    case Weight::kGateUp: stem = in_layer("mlp.gate_up_proj"); break;
  }
  return stem + (bias ? ".bias" : ".weight");
}

std::vector<ParameterSpec> expected_parameters(const ModelConfig& c) {
  using Role = ParameterSpec::Role;
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  std::vector<ParameterSpec> out;
  out.push_back({hf_parameter_name(Weight::kEmbedding), {c.vocab_size, c.hidden_size}, Role::kEmbedding, Weight::kEmbedding});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    auto norm = [&](Weight weight) { out.push_back({hf_parameter_name(weight, i), {c.hidden_size}, Role::kNorm, weight, i}); };
    auto projection = [&](Weight weight, int64_t out_dim, int64_t in_dim, bool bias) {
      out.push_back({hf_parameter_name(weight, i), {out_dim, in_dim}, Role::kMatrix, weight, i});
      if (bias) out.push_back({hf_parameter_name(weight, i, true), {out_dim}, Role::kBias, weight, i});
    };
    norm(Weight::kInputNorm);
    if (c.fused_qkv) {
      projection(Weight::kQkv, q_dim + 2 * kv_dim, c.hidden_size, false);  // q rows, then k, then v; no bias
    } else {
      projection(Weight::kQ, q_dim, c.hidden_size, c.attention_bias);
      projection(Weight::kK, kv_dim, c.hidden_size, c.attention_bias);
      projection(Weight::kV, kv_dim, c.hidden_size, c.attention_bias);
    }
    projection(Weight::kO, c.hidden_size, q_dim, c.o_proj_bias);
    if (c.qk_norm) {
      for (Weight w : {Weight::kQNorm, Weight::kKNorm}) out.push_back({hf_parameter_name(w, i), {c.head_dim}, Role::kNorm, w, i});
    }
    norm(Weight::kPostAttentionNorm);
    if (c.sandwich_norms) {
      norm(Weight::kPreFeedforwardNorm);
      norm(Weight::kPostFeedforwardNorm);
    }
    if (c.fused_gate_up) {
      projection(Weight::kGateUp, 2 * c.intermediate_size, c.hidden_size, false);
    } else {
      projection(Weight::kGate, c.intermediate_size, c.hidden_size, false);
      projection(Weight::kUp, c.intermediate_size, c.hidden_size, false);
    }
    projection(Weight::kDown, c.hidden_size, c.intermediate_size, false);
  }
  out.push_back({hf_parameter_name(Weight::kFinalNorm), {c.hidden_size}, Role::kNorm, Weight::kFinalNorm});
  if (!c.tie_word_embeddings) {
    out.push_back({hf_parameter_name(Weight::kLmHead), {c.vocab_size, c.hidden_size}, Role::kMatrix, Weight::kLmHead});
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Construction and strict loading

Model Model::from_parameters(ModelConfig config, ParameterMap params, const LoadOptions& options) {
  Model model;
  model.config_ = std::move(config);
  model.params_ = std::move(params);
  model.options_ = options;
  model.bind();
  return model;
}

// Buffers some checkpoints carry that a model recomputes: explicitly ignored, never silently.
static bool is_ignored_tensor(const std::string& name, const ModelConfig& config) {
  static const std::string kRotary = ".self_attn.rotary_emb.inv_freq";
  if (name.size() > kRotary.size() && name.compare(name.size() - kRotary.size(), kRotary.size(), kRotary) == 0) {
    return true;
  }
  // A tied model may still store lm_head.weight; the embedding matrix is what HF uses.
  return config.tie_word_embeddings && name == hf_parameter_name(Weight::kLmHead);
}

Model Model::load(const std::filesystem::path& dir, const LoadOptions& options) {
  if (!std::filesystem::is_directory(dir)) {
    throw Error(fmt::format("model directory '{}' does not exist", dir.string()));
  }
  ModelConfig config = ModelConfig::from_file(dir / "config.json");
  Checkpoint checkpoint = Checkpoint::open(dir);
  const auto expected = expected_parameters(config);

  ParameterMap params;
  for (const auto& [name, shape, role, weight, layer] : expected) {
    const Checkpoint::Entry* entry = checkpoint.find(name);
    if (!entry) throw Error(fmt::format("{}: missing tensor '{}'", dir.string(), name));
    if (entry->info->shape != shape) {
      throw Error(fmt::format("{}: tensor '{}' has shape {} but config.json implies {}",
                              entry->file->path().string(), name, shape_string(entry->info->shape),
                              shape_string(shape)));
    }
    torch::Tensor mapped = entry->file->view(*entry->info);
    torch::Tensor t = mapped.to(options.device, options.dtype, false, /*copy=*/true).contiguous();
    // A copy without conversion keeps the mapped bytes as its origin (for CleanStore).
    const bool unconverted = t.device().is_cpu() && mapped.scalar_type() == t.scalar_type();
    params.add(name, t, unconverted ? mapped : torch::Tensor());
  }
  for (const auto& [name, entry] : checkpoint.tensors()) {
    if (!params.contains(name) && !is_ignored_tensor(name, config)) {
      throw Error(fmt::format("{}: unexpected tensor '{}' (not used by {} with this config.json)",
                              entry.file->path().string(), name, config.architecture));
    }
  }
  Model model = from_parameters(std::move(config), std::move(params), options);
  model.source_dir_ = dir;
  return model;
}

// Deterministic weights: each tensor draws from its own generator seeded by (seed, position), so
// presets are identical across runs and thread counts. Uniform draws keep the 1.5B preset quick to
// build; std 0.02 matches HF's initializer_range. Norm weights sit near 1 and biases near 0.
Model Model::from_preset(const std::string& preset, const LoadOptions& options, uint64_t seed) {
  ModelConfig config = preset_config(preset);
  ParameterMap params;
  const double half_width = 0.02 * std::sqrt(3.0);
  uint64_t index = 0;
  for (const auto& [name, shape, role, weight, layer] : expected_parameters(config)) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed * 0x9E3779B97F4A7C15ULL + (++index));
    torch::Tensor t = torch::empty(shape, torch::kFloat);
    const bool is_norm = role == ParameterSpec::Role::kNorm;
    const double width = is_norm || role == ParameterSpec::Role::kBias ? 0.1 : half_width;
    t.uniform_(-width, width, generator);
    if (is_norm) t.add_(1.0);
    params.add(name, t.to(options.device, options.dtype).contiguous());
  }
  return from_parameters(std::move(config), std::move(params), options);
}

// The embedded default model, trained by `tstar train` (fixtures/embedded/README.md) and compiled
// into the binary: the directory its files are written to on first use (embedded_model.h).
std::string default_model() { return materialize_embedded_model().string(); }

[[noreturn]] static void throw_unknown_model(const std::string& dir_or_preset) {
  throw Error(fmt::format("model '{}' is neither a directory nor a preset (presets: {})", dir_or_preset,
                          fmt::join(preset_names(), ", ")));
}

Model Model::open(const std::string& dir_or_preset, const LoadOptions& options) {
  if (std::filesystem::is_directory(dir_or_preset)) return load(dir_or_preset, options);
  if (is_preset(dir_or_preset)) return from_preset(dir_or_preset, options);
  throw_unknown_model(dir_or_preset);
}

ModelConfig config_of(const std::string& dir_or_preset) {
  if (std::filesystem::is_directory(dir_or_preset)) {
    return ModelConfig::from_file(std::filesystem::path(dir_or_preset) / "config.json");
  }
  if (is_preset(dir_or_preset)) return preset_config(dir_or_preset);
  throw_unknown_model(dir_or_preset);
}

void Model::bind() {
  const ModelConfig& c = config_;
  TSTAR_CHECK(c.num_heads % c.num_kv_heads == 0);
  auto slot = [&](const std::string& name) -> size_t {
    if (auto index = params_.find(name)) return *index;
    throw Error(fmt::format("model is missing parameter '{}'", name));
  };
  auto weight = [&](Weight w, int64_t layer, bool present = true) {
    return present ? slot(hf_parameter_name(w, layer)) : kNoSlot;
  };
  auto bias = [&](Weight w, int64_t layer, bool present) { return present ? slot(hf_parameter_name(w, layer, true)) : kNoSlot; };
  const bool split_qkv = !c.fused_qkv, split_gate_up = !c.fused_gate_up;
  const bool qkv_bias = split_qkv && c.attention_bias;
  layers_.clear();
  for (int64_t i = 0; i < c.num_layers; ++i) {
    layers_.push_back(LayerSlots{weight(Weight::kInputNorm, i), weight(Weight::kQ, i, split_qkv), bias(Weight::kQ, i, qkv_bias),
                                 weight(Weight::kK, i, split_qkv), bias(Weight::kK, i, qkv_bias),
                                 weight(Weight::kV, i, split_qkv), bias(Weight::kV, i, qkv_bias),
                                 weight(Weight::kO, i), bias(Weight::kO, i, c.o_proj_bias),
                                 weight(Weight::kQNorm, i, c.qk_norm), weight(Weight::kKNorm, i, c.qk_norm),
                                 weight(Weight::kPostAttentionNorm, i), weight(Weight::kGate, i, split_gate_up),
                                 weight(Weight::kUp, i, split_gate_up), weight(Weight::kDown, i),
                                 weight(Weight::kQkv, i, c.fused_qkv), weight(Weight::kGateUp, i, c.fused_gate_up),
                                 kNoSlot, kNoSlot});
    if (c.sandwich_norms) {  // Gemma: post_attention_layernorm is the attention output's norm
      LayerSlots& slots = layers_.back();
      slots.attention_out_norm = slots.post_norm;
      slots.post_norm = weight(Weight::kPreFeedforwardNorm, i);
      slots.mlp_out_norm = weight(Weight::kPostFeedforwardNorm, i);
    }
  }
  embed_ = weight(Weight::kEmbedding, -1);
  final_norm_ = weight(Weight::kFinalNorm, -1);
  lm_head_ = c.tie_word_embeddings ? embed_ : weight(Weight::kLmHead, -1);
  inv_freq_ = rope_inverse_frequencies(c).to(options_.device);
  if (c.local_rope_theta > 0) {  // Gemma 3's sliding layers: the default RoPE on their own base
    ModelConfig local = c;
    local.rope_theta = c.local_rope_theta;
    local.rope_scaling = RopeScaling{};
    local_inv_freq_ = rope_inverse_frequencies(local).to(options_.device);
  }
}

namespace {

// Dynamic NTK's theta (HF's _compute_dynamic_ntk_parameters) for a forward whose longest position + 1
// is `sequence_length`: theta * (factor * L / max_positions - (factor - 1))^(D / (D - 2)), with
// L = max(sequence_length, max_positions). HF computes it in double at initialisation (L = max_positions,
// the power's base ~1) and, once a forward passes max_positions, from its seq_len tensor: in fp32, op
// for op as here (their results are bit-identical to HF's, checked in Python for L = 13..4096).
torch::Tensor dynamic_ntk_theta(const ModelConfig& c, int64_t sequence_length) {
  const RopeScaling& s = c.rope_scaling;
  const double dim = static_cast<double>(c.head_dim), max_positions = static_cast<double>(c.max_position_embeddings);
  const double exponent = dim / (dim - 2);
  if (sequence_length <= c.max_position_embeddings) {
    return torch::tensor(c.rope_theta * std::pow(s.factor * max_positions / max_positions - (s.factor - 1), exponent),
                         torch::kFloat);
  }
  auto length = torch::tensor(sequence_length, torch::kLong);
  return (length * s.factor / c.max_position_embeddings - (s.factor - 1)).pow(exponent) * c.rope_theta;  // fp32
}

}  // namespace

// HF's rope initialisation (modeling_rope_utils.py), op for op in fp32: the default
// 1 / theta^(arange(0, d, 2) / d), then the scaling type's adjustment.
torch::Tensor rope_inverse_frequencies(const ModelConfig& c, int64_t sequence_length) {
  const RopeScaling& s = c.rope_scaling;
  auto theta = s.type == RopeScaling::Type::kDynamic ? dynamic_ntk_theta(c, sequence_length)
                                                      : torch::tensor(c.rope_theta, torch::kFloat);
  auto exponents = torch::arange(0, c.head_dim, 2, torch::kLong).to(torch::kFloat) / static_cast<float>(c.head_dim);
  auto inv_freq = 1.0 / torch::pow(theta, exponents);  // [D/2]
  switch (s.type) {
    case RopeScaling::Type::kDefault:
    case RopeScaling::Type::kDynamic: return inv_freq;
    case RopeScaling::Type::kLinear: return inv_freq / s.factor;
    case RopeScaling::Type::kLlama3: {
      const double old_context = static_cast<double>(s.original_max_positions);
      const double low_freq_wavelen = old_context / s.low_freq_factor;
      const double high_freq_wavelen = old_context / s.high_freq_factor;
      auto wavelen = 2 * M_PI / inv_freq;
      auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
      auto smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      auto smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
      auto medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
      return torch::where(medium, smoothed, scaled);
    }
  }
  TSTAR_CHECK(false);
}

// ---------------------------------------------------------------------------------------------
// Blocks

// HF Qwen2RMSNorm: upcast to fp32, normalise, cast back to the input dtype, then scale by weight.
// Gemma2RMSNorm / Gemma3RMSNorm scale by (1 + weight) in fp32 and cast after.
torch::Tensor Model::rms_norm(const torch::Tensor& x, size_t weight) const {
  auto x32 = x.to(torch::kFloat);
  auto variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  x32 = x32 * torch::rsqrt(variance + config_.rms_norm_eps);
  if (config_.norm_unit_offset) return (x32 * (1.0 + p(weight).to(torch::kFloat))).to(x.scalar_type());
  return p(weight) * x32.to(x.scalar_type());
}

namespace {

// bf16 products through fp32 BLAS (widened operands, one rounding to bf16) where
// bf16_matmul_path() says so (compute_profile.h); else libtorch's own bf16 kernels. The paths are
// CPU choices: on a GPU, cuBLAS's bf16 GEMM (as HF).
bool widen_bf16(const torch::Tensor& x) {
  return x.is_cpu() && x.scalar_type() == torch::kBFloat16 && bf16_matmul_path() == Bf16Matmul::kFp32Gemm;
}

torch::Tensor widened(const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat) : t; }

// The GEMV kernel for a decode-sized bf16 product (at most bf16_gemv::kMaxRows rows of x, on the CPU)
// on a path it replaces (bf16_gemv::kernel_for), or none. Such a product reads the bf16 weight itself.
std::optional<bf16_gemv::Kernel> gemv_kernel_for(const torch::Tensor& x) {
  if (!x.is_cpu() || x.scalar_type() != torch::kBFloat16 || x.dim() < 1) return std::nullopt;
  if (x.numel() > bf16_gemv::kMaxRows * x.size(-1)) return std::nullopt;
  return bf16_gemv::kernel_for(bf16_matmul_path(), native_kernel_choices());
}

// A weight (and bias) the GEMV kernel reads: contiguous bf16 [n, k], k the width of x.
bool gemv_takes(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (weight.scalar_type() != torch::kBFloat16 || (bias.defined() && bias.scalar_type() != torch::kBFloat16)) return false;
  return weight.dim() == 2 && weight.size(1) == x.size(-1) && weight.is_contiguous();
}

torch::Tensor bf16_gemv_project(bf16_gemv::Kernel kernel, const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias) {
  const auto input = x.contiguous();
  const torch::Tensor b = bias.defined() ? bias.contiguous() : bias;
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  auto y = torch::empty(sizes, x.options());
  auto bits = [](const torch::Tensor& t) { return t.defined() ? static_cast<const uint16_t*>(t.data_ptr()) : nullptr; };
  bf16_gemv::compute(kernel, bits(input), input.numel() / x.size(-1), bits(weight), weight.size(0),
                     x.size(-1), bits(b), static_cast<uint16_t*>(y.data_ptr()));
  return y;
}

// y = x W^T + b. A single fp32 row (one-token decode) goes through matrix-vector BLAS: OpenBLAS's
// gemm packs the whole weight matrix even for one row, which made fp32 decode ~2x slower than HF.
// bf16 on the CPU: for a few rows, tstar's GEMV kernel where bf16_gemv::kernel_for gives one (oneDNN
// 2.6 streamed a decode step's weights at half the memory's pace; fp32 BLAS would read widened
// copies, twice the bytes); else fp32 BLAS (as widen_bf16) or oneDNN.
// (Model::linear sends the larger bf16 products of the onednn path to oneDNN directly instead.)
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {}) {
  if (x.is_cpu() && x.scalar_type() == torch::kBFloat16) {
    const auto kernel = gemv_kernel_for(x);
    if (kernel && gemv_takes(x, weight, bias)) return bf16_gemv_project(*kernel, x, weight, bias);
    if (widen_bf16(x)) return project(widened(x), widened(weight), widened(bias)).to(torch::kBFloat16);
  }
  if (x.scalar_type() != torch::kFloat || x.numel() != x.size(-1)) return torch::linear(x, weight, bias);
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  auto y = torch::mv(weight, x.reshape({-1}));
  if (bias.defined()) y = y + bias;
  return y.view(sizes);
}

// a @ b, bf16 as project() does it.
torch::Tensor product(const torch::Tensor& a, const torch::Tensor& b) {
  if (widen_bf16(a)) return torch::matmul(widened(a), widened(b)).to(torch::kBFloat16);
  return torch::matmul(a, b);
}

// rotate_half: cat(-x2, x1) over the last dimension (non-interleaved RoPE).
torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

// cos/sin [B, 1, T, D] for positions [B, T]: fp32 angles, cast to the activations' dtype (as HF).
std::pair<torch::Tensor, torch::Tensor> rope_tables(const torch::Tensor& inv_freq, const torch::Tensor& positions,
                                                    torch::ScalarType dtype) {
  auto freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq;  // [B, T, D/2]
  auto angles = torch::cat({freqs, freqs}, -1).unsqueeze(1);          // [B, 1, T, D]
  return {angles.cos().to(dtype), angles.sin().to(dtype)};
}

// cap tanh(x / cap) in x's dtype, as HF's soft-capping; x itself without a cap.
torch::Tensor soft_cap(const torch::Tensor& x, double cap) {
  return cap > 0 ? torch::tanh(x / cap) * cap : x;
}

// [B, Hkv, S, D] -> [B, Hkv * groups, S, D], each KV head repeated for its group of query heads.
torch::Tensor repeat_kv(const torch::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  auto sizes = x.sizes();
  return x.unsqueeze(2).expand({sizes[0], sizes[1], groups, sizes[2], sizes[3]})
      .reshape({sizes[0], sizes[1] * groups, sizes[2], sizes[3]});
}

}  // namespace

// Phi-3's one product with the fused weight, split into its q, k and v columns as HF does (views of
// the product: the parameter itself is read whole at every forward, so in-place noise is seen).
std::array<torch::Tensor, 3> Model::qkv_projections(const torch::Tensor& x, const LayerSlots& layer) const {
  if (layer.qkv != kNoSlot) {
    const int64_t q_dim = config_.num_heads * config_.head_dim, kv_dim = config_.num_kv_heads * config_.head_dim;
    auto fused = linear(x, layer.qkv);  // [N, q_dim + 2 kv_dim]
    return {fused.narrow(-1, 0, q_dim), fused.narrow(-1, q_dim, kv_dim), fused.narrow(-1, q_dim + kv_dim, kv_dim)};
  }
  return {linear(x, layer.q_weight, layer.q_bias), linear(x, layer.k_weight, layer.k_bias),
          linear(x, layer.v_weight, layer.v_bias)};
}

// Dynamic RoPE follows the forward's longest position (HF: max(position_ids) + 1 over the whole batch,
// so a padded batch shares its longest row's frequencies); a [D/2] vector, cheap to recompute per layer.
torch::Tensor Model::inverse_frequencies(const torch::Tensor& positions) const {
  if (config_.rope_scaling.type != RopeScaling::Type::kDynamic) return inv_freq_;
  const int64_t sequence_length = positions.max().item<int64_t>() + 1;
  return rope_inverse_frequencies(config_, sequence_length).to(inv_freq_.device());
}

Model::Grid Model::Grid::of(const torch::Tensor& key_mask) {
  Grid grid{key_mask.size(0), key_mask.size(1), {}};
  if (!key_mask.all().item<bool>()) grid.token_rows = key_mask.reshape({-1}).nonzero().squeeze(1);
  return grid;
}

torch::Tensor Model::Grid::to_rows(const torch::Tensor& grid) const {
  auto flat = grid.reshape({batch * length, grid.size(-1)});
  return token_rows.defined() ? flat.index_select(0, token_rows) : flat;
}

torch::Tensor Model::Grid::to_grid(const torch::Tensor& rows) const {
  if (!token_rows.defined()) return rows.view({batch, length, rows.size(-1)});
  return torch::zeros({batch * length, rows.size(-1)}, rows.options())
      .index_copy_(0, token_rows, rows)
      .view({batch, length, rows.size(-1)});
}

torch::Tensor Model::attention(const torch::Tensor& x, const Grid& grid, const LayerSlots& layer, int64_t layer_index,
                               const torch::Tensor& positions, const AttentionMasks& masks, KVCache* cache) const {
  const ModelConfig& c = config_;
  const int64_t B = grid.batch, T = grid.length, D = c.head_dim;
  auto [q, k, v] = qkv_projections(x, layer);  // [N, heads * D] each
  q = grid.to_grid(q).view({B, T, c.num_heads, D});
  k = grid.to_grid(k);
  v = grid.to_grid(v);
  k = k.view({B, T, c.num_kv_heads, D});
  if (layer.q_norm != kNoSlot) {  // Qwen3: RMSNorm of each head's q and k, before RoPE
    q = rms_norm(q, layer.q_norm);
    k = rms_norm(k, layer.k_norm);
  }
  q = q.transpose(1, 2);  // [B, Hq, T, D]
  k = k.transpose(1, 2);  // [B, Hkv, T, D]
  v = v.view({B, T, c.num_kv_heads, D}).transpose(1, 2);

  const bool sliding = c.is_sliding(layer_index);
  auto [cos, sin] = rope_tables(sliding && local_inv_freq_.defined() ? local_inv_freq_ : inverse_frequencies(positions),
                                positions, x.scalar_type());
  q = q * cos + rotate_half(q) * sin;  // [B, Hq, T, D]
  k = k * cos + rotate_half(k) * sin;  // [B, Hkv, T, D]

  if (cache) {
    cache->keys[layer_index].narrow(2, cache->length, T).copy_(k);
    cache->values[layer_index].narrow(2, cache->length, T).copy_(v);
    k = cache->keys[layer_index].narrow(2, 0, cache->length + T);
    v = cache->values[layer_index].narrow(2, 0, cache->length + T);
  }
  const int64_t groups = c.num_heads / c.num_kv_heads;
  k = repeat_kv(k, groups);  // [B, Hq, S, D]
  v = repeat_kv(v, groups);

  // Eager attention as HF: scores in the activation dtype (Gemma 2: soft-capped), additive mask,
  // softmax in fp32. Gemma scales by query_pre_attn_scalar^-0.5 (Python's ** is pow).
  const double scaling = c.query_pre_attn_scalar > 0 ? std::pow(c.query_pre_attn_scalar, -0.5)
                                                     : 1.0 / std::sqrt(static_cast<double>(D));
  auto scores = soft_cap(product(q, k.transpose(2, 3)) * scaling, c.attn_logit_softcapping) +
                (sliding ? masks.sliding : masks.full);  // [B, Hq, T, S]
  auto weights = torch::softmax(scores, -1, torch::kFloat).to(x.scalar_type());
  auto out = grid.to_rows(product(weights, v).transpose(1, 2).reshape({B, T, c.num_heads * D}));  // [N, Hq * D]
  return linear(out, layer.o_weight, layer.o_bias);
}

// Gated MLP: down(act(gate(x)) * up(x)), act silu (SwiGLU) or GeLU's tanh form (Gemma); no biases.
// GeLU runs in fp32 and rounds once, as torch 2.x's kernels (HF's) do for bf16: libtorch 1.13's bf16
// GeLU rounds inside its formula and differs in ~45% of elements by an ulp. Phi-3: one product with
// gate_up_proj, whose first half of columns is gate and second half up (HF's chunk(2)).
torch::Tensor Model::mlp(const torch::Tensor& x, const LayerSlots& layer) const {
  torch::Tensor gate, up;
  if (layer.gate_up != kNoSlot) {
    auto fused = linear(x, layer.gate_up);  // [B, T, 2 I]
    gate = fused.narrow(-1, 0, config_.intermediate_size);
    up = fused.narrow(-1, config_.intermediate_size, config_.intermediate_size);
  } else {
    gate = linear(x, layer.gate);
    up = linear(x, layer.up);
  }
  gate = config_.activation == Activation::kGeluTanh ? torch::gelu(gate.to(torch::kFloat), "tanh").to(gate.scalar_type())
                                                     : torch::silu(gate);
  auto hidden = gate * up;
  return linear(hidden, layer.down);
}

torch::Tensor Model::hidden_states(const torch::Tensor& ids, const torch::Tensor& positions, const Grid& grid,
                                   const AttentionMasks& masks, KVCache* cache, LayerInputs* record,
                                   const LayerInputs* resume, int64_t first_layer) const {
  // fp16 weights can be held (and noised) anywhere, but only CUDA kernels can run them.
  if (options_.dtype == torch::kHalf && options_.device.is_cpu()) {
    throw Error("fp16 runs on CUDA only: this libtorch's CPU kernels have no half-precision matmul; use bf16 or fp32");
  }
  const size_t first = resume ? static_cast<size_t>(first_layer) : 0;
  auto x = resume ? resume->residual.at(first) : grid.to_rows(embed(ids));  // [N, H]
  // Gemma's output norms; without them the sublayer's output as it is.
  auto output_norm = [&](const torch::Tensor& y, size_t slot) { return slot == kNoSlot ? y : rms_norm(y, slot); };
  for (size_t i = first; i < layers_.size(); ++i) {
    if (record) record->residual.push_back(x);
    const LayerSlots& layer = layers_[i];
    x = x + output_norm(attention(rms_norm(x, layer.input_norm), grid, layer, static_cast<int64_t>(i), positions,
                                  masks, cache),
                        layer.attention_out_norm);
    x = x + output_norm(mlp(rms_norm(x, layer.post_norm), layer), layer.mlp_out_norm);
  }
  if (record) record->residual.push_back(x);
  return grid.to_grid(x);  // [B, T, H]
}

torch::Tensor Model::logits(const torch::Tensor& residual, LogitsDtype precision, torch::Tensor* before_softcap) const {
  torch::Tensor raw;
  if (precision == LogitsDtype::kModel) {
    auto normed = rms_norm(residual, final_norm_);
    raw = linear(normed, lm_head_);
  } else {
    // The same operations in fp32 end to end (no cast back to the weights' dtype); for an fp32 model
    // this is the model path, bit for bit.
    auto x32 = residual.to(torch::kFloat);
    x32 = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + config_.rms_norm_eps);
    auto scale = config_.norm_unit_offset ? 1.0 + fp32_parameter(final_norm_) : fp32_parameter(final_norm_);
    raw = project(config_.norm_unit_offset ? x32 * scale : scale * x32, fp32_parameter(lm_head_));
  }
  // Gemma 2: capped in the logits' own dtype, as HF.
  if (before_softcap) *before_softcap = raw.to(torch::kFloat);
  return soft_cap(raw, config_.final_logit_softcapping).to(torch::kFloat);
}

// Token embeddings; Gemma's are scaled by sqrt(hidden_size), a factor HF holds in fp32 and casts to the
// weights' dtype before the product (bf16: 55.4256 becomes 55.5 for hidden 3072).
torch::Tensor Model::embed(const torch::Tensor& ids) const {
  auto x = torch::embedding(p(embed_), ids);
  if (!config_.scale_embeddings) return x;
  const auto scale = torch::tensor(std::sqrt(static_cast<double>(config_.hidden_size)), torch::kFloat);
  return x * scale.to(x.device(), x.scalar_type());
}

namespace {

int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

}  // namespace

torch::Tensor Model::fp32_parameter(size_t slot) const {
  const torch::Tensor& parameter = p(slot);
  if (parameter.scalar_type() == torch::kFloat) return parameter;
  if (widened_.size() != params_.size()) widened_.assign(params_.size(), WidenedCopy{});
  WidenedCopy& copy = widened_[slot];
  if (copy.fp32.defined() && copy.source.is_same(parameter) && copy.version == parameter._version()) return copy.fp32;
  const int64_t bytes = parameter.numel() * static_cast<int64_t>(sizeof(float));
  // lm_head's copy serves every experiment's fp32 logits: the other copies leave room for it.
  const int64_t reserved = slot == lm_head_ ? 0 : p(lm_head_).numel() * static_cast<int64_t>(sizeof(float));
  const bool fits = copy.fp32.defined() || widened_bytes_ + bytes + reserved <= physical_memory_bytes() / 4;
  if (!fits) return parameter.to(torch::kFloat);
  if (!copy.fp32.defined()) widened_bytes_ += bytes;
  copy.fp32 = parameter.to(torch::kFloat);
  copy.source = parameter;
  copy.version = parameter._version();
  return copy.fp32;
}

torch::Tensor Model::operand(const torch::Tensor& x, size_t slot) const {
  return widen_bf16(x) && !gemv_kernel_for(x) ? fp32_parameter(slot) : p(slot);
}

torch::Tensor Model::linear(const torch::Tensor& x, size_t weight_slot, size_t bias_slot) const {
  const auto bias = bias_slot == kNoSlot ? torch::Tensor() : operand(x, bias_slot);
  const torch::Tensor& weight = p(weight_slot);
  // A GEMM-sized bf16 product on the onednn path: oneDNN called directly (torch::linear's bits
  // without ideep's overhead), through the weight's packed copy once it has one.
  if (onednn_matmul::takes(x, weight, bias) && !gemv_kernel_for(x) && bf16_matmul_path() == Bf16Matmul::kOneDnn) {
    if (!packed_) packed_ = std::make_shared<onednn_matmul::PackedWeights>();
    const auto* packed = packed_->for_product(weight_slot, weight, physical_memory_bytes() / 8);
    return onednn_matmul::linear(x, weight, bias, packed);
  }
  return project(x, operand(x, weight_slot), bias);
}

// ---------------------------------------------------------------------------------------------
// Entry points

namespace {

double lowest_value(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kBFloat16: return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case torch::kHalf: return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    default: return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}

// Additive mask [B, 1, T, S] in `dtype`: 0 where query t (at absolute column offset + t) may see key s
// (causal, key_mask[s], and with a sliding window s > column - window, columns as HF's cache
// positions), the dtype's lowest value elsewhere (HF's convention: no -inf, no NaN rows).
torch::Tensor additive_mask(const torch::Tensor& key_mask, int64_t offset, int64_t T, torch::ScalarType dtype,
                            int64_t sliding_window) {
  const int64_t S = key_mask.size(1);
  auto query_columns = torch::arange(offset, offset + T, key_mask.options().dtype(torch::kLong)).unsqueeze(1);
  auto key_columns = torch::arange(S, key_mask.options().dtype(torch::kLong)).unsqueeze(0);
  auto visible = key_columns <= query_columns;  // [T, S]
  if (sliding_window > 0) visible = visible & (key_columns > query_columns - sliding_window);
  auto allowed = visible.unsqueeze(0) & key_mask.unsqueeze(1);  // [B, T, S]
  auto zero = torch::zeros({}, key_mask.options().dtype(dtype));
  auto lowest = zero.clone().fill_(lowest_value(dtype));
  return torch::where(allowed, zero, lowest).unsqueeze(1);
}

}  // namespace

// The sliding mask only where some layer slides (Mistral: every layer; Gemma: the local ones).
Model::AttentionMasks Model::attention_masks(const torch::Tensor& key_mask, int64_t offset, int64_t T) const {
  AttentionMasks masks;
  masks.full = additive_mask(key_mask, offset, T, options_.dtype, 0);
  if (config_.sliding_window > 0) masks.sliding = additive_mask(key_mask, offset, T, options_.dtype, config_.sliding_window);
  return masks;
}

namespace {

void check_token_ids(const std::vector<int64_t>& ids, int64_t vocab_size) {
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size) {
      throw Error(fmt::format("token id {} is outside the vocabulary [0, {})", id, vocab_size));
    }
  }
}

}  // namespace

torch::Tensor Model::last_logits(const std::vector<std::vector<int64_t>>& prompts, KVCache* cache,
                                 int64_t extra_capacity, torch::Tensor* model_dtype_logits,
                                 torch::Tensor* pre_softcap_logits) const {
  return prefill(prompts, cache, extra_capacity, model_dtype_logits, nullptr, nullptr, 0, pre_softcap_logits);
}

torch::Tensor Model::last_logits_layered(const std::vector<std::vector<int64_t>>& prompts, LayerInputs* record,
                                         const LayerInputs* resume, int64_t first_layer,
                                         torch::Tensor* model_dtype_logits, torch::Tensor* pre_softcap_logits) const {
  if (resume) {
    if (resume->prompts != prompts || resume->residual.size() != layers_.size() + 1) {
      throw Error("last_logits_layered: the recording is of other prompts or another model");
    }
    if (first_layer < 0 || first_layer > static_cast<int64_t>(layers_.size())) {
      throw Error(fmt::format("last_logits_layered: layer {} outside [0, {}]", first_layer, layers_.size()));
    }
  }
  if (record) {
    record->prompts = prompts;
    record->residual.clear();
  }
  return prefill(prompts, nullptr, 0, model_dtype_logits, record, resume, first_layer, pre_softcap_logits);
}

int64_t Model::LayerInputs::bytes() const {
  int64_t total = 0;
  for (const auto& r : residual) total += static_cast<int64_t>(r.nbytes());
  return total;
}

std::optional<int64_t> Model::first_layer_changed_by(const std::vector<std::string>& parameter_names) const {
  std::map<std::string, const ParameterSpec*> specs;
  const auto expected = expected_parameters(config_);
  for (const auto& spec : expected) specs[spec.name] = &spec;
  int64_t first = static_cast<int64_t>(layers_.size());
  for (const auto& name : parameter_names) {
    const auto it = specs.find(name);
    if (it == specs.end()) throw Error(fmt::format("first_layer_changed_by: '{}' is not a parameter of this model", name));
    if (it->second->weight == Weight::kEmbedding) return std::nullopt;
    if (it->second->layer >= 0) first = std::min(first, it->second->layer);
  }
  return first;
}

torch::Tensor Model::prefill(const std::vector<std::vector<int64_t>>& prompts, KVCache* cache, int64_t extra_capacity,
                             torch::Tensor* model_dtype_logits, LayerInputs* record, const LayerInputs* resume,
                             int64_t first_layer, torch::Tensor* pre_softcap_logits) const {
  torch::NoGradGuard no_grad;
  if (prompts.empty()) throw Error("last_logits: no prompts");
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 0;
  for (const auto& prompt : prompts) {
    if (prompt.empty()) throw Error("last_logits: empty prompt");
    check_token_ids(prompt, config_.vocab_size);
    T = std::max<int64_t>(T, static_cast<int64_t>(prompt.size()));
  }
  // Left padding: every prompt ends in the last column; pads are masked out as keys.
  auto ids = torch::zeros({B, T}, torch::kLong);
  auto key_mask = torch::zeros({B, T}, torch::kBool);
  for (int64_t b = 0; b < B; ++b) {
    const auto& prompt = prompts[b];
    const int64_t pad = T - static_cast<int64_t>(prompt.size());
    ids[b].narrow(0, pad, T - pad).copy_(torch::tensor(prompt, torch::kLong));
    key_mask[b].narrow(0, pad, T - pad).fill_(true);
  }
  // Positions as HF generate derives them from the attention mask: cumsum - 1, pads at 1.
  auto positions = (key_mask.to(torch::kLong).cumsum(1) - 1).masked_fill(~key_mask, 1);
  ids = ids.to(options_.device);
  key_mask = key_mask.to(options_.device);
  positions = positions.to(options_.device);

  if (cache) {
    const int64_t capacity = T + std::max<int64_t>(extra_capacity, 0);
    const auto options = torch::TensorOptions().dtype(options_.dtype).device(options_.device);
    cache->keys.assign(layers_.size(), torch::Tensor());
    cache->values.assign(layers_.size(), torch::Tensor());
    for (size_t i = 0; i < layers_.size(); ++i) {
      cache->keys[i] = torch::zeros({B, config_.num_kv_heads, capacity, config_.head_dim}, options);
      cache->values[i] = torch::zeros({B, config_.num_kv_heads, capacity, config_.head_dim}, options);
    }
    cache->key_mask = torch::zeros({B, capacity}, key_mask.options());
    cache->key_mask.narrow(1, 0, T).copy_(key_mask);
    cache->length = 0;
  }
  auto hidden = hidden_states(ids, positions, Grid::of(key_mask), attention_masks(key_mask, 0, T), cache, record,
                              resume, first_layer);  // [B, T, H]
  if (cache) {
    cache->length = T;
    cache->next_position = positions.select(1, T - 1) + 1;
  }
  auto last = hidden.select(1, T - 1);  // [B, H]
  if (model_dtype_logits) *model_dtype_logits = logits(last, LogitsDtype::kModel);
  return logits(last, options_.logits, pre_softcap_logits);  // [B, V]
}

torch::Tensor Model::decode_step(const std::vector<int64_t>& tokens, KVCache& cache,
                                 std::optional<LogitsDtype> precision) const {
  torch::NoGradGuard no_grad;
  const int64_t B = static_cast<int64_t>(tokens.size());
  if (cache.keys.empty() || cache.key_mask.size(0) != B) {
    throw Error(fmt::format("decode_step: {} tokens for a cache of batch {}", B,
                            cache.keys.empty() ? 0 : cache.key_mask.size(0)));
  }
  if (cache.length >= cache.key_mask.size(1)) {
    throw Error(fmt::format("decode_step: KV cache full ({} positions)", cache.key_mask.size(1)));
  }
  check_token_ids(tokens, config_.vocab_size);
  auto ids = torch::tensor(tokens, torch::kLong).view({B, 1}).to(options_.device);
  auto positions = cache.next_position.view({B, 1});
  cache.key_mask.select(1, cache.length).fill_(true);
  auto visible = cache.key_mask.narrow(1, 0, cache.length + 1);
  auto hidden = hidden_states(ids, positions, Grid{B, 1, {}}, attention_masks(visible, cache.length, 1), &cache);  // [B, 1, H]
  cache.length += 1;
  cache.next_position = cache.next_position + 1;
  return logits(hidden.select(1, 0), precision.value_or(options_.logits));
}

torch::Tensor Model::full_logits(const std::vector<int64_t>& ids) const {
  torch::NoGradGuard no_grad;
  if (ids.empty()) throw Error("full_logits: empty sequence");
  check_token_ids(ids, config_.vocab_size);
  auto input = torch::tensor(ids, torch::kLong).view({1, static_cast<int64_t>(ids.size())});
  return sequence_logits(input).squeeze(0);  // [T, V]
}

torch::Tensor Model::tail_logits(const std::vector<int64_t>& ids, int64_t count) const {
  torch::NoGradGuard no_grad;
  const int64_t T = static_cast<int64_t>(ids.size());
  if (count < 1 || count > T) throw Error(fmt::format("tail_logits: {} positions of a {}-token sequence", count, T));
  check_token_ids(ids, config_.vocab_size);
  auto hidden = unpadded_hidden_states(torch::tensor(ids, torch::kLong).view({1, T}));  // [1, T, H]
  return logits(hidden.narrow(1, T - count, count)).squeeze(0);                         // [count, V]
}

bool Model::logits_depend_on_length(int64_t length) const {
  return config_.rope_scaling.type == RopeScaling::Type::kDynamic && length > config_.max_position_embeddings;
}

torch::Tensor Model::sequence_logits(const torch::Tensor& ids) const {
  TSTAR_CHECK(ids.dim() == 2);
  return logits(unpadded_hidden_states(ids));  // [B, T, V]
}

torch::Tensor Model::unpadded_hidden_states(const torch::Tensor& ids) const {
  const int64_t B = ids.size(0), T = ids.size(1);
  auto input = ids.to(options_.device);
  auto positions = torch::arange(T, input.options()).view({1, T}).expand({B, T});
  auto key_mask = torch::ones({B, T}, input.options().dtype(torch::kBool));
  return hidden_states(input, positions, Grid{B, T, {}}, attention_masks(key_mask, 0, T), nullptr);  // [B, T, H]
}

std::vector<std::vector<int64_t>> Model::generate_greedy(const std::vector<std::vector<int64_t>>& prompts,
                                                         int64_t max_new, int64_t stop_token) const {
  if (max_new < 0) throw Error(fmt::format("max_new must be >= 0, got {}", max_new));
  std::vector<std::vector<int64_t>> out(prompts.size());
  if (max_new == 0) return out;
  KVCache cache;
  auto logits = last_logits(prompts, &cache, max_new);
  std::vector<bool> done(prompts.size(), false);
  for (int64_t step = 0; step < max_new; ++step) {
    auto next = logits.argmax(-1).to(torch::kCPU);
    std::vector<int64_t> tokens(prompts.size());
    bool all_done = true;
    for (size_t b = 0; b < prompts.size(); ++b) {
      tokens[b] = next[static_cast<int64_t>(b)].item<int64_t>();
      if (!done[b]) out[b].push_back(tokens[b]);
      done[b] = done[b] || tokens[b] == stop_token;
      all_done = all_done && done[b];
    }
    if (all_done || step + 1 == max_new) break;
    logits = decode_step(tokens, cache);
  }
  return out;
}

}  // namespace tstar
