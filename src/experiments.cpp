#include "experiments.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <filesystem>

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

void ExperimentSettings::validate() const {
  if (prompts.empty()) throw Error("experiments: no prompts");
  if (evolution_prompts.empty()) throw Error("experiments: no evolution prompts");
  if (seeds.empty()) throw Error("experiments: no seeds");
  if (scales.empty() && detail_scales.empty()) throw Error("experiments: no noise scales");
  for (double s : scales) validate_scale(s);
  for (double s : detail_scales) validate_scale(s);
  if (layer_prompt >= prompts.size()) {
    throw Error(fmt::format("experiments: layer prompt {} but only {} prompts", layer_prompt, prompts.size()));
  }
  if (evolution_steps < 1) throw Error("experiments: evolution needs at least one step");
  if (!(t_lo > 0 && t_lo < t_hi && t_tol > 0)) {
    throw Error(fmt::format("experiments: bad temperature search [{}, {}] tol {}", t_lo, t_hi, t_tol));
  }
}

nlohmann::json ExperimentSettings::to_json() const {
  return {{"model", model},
          {"tokenizer", tokenizer},
          {"dtype", dtype_name(dtype)},
          {"device", device.str()},
          {"prompts", prompts},
          {"evolution_prompts", evolution_prompts},
          {"evolution_steps", evolution_steps},
          {"layer_prompt", layer_prompt},
          {"seeds", seeds},
          {"scales", scales},
          {"detail_scales", detail_scales},
          {"noise", noise_type_name(noise)},
          {"reference", scale_reference_name(reference)},
          {"exclude", exclude},
          {"temperature_search", {{"lo", t_lo}, {"hi", t_hi}, {"tol", t_tol}, {"method", "Brent"}}},
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
                    {"error", prediction.error}});
  }
  result.details["predictors"] = list;
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
    tokenizer_ = std::move(loaded);
  }
  return *tokenizer_;
}

const std::vector<std::vector<int64_t>>& ExperimentSuite::prompt_ids() {
  tokenizer();
  return prompt_ids_;
}

std::vector<std::string> ExperimentSuite::groups() const { return group_names(config_); }

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
    engine_ = std::make_unique<NoiseEngine>(model(), targets, settings_.noise, settings_.reference);
    engine_group_ = group;
  }
  return *engine_;
}

const torch::Tensor& ExperimentSuite::clean_logits() {
  if (!clean_logits_) clean_logits_ = model().last_logits(prompt_ids()).to(torch::kCPU);
  return *clean_logits_;
}

// Every prompt is run in one batch, clean and noisy alike, so that the two differ by the noise
// only and not by a different batch shape's summation order.
const torch::Tensor& ExperimentSuite::noisy_logits(const std::string& group, double scale, uint64_t seed) {
  const std::string key = fmt::format("{}/{}/{}", group, format_scale(scale), seed);
  auto it = noisy_logits_.find(key);
  if (it != noisy_logits_.end()) return it->second;
  clean_logits();
  NoiseScope scope(engine(group), scale, seed);
  injection_reports_.emplace(key, scope.report());
  return noisy_logits_.emplace(key, model().last_logits(prompt_ids()).to(torch::kCPU)).first->second;
}

