// Noise specs, targeting, and the noise engine (see noise.h for the design); its CUDA side is in
// noise_device.cpp.
#include "tstar/noise.h"

#include <torch/csrc/autograd/variable.h>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <regex>
#include <set>

#include "tstar/error.h"
#include "tstar/noise_kernels.h"
#include "noise_device.h"

namespace tstar {
namespace {

// The engine writes through raw pointers, which libtorch does not see: moving the tensor's version
// counter tells whoever keeps something derived from it (the model's fp32 copies of bf16 weights)
// that it changed.
void mark_written(const torch::Tensor& tensor) { torch::autograd::impl::bump_version(tensor); }

}  // namespace

namespace {

// Elements per work item. Fixed, so the split of work (and of every reduction) is the same for any
// thread count; a multiple of 256 so the vector generators run whole batches (at most 64 blocks).
constexpr int64_t kChunk = 16384;

int64_t num_chunks(int64_t count) { return (count + kChunk - 1) / kChunk; }

// ---- element access for fp32 / bf16 / fp16 tensors

void load_floats(const torch::Tensor& t, int64_t begin, int64_t count, float* out) {
  switch (t.scalar_type()) {
    case torch::kFloat:
      std::memcpy(out, t.data_ptr<float>() + begin, count * sizeof(float));
      return;
    case torch::kBFloat16: {
      auto* p = reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()) + begin;
      for (int64_t i = 0; i < count; ++i) out[i] = noise_kernels::bf16_to_float(p[i]);
      return;
    }
    case torch::kHalf: {
      auto* p = reinterpret_cast<const uint16_t*>(t.data_ptr<at::Half>()) + begin;
      for (int64_t i = 0; i < count; ++i) out[i] = c10::detail::fp16_ieee_to_fp32_value(p[i]);
      return;
    }
    default:
      TSTAR_CHECK(false);
  }
}

struct Sums {
  double sum = 0, sum_sq_dev = 0, abs_max = 0, sum_sq = 0;
};

// Two-pass moments of elements [begin, begin + count), single-threaded.
Sums range_sums(const torch::Tensor& t, int64_t begin, int64_t count, double mean, bool first_pass) {
  constexpr int64_t kBuffer = 4096;
  float buffer[kBuffer];
  Sums s;
  for (int64_t i = 0; i < count; i += kBuffer) {
    int64_t n = std::min(kBuffer, count - i);
    load_floats(t, begin + i, n, buffer);
    for (int64_t k = 0; k < n; ++k) {
      double x = buffer[k];
      if (first_pass) {
        s.sum += x;
      } else {
        s.sum_sq_dev += (x - mean) * (x - mean);
        s.sum_sq += x * x;
        s.abs_max = std::max(s.abs_max, std::fabs(x));
      }
    }
  }
  return s;
}

// Whole-tensor moments over the fixed chunk grid, reduced in chunk order.
Sums tensor_sums(const torch::Tensor& t, int64_t numel) {
  int64_t chunks = num_chunks(numel);
  std::vector<Sums> first(chunks), second(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      first[c] = range_sums(t, c * kChunk, std::min(kChunk, numel - c * kChunk), 0.0, true);
  });
  double sum = 0;
  for (const Sums& s : first) sum += s.sum;
  double mean = numel ? sum / numel : 0.0;
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      second[c] = range_sums(t, c * kChunk, std::min(kChunk, numel - c * kChunk), mean, false);
  });
  Sums total;
  total.sum = sum;
  for (const Sums& s : second) {
    total.sum_sq_dev += s.sum_sq_dev;
    total.sum_sq += s.sum_sq;
    total.abs_max = std::max(total.abs_max, s.abs_max);
  }
  return total;
}

double unbiased_std(double sum_sq_dev, int64_t n) { return n > 1 ? std::sqrt(sum_sq_dev / (n - 1)) : 0.0; }

