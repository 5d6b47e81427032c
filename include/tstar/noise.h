// The noise engine: reproducible noise in chosen weights, exact restore, realized-noise reports.
//
// Streams. Each tensor has its own cuRAND Philox4_32_10 stream whose seed is
// philox::tensor_seed(user seed, parameter name) (philox.h), so its noise does not depend on which
// other tensors are targeted; element n of the row-major flattened tensor takes element n of the
// stream (philox.h documents the counter mapping and the unit-noise formulas).
//
// Noise. w_noisy = round_to_dtype(w_clean + mult * z), z the unit noise (std 1), in float:
//   gaussian / uniform / laplace: mult = s * ref, ref = the tensor's std (tensor_std, the notebook's),
//     the std of the element's output row (row_std: rows along dim 0), or max |w| (abs_max, as IBM
//     aihwkit); statistics are computed once, in double, from the clean weights (unbiased std).
//   multiplicative: w * (1 + s z), i.e. mult = s * w_clean per element; z gaussian; no reference.
// Common random numbers: z depends on (seed, name, element) only, never on s, so a sweep over
// scales with one seed reuses the same unit noise and its curves over scale are paired.
//
// Realized noise: rounding to bf16 swallows perturbations below half an ulp. Each injection reports
// per tensor and in total the fraction of elements whose value changed and realized std / requested
// std (realized std = rms of rounded - clean; requested std = s * ref, or s * rms(w) for
// multiplicative, rms over rows for row_std).
//
// Design (docs/design.md, "Noise streams": restore fused into the next injection): the engine keeps one clean copy of
// each targeted tensor; inject() writes clean + noise into the live tensor in one pass, so consecutive
// injections need no restore in between; restore() copies the clean weights back. Work is split over
// threads by a fixed grid of counter chunks and reduced in a fixed order: results are bit-identical
// for any thread count.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tstar/model.h"
#include "tstar/noise_kernels.h"
#include "tstar/philox.h"

