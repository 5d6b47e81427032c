#include "experiments.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "error.h"
#include "provenance.h"
#include "sha256.h"
#include "stats.h"

namespace tstar {

std::vector<std::string> notebook_prompts() {
  return {"Count the eggs: 🥚🥚🥚🥚🥚. How many eggs are there?",
          "I have 3 apples and 4 oranges. How many fruits in total?",
          "Count: 1, 2, 3, 4, 5, 6, 7. What's the last number?",
          "There are 2 cats, 3 dogs, and 1 bird. How many animals?"};
}

std::vector<std::string> notebook_evolution_prompts() {
  return {"Count from 1 to 10: 1, 2,", "The capital of France is", "def fibonacci(n):\n    if n <= 1:"};
}

std::vector<double> notebook_scales() { return {0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05}; }

PromptSet read_prompt_set(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("prompt file '{}' cannot be read", path.string()));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PromptSet set;
  auto take = [&](const nlohmann::json& item, const std::string& where) {
    if (item.is_string()) {
      set.prompts.push_back(item.get<std::string>());
      set.answers.emplace_back();
    } else if (item.is_object() && item.contains("prompt") && item.at("prompt").is_string()) {
      set.prompts.push_back(item.at("prompt").get<std::string>());
      const auto answer = item.find("answer");
      if (answer != item.end() && !answer->is_string() && !answer->is_null()) {
        throw Error(fmt::format("{}: \"answer\" must be a string", where));
      }
      set.answers.push_back(answer != item.end() && answer->is_string() ? answer->get<std::string>() : "");
    } else {
      throw Error(fmt::format("{}: expected a prompt string or an object with a string \"prompt\"", where));
    }
    if (set.prompts.back().empty()) throw Error(fmt::format("{}: empty prompt", where));
  };
  const auto whole = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!whole.is_discarded() && whole.is_array()) {
    for (size_t i = 0; i < whole.size(); ++i) take(whole[i], fmt::format("{}: item {}", path.string(), i));
  } else {
    std::istringstream lines(text);
    std::string line;
    for (size_t number = 1; std::getline(lines, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const auto item = nlohmann::json::parse(line, nullptr, false);
      const std::string where = fmt::format("{}: line {}", path.string(), number);
      if (item.is_discarded()) throw Error(where + ": not valid JSON (expected a JSON array or JSON Lines)");
      take(item, where);
    }
  }
  if (set.prompts.empty()) throw Error(fmt::format("prompt file '{}' holds no prompts", path.string()));
  return set;
}

void ExperimentSettings::validate() const {
  if (prompts.empty()) throw Error("experiments: no prompts");
  if (!answers.empty() && answers.size() != prompts.size()) {
    throw Error(fmt::format("experiments: {} answers for {} prompts", answers.size(), prompts.size()));
  }
  if (batch_size < 1) throw Error("experiments: batch size must be at least 1");
  if (evolution_prompts.empty()) throw Error("experiments: no evolution prompts");
  if (seeds.empty()) throw Error("experiments: no seeds");
  if (scales.empty() && detail_scales.empty()) throw Error("experiments: no noise scales");
  for (double s : scales) validate_scale(s);
  for (double s : detail_scales) validate_scale(s);
  if (layer_prompt >= prompts.size()) {
    throw Error(fmt::format("experiments: layer prompt {} but only {} prompts", layer_prompt, prompts.size()));
  }
  if (evolution_steps < 1) throw Error("experiments: evolution needs at least one step");
  if (!(t_lo > 0 && t_lo < 1 && t_hi > 1)) {
    throw Error(fmt::format("experiments: bad temperature search bounds [{}, {}] (need lo < 1 < hi)", t_lo, t_hi));
  }
}