// Edit distance of `pattern` to the best-matching substring of `text` (free start and end in text).
size_t substring_distance(const std::string& pattern, const std::string& text) {
  std::vector<size_t> prev(text.size() + 1, 0), cur(text.size() + 1);
  for (size_t i = 1; i <= pattern.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= text.size(); ++j) {
      size_t substitute = prev[j - 1] + (pattern[i - 1] == text[j - 1] ? 0 : 1);
      cur[j] = std::min({substitute, prev[j] + 1, cur[j - 1] + 1});
    }
    std::swap(prev, cur);
  }
  return *std::min_element(prev.begin(), prev.end());
}

bool has_substring(const std::string& name, const std::vector<std::string>& parts) {
  return std::any_of(parts.begin(), parts.end(),
                     [&](const std::string& p) { return name.find(p) != std::string::npos; });
}

// Each expected parameter's place in the architecture, by its HF name (model.h's one name map):
// the groups select by place, not by spelling.
using SpecsByName = std::map<std::string, ParameterSpec>;
std::shared_ptr<const SpecsByName> specs_by_name(const ModelConfig& config) {
  auto specs = std::make_shared<SpecsByName>();
  for (auto& spec : expected_parameters(config)) specs->emplace(spec.name, spec);
  return specs;
}

const char* const kDepthGroupNames[3] = {"early", "middle", "late"};

// [first, last) layers of early/middle/late (which = 0, 1, 2) under a DepthGroups convention.
std::pair<int64_t, int64_t> depth_range(int64_t num_layers, int which, DepthGroups depth) {
  if (depth == DepthGroups::kNotebook) {
    const int64_t bounds[4] = {0, 8, 24, 32};
    return {std::min(bounds[which], num_layers), std::min(bounds[which + 1], num_layers)};
  }
  int64_t base = num_layers / 3, extra = num_layers % 3;
  int64_t begin = 0;
  for (int k = 0; k < which; ++k) begin += base + (k < extra ? 1 : 0);
  return {begin, begin + base + (which < extra ? 1 : 0)};
}

// Predicate of a group on names; throws on an unknown group.
std::function<bool(const std::string&)> group_predicate(const std::string& group, const ModelConfig& config,
                                                        DepthGroups depth) {
  if (group == "all") return [](const std::string&) { return true; };
  const auto specs = specs_by_name(config);
  // Accepts the names whose place satisfies `place`.
  auto by_place = [specs](std::function<bool(const ParameterSpec&)> place) {
    return [specs, place = std::move(place)](const std::string& name) {
      const auto it = specs->find(name);
      return it != specs->end() && place(it->second);
    };
  };
  auto component_is = [&](Component component) {
    return by_place([component](const ParameterSpec& p) { return component_of(p.weight) == component; });
  };
  if (group == "attention") return component_is(Component::kAttention);
  if (group == "mlp") return component_is(Component::kMlp);
  if (group == "lm_head") return component_is(Component::kLmHead);
  for (int k = 0; k < 3; ++k) {
    if (group == kDepthGroupNames[k]) {
      auto [begin, end] = depth_range(config.num_layers, k, depth);
      return by_place([begin = begin, end = end](const ParameterSpec& p) { return p.layer >= begin && p.layer < end; });
    }
  }
  if (group.rfind("layer:", 0) == 0) {
    std::string digits = group.substr(6);
    bool numeric = !digits.empty() && digits.size() < 10 &&
                   std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!numeric || std::stoll(digits) >= config.num_layers)
      throw Error(fmt::format("noise group '{}': expected layer:N with 0 <= N < {}", group, config.num_layers));
    int64_t layer = std::stoll(digits);
    return by_place([layer](const ParameterSpec& p) { return p.layer == layer; });
  }
  throw Error(fmt::format("unknown noise group '{}' (known: all, attention, mlp, lm_head, early, middle, late, "
                          "layer:N)", group));
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Indices of names the predicate accepts; throws when it accepts none that survive the excludes.
std::vector<size_t> select_one(const ParameterMap& params, const std::string& what,
                               const std::function<bool(const std::string&)>& accept,
                               const std::vector<std::string>& exclude, const std::string& pattern_text) {
  std::vector<size_t> out;
  std::vector<std::string> excluded;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!accept(params.name(i))) continue;
    if (has_substring(params.name(i), exclude)) {
      excluded.push_back(params.name(i));
    } else {
      out.push_back(i);
    }
  }
  if (!out.empty()) return out;
  if (!excluded.empty()) {
    excluded.resize(std::min<size_t>(excluded.size(), 5));
    throw Error(fmt::format("noise target {} matches only excluded tensors ({}; excludes: {}); pass other "
                            "excludes to target them", what, quoted_list(excluded), quoted_list(exclude)));
  }
  throw Error(fmt::format("noise target {} matches no parameter; closest names: {}", what,
                          quoted_list(closest_names(pattern_text, params))));
}

}  // namespace

