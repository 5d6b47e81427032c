// Experiment 1: weight noise -> logit noise -> best T, over seeds x prompts, at each scale of
// --scales: alpha, the optimum, every T* predictor and its error, their intervals.
#include <fmt/format.h>

#include <cmath>

#include "common.h"

namespace tstar::experiments {
namespace {

ExperimentResult weight_noise(ExperimentSuite& suite, double scale) {
  const auto& settings = suite.settings();
  const size_t P = settings.prompts.size(), S = settings.seeds.size();
  const stats::TemperatureObjective objective = all_pairs_objective(suite, scale);  // index = s * P + p
  double changed = 0, realized = 0;
  std::vector<double> model_dtype_alpha;  // alpha on the model-dtype logits, pair by pair
  std::vector<double> pre_softcap_alpha;  // alpha before final soft-capping (models that cap), pair by pair
  for (uint64_t seed : settings.seeds) {
    const UnitResult& noisy = suite.unit(suite.noisy_unit("all", scale, seed));
    for (size_t p = 0; p < P; ++p) model_dtype_alpha.push_back(unit_double(noisy, "model_dtype_alpha", static_cast<int64_t>(p)));
    if (noisy.tensors.count("pre_softcap_alpha")) {
      for (size_t p = 0; p < P; ++p) pre_softcap_alpha.push_back(unit_double(noisy, "pre_softcap_alpha", static_cast<int64_t>(p)));
    }
    changed += unit_double(noisy, "injection", 0) / static_cast<double>(S);
    realized += unit_double(noisy, "injection", 1) / static_cast<double>(S);
  }
  const auto report = stats::report_temperature(objective, settings.t_lo, settings.t_hi);

  // Across seeds: each seed's own prompt-averaged alpha and best T.
  std::vector<double> seed_alpha(S, 0.0), seed_best_T(S, 0.0);
  for (size_t s = 0; s < S; ++s) {
    for (size_t p = 0; p < P; ++p) seed_alpha[s] += objective.noise()[s * P + p].alpha / P;
    std::vector<size_t> seed_pairs;
    for (size_t p = 0; p < P; ++p) seed_pairs.push_back(s * P + p);
    seed_best_T[s] = objective.best_temperature(settings.t_lo, settings.t_hi, seed_pairs).T;
  }
  // Across prompts: each prompt's seed-averaged alpha.
  std::vector<double> prompt_alpha(P, 0.0);
  for (size_t s = 0; s < S; ++s) {
    for (size_t p = 0; p < P; ++p) prompt_alpha[p] += objective.noise()[s * P + p].alpha / S;
  }
  const auto grid = stats::notebook_temperature_grid();
  const auto kl_scan = stats::scan_grid([&](double T) { return objective.mean_kl(T); }, grid);

  ExperimentResult result;
  add_temperature_counters(report, result);
  const auto alpha_interval = stats::t_interval(seed_alpha);
  const auto best_T_interval = stats::t_interval(seed_best_T);
  result.counters["alpha_ci95"] = half_width(alpha_interval);
  result.counters["best_T_ci95"] = half_width(best_T_interval);
  result.counters["alpha_prompt_std"] = stats::spread(prompt_alpha).std;
  result.counters["alpha_model_logits"] = stats::spread(model_dtype_alpha).mean;
  if (!pre_softcap_alpha.empty()) result.counters["alpha_pre_softcap"] = stats::spread(pre_softcap_alpha).mean;
  result.counters["grid_best_T"] = kl_scan.points[kl_scan.best_index];
  result.counters["top1_match"] = top1_rate(objective.noise());
  result.counters["changed_fraction"] = changed;
  result.counters["realized_ratio"] = realized;
  result.counters["scale"] = scale;
  add_prompt_statistics(suite, objective, report, result);
  result.details.update({{"seed_alpha", seed_alpha},
                         {"seed_best_T", seed_best_T},
                         {"prompt_alpha", prompt_alpha},
                         {"alpha_ci95", {{"method", "Student t over seeds"}, {"lo", alpha_interval.lo}, {"hi", alpha_interval.hi}}},
                         {"best_T_ci95", {{"method", "Student t over seeds"}, {"lo", best_T_interval.lo}, {"hi", best_T_interval.hi}}}});
  return result;
}

ExperimentFamily weight_noise_family() {
  ExperimentFamily family;
  family.name = "WeightNoise";
  family.order = 1;
  family.pattern = "WeightNoise/scale:<s>";
  family.description = "exp. 1: alpha, best T, every T* predictor and its error, KL, P(correct)";
  family.report_section = "weight_noise";
  family.instances = [](const ExperimentSuite& suite) {
    std::vector<ExperimentInstance> instances;
    const uint64_t timing_seed = suite.settings().seeds.front();
    for (double scale : suite.settings().scales) {
      instances.push_back({"WeightNoise/scale:" + format_scale(scale), "WeightNoise", {{"scale", scale}},
                           [scale](ExperimentSuite& s) { return weight_noise(s, scale); },
                           [scale, timing_seed](ExperimentSuite& s) { s.forward_cycle("all", scale, timing_seed); },
                           seed_units(suite, "all", scale)});
    }
    return instances;
  };
  return family;
}

TSTAR_REGISTER_EXPERIMENT(weight_noise_family());

}  // namespace
}  // namespace tstar::experiments