nlohmann::json ExperimentSettings::to_json() const {
  return {{"model", model},
          {"tokenizer", tokenizer},
          {"dtype", dtype_name(dtype)},
          {"logits_dtype", logits_dtype_name(logits)},
          {"device", device.str()},
          {"prompts", prompts},
          {"answers", answers},
          {"batch_size", batch_size},
          {"evolution_prompts", evolution_prompts},
          {"evolution_steps", evolution_steps},
          {"layer_prompt", layer_prompt},
          {"seeds", seeds},
          {"scales", scales},
          {"detail_scales", detail_scales},
          {"noise", noise_type_name(noise)},
          {"reference", scale_reference_name(reference)},
          {"exclude", exclude},
          {"exclusion", exclusion},
          {"depth_groups", depth_groups_name(depth_groups)},
          {"temperature_search", {{"lo", t_lo}, {"hi", t_hi},
                                  {"method", "root of the mean KL's slope in 1/T (safeguarded Newton); T = 1 kept "
                                             "when no worse"}}},
          {"predictor_pooling", "ratio of sums over (seed, prompt) pairs, as the mean KL pools them"},
          {"common_random_numbers", "one unit-noise draw per (seed, tensor), reused across scales"}};
}

// ---------------------------------------------------------------------------------------------
// Set-up: config and tokenizer now (names and prompts must be known to register benchmarks);
// weights on first use.

namespace {

Tokenizer tokenizer_of(const ExperimentSettings& settings) {
  if (!settings.tokenizer.empty()) return Tokenizer::load(settings.tokenizer);
  const std::filesystem::path dir(settings.model);
  if (std::filesystem::is_directory(dir) && std::filesystem::exists(dir / "tokenizer.json")) {
    return Tokenizer::load(dir);
  }
  throw Error(fmt::format("model '{}' has no tokenizer.json: pass --tokenizer PATH (a tokenizer.json or its directory)",
                          settings.model));
}

std::string format_scale(double scale) { return fmt::format("{:g}", scale); }

double half_width(const stats::Interval& interval) {
  return std::isnan(interval.hi) ? 0.0 : (interval.hi - interval.lo) / 2.0;
}

// The report's scalars as counters; each predictor's formula, value and error also as JSON.
void add_temperature_counters(const stats::TemperatureReport& report, ExperimentResult& result) {
  result.counters.merge(stats::report_counters(report));
  nlohmann::json list = nlohmann::json::array();
  for (const auto& prediction : report.predictions) {
    list.push_back({{"key", prediction.key}, {"formula", prediction.formula}, {"value", prediction.value},
                    {"error", prediction.error}, {"pooling", "ratio of sums over pairs"},
                    {"pair_values", prediction.pair_values}, {"pair_bias", prediction.pair_mean_error},
                    {"pair_rms_error", prediction.pair_rms_error}});
  }
  result.details["predictors"] = list;
  result.details["pair_best_T"] = report.pair_best_T;  // pairs in the objective's order (seed-major)
  result.details["best_T_resolution"] = report.best.resolution;
}

double top1_rate(const std::vector<stats::LogitNoise>& noise) {
  double matches = 0;
  for (const auto& n : noise) matches += n.top1_match ? 1.0 : 0.0;
  return noise.empty() ? 0.0 : matches / static_cast<double>(noise.size());
}

}  // namespace

ExperimentSuite::ExperimentSuite(ExperimentSettings settings)
    : settings_(std::move(settings)), config_(config_of(settings_.model)) {
  settings_.validate();
}