// ---------------------------------------------------------------- specs

const std::vector<NoiseKindRow>& noise_kinds() {
  using philox::Kind;
  using noise_kernels::Mode;
  static const std::vector<NoiseKindRow> table = {
      {"gaussian", {Kind::kGaussian, Mode::kAdditive}, "w + s * ref * z, z ~ N(0, 1)"},
      {"uniform", {Kind::kUniform, Mode::kAdditive}, "w + s * ref * u, u ~ U(-sqrt 3, sqrt 3)"},
      {"laplace", {Kind::kLaplace, Mode::kAdditive}, "w + s * ref * l, l ~ Laplace(0, 1 / sqrt 2)"},
      {"multiplicative", {Kind::kGaussian, Mode::kMultiplicative}, "w * (1 + s * z), z ~ N(0, 1)"},
  };
  return table;
}

NoiseType parse_noise_type(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& row : noise_kinds()) {
    if (name == row.name) return row.type;
    names.push_back(row.name);
  }
  throw Error(fmt::format("unknown noise type '{}' (expected one of: {})", name, fmt::join(names, ", ")));
}

void validate_noise(NoiseType type, ScaleReference reference) {
  if (type.mode == noise_kernels::Mode::kMultiplicative && reference != ScaleReference::kTensorStd) {
    throw Error(fmt::format("noise '{}' scales each weight by itself: the scale reference '{}' would be ignored "
                            "(leave --reference at its default)", noise_type_name(type), scale_reference_name(reference)));
  }
}

ScaleReference parse_scale_reference(const std::string& name) {
  if (name == "tensor_std") return ScaleReference::kTensorStd;
  if (name == "row_std") return ScaleReference::kRowStd;
  if (name == "abs_max") return ScaleReference::kAbsMax;
  throw Error("unknown noise scale reference '" + name + "' (expected tensor_std, row_std or abs_max)");
}

std::string noise_type_name(NoiseType type) {
  for (const auto& row : noise_kinds()) {
    if (row.type == type) return row.name;
  }
  TSTAR_CHECK(false && "a noise type outside noise_kinds()");
  return "";
}

std::string scale_reference_name(ScaleReference reference) {
  switch (reference) {
    case ScaleReference::kTensorStd: return "tensor_std";
    case ScaleReference::kRowStd: return "row_std";
    case ScaleReference::kAbsMax: return "abs_max";
  }
  return "?";
}

uint64_t parse_seed(const std::string& text) {
  bool digits = !text.empty() && text.size() <= 20 &&
                std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    errno = 0;
    unsigned long long value = std::strtoull(text.c_str(), nullptr, 10);
    if (errno == 0) return value;
  }
  throw Error("invalid noise seed '" + text + "': expected a non-negative integer below 2^64");
}

void validate_scale(double scale) {
  if (!std::isfinite(scale) || scale < 0)
    throw Error(fmt::format("invalid noise scale {}: expected a finite number >= 0", scale));
}

// ---------------------------------------------------------------- targeting

