#include "common.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace tstar::experiments {

double half_width(const stats::Interval& interval) {
  return std::isnan(interval.hi) ? 0.0 : (interval.hi - interval.lo) / 2.0;
}

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

void add_prompt_statistics(ExperimentSuite& suite, const stats::TemperatureObjective& objective,
                           const stats::TemperatureReport& report, ExperimentResult& result) {
  const auto& settings = suite.settings();
  const size_t S = settings.seeds.size(), P = settings.prompts.size();
  const UnitResult& clean = suite.unit(suite.clean_unit());
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
    prompt_best_T.push_back(objective.best_temperature(settings.t_lo, settings.t_hi, pairs).T);
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
      const int64_t answer = unit_int(clean, "answer_ids", static_cast<int64_t>(p));
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

stats::TemperatureObjective all_pairs_objective(ExperimentSuite& suite, double scale) {
  const torch::Tensor& clean = clean_statistics(suite);
  const size_t P = suite.settings().prompts.size();
  stats::TemperatureObjective objective;
  for (uint64_t seed : suite.settings().seeds) {
    const torch::Tensor& noisy = unit_tensor(suite.unit(suite.noisy_unit("all", scale, seed)), "statistics");
    for (size_t p = 0; p < P; ++p) objective.add(clean[static_cast<int64_t>(p)], noisy[static_cast<int64_t>(p)]);
  }
  return objective;
}

const torch::Tensor& unit_tensor(const UnitResult& unit, const std::string& name) {
  const auto it = unit.tensors.find(name);
  if (it == unit.tensors.end()) throw Error(fmt::format("a unit has no tensor '{}'", name));
  return it->second;
}

double unit_double(const UnitResult& unit, const std::string& name, int64_t index) {
  const torch::Tensor& values = unit_tensor(unit, name);
  if (values.scalar_type() != torch::kDouble || index >= values.numel()) {
    throw Error(fmt::format("a unit's '{}' holds no double at {}", name, index));
  }
  return values.data_ptr<double>()[index];
}

int64_t unit_int(const UnitResult& unit, const std::string& name, int64_t index) {
  const torch::Tensor& values = unit_tensor(unit, name);
  if (values.scalar_type() != torch::kLong || index >= values.numel()) {
    throw Error(fmt::format("a unit's '{}' holds no integer at {}", name, index));
  }
  return values.data_ptr<int64_t>()[index];
}

std::vector<WorkUnit> seed_units(const ExperimentSuite& suite, const std::string& group, double scale,
                                 PromptSelection prompt) {
  std::vector<WorkUnit> units = {suite.clean_unit(prompt)};
  for (uint64_t seed : suite.settings().seeds) units.push_back(suite.noisy_unit(group, scale, seed, prompt));
  return units;
}

const torch::Tensor& clean_statistics(ExperimentSuite& suite, PromptSelection prompt) {
  return unit_tensor(suite.unit(suite.clean_unit(prompt)), "statistics");
}

}  // namespace tstar::experiments