namespace tstar {

namespace noise_device {
class DeviceTallies;
}

// A kind of noise: a unit distribution (philox.h's formulas, unit variance) applied in a mode:
// additive w + s * ref * z, or multiplicative w * (1 + s * z), which scales each weight by itself
// and so takes no scale reference.
struct NoiseType {
  philox::Kind distribution = philox::Kind::kGaussian;
  noise_kernels::Mode mode = noise_kernels::Mode::kAdditive;
  bool operator==(const NoiseType& other) const { return distribution == other.distribution && mode == other.mode; }
  bool operator!=(const NoiseType& other) const { return !(*this == other); }
};
enum class ScaleReference { kTensorStd, kRowStd, kAbsMax };

// The noise kinds a user can name (--noise): the one table of distribution x mode. Adding a
// distribution is its formula in philox.h and a row here (src/noise.cpp).
struct NoiseKindRow {
  const char* name;
  NoiseType type;
  const char* formula;
};
const std::vector<NoiseKindRow>& noise_kinds();

// Parsers throw tstar::Error naming the bad value and the accepted ones.
NoiseType parse_noise_type(const std::string& name);          // a name in noise_kinds()
ScaleReference parse_scale_reference(const std::string& name);  // tensor_std|row_std|abs_max
uint64_t parse_seed(const std::string& text);                 // a non-negative decimal integer < 2^64
std::string noise_type_name(NoiseType type);
std::string scale_reference_name(ScaleReference reference);
void validate_scale(double scale);  // finite and >= 0, else tstar::Error
// Refuses a combination that would silently ignore a setting: a scale reference other than the
// default with multiplicative noise (which scales each weight by itself).
void validate_noise(NoiseType type, ScaleReference reference);

struct NoiseSpec {
  NoiseType type;
  ScaleReference reference = ScaleReference::kTensorStd;
  double scale = 0.0;  // relative scale s
  uint64_t seed = 0;
};

// ---------------------------------------------------------------- targeting

// Which parameters are never noised, as name substrings. Two named conventions:
//   notebook   the notebook's rule: every parameter whose name contains "weight" except names
//              containing "layernorm", "ln" or "embed"; so per-layer norms, embeddings and biases
//              are skipped and the final norm (model.norm.weight) and lm_head are noised.
//              As substrings: layernorm, ln, embed, .bias.
//   all-norms  also skips the final norm: norm, embed, .bias.
// Override by passing another list (empty: none).
std::vector<std::string> exclusion_convention(const std::string& name);  // throws on an unknown name
std::vector<std::string> default_excludes();  // exclusion_convention("notebook")

// What early / middle / late mean:
//   notebook  the notebook's literal layer ranges 0-7, 8-23, 24-31 (a quarter, a half, a quarter of
//             32 layers), cut at the model's depth: on 28 layers late is 24-27, on 4 only early exists;
//             layers from 32 on are in no depth group (layer:N still reaches them).
//   thirds    thirds of the real depth, a remainder to the earlier thirds first (28 -> 10/9/9).
enum class DepthGroups { kNotebook, kThirds };
DepthGroups parse_depth_groups(const std::string& name);  // notebook|thirds
std::string depth_groups_name(DepthGroups depth);

// Which tensors get noise: the union of the named groups and the include patterns (substrings, or
// ECMAScript regexes searched anywhere in the name when `regex`), minus names containing any
// exclude substring. Nothing named means the group "all".
// Groups: all, attention (".self_attn."), mlp (".mlp."), lm_head ("lm_head."), early/middle/late
// (DepthGroups), layer:N (0 <= N < num_layers).
struct TargetSpec {
  std::vector<std::string> groups;
  std::vector<std::string> include;
  bool regex = false;
  std::vector<std::string> exclude = default_excludes();
  DepthGroups depth = DepthGroups::kNotebook;
};

// Every group that can select a tensor in this model, layer:N included: lm_head is left out when tied
// to the embeddings, and early/middle/late when the model has no layer in that range.
std::vector<std::string> group_names(const ModelConfig& config, DepthGroups depth = DepthGroups::kNotebook);
// Indices (checkpoint order) the spec selects. Throws tstar::Error, touching nothing, on an unknown
// group, an invalid regex, or a group/pattern that selects nothing (listing the closest names).
std::vector<size_t> select_targets(const ParameterMap& params, const ModelConfig& config,
                                   const TargetSpec& spec);
// The names each group selects with the given excludes: {"excludes": [...], "groups": {group: [...]}}.
nlohmann::json describe_groups(const ParameterMap& params, const ModelConfig& config,
                               const std::vector<std::string>& exclude = default_excludes(),
                               DepthGroups depth = DepthGroups::kNotebook);
nlohmann::json describe_groups(const Model& model, const std::vector<std::string>& exclude = default_excludes(),
                               DepthGroups depth = DepthGroups::kNotebook);
// Up to `count` names closest to `pattern` (edit distance of the pattern to a substring of the name).
std::vector<std::string> closest_names(const std::string& pattern, const ParameterMap& params,
                                       size_t count = 5);

// ---------------------------------------------------------------- unit noise

uint64_t tensor_seed(uint64_t user_seed, const std::string& name);
// Elements [first, first + count) of a stream's unit noise (first % 4 == 0), generated on all
// threads over a fixed grid of chunks: the values do not depend on the thread count.
void generate_unit_noise(philox::Kind kind, uint64_t stream_seed, uint64_t first, int64_t count,
                         float* out);
// The same elements from libcurand's host API: curand_host.h.

// ---------------------------------------------------------------- engine

struct TensorNoiseReport {
  std::string name;
  int64_t numel = 0;
  int64_t changed = 0;
  double requested_std = 0.0;  // s * ref (absolute units)
  double realized_std = 0.0;   // rms(rounded - clean)
  double changed_fraction() const { return numel ? static_cast<double>(changed) / numel : 0.0; }
  double realized_ratio() const { return requested_std > 0 ? realized_std / requested_std : 0.0; }
};

struct InjectionReport {
  NoiseSpec spec;
  std::vector<TensorNoiseReport> tensors;
  int64_t numel = 0;
  int64_t changed = 0;
  double changed_fraction = 0.0;
  double realized_ratio = 0.0;  // sqrt(sum realized^2 n / sum requested^2 n); 0 when s = 0
  nlohmann::json to_json(bool per_tensor = true) const;
};

// Clean copies of parameters and the statistics the scale references read, made once per parameter
// and shared by the engines built on the same parameters. The suite builds one engine per noise group
// in turn; without a shared store each copied and scanned the same tensors again (on Qwen2.5-0.5B,
// about a third of Layer's time went to fresh pages, copies and statistics). Copy a parameter only
// while it is clean; the store checks that an engine's tensor is the one it copied.
class CleanStore {
 public:
  struct Entry {
    torch::Tensor source;  // the parameter copied (a replaced parameter is another tensor)
    torch::Tensor clean;   // contiguous, on the parameter's device: a copy, or its read-only origin
    double tensor_std = 0, abs_max = 0, rms = 0;
    int64_t rows = 1, row_length = 0;
    std::vector<double> row_std;  // filled on the first request that needs it
  };
  explicit CleanStore(ParameterMap& params) : params_(params) {}
  CleanStore(const CleanStore&) = delete;
  CleanStore& operator=(const CleanStore&) = delete;
  // Parameter `index`'s entry, copied and scanned on first use (row standard deviations too when
  // `row_std`); throws tstar::Error when the parameter is no longer the tensor first copied.
  const Entry& entry(size_t index, bool row_std);
  size_t bytes() const;