std::vector<std::string> exclusion_convention(const std::string& name) {
  if (name == "notebook") return {"layernorm", "ln", "embed", ".bias"};
  if (name == "all-norms") return {"norm", "embed", ".bias"};
  throw Error("unknown exclusion convention '" + name + "' (expected notebook or all-norms)");
}

std::vector<std::string> default_excludes() { return exclusion_convention("notebook"); }

DepthGroups parse_depth_groups(const std::string& name) {
  if (name == "notebook") return DepthGroups::kNotebook;
  if (name == "thirds") return DepthGroups::kThirds;
  throw Error("unknown depth groups '" + name + "' (expected notebook or thirds)");
}

std::string depth_groups_name(DepthGroups depth) { return depth == DepthGroups::kNotebook ? "notebook" : "thirds"; }

std::vector<std::string> group_names(const ModelConfig& config, DepthGroups depth) {
  std::vector<std::string> names = {"all", "attention", "mlp"};
  if (!config.tie_word_embeddings) names.push_back("lm_head");
  for (int k = 0; k < 3; ++k) {
    auto [begin, end] = depth_range(config.num_layers, k, depth);
    if (begin < end) names.push_back(kDepthGroupNames[k]);
  }
  for (int64_t i = 0; i < config.num_layers; ++i) names.push_back("layer:" + std::to_string(i));
  return names;
}

std::vector<size_t> select_targets(const ParameterMap& params, const ModelConfig& config, const TargetSpec& spec) {
  std::vector<std::string> groups = spec.groups;
  if (groups.empty() && spec.include.empty()) groups.push_back("all");
  std::set<size_t> chosen;
  for (const auto& group : groups) {
    if (group == "lm_head" && config.tie_word_embeddings)
      throw Error("noise group 'lm_head': this model ties lm_head to model.embed_tokens.weight; target that "
                  "name with excludes that keep it (noise there changes the embeddings too)");
    auto picked = select_one(params, "group '" + group + "'", group_predicate(group, config, spec.depth), spec.exclude,
                             group);
    chosen.insert(picked.begin(), picked.end());
  }
  for (const auto& pattern : spec.include) {
    std::function<bool(const std::string&)> accept;
    if (spec.regex) {
      std::shared_ptr<std::regex> re;
      try {
        re = std::make_shared<std::regex>(pattern, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        throw Error(fmt::format("invalid noise target regex '{}': {}", pattern, e.what()));
      }
      accept = [re](const std::string& n) { return std::regex_search(n, *re); };
    } else {
      accept = [pattern](const std::string& n) { return n.find(pattern) != std::string::npos; };
    }
    auto picked = select_one(params, "pattern '" + pattern + "'", accept, spec.exclude, pattern);
    chosen.insert(picked.begin(), picked.end());
  }
  return std::vector<size_t>(chosen.begin(), chosen.end());
}

nlohmann::json describe_groups(const ParameterMap& params, const ModelConfig& config,
                               const std::vector<std::string>& exclude, DepthGroups depth) {
  std::vector<std::string> order = group_names(config, depth);
  nlohmann::json ordered = nlohmann::json::array();
  for (const auto& group : order) {
    auto accept = group_predicate(group, config, depth);
    nlohmann::json names = nlohmann::json::array();
    for (size_t i = 0; i < params.size(); ++i)
      if (accept(params.name(i)) && !has_substring(params.name(i), exclude)) names.push_back(params.name(i));
    ordered.push_back({{"group", group}, {"count", names.size()}, {"names", names}});
  }
  nlohmann::json ranges = nlohmann::json::object();
  for (int k = 0; k < 3; ++k) {
    auto [begin, end] = depth_range(config.num_layers, k, depth);
    ranges[kDepthGroupNames[k]] = begin < end ? nlohmann::json{begin, end - 1} : nlohmann::json();  // null: empty
  }
  return {{"excludes", exclude}, {"num_layers", config.num_layers}, {"depth_groups", depth_groups_name(depth)},
          {"depth_ranges", ranges}, {"groups", ordered}};
}

nlohmann::json describe_groups(const Model& model, const std::vector<std::string>& exclude, DepthGroups depth) {
  return describe_groups(model.parameters(), model.config(), exclude, depth);
}

std::vector<std::string> closest_names(const std::string& pattern, const ParameterMap& params, size_t count) {
  std::vector<std::pair<size_t, size_t>> scored;  // (distance, index)
  for (size_t i = 0; i < params.size(); ++i) scored.emplace_back(substring_distance(pattern, params.name(i)), i);
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (size_t k = 0; k < std::min(count, scored.size()); ++k) out.push_back(params.name(scored[k].second));
  return out;
}

// ---------------------------------------------------------------- unit noise

uint64_t tensor_seed(uint64_t user_seed, const std::string& name) {
  return philox::tensor_seed(user_seed, name.data(), name.size());
}

void generate_unit_noise(philox::Kind kind, uint64_t stream_seed, uint64_t first, int64_t count, float* out) {
  TSTAR_CHECK(first % 4 == 0);
  at::parallel_for(0, num_chunks(count), 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      int64_t start = c * kChunk;
      noise_kernels::generate(kind, stream_seed, first + start, std::min(kChunk, count - start), out + start);
    }
  });
}

