// Experiment 4: the temperature sweep. The KL and P(correct) curves over the notebook's grid of T
// for every (seed, prompt) pair with the whole model noised, at each of --detail-scales, beside the
// exact optimum and the predictors.
#include <cmath>

#include "common.h"

namespace tstar::experiments {
namespace {

ExperimentResult temp_sweep(ExperimentSuite& suite, double scale) {
  const stats::TemperatureObjective objective = all_pairs_objective(suite, scale);
  const auto report = stats::report_temperature(objective, suite.settings().t_lo, suite.settings().t_hi);
  const auto grid = stats::notebook_temperature_grid();
  const auto kl_scan = stats::scan_grid([&](double T) { return objective.mean_kl(T); }, grid);
  std::vector<double> p_correct_curve;
  for (double T : grid) p_correct_curve.push_back(objective.mean_p_correct(T));

  ExperimentResult result;
  add_temperature_counters(report, result);
  result.counters["grid_best_T"] = kl_scan.points[kl_scan.best_index];
  result.counters["scale"] = scale;
  result.details["grid"] = grid;
  result.details["kl"] = kl_scan.values;
  result.details["p_correct"] = p_correct_curve;
  result.details["grid_best_at_boundary"] = kl_scan.at_boundary;
  return result;
}

// The timed unit: one inject -> forward -> restore cycle, then the sweep of the grid over that
// seed's pairs.
void sweep_cycle(ExperimentSuite& suite, double scale, uint64_t seed) {
  suite.forward_cycle("all", scale, seed);
  const torch::Tensor& clean = clean_statistics(suite);
  const torch::Tensor& noisy = unit_tensor(suite.unit(suite.noisy_unit("all", scale, seed)), "statistics");
  stats::TemperatureObjective objective;
  for (int64_t p = 0; p < clean.size(0); ++p) objective.add(clean[p], noisy[p]);
  double total = 0;
  for (double T : stats::notebook_temperature_grid()) total += objective.mean_kl(T) + objective.mean_p_correct(T);
  TSTAR_CHECK(!std::isnan(total));
}

ExperimentFamily temp_sweep_family() {
  ExperimentFamily family;
  family.name = "TempSweep";
  family.order = 4;
  family.pattern = "TempSweep/scale:<s>";
  family.description = "exp. 4: KL and P(correct) over T = 0.80..1.48, exact best T";
  family.report_section = "temp_sweep";
  family.instances = [](const ExperimentSuite& suite) {
    std::vector<ExperimentInstance> instances;
    const uint64_t timing_seed = suite.settings().seeds.front();
    for (double scale : suite.settings().detail_scales) {
      instances.push_back({"TempSweep/scale:" + format_scale(scale), "TempSweep", {{"scale", scale}},
                           [scale](ExperimentSuite& s) { return temp_sweep(s, scale); },
                           [scale, timing_seed](ExperimentSuite& s) { sweep_cycle(s, scale, timing_seed); },
                           seed_units(suite, "all", scale)});
    }
    return instances;
  };
  return family;
}

TSTAR_REGISTER_EXPERIMENT(temp_sweep_family());

}  // namespace
}  // namespace tstar::experiments