void ExperimentSuite::timed_cycle(const std::string& group, double scale, uint64_t seed) {
  NoiseEngine& noise = engine(group);
  NoiseScope scope(noise, scale, seed);
  torch::Tensor logits = model().last_logits(prompt_ids());
  TSTAR_CHECK(logits.defined());
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

  const torch::Tensor& clean = clean_logits();
  const size_t P = prompt_ids().size(), S = settings_.seeds.size();
  stats::TemperatureObjective objective;  // pairs ordered seed-major: index = s * P + p
  double changed = 0, realized = 0;
  for (uint64_t seed : settings_.seeds) {
    const torch::Tensor& noisy = noisy_logits("all", scale, seed);
    for (size_t p = 0; p < P; ++p) objective.add(clean[p], noisy[p]);
    const auto& report = injection_reports_.at(fmt::format("all/{}/{}", format_scale(scale), seed));
    changed += report.changed_fraction / S;
    realized += report.realized_ratio / S;
  }
  const auto report = stats::report_temperature(objective, settings_.t_lo, settings_.t_hi, settings_.t_tol);

  // Across seeds: each seed's own prompt-averaged alpha and best T.
  std::vector<double> seed_alpha(S, 0.0), seed_best_T(S, 0.0);
  for (size_t s = 0; s < S; ++s) {
    for (size_t p = 0; p < P; ++p) seed_alpha[s] += objective.noise()[s * P + p].alpha / P;
    auto seed_kl = [&](double T) {
      double kl = 0;
      for (size_t p = 0; p < P; ++p) kl += objective.kl(s * P + p, T) / P;
      return kl;
    };
    seed_best_T[s] = stats::best_temperature(seed_kl, settings_.t_lo, settings_.t_hi, settings_.t_tol).T;
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
  result.counters["grid_best_T"] = kl_scan.points[kl_scan.best_index];
  result.counters["top1_match"] = top1_rate(objective.noise());
  result.counters["changed_fraction"] = changed;
  result.counters["realized_ratio"] = realized;
  result.counters["scale"] = scale;
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
  torch::Tensor clean = clean_logits()[p];
  stats::TemperatureObjective objective;
  std::vector<double> seed_alpha;
  for (uint64_t seed : settings_.seeds) {
    objective.add(clean, noisy_logits(group, scale, seed)[p]);
    seed_alpha.push_back(objective.noise().back().alpha);
  }
  const auto report = stats::report_temperature(objective, settings_.t_lo, settings_.t_hi, settings_.t_tol);
  const auto& injection = injection_reports_.at(fmt::format("{}/{}/{}", group, format_scale(scale), settings_.seeds[0]));

  ExperimentResult result{name, {}, {}};
  add_temperature_counters(report, result);
  result.counters["alpha_ci95"] = half_width(stats::t_interval(seed_alpha));
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
  KVCache cache;
  torch::Tensor logits = model().last_logits({t.prompt_ids}, &cache, steps);
  std::vector<torch::Tensor> rows;
  for (int64_t step = 0; step < steps; ++step) {
    rows.push_back(logits[0].to(torch::kCPU));
    t.tokens.push_back(logits[0].argmax().item<int64_t>());
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
  std::vector<double> alpha_t, best_T_t, notebook_T_t;
  for (const auto& objective : per_step) {
    double alpha = 0;
    for (const auto& n : objective.noise()) alpha += n.alpha / static_cast<double>(objective.size());
    alpha_t.push_back(alpha);
    notebook_T_t.push_back(std::sqrt(1 + alpha));
    best_T_t.push_back(stats::best_temperature([&](double T) { return objective.mean_kl(T); }, settings_.t_lo,
                                               settings_.t_hi, settings_.t_tol).T);
  }
  const auto trend = stats::fit_line(alpha_t);
  const std::string label = stats::trend_label(trend.slope);
  const auto schedule = stats::fit_schedule(best_T_t);
  double alpha_mean = 0;
  for (double a : alpha_t) alpha_mean += a / static_cast<double>(steps);

  ExperimentResult result{name, {}, {}};
  result.counters["alpha_mean"] = alpha_mean;
  result.counters["alpha_first"] = alpha_t.front();
  result.counters["alpha_last"] = alpha_t.back();
  result.counters["slope"] = trend.slope;
  result.counters["trend"] = label == "increase" ? 1.0 : (label == "decrease" ? -1.0 : 0.0);
  result.counters["beta"] = schedule.beta;
  result.counters["T_max"] = schedule.T_max;
  result.counters["schedule_rms"] = schedule.rms_error;
  result.counters["scale"] = scale;
  result.details = {{"prompt", settings_.evolution_prompts[prompt]},
                    {"tokens", clean.tokens},
                    {"text", tokenizer().decode(clean.tokens)},
                    {"alpha_t", alpha_t},
                    {"best_T_t", best_T_t},
                    {"sqrt_1p_alpha_t", notebook_T_t},
                    {"trend", {{"slope", trend.slope}, {"intercept", trend.intercept}, {"label", label}}},
                    {"schedule", {{"formula", "T(t) = T_max / sqrt(1 + beta t), least squares on best_T_t"},
                                  {"T_max", schedule.T_max}, {"beta", schedule.beta},
                                  {"rms_error", schedule.rms_error}, {"at_boundary", schedule.at_boundary}}}};
  return remember(std::move(result));
}

// ---------------------------------------------------------------------------------------------
// Results and provenance

nlohmann::json ExperimentSuite::provenance() {
  nlohmann::json out = runtime_provenance();
  out["model"] = model_provenance(model(), settings_.model);
  out["tokenizer_sha256"] = tokenizer().digest();
  const std::string prompts = nlohmann::json(settings_.prompts).dump() + nlohmann::json(settings_.evolution_prompts).dump();
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