// ---------------------------------------------------------------- engine

nlohmann::json InjectionReport::to_json(bool per_tensor) const {
  nlohmann::json j = {{"type", noise_type_name(spec.type)},
                      {"reference", scale_reference_name(spec.reference)},
                      {"scale", spec.scale},
                      {"seed", spec.seed},
                      {"numel", numel},
                      {"changed_fraction", changed_fraction},
                      {"realized_ratio", realized_ratio}};
  if (per_tensor) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& t : tensors)
      rows.push_back({{"name", t.name},
                      {"numel", t.numel},
                      {"requested_std", t.requested_std},
                      {"realized_std", t.realized_std},
                      {"changed_fraction", t.changed_fraction()},
                      {"realized_ratio", t.realized_ratio()}});
    j["tensors"] = rows;
  }
  return j;
}

namespace {

// The clean copy of `live`: its origin (the checkpoint's mapped, read-only bytes) when the live
// tensor still holds exactly those bytes, else a clone on the tensor's own device (restore is then a
// device-to-device copy). The origin saves faulting in fresh memory for every target: on the VMs
// tstar's CI runs on, first-touching the 1.4 GB of a 0.5B model's fp32 targets takes 1 to 5 s, a
// comparison of the resident bytes a fifth of a second.
torch::Tensor clean_copy(const torch::Tensor& live, const torch::Tensor& origin) {
  const bool same_layout = origin.defined() && live.device().is_cpu() && origin.device().is_cpu() &&
                           origin.scalar_type() == live.scalar_type() && origin.sizes() == live.sizes() &&
                           origin.is_contiguous() && live.is_contiguous();
  if (same_layout && std::memcmp(origin.data_ptr(), live.data_ptr(), live.nbytes()) == 0) return origin;
  return live.clone();
}

}  // namespace