const Tokenizer& ExperimentSuite::tokenizer() {
  if (!tokenizer_) {
    Tokenizer loaded = tokenizer_of(settings_);
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

std::vector<std::string> ExperimentSuite::groups() const { return group_names(config_, settings_.depth_groups); }

std::vector<std::string> ExperimentSuite::benchmark_names() const {
  std::vector<std::string> names;
  for (double scale : settings_.scales) names.push_back(weight_noise_name(scale));
  for (double scale : settings_.detail_scales) {
    for (const auto& group : groups()) names.push_back(layer_name(group, scale));
    for (size_t p = 0; p < settings_.evolution_prompts.size(); ++p) names.push_back(evolution_name(p, scale));
    names.push_back(temp_sweep_name(scale));
  }
  return names;
}

std::string ExperimentSuite::weight_noise_name(double scale) {
  return "WeightNoise/scale:" + format_scale(scale);
}
std::string ExperimentSuite::layer_name(const std::string& group, double scale) {
  return fmt::format("Layer/{}/scale:{}", group, format_scale(scale));
}
std::string ExperimentSuite::evolution_name(size_t prompt, double scale) {
  return fmt::format("Evolution/prompt:{}/scale:{}", prompt, format_scale(scale));
}
std::string ExperimentSuite::temp_sweep_name(double scale) { return "TempSweep/scale:" + format_scale(scale); }

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
    engine_.reset();  // free the previous group's clean copies first
    TargetSpec targets;
    targets.groups = {group};
    targets.exclude = settings_.exclude;
    targets.depth = settings_.depth_groups;
    engine_ = std::make_unique<NoiseEngine>(model(), targets, settings_.noise, settings_.reference);
    engine_group_ = group;
  }
  return *engine_;
}

// In batches of settings_.batch_size prompts (the same batches clean and noisy). For an fp32 model the
// fp32 head is the model's own, bit for bit, so its logits serve as both.
ExperimentSuite::Logits ExperimentSuite::forward_prompts() {
  const auto& ids = prompt_ids();
  std::vector<torch::Tensor> statistics, model_dtype;
  for (size_t begin = 0; begin < ids.size(); begin += settings_.batch_size) {
    const size_t end = std::min(ids.size(), begin + settings_.batch_size);
    std::vector<std::vector<int64_t>> batch(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                                            ids.begin() + static_cast<std::ptrdiff_t>(end));
    // A second head only where it differs: fp32 logits of a model whose dtype is not fp32.
    const bool second_head = settings_.logits == LogitsDtype::kFloat32 && settings_.dtype != torch::kFloat;
    torch::Tensor model_logits;
    statistics.push_back(model().last_logits(batch, nullptr, 0, second_head ? &model_logits : nullptr).to(torch::kCPU));
    model_dtype.push_back(second_head ? model_logits.to(torch::kCPU) : statistics.back());
  }
  return {torch::cat(statistics), torch::cat(model_dtype)};
}

const ExperimentSuite::Logits& ExperimentSuite::clean_logits() {
  if (!clean_logits_) clean_logits_ = forward_prompts();
  return *clean_logits_;
}

// Every prompt is run in one batch, clean and noisy alike, so that the two differ by the noise
// only and not by a different batch shape's summation order.
const ExperimentSuite::Logits& ExperimentSuite::noisy_logits(const std::string& group, double scale, uint64_t seed) {
  const std::string key = fmt::format("{}/{}/{}", group, format_scale(scale), seed);
  auto it = noisy_logits_.find(key);
  if (it != noisy_logits_.end()) return it->second;
  clean_logits();
  NoiseScope scope(engine(group), scale, seed);
  injection_reports_.emplace(key, scope.report());
  return noisy_logits_.emplace(key, forward_prompts()).first->second;
}

void ExperimentSuite::timed_cycle(const std::string& group, double scale, uint64_t seed) {
  NoiseEngine& noise = engine(group);
  NoiseScope scope(noise, scale, seed);
  const Logits logits = forward_prompts();
  TSTAR_CHECK(logits.statistics.defined());
}