 private:
  ParameterMap& params_;
  std::map<size_t, Entry> entries_;
};

class NoiseEngine {
 public:
  // Copies the targeted tensors once (on their device) and computes their statistics. Tensors must
  // be contiguous fp32/bf16/fp16, on the CPU or, in a build with the CUDA engine, on one CUDA device,
  // where the fused kernel (src/noise_cuda.h) writes the same bits as the CPU and restore is a
  // device-to-device copy; a device injection synchronises once, to read its realized-noise tallies.
  // With `store`, the clean copies and statistics come from (and stay in) it; without, the engine
  // makes its own.
  NoiseEngine(ParameterMap& params, std::vector<size_t> targets, NoiseType type, ScaleReference reference,
              std::shared_ptr<CleanStore> store = nullptr);
  NoiseEngine(Model& model, const TargetSpec& targets, NoiseType type = {},
              ScaleReference reference = ScaleReference::kTensorStd, std::shared_ptr<CleanStore> store = nullptr);
  NoiseEngine(const NoiseEngine&) = delete;
  NoiseEngine& operator=(const NoiseEngine&) = delete;

  // Live weights := clean + noise(scale, seed). Bad scales throw before any weight is touched; an
  // exception during the pass restores every targeted tensor before it propagates.
  InjectionReport inject(double scale, uint64_t seed);
  void restore();  // live weights := clean, bit for bit
  bool injected() const { return injected_; }
  // Whether every targeted tensor holds its clean bits (an injection at scale 0 leaves the values
  // equal, though additive noise may turn -0 into +0). A pass over the targets' memory: call it
  // only where the injection report says nothing changed in value.
  bool live_bits_equal_clean() const;

  NoiseType type() const { return type_; }
  ScaleReference reference() const { return reference_; }
  std::vector<std::string> target_names() const;
  int64_t target_numel() const;
  size_t clean_bytes() const;
  // Called after each tensor has been written (index into target_names()); for progress and tests.
  void set_after_tensor_hook(std::function<void(size_t)> hook) { after_tensor_ = std::move(hook); }

 private:
  struct Target {
    std::string name;
    uint64_t name_hash = 0;
    torch::Tensor live;   // the model's own tensor
    torch::Tensor clean;  // one contiguous copy (the store's)
    int64_t rows = 1, row_length = 0;
    double tensor_std = 0, abs_max = 0, rms = 0;
    const std::vector<double>* row_std = nullptr;  // rows entries (row_std reference only), the store's
    bool on_cuda = false;         // written by the CUDA kernel (noise_device.h), else on the CPU
  };
  TensorNoiseReport inject_one(const Target& target, double scale, uint64_t stream_seed) const;
  // A CUDA target's pass, asynchronous; its tallies land in slot `slot` of device_tallies_.
  void launch_cuda(const Target& target, double scale, uint64_t stream_seed, size_t slot);
  TensorNoiseReport tensor_report(const Target& target, double scale, const noise_kernels::ApplyStats& tally) const;
  float row_multiplier(const Target& target, double scale, int64_t row) const;  // s * ref(row), or s
  bool per_row() const;  // row_std reference with additive noise
  double reference_value(const Target& target, int64_t row) const;
  double requested_std(const Target& target, double scale) const;

  NoiseType type_;
  ScaleReference reference_;
  std::shared_ptr<CleanStore> store_;
  std::vector<Target> targets_;
  bool injected_ = false;
  std::function<void(size_t)> after_tensor_;
  // The CUDA side's buffers (src/noise_device.h), made when a target is on a CUDA device.
  std::shared_ptr<noise_device::DeviceTallies> device_tallies_;
};

// Noise in on construction, out on destruction (also when an exception passes through).
class NoiseScope {
 public:
  NoiseScope(NoiseEngine& engine, double scale, uint64_t seed)
      : engine_(engine), report_(engine.inject(scale, seed)) {}
  ~NoiseScope() { engine_.restore(); }
  NoiseScope(const NoiseScope&) = delete;
  NoiseScope& operator=(const NoiseScope&) = delete;
  const InjectionReport& report() const { return report_; }

 private:
  NoiseEngine& engine_;
  InjectionReport report_;
};

}  // namespace tstar