const CleanStore::Entry& CleanStore::entry(size_t index, bool row_std) {
  TSTAR_CHECK(index < params_.size());
  const torch::Tensor& live = params_.tensor(index);
  auto found = entries_.find(index);
  if (found != entries_.end() && !found->second.source.is_same(live)) {
    throw Error(fmt::format("noise: parameter {} was replaced after its clean copy was made", params_.name(index)));
  }
  // The statistics from a host copy on the same code as the CPU's: the same multipliers, so the
  // same noised bits, on every device. Copied from a device at most once per call.
  torch::Tensor host_clean;
  auto host = [&host_clean](const torch::Tensor& clean) -> const torch::Tensor& {
    if (!host_clean.defined()) host_clean = clean.is_cuda() ? clean.to(torch::kCPU) : clean;
    return host_clean;
  };
  if (found == entries_.end()) {
    Entry e;
    e.source = live;
    e.clean = clean_copy(live, params_.origin(index));
    const int64_t numel = live.numel();
    const Sums s = tensor_sums(host(e.clean), numel);
    e.tensor_std = unbiased_std(s.sum_sq_dev, numel);
    e.abs_max = s.abs_max;
    e.rms = numel ? std::sqrt(s.sum_sq / numel) : 0.0;
    e.rows = live.dim() >= 2 ? live.size(0) : 1;
    e.row_length = e.rows ? numel / e.rows : 0;
    found = entries_.emplace(index, std::move(e)).first;
  }
  Entry& e = found->second;
  if (row_std && e.row_std.empty() && e.rows > 0) {
    const torch::Tensor& rows_source = host(e.clean);
    e.row_std.resize(e.rows);
    at::parallel_for(0, e.rows, 16, [&](int64_t b, int64_t end) {
      for (int64_t r = b; r < end; ++r) {
        const int64_t begin = r * e.row_length;
        const double mean = range_sums(rows_source, begin, e.row_length, 0, true).sum / std::max<int64_t>(1, e.row_length);
        e.row_std[r] = unbiased_std(range_sums(rows_source, begin, e.row_length, mean, false).sum_sq_dev, e.row_length);
      }
    });
  }
  return e;
}

size_t CleanStore::bytes() const {
  size_t n = 0;
  for (const auto& [index, e] : entries_) n += e.clean.nbytes();
  return n;
}

NoiseEngine::NoiseEngine(Model& model, const TargetSpec& targets, NoiseType type, ScaleReference reference,
                         std::shared_ptr<CleanStore> store)
    : NoiseEngine(model.parameters(), select_targets(model.parameters(), model.config(), targets), type,
                  reference, std::move(store)) {}

NoiseEngine::NoiseEngine(ParameterMap& params, std::vector<size_t> targets, NoiseType type,
                         ScaleReference reference, std::shared_ptr<CleanStore> store)
    : type_(type), reference_(reference), store_(store ? std::move(store) : std::make_shared<CleanStore>(params)) {
  validate_noise(type_, reference_);
  for (size_t index : targets) {
    TSTAR_CHECK(index < params.size());
    Target t;
    t.name = params.name(index);
    t.live = params.tensor(index);
    // First: it refuses a tensor the engine cannot write, before anything is copied.
    t.on_cuda = noise_device::backend_for(t.name, t.live.device(), t.live.scalar_type(), t.live.is_contiguous()) ==
                noise_device::Backend::kCuda;
    const CleanStore::Entry& clean = store_->entry(index, per_row());
    t.name_hash = philox::fnv1a64(t.name.data(), t.name.size());
    t.clean = clean.clean;
    t.tensor_std = clean.tensor_std;
    t.abs_max = clean.abs_max;
    t.rms = clean.rms;
    t.rows = clean.rows;
    t.row_length = clean.row_length;
    t.row_std = &clean.row_std;
    if (t.on_cuda && !device_tallies_)
      device_tallies_ = std::make_shared<noise_device::DeviceTallies>(t.live.device(), targets.size());
    if (t.on_cuda && device_tallies_->device() != t.live.device())
      throw Error(fmt::format("noise: tensor {} is on {}, other targets on {}; one engine runs on one CUDA device",
                              t.name, t.live.device().str(), device_tallies_->device().str()));
    targets_.push_back(std::move(t));
  }
}

std::vector<std::string> NoiseEngine::target_names() const {
  std::vector<std::string> out;
  for (const auto& t : targets_) out.push_back(t.name);
  return out;
}

int64_t NoiseEngine::target_numel() const {
  int64_t n = 0;
  for (const auto& t : targets_) n += t.live.numel();
  return n;
}

size_t NoiseEngine::clean_bytes() const {
  size_t n = 0;
  for (const auto& t : targets_) n += t.clean.nbytes();
  return n;
}