// Over the seeds x prompts grid (pairs seed-major): a cluster bootstrap of best T, alpha, the KL
// reduction and each predictor's error; each prompt's own best T; with answers, P(answer) and accuracy.
void ExperimentSuite::add_prompt_statistics(const stats::TemperatureObjective& objective,
                                            const stats::TemperatureReport& report, size_t S, size_t P,
                                            ExperimentResult& result) {
  const auto boot = stats::cluster_bootstrap(objective, S, P, report.best);
  result.counters["best_T_boot_lo"] = boot.best_T.lo;
  result.counters["best_T_boot_hi"] = boot.best_T.hi;
  result.counters["alpha_boot_lo"] = boot.alpha.lo;
  result.counters["alpha_boot_hi"] = boot.alpha.hi;
  result.counters["kl_reduction_boot_lo"] = boot.kl_reduction.lo;
  result.counters["kl_reduction_boot_hi"] = boot.kl_reduction.hi;
  auto& predictors = result.details["predictors"];
  for (size_t i = 0; i < boot.predictor_error.size() && i < predictors.size(); ++i) {
    const auto& interval = boot.predictor_error[i];
    predictors[i]["error_ci95"] = {interval.lo, interval.hi};
    result.counters["err_" + predictors[i]["key"].get<std::string>() + "_ci95"] = (interval.hi - interval.lo) / 2;
  }
  result.details["bootstrap"] = {
      {"method", "cluster bootstrap over prompts x seeds: each resample draws seeds and prompts with replacement "
                 "and takes every (seed, prompt) pair; its optimum is one Newton step in 1/T from the full "
                 "sample's; percentile 95% intervals"},
      {"resamples", boot.resamples}, {"seed", boot.seed},
      {"best_T", {boot.best_T.lo, boot.best_T.hi}}, {"alpha", {boot.alpha.lo, boot.alpha.hi}},
      {"kl_reduction", {boot.kl_reduction.lo, boot.kl_reduction.hi}}};

  std::vector<double> prompt_best_T;
  for (size_t p = 0; p < P; ++p) {
    std::vector<size_t> pairs;
    for (size_t s = 0; s < S; ++s) pairs.push_back(s * P + p);
    prompt_best_T.push_back(objective.best_temperature(settings_.t_lo, settings_.t_hi, pairs).T);
  }
  result.details["prompt_best_T"] = prompt_best_T;
  std::vector<double> sorted = prompt_best_T;
  std::sort(sorted.begin(), sorted.end());
  auto quantile = [&](double q) { return sorted[static_cast<size_t>(std::lround(q * static_cast<double>(P - 1)))]; };
  result.counters["prompt_best_T_p10"] = quantile(0.1);
  result.counters["prompt_best_T_p50"] = quantile(0.5);
  result.counters["prompt_best_T_p90"] = quantile(0.9);

  double answered = 0, p_answer_1 = 0, p_answer_best = 0, clean_right = 0, noisy_right = 0;
  for (size_t s = 0; s < S; ++s) {
    for (size_t p = 0; p < P; ++p) {
      const int64_t answer = answer_ids_.at(p);
      if (answer < 0) continue;
      const size_t k = s * P + p;
      answered += 1;
      p_answer_1 += objective.p_token(k, answer, 1.0);
      p_answer_best += objective.p_token(k, answer, report.best.T);
      clean_right += objective.clean_argmax_is(k, answer) ? 1 : 0;
      noisy_right += objective.noisy_argmax_is(k, answer) ? 1 : 0;
    }
  }
  if (answered > 0) {
    result.counters["answered_pairs"] = answered;
    result.counters["p_answer_T1"] = p_answer_1 / answered;
    result.counters["p_answer_best"] = p_answer_best / answered;
    result.counters["accuracy_clean"] = clean_right / answered;
    result.counters["accuracy_noisy"] = noisy_right / answered;
  }
}

const ExperimentResult& ExperimentSuite::remember(ExperimentResult result) {
  auto name = result.name;
  return results_.insert_or_assign(name, std::move(result)).first->second;
}

// ---------------------------------------------------------------------------------------------
// Experiments 1 and 4: weight noise -> logit noise -> best T, over seeds x prompts.

