// The experiment suite's shared computations and the family registry. The families themselves
// live in src/experiments/, one file each.
#include "tstar/experiments.h"

#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "tstar/error.h"
#include "tstar/provenance.h"
#include "sha256.h"

namespace tstar {

// ---------------------------------------------------------------------------------------------
// The registry

namespace {

// Function-local so that registration from other translation units' static initialisers is safe.
std::vector<ExperimentFamily>& family_registry() {
  static std::vector<ExperimentFamily> families;
  return families;
}

}  // namespace

bool register_experiment_family(ExperimentFamily family) {
  for (const auto& existing : family_registry()) {
    TSTAR_CHECK(existing.name != family.name);  // two families of one name: a programming error
  }
  family_registry().push_back(std::move(family));
  return true;
}

std::vector<const ExperimentFamily*> experiment_families() {
  std::vector<const ExperimentFamily*> families;
  for (const auto& family : family_registry()) families.push_back(&family);
  std::stable_sort(families.begin(), families.end(),
                   [](const ExperimentFamily* a, const ExperimentFamily* b) { return a->order < b->order; });
  return families;
}

std::string format_scale(double scale) { return fmt::format("{:g}", scale); }

// ---------------------------------------------------------------------------------------------
// Set-up: config, tokenizer and instances now (names and prompts must be known to register
// benchmarks); weights on first use.

ExperimentSuite::ExperimentSuite(ExperimentSettings settings, bool compute_units)
    : settings_(std::move(settings)), config_(config_of(settings_.model)), compute_units_(compute_units) {
  settings_.validate();
  for (const ExperimentFamily* family : experiment_families()) {
    for (auto& instance : family->instances(*this)) instances_.push_back(std::move(instance));
  }
}

const ExperimentInstance& ExperimentSuite::instance(const std::string& name) const {
  for (const auto& candidate : instances_) {
    if (candidate.name == name) return candidate;
  }
  throw Error(fmt::format("no experiment named '{}' in these settings", name));
}

std::vector<std::string> ExperimentSuite::benchmark_names() const {
  std::vector<std::string> names;
  for (const auto& instance : instances_) names.push_back(instance.name);
  return names;
}

const ExperimentResult& ExperimentSuite::result(const std::string& name) {
  if (auto it = results_.find(name); it != results_.end()) return it->second;
  const ExperimentInstance& computing = instance(name);
  // Units computed elsewhere count toward the first instance that reads them, as they would have
  // had this process computed them.
  double loaded_seconds = 0;
  for (const WorkUnit& needed : computing.units) {
    if (auto it = loaded_unit_seconds_.find(needed.id); it != loaded_unit_seconds_.end()) {
      loaded_seconds += it->second;
      loaded_unit_seconds_.erase(it);
    }
  }
  const auto start = std::chrono::steady_clock::now();
  ExperimentResult computed = computing.compute(*this);
  statistics_seconds_[name] =
      loaded_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  computed.name = name;
  return results_.emplace(name, std::move(computed)).first->second;
}

double ExperimentSuite::statistics_seconds(const std::string& name) const {
  const auto it = statistics_seconds_.find(name);
  return it == statistics_seconds_.end() ? 0.0 : it->second;
}

void ExperimentSuite::timed_cycle(const std::string& name) { instance(name).timed_cycle(*this); }

// ---------------------------------------------------------------------------------------------
// Work units

std::vector<WorkUnit> ExperimentSuite::units_of(const std::vector<std::string>& instance_names) const {
  std::vector<WorkUnit> units;
  std::set<std::string> seen;
  for (const std::string& name : instance_names) {
    for (const WorkUnit& needed : instance(name).units) {
      if (seen.insert(needed.id).second) units.push_back(needed);
    }
  }
  return units;
}

UnitResult ExperimentSuite::compute_unit(const WorkUnit& unit) {
  if (!compute_units_) throw Error(fmt::format("unit '{}' was not given to this merge", unit.id));
  if (unit_observer_) unit_observer_(unit.id, 0.0, false);
  const auto start = std::chrono::steady_clock::now();
  UnitResult computed = unit.compute(*this);
  computed.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (unit_observer_) unit_observer_(unit.id, computed.seconds, true);
  return computed;
}

const UnitResult& ExperimentSuite::unit(const WorkUnit& unit) {
  if (auto it = units_.find(unit.id); it != units_.end()) return it->second;
  return units_.emplace(unit.id, compute_unit(unit)).first->second;
}

void ExperimentSuite::add_unit(const std::string& id, UnitResult result) {
  loaded_unit_seconds_[id] = result.seconds;
  units_[id] = std::move(result);
}

namespace {

torch::Tensor doubles_tensor(const std::vector<double>& values) {
  return torch::tensor(values, torch::TensorOptions().dtype(torch::kDouble));
}

torch::Tensor ids_tensor(const std::vector<int64_t>& values) {
  return torch::tensor(values, torch::TensorOptions().dtype(torch::kLong));
}

// Exact: a scale's shortest round-trip spelling, so two scales never share an id.
std::string unit_scale(double scale) { return fmt::format("{}", scale); }

std::string prompt_suffix(PromptSelection prompt) { return prompt ? fmt::format("/prompt:{}", *prompt) : ""; }

}  // namespace

// Statistics-precision logits of the selected prompts (the model-dtype ones only feed the noisy
// units' model-dtype alpha) and every prompt's answer token.
WorkUnit ExperimentSuite::clean_unit(PromptSelection prompt) const {
  return {"clean" + prompt_suffix(prompt), [prompt](ExperimentSuite& suite) {
            UnitResult out;
            out.tensors["statistics"] = suite.clean_logits(prompt).statistics;
            out.tensors["answer_ids"] = ids_tensor(suite.answer_ids());
            return out;
          }};
}

// The selected prompts with `group` noised at (scale, seed), batched exactly as their clean logits
// (so the two differ by the noise only, not by a batch shape's summation order), and the
// injection's report.
WorkUnit ExperimentSuite::noisy_unit(const std::string& group, double scale, uint64_t seed,
                                     PromptSelection prompt) const {
  return {fmt::format("noisy/{}/scale:{}/seed:{}{}", group, unit_scale(scale), seed, prompt_suffix(prompt)),
          [group, scale, seed, prompt](ExperimentSuite& suite) {
            validate_scale(scale);
            const Logits& clean = suite.clean_logits(prompt);
            NoiseEngine& engine = suite.engine(group);
            UnitResult out;
            Logits noisy;
            {
              NoiseScope scope(engine, scale, seed);
              const InjectionReport& report = scope.report();
              out.tensors["injection"] = doubles_tensor({report.changed_fraction, report.realized_ratio});
              out.tensors["injection_counts"] =
                  ids_tensor({static_cast<int64_t>(report.tensors.size()), report.numel});
              // Weights with their clean bits give the clean logits' bits (same batches, same
              // operations): at scale 0 the forward is skipped, not approximated.
              const bool unchanged = report.changed == 0 && engine.live_bits_equal_clean();
              noisy = unchanged ? clean : suite.forward_prompts(prompt, &engine);
            }
            std::vector<double> model_dtype_alpha;
            for (int64_t p = 0; p < noisy.statistics.size(0); ++p) {
              model_dtype_alpha.push_back(stats::measure(clean.model_dtype[p], noisy.model_dtype[p]).alpha);
            }
            out.tensors["statistics"] = noisy.statistics;
            out.tensors["model_dtype_alpha"] = doubles_tensor(model_dtype_alpha);
            if (noisy.pre_softcap.defined()) {  // final-logit soft-capping: alpha before it too
              std::vector<double> pre_softcap_alpha;
              for (int64_t p = 0; p < noisy.pre_softcap.size(0); ++p) {
                pre_softcap_alpha.push_back(stats::measure(clean.pre_softcap[p], noisy.pre_softcap[p]).alpha);
              }
              out.tensors["pre_softcap_alpha"] = doubles_tensor(pre_softcap_alpha);
            }
            out.meta["targets"] = engine.target_names();
            return out;
          }};
}

WorkUnit ExperimentSuite::trajectory_unit(size_t prompt) const {
  return {fmt::format("trajectory/prompt:{}", prompt), [prompt](ExperimentSuite& suite) {
            const Trajectory& clean = suite.clean_trajectory(prompt);
            UnitResult out;
            out.tensors["prompt_ids"] = ids_tensor(clean.prompt_ids);
            out.tensors["tokens"] = ids_tensor(clean.tokens);
            out.tensors["logits"] = clean.logits;
            out.meta["text"] = suite.tokenizer().decode(clean.tokens);
            out.meta["argmax_mismatches"] = clean.argmax_mismatches;
            return out;
          }};
}

const Tokenizer& ExperimentSuite::tokenizer() {
  if (!tokenizer_) {
    Tokenizer loaded = Tokenizer::load(settings_.tokenizer_path());
    std::vector<std::vector<int64_t>> ids;
    for (const std::string& prompt : settings_.prompts) {
      ids.push_back(loaded.encode(prompt));
      if (ids.back().empty()) throw Error(fmt::format("prompt '{}' encodes to no tokens", prompt));
    }
    prompt_ids_ = std::move(ids);
    answer_ids_.assign(settings_.prompts.size(), -1);
    for (size_t i = 0; i < settings_.answers.size(); ++i) {
      if (settings_.answers[i].empty()) continue;
      const auto answer = loaded.encode(" " + settings_.answers[i], /*add_special=*/false);
      if (answer.empty()) throw Error(fmt::format("answer '{}' encodes to no tokens", settings_.answers[i]));
      answer_ids_[i] = answer.front();
    }
    tokenizer_ = std::move(loaded);
  }
  return *tokenizer_;
}

const std::vector<std::vector<int64_t>>& ExperimentSuite::prompt_ids() {
  tokenizer();
  return prompt_ids_;
}

const std::vector<int64_t>& ExperimentSuite::answer_ids() {
  tokenizer();
  return answer_ids_;
}

std::vector<std::string> ExperimentSuite::groups() const { return group_names(config_, settings_.depth_groups); }

Model& ExperimentSuite::model() {
  if (!model_) {
    LoadOptions options;
    options.dtype = settings_.dtype;
    options.device = settings_.device;
    options.logits = settings_.logits;
    const Tokenizer& words = tokenizer();
    model_ = std::make_unique<Model>(Model::open(settings_.model, options));
    if (model_->config().vocab_size < words.vocab_size()) {
      throw Error(fmt::format("tokenizer has {} tokens but the model's vocabulary is {}", words.vocab_size(),
                              model_->config().vocab_size));
    }
    clean_digest_ = parameters_digest(model_->parameters());
  }
  return *model_;
}

NoiseEngine& ExperimentSuite::engine(const std::string& group) {
  if (!engine_ || engine_group_ != group) {
    engine_.reset();
    TargetSpec targets;
    targets.groups = {group};
    targets.exclude = settings_.exclude;
    targets.depth = settings_.depth_groups;
    if (!clean_store_) clean_store_ = std::make_shared<CleanStore>(model().parameters());
    engine_ = std::make_unique<NoiseEngine>(model(), targets, settings_.noise, settings_.reference, clean_store_);
    engine_group_ = group;
  }
  return *engine_;
}

std::vector<std::vector<int64_t>> ExperimentSuite::selected_prompt_ids(PromptSelection prompt) {
  const auto& ids = prompt_ids();
  if (!prompt) return ids;
  if (*prompt >= ids.size()) throw Error(fmt::format("prompt {} but only {} prompts", *prompt, ids.size()));
  return {ids[*prompt]};
}

// In batches of settings_.batch_size prompts (the same batches clean and noisy). For an fp32 model the
// fp32 head is the model's own, bit for bit, so its logits serve as both. The clean pass records each
// batch's residual stream at every layer (when it fits a budget: an eighth of the machine's memory);
// a noisy pass whose noised weights all sit in layers >= l starts at layer l from it, with the same
// bits as a full forward (Model::LayerInputs). Layer's late, middle, lm_head and layer:N groups skip
// the layers before their first noised one.
ExperimentSuite::Logits ExperimentSuite::forward_prompts(PromptSelection prompt, const NoiseEngine* noised) {
  const auto ids = selected_prompt_ids(prompt);
  std::vector<Model::LayerInputs>& recorded = clean_layer_inputs_[prompt];
  std::optional<int64_t> first_layer;
  if (noised && !recorded.empty()) first_layer = model().first_layer_changed_by(noised->target_names());
  const bool record = !noised && layer_inputs_fit(prompt);
  if (record) recorded.clear();
  std::vector<torch::Tensor> statistics, model_dtype, pre_softcap;
  // The logits before final soft-capping, only for a model that caps them (Gemma 2).
  const bool capped = model().config().final_logit_softcapping > 0;
  for (size_t begin = 0, batch_index = 0; begin < ids.size(); begin += settings_.batch_size, ++batch_index) {
    const size_t end = std::min(ids.size(), begin + settings_.batch_size);
    std::vector<std::vector<int64_t>> batch(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                                            ids.begin() + static_cast<std::ptrdiff_t>(end));
    // A second head only where it differs: fp32 logits of a model whose dtype is not fp32.
    const bool second_head = settings_.logits == LogitsDtype::kFloat32 && settings_.dtype != torch::kFloat;
    torch::Tensor model_logits;
    torch::Tensor* second = second_head ? &model_logits : nullptr;
    torch::Tensor logits, uncapped;
    torch::Tensor* before_cap = capped ? &uncapped : nullptr;
    if (record) {
      recorded.emplace_back();
      logits = model().last_logits_layered(batch, &recorded.back(), nullptr, 0, second, before_cap);
    } else if (first_layer) {
      logits = model().last_logits_layered(batch, nullptr, &recorded.at(batch_index), *first_layer, second, before_cap);
    } else {
      logits = model().last_logits(batch, nullptr, 0, second, before_cap);
    }
    statistics.push_back(logits.to(torch::kCPU));
    model_dtype.push_back(second_head ? model_logits.to(torch::kCPU) : statistics.back());
    if (capped) pre_softcap.push_back(uncapped.to(torch::kCPU));
  }
  return {torch::cat(statistics), torch::cat(model_dtype), capped ? torch::cat(pre_softcap) : torch::Tensor()};
}

bool ExperimentSuite::layer_inputs_fit(PromptSelection prompt) {
  const auto ids = selected_prompt_ids(prompt);
  const ModelConfig& c = model().config();
  int64_t bytes = 0;
  for (size_t begin = 0; begin < ids.size(); begin += settings_.batch_size) {
    const size_t end = std::min(ids.size(), begin + settings_.batch_size);
    size_t longest = 0;
    for (size_t i = begin; i < end; ++i) longest = std::max(longest, ids[i].size());
    bytes += static_cast<int64_t>((end - begin) * longest) * c.hidden_size * (c.num_layers + 1) *
             static_cast<int64_t>(torch::elementSize(settings_.dtype));
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 && bytes <= static_cast<int64_t>(pages) * page / 8;
}

const ExperimentSuite::Logits& ExperimentSuite::clean_logits(PromptSelection prompt) {
  if (auto it = clean_logits_.find(prompt); it != clean_logits_.end()) return it->second;
  Logits clean = forward_prompts(prompt);
  return clean_logits_.emplace(prompt, std::move(clean)).first->second;
}

void ExperimentSuite::forward_cycle(const std::string& group, double scale, uint64_t seed, PromptSelection prompt) {
  clean_logits(prompt);  // the recording a noisy pass may start from, as in the protocol
  NoiseEngine& noise = engine(group);
  NoiseScope scope(noise, scale, seed);
  const Logits logits = forward_prompts(prompt, &noise);
  TSTAR_CHECK(logits.statistics.defined());
}

// ---------------------------------------------------------------------------------------------
// Clean greedy trajectories (Evolution): the tokens by cached greedy decoding; the logits, clean and
// noisy, by one teacher-forced forward of prompt + trajectory, so both sides read the weights once per
// trajectory (the notebook recomputed the whole prefix at every step) and are computed alike: at scale
// 0 the noisy logits are the clean ones, bit for bit.

const ExperimentSuite::Trajectory& ExperimentSuite::clean_trajectory(size_t prompt) {
  if (auto it = trajectories_.find(prompt); it != trajectories_.end()) return it->second;
  Trajectory t;
  t.prompt_ids = tokenizer().encode(settings_.evolution_prompts.at(prompt));
  if (t.prompt_ids.empty()) throw Error(fmt::format("evolution prompt {} encodes to no tokens", prompt));
  const int64_t steps = settings_.evolution_steps;
  // The continuation ends at the end-of-sequence token: its step is kept, nothing after it.
  const int64_t eos = config_.eos_token_id >= 0 ? config_.eos_token_id : tokenizer().eos_id();
  // Greedy on the model-dtype head, as HF's generation picks tokens (for bf16 weights it is also the
  // cheaper head: a decode step reads lm_head in bf16, not a widened fp32 copy).
  KVCache cache;
  torch::Tensor logits;
  model().last_logits({t.prompt_ids}, &cache, steps, &logits);
  for (int64_t step = 0; step < steps; ++step) {
    t.tokens.push_back(logits[0].argmax().item<int64_t>());
    if (t.tokens.back() == eos) break;
    if (step + 1 < steps) logits = model_->decode_step({t.tokens.back()}, cache, LogitsDtype::kModel);
  }
  t.logits = teacher_forced_logits(t);
  const torch::Tensor chosen = torch::tensor(t.tokens, torch::kLong);
  t.argmax_mismatches = t.logits.argmax(-1).ne(chosen).sum().item<int64_t>();
  return trajectories_.emplace(prompt, std::move(t)).first->second;
}

torch::Tensor ExperimentSuite::teacher_forced_logits(const Trajectory& clean) {
  const int64_t steps = static_cast<int64_t>(clean.tokens.size());
  std::vector<int64_t> ids = clean.prompt_ids;  // the last token's successor is never scored
  ids.insert(ids.end(), clean.tokens.begin(), clean.tokens.end() - 1);
  if (!model().logits_depend_on_length(static_cast<int64_t>(ids.size()))) {
    return model_->tail_logits(ids, steps).to(torch::kCPU);  // [steps, V]
  }
  KVCache cache;
  torch::Tensor logits = model_->last_logits({clean.prompt_ids}, &cache, steps);
  std::vector<torch::Tensor> rows;
  for (int64_t step = 0; step < steps; ++step) {
    rows.push_back(logits[0].to(torch::kCPU));
    if (step + 1 < steps) logits = model_->decode_step({clean.tokens[static_cast<size_t>(step)]}, cache);
  }
  return torch::stack(rows);  // [steps, V]
}

// ---------------------------------------------------------------------------------------------
// Results and provenance

nlohmann::json ExperimentSuite::provenance() {
  nlohmann::json out = runtime_provenance();
  // The weight files' digests are read once per process (gigabytes for a real checkpoint).
  if (!model_provenance_) model_provenance_ = model_provenance(model(), settings_.model);
  out["model"] = *model_provenance_;
  out["tokenizer_sha256"] = tokenizer().digest();
  std::string prompts = nlohmann::json(settings_.prompts).dump() + nlohmann::json(settings_.evolution_prompts).dump();
  if (!settings_.answers.empty()) prompts += nlohmann::json(settings_.answers).dump();  // answers change statistics
  out["prompts_sha256"] = sha256_hex(prompts.data(), prompts.size());
  out["seeds"] = settings_.seeds;
  out["scales"] = settings_.scales;
  out["detail_scales"] = settings_.detail_scales;
  out["noise"] = noise_type_name(settings_.noise);
  out["reference"] = settings_.reference_name();
  return out;
}

nlohmann::json ExperimentSuite::results_json() {
  nlohmann::json recorded = provenance();
  return results_json(std::move(recorded), clean_digest_, parameters_digest(model().parameters()));
}

nlohmann::json ExperimentSuite::results_json(nlohmann::json provenance, const std::string& digest_before,
                                             const std::string& digest_after) const {
  nlohmann::json families = nlohmann::json::array();
  for (const ExperimentFamily* family : experiment_families()) {
    families.push_back({{"name", family->name}, {"pattern", family->pattern}, {"description", family->description},
                        {"section", family->report_section}});
  }
  nlohmann::json results = nlohmann::json::object();
  for (const auto& [name, result] : results_) {
    const ExperimentInstance& computed = instance(name);
    results[name] = {{"family", computed.family}, {"instance", computed.parameters},
                     {"counters", result.counters}, {"details", result.details}};
  }
  // Wall times stay out of "results": those are the same bits on every run, these are not.
  nlohmann::json timings = nlohmann::json::object();
  for (const auto& [name, seconds] : statistics_seconds_) timings[name] = {{"statistics_s", seconds}};
  nlohmann::json out = {{"settings", settings_.to_json()}, {"provenance", std::move(provenance)},
                        {"families", families}, {"results", results}, {"timings", timings}};
  out["weights_digest_before"] = digest_before;
  out["weights_digest_after"] = digest_after;
  return out;
}

nlohmann::json ExperimentSuite::unit_identity() {
  const nlohmann::json recorded = provenance();
  model();  // the clean weights' digest
  return {{"settings", settings_.to_json()},
          {"model", recorded.at("model")},
          {"weights_sha256", clean_digest_},
          {"tokenizer_sha256", recorded.at("tokenizer_sha256")},
          {"prompts_sha256", recorded.at("prompts_sha256")},
          {"tstar_commit", recorded.at("tstar_commit")},
          {"compute_profile", recorded.at("compute_profile")}};
}

}  // namespace tstar