double NoiseEngine::reference_value(const Target& t, int64_t row) const {
  switch (reference_) {
    case ScaleReference::kTensorStd: return t.tensor_std;
    case ScaleReference::kAbsMax: return t.abs_max;
    case ScaleReference::kRowStd: return (*t.row_std)[row];
  }
  return 0.0;
}

double NoiseEngine::requested_std(const Target& t, double scale) const {
  if (type_.mode == noise_kernels::Mode::kMultiplicative) return scale * t.rms;
  if (reference_ != ScaleReference::kRowStd) return scale * reference_value(t, 0);
  double sum_sq = 0;
  for (double r : *t.row_std) sum_sq += r * r;
  return scale * std::sqrt(sum_sq / std::max<int64_t>(1, t.rows));
}

float NoiseEngine::row_multiplier(const Target& t, double scale, int64_t row) const {
  return static_cast<float>(type_.mode == noise_kernels::Mode::kMultiplicative ? scale
                                                                              : scale * reference_value(t, row));
}

bool NoiseEngine::per_row() const {
  return reference_ == ScaleReference::kRowStd && type_.mode == noise_kernels::Mode::kAdditive;
}

void NoiseEngine::launch_cuda(const Target& t, double scale, uint64_t stream_seed, size_t slot) {
  noise_device::KernelPass pass;
  pass.stream_seed = stream_seed;
  pass.kind = type_.distribution;
  pass.mode = type_.mode;
  pass.mult = row_multiplier(t, scale, 0);
  if (per_row()) {
    pass.row_mult.resize(t.rows);
    for (int64_t r = 0; r < t.rows; ++r) pass.row_mult[r] = row_multiplier(t, scale, r);
    pass.row_length = t.row_length;
  }
  device_tallies_->launch(t.name, t.clean, t.live, pass, slot);
  mark_written(t.live);
}

TensorNoiseReport NoiseEngine::tensor_report(const Target& t, double scale, const noise_kernels::ApplyStats& tally) const {
  TensorNoiseReport report;
  report.name = t.name;
  report.numel = t.live.numel();
  report.changed = tally.changed;
  report.realized_std = report.numel ? std::sqrt(tally.sum_sq / report.numel) : 0.0;
  report.requested_std = requested_std(t, scale);
  return report;
}

TensorNoiseReport NoiseEngine::inject_one(const Target& t, double scale, uint64_t stream_seed) const {
  const int64_t numel = t.live.numel();
  const philox::Kind kind = type_.distribution;
  const auto mode = type_.mode;
  const auto dtype = t.live.scalar_type();
  char* live = static_cast<char*>(t.live.data_ptr());
  const char* clean = static_cast<const char*>(t.clean.data_ptr());
  const size_t elem = t.live.element_size();
  std::vector<noise_kernels::ApplyStats> partial(num_chunks(numel));

  auto apply = [&](int64_t begin, int64_t count, const float* z, float mult) {
    const void* c = clean + begin * elem;
    void* l = live + begin * elem;
    if (dtype == torch::kBFloat16)
      return noise_kernels::apply_bf16(static_cast<const uint16_t*>(c), static_cast<uint16_t*>(l), z, count, mult, mode);
    if (dtype == torch::kHalf)
      return noise_kernels::apply_f16(static_cast<const uint16_t*>(c), static_cast<uint16_t*>(l), z, count, mult, mode);
    return noise_kernels::apply_f32(static_cast<const float*>(c), static_cast<float*>(l), z, count, mult, mode);
  };
  // Multiplier of a row: s * ref, or s for multiplicative noise (which scales by each w itself).
  auto row_mult = [&](int64_t row) { return row_multiplier(t, scale, row); };
  const bool by_row = per_row();

  at::parallel_for(0, num_chunks(numel), 1, [&](int64_t b, int64_t e) {
    std::vector<float> z(kChunk);
    for (int64_t c = b; c < e; ++c) {
      int64_t begin = c * kChunk, count = std::min(kChunk, numel - begin);
      noise_kernels::generate(kind, stream_seed, begin, count, z.data());
      if (!by_row) {
        partial[c] = apply(begin, count, z.data(), row_mult(0));
        continue;
      }
      // Split the chunk at row boundaries; segments are reduced in order.
      for (int64_t i = 0; i < count;) {
        int64_t row = (begin + i) / t.row_length;
        int64_t n = std::min(count - i, (row + 1) * t.row_length - (begin + i));
        auto s = apply(begin + i, n, z.data() + i, row_mult(row));
        partial[c].changed += s.changed;
        partial[c].sum_sq += s.sum_sq;
        i += n;
      }
    }
  });
  mark_written(t.live);
  noise_kernels::ApplyStats total;
  for (const auto& p : partial) {
    total.changed += p.changed;
    total.sum_sq += p.sum_sq;
  }
  return tensor_report(t, scale, total);
}