const ExperimentResult& ExperimentSuite::weight_noise(double scale) {
  const std::string name = weight_noise_name(scale);
  if (auto it = results_.find(name); it != results_.end()) return it->second;
  validate_scale(scale);

  const Logits& clean = clean_logits();
  const size_t P = prompt_ids().size(), S = settings_.seeds.size();
  stats::TemperatureObjective objective;  // pairs ordered seed-major: index = s * P + p
  double changed = 0, realized = 0;
  std::vector<double> model_dtype_alpha;  // alpha on the model-dtype logits, pair by pair
  for (uint64_t seed : settings_.seeds) {
    const Logits& noisy = noisy_logits("all", scale, seed);
    for (size_t p = 0; p < P; ++p) {
      objective.add(clean.statistics[p], noisy.statistics[p]);
      model_dtype_alpha.push_back(stats::measure(clean.model_dtype[p], noisy.model_dtype[p]).alpha);
    }
    const auto& report = injection_reports_.at(fmt::format("all/{}/{}", format_scale(scale), seed));
    changed += report.changed_fraction / S;
    realized += report.realized_ratio / S;
  }
  const auto report = stats::report_temperature(objective, settings_.t_lo, settings_.t_hi);

  // Across seeds: each seed's own prompt-averaged alpha and best T.
  std::vector<double> seed_alpha(S, 0.0), seed_best_T(S, 0.0);
  for (size_t s = 0; s < S; ++s) {
    for (size_t p = 0; p < P; ++p) seed_alpha[s] += objective.noise()[s * P + p].alpha / P;
    std::vector<size_t> seed_pairs;
    for (size_t p = 0; p < P; ++p) seed_pairs.push_back(s * P + p);
    seed_best_T[s] = objective.best_temperature(settings_.t_lo, settings_.t_hi, seed_pairs).T;
  }
  // Across prompts: each prompt's seed-averaged alpha.
  std::vector<double> prompt_alpha(P, 0.0);
  for (size_t s = 0; s < S; ++s) {
    for (size_t p = 0; p < P; ++p) prompt_alpha[p] += objective.noise()[s * P + p].alpha / S;
  }
  const auto grid = stats::notebook_temperature_grid();
  const auto kl_scan = stats::scan_grid([&](double T) { return objective.mean_kl(T); }, grid);
  std::vector<double> p_correct_curve;
  for (double T : grid) p_correct_curve.push_back(objective.mean_p_correct(T));

  ExperimentResult result{name, {}, {}};
  add_temperature_counters(report, result);
  const auto alpha_interval = stats::t_interval(seed_alpha);
  const auto best_T_interval = stats::t_interval(seed_best_T);
  result.counters["alpha_ci95"] = half_width(alpha_interval);
  result.counters["best_T_ci95"] = half_width(best_T_interval);
  result.counters["alpha_prompt_std"] = stats::spread(prompt_alpha).std;
  result.counters["alpha_model_logits"] = stats::spread(model_dtype_alpha).mean;
  result.counters["grid_best_T"] = kl_scan.points[kl_scan.best_index];
  result.counters["top1_match"] = top1_rate(objective.noise());
  result.counters["changed_fraction"] = changed;
  result.counters["realized_ratio"] = realized;
  result.counters["scale"] = scale;
  add_prompt_statistics(objective, report, S, P, result);
  result.details.update({{"seed_alpha", seed_alpha},
                         {"seed_best_T", seed_best_T},
                         {"prompt_alpha", prompt_alpha},
                         {"alpha_ci95", {{"method", "Student t over seeds"}, {"lo", alpha_interval.lo}, {"hi", alpha_interval.hi}}},
                         {"best_T_ci95", {{"method", "Student t over seeds"}, {"lo", best_T_interval.lo}, {"hi", best_T_interval.hi}}}});

  // Experiment 4 reads the same pairs: the KL and P(correct) curves over the notebook's grid.
  ExperimentResult sweep{temp_sweep_name(scale), {}, {}};
  add_temperature_counters(report, sweep);
  sweep.counters["grid_best_T"] = result.counters["grid_best_T"];
  sweep.counters["scale"] = scale;
  sweep.details["grid"] = grid;
  sweep.details["kl"] = kl_scan.values;
  sweep.details["p_correct"] = p_correct_curve;
  sweep.details["grid_best_at_boundary"] = kl_scan.at_boundary;
  remember(std::move(sweep));
  return remember(std::move(result));
}

const ExperimentResult& ExperimentSuite::temp_sweep(double scale) {
  weight_noise(scale);
  return results_.at(temp_sweep_name(scale));
}

// ---------------------------------------------------------------------------------------------
// Experiment 2: which weights matter, one group at a time, on the layer prompt.

const ExperimentResult& ExperimentSuite::layer(const std::string& group, double scale) {
  const std::string name = layer_name(group, scale);
  if (auto it = results_.find(name); it != results_.end()) return it->second;
  validate_scale(scale);

  const auto p = static_cast<int64_t>(settings_.layer_prompt);
  const Logits& clean = clean_logits();
  stats::TemperatureObjective objective;
  std::vector<double> seed_alpha;
  std::vector<double> model_dtype_alpha;
  for (uint64_t seed : settings_.seeds) {
    const Logits& noisy = noisy_logits(group, scale, seed);
    objective.add(clean.statistics[p], noisy.statistics[p]);
    seed_alpha.push_back(objective.noise().back().alpha);
    model_dtype_alpha.push_back(stats::measure(clean.model_dtype[p], noisy.model_dtype[p]).alpha);
  }
  const auto report = stats::report_temperature(objective, settings_.t_lo, settings_.t_hi);
  const auto& injection = injection_reports_.at(fmt::format("{}/{}/{}", group, format_scale(scale), settings_.seeds[0]));

  ExperimentResult result{name, {}, {}};
  add_temperature_counters(report, result);
  result.counters["alpha_ci95"] = half_width(stats::t_interval(seed_alpha));
  result.counters["alpha_model_logits"] = stats::spread(model_dtype_alpha).mean;
  result.counters["top1_match"] = top1_rate(objective.noise());
  result.counters["tensors"] = static_cast<double>(injection.tensors.size());
  result.counters["params"] = static_cast<double>(injection.numel);
  result.counters["changed_fraction"] = injection.changed_fraction;
  result.counters["realized_ratio"] = injection.realized_ratio;
  result.counters["scale"] = scale;
  result.details["seed_alpha"] = seed_alpha;
  result.details["tensors"] = engine(group).target_names();
  return remember(std::move(result));
}

// ---------------------------------------------------------------------------------------------
// Experiment 3: alpha(t) along a clean greedy trajectory, the noisy model teacher-forced on it.
// Both use the KV cache (the notebook recomputed the whole prefix at every step).

const ExperimentSuite::Trajectory& ExperimentSuite::clean_trajectory(size_t prompt) {
  if (auto it = trajectories_.find(prompt); it != trajectories_.end()) return it->second;
  Trajectory t;
  t.prompt_ids = tokenizer().encode(settings_.evolution_prompts.at(prompt));
  if (t.prompt_ids.empty()) throw Error(fmt::format("evolution prompt {} encodes to no tokens", prompt));
  const int64_t steps = settings_.evolution_steps;
  // The continuation ends at the end-of-sequence token: its step is kept, nothing after it.
  const int64_t eos = config_.eos_token_id >= 0 ? config_.eos_token_id : tokenizer().eos_id();
  KVCache cache;
  torch::Tensor logits = model().last_logits({t.prompt_ids}, &cache, steps);
  std::vector<torch::Tensor> rows;
  for (int64_t step = 0; step < steps; ++step) {
    rows.push_back(logits[0].to(torch::kCPU));
    t.tokens.push_back(logits[0].argmax().item<int64_t>());
    if (t.tokens.back() == eos) break;
    if (step + 1 < steps) logits = model_->decode_step({t.tokens.back()}, cache);
  }
  t.logits = torch::stack(rows);  // [steps, V]
  return trajectories_.emplace(prompt, std::move(t)).first->second;
}

torch::Tensor ExperimentSuite::teacher_forced_logits(const Trajectory& clean) const {
  const int64_t steps = static_cast<int64_t>(clean.tokens.size());
  KVCache cache;
  torch::Tensor logits = model_->last_logits({clean.prompt_ids}, &cache, steps);
  std::vector<torch::Tensor> rows;
  for (int64_t step = 0; step < steps; ++step) {
    rows.push_back(logits[0].to(torch::kCPU));
    if (step + 1 < steps) logits = model_->decode_step({clean.tokens[static_cast<size_t>(step)]}, cache);
  }
  return torch::stack(rows);  // [steps, V]
}