InjectionReport NoiseEngine::inject(double scale, uint64_t seed) {
  validate_scale(scale);
  InjectionReport report;
  report.spec = NoiseSpec{type_, reference_, scale, seed};
  const uint64_t seed_mix = philox::splitmix64(seed);
  try {
    std::vector<size_t> on_cuda;  // indices into report.tensors, filled from the device tallies below
    for (size_t i = 0; i < targets_.size(); ++i) {
      injected_ = true;  // from here on the live weights may differ from the clean ones
      const Target& t = targets_[i];
      const uint64_t stream_seed = philox::splitmix64(seed_mix ^ t.name_hash);
      if (t.on_cuda) {
        launch_cuda(t, scale, stream_seed, i);  // asynchronous; tallied below
        on_cuda.push_back(i);
        report.tensors.emplace_back();
      } else {
        report.tensors.push_back(inject_one(t, scale, stream_seed));
      }
      if (after_tensor_) after_tensor_(i);
    }
    if (!on_cuda.empty()) {
      const auto tallies = device_tallies_->read();  // the one synchronisation of a device injection
      for (size_t i : on_cuda) report.tensors[i] = tensor_report(targets_[i], scale, tallies[i]);
    }
  } catch (...) {
    restore();
    throw;
  }
  double realized_sq = 0, requested_sq = 0;
  for (const auto& t : report.tensors) {
    report.numel += t.numel;
    report.changed += t.changed;
    realized_sq += t.realized_std * t.realized_std * t.numel;
    requested_sq += t.requested_std * t.requested_std * t.numel;
  }
  report.changed_fraction = report.numel ? static_cast<double>(report.changed) / report.numel : 0.0;
  report.realized_ratio = requested_sq > 0 ? std::sqrt(realized_sq / requested_sq) : 0.0;
  return report;
}

void NoiseEngine::restore() {
  if (!injected_) return;
  for (const auto& t : targets_) {
    if (t.on_cuda) {
      t.live.copy_(t.clean);  // device to device, on the current stream (ordered after the injection)
      continue;
    }
    const int64_t bytes = static_cast<int64_t>(t.clean.nbytes());
    const int64_t chunk_bytes = kChunk * static_cast<int64_t>(t.clean.element_size());
    char* dst = static_cast<char*>(t.live.data_ptr());
    const char* src = static_cast<const char*>(t.clean.data_ptr());
    at::parallel_for(0, (bytes + chunk_bytes - 1) / chunk_bytes, 4, [&](int64_t b, int64_t e) {
      int64_t begin = b * chunk_bytes, end = std::min(bytes, e * chunk_bytes);
      std::memcpy(dst + begin, src + begin, end - begin);
    });
    mark_written(t.live);
  }
  injected_ = false;
}

bool NoiseEngine::live_bits_equal_clean() const {
  for (const auto& t : targets_) {
    // Bits, not values: compare same-width integers (+0/-0 and NaN payloads differ there).
    const auto bits = t.clean.element_size() == 4 ? torch::kInt : torch::kShort;
    if (!torch::equal(t.live.view(bits), t.clean.view(bits))) return false;
  }
  return true;
}

}  // namespace tstar