void ExperimentSuite::timed_evolution_cycle(size_t prompt, double scale, uint64_t seed) {
  const Trajectory& clean = clean_trajectory(prompt);
  NoiseScope scope(engine("all"), scale, seed);
  torch::Tensor logits = teacher_forced_logits(clean);
  TSTAR_CHECK(logits.defined());
}

const ExperimentResult& ExperimentSuite::evolution(size_t prompt, double scale) {
  const std::string name = evolution_name(prompt, scale);
  if (auto it = results_.find(name); it != results_.end()) return it->second;
  validate_scale(scale);
  if (prompt >= settings_.evolution_prompts.size()) {
    throw Error(fmt::format("evolution prompt {} out of range ({} prompts)", prompt, settings_.evolution_prompts.size()));
  }
  const Trajectory& clean = clean_trajectory(prompt);
  const size_t steps = clean.tokens.size();
  std::vector<stats::TemperatureObjective> per_step(steps);  // pairs: one per seed
  for (uint64_t seed : settings_.seeds) {
    torch::Tensor noisy;
    {
      NoiseScope scope(engine("all"), scale, seed);
      noisy = teacher_forced_logits(clean);
    }
    for (size_t t = 0; t < steps; ++t) {
      per_step[t].add(clean.logits[static_cast<int64_t>(t)], noisy[static_cast<int64_t>(t)]);
    }
  }
  const size_t S = settings_.seeds.size();
  std::vector<double> alpha_t, best_T_t, notebook_T_t;
  std::vector<std::vector<double>> seed_alpha_t(S);  // [seed][step]
  for (const auto& objective : per_step) {
    double alpha = 0;
    for (size_t s = 0; s < S; ++s) {
      alpha += objective.noise()[s].alpha / static_cast<double>(S);
      seed_alpha_t[s].push_back(objective.noise()[s].alpha);
    }
    alpha_t.push_back(alpha);
    notebook_T_t.push_back(std::sqrt(1 + alpha));
    best_T_t.push_back(objective.best_temperature(settings_.t_lo, settings_.t_hi).T);
  }
  double alpha_mean = 0;
  for (double a : alpha_t) alpha_mean += a / static_cast<double>(steps);

  ExperimentResult result{name, {}, {}};
  result.counters["steps"] = static_cast<double>(steps);
  result.counters["alpha_mean"] = alpha_mean;
  result.counters["alpha_first"] = alpha_t.front();
  result.counters["alpha_last"] = alpha_t.back();
  result.counters["scale"] = scale;
  result.details = {{"prompt", settings_.evolution_prompts[prompt]},
                    {"tokens", clean.tokens},
                    {"text", tokenizer().decode(clean.tokens)},
                    {"stopped_at_eos", static_cast<int64_t>(steps) < settings_.evolution_steps},
                    {"alpha_t", alpha_t},
                    {"best_T_t", best_T_t},
                    {"sqrt_1p_alpha_t", notebook_T_t}};
  if (steps < 3) {  // too short a continuation for a trend or a schedule
    result.details["trend"] = {{"label", "too few steps"}};
    return remember(std::move(result));
  }
  // Trend: the slope of alpha(t), with a seed interval from each seed's own slope; a direction is
  // claimed only when that interval excludes 0 (the notebook used a fixed threshold of 0.001).
  const auto trend = stats::fit_line(alpha_t);
  std::vector<double> seed_slopes;
  for (const auto& series : seed_alpha_t) seed_slopes.push_back(stats::fit_line(series).slope);
  const auto slope_interval = stats::t_interval(seed_slopes);
  const bool resolved = !std::isnan(slope_interval.lo) && (slope_interval.lo > 0 || slope_interval.hi < 0);
  const std::string label = !resolved ? "no trend resolved" : (trend.slope > 0 ? "increase" : "decrease");
  // Schedule T(t) = T_max / sqrt(1 + beta t): beta's interval by a bootstrap over seeds (fixed
  // bootstrap seed), and an F-test against a constant T.
  const auto schedule = stats::fit_schedule(best_T_t);
  const auto f_test = stats::schedule_vs_constant(best_T_t, schedule);
  constexpr int kBootstrap = 100;
  constexpr uint64_t kBootstrapSeed = 20261130;
  std::vector<double> betas;
  for (const auto& draw : stats::bootstrap_resamples(S, kBootstrap, kBootstrapSeed)) {
    std::vector<double> resampled_T;
    for (const auto& objective : per_step) resampled_T.push_back(objective.best_temperature(settings_.t_lo, settings_.t_hi, draw).T);
    betas.push_back(stats::fit_schedule(resampled_T).beta);
  }
  std::sort(betas.begin(), betas.end());
  const double beta_lo = betas[static_cast<size_t>(0.025 * (kBootstrap - 1))];
  const double beta_hi = betas[static_cast<size_t>(0.975 * (kBootstrap - 1) + 0.5)];

  result.counters["slope"] = trend.slope;
  result.counters["slope_ci95"] = half_width(slope_interval);
  result.counters["trend"] = label == "increase" ? 1.0 : (label == "decrease" ? -1.0 : 0.0);
  result.counters["beta"] = schedule.beta;
  result.counters["beta_ci95_lo"] = beta_lo;
  result.counters["beta_ci95_hi"] = beta_hi;
  result.counters["T_max"] = schedule.T_max;
  result.counters["schedule_rms"] = schedule.rms_error;
  result.counters["schedule_F"] = f_test.F;
  result.counters["schedule_p"] = f_test.p;
  result.details["trend"] = {{"slope", trend.slope}, {"intercept", trend.intercept}, {"label", label},
                             {"seed_slopes", seed_slopes},
                             {"rule", "increase/decrease only when the 95% t-interval of the seeds' slopes excludes 0"}};
  result.details["schedule"] = {{"formula", "T(t) = T_max / sqrt(1 + beta t), least squares on best_T_t"},
                                {"T_max", schedule.T_max}, {"beta", schedule.beta},
                                {"beta_ci95", {beta_lo, beta_hi}},
                                {"beta_ci_method", fmt::format("percentile bootstrap over seeds, {} resamples, "
                                                               "std::mt19937_64 seed {}", kBootstrap, kBootstrapSeed)},
                                {"rms_error", schedule.rms_error}, {"at_boundary", schedule.at_boundary},
                                {"vs_constant_T", {{"F", f_test.F}, {"p", f_test.p}, {"test", "F(1, steps - 2)"}}}};
  return remember(std::move(result));
}

// ---------------------------------------------------------------------------------------------
// Results and provenance

nlohmann::json ExperimentSuite::provenance() {
  nlohmann::json out = runtime_provenance();
  out["model"] = model_provenance(model(), settings_.model);
  out["tokenizer_sha256"] = tokenizer().digest();
  std::string prompts = nlohmann::json(settings_.prompts).dump() + nlohmann::json(settings_.evolution_prompts).dump();
  if (!settings_.answers.empty()) prompts += nlohmann::json(settings_.answers).dump();  // answers change statistics
  out["prompts_sha256"] = sha256_hex(prompts.data(), prompts.size());
  out["seeds"] = settings_.seeds;
  out["scales"] = settings_.scales;
  out["detail_scales"] = settings_.detail_scales;
  out["noise"] = noise_type_name(settings_.noise);
  out["reference"] = scale_reference_name(settings_.reference);
  return out;
}

nlohmann::json ExperimentSuite::results_json() {
  nlohmann::json results = nlohmann::json::object();
  for (const auto& [name, result] : results_) {
    results[name] = {{"counters", result.counters}, {"details", result.details}};
  }
  nlohmann::json out = {{"settings", settings_.to_json()}, {"provenance", provenance()}, {"results", results}};
  out["weights_digest_before"] = clean_digest_;
  out["weights_digest_after"] = parameters_digest(model().parameters());
  return out;
}

}  // namespace tstar
