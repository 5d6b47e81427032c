// Experiment 3: alpha(t) along a clean greedy trajectory of each evolution prompt, the noisy model
// teacher-forced on it: the trend of alpha over the steps and a T(t) schedule fit, at each of
// --detail-scales.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "common.h"

namespace tstar::experiments {
namespace {

constexpr int kBootstrap = 100;
constexpr uint64_t kBootstrapSeed = 20261130;

// 95% percentile interval of beta over resamples of the seeds (NaN with one seed: nothing to
// resample). Each resample's optimum at step t is one Newton step in b = 1/T from the full sample's
// (as the cluster bootstrap does), from each seed's slope and curvature there: O(seeds) per
// resample instead of a full-vocabulary search at every step.
std::pair<double, double> beta_interval(const std::vector<stats::TemperatureObjective>& per_step,
                                        const std::vector<double>& best_T_t, double t_lo, double t_hi) {
  const size_t S = per_step.front().size();
  if (S < 2) return {std::nan(""), std::nan("")};
  std::vector<std::vector<double>> g(per_step.size(), std::vector<double>(S)), h = g;
  for (size_t t = 0; t < per_step.size(); ++t) {
    for (size_t s = 0; s < S; ++s) std::tie(g[t][s], h[t][s]) = per_step[t].slope_and_curvature(s, best_T_t[t]);
  }
  std::vector<double> betas;
  for (const auto& draw : stats::bootstrap_resamples(S, kBootstrap, kBootstrapSeed)) {
    std::vector<double> resampled_T;
    for (size_t t = 0; t < per_step.size(); ++t) {
      double sum_g = 0, sum_h = 0;
      for (size_t s : draw) sum_g += g[t][s], sum_h += h[t][s];
      const double b = 1.0 / best_T_t[t] + (sum_h > 0 ? -sum_g / sum_h : 0.0);
      resampled_T.push_back(b > 0 ? std::min(t_hi, std::max(t_lo, 1.0 / b)) : t_hi);
    }
    betas.push_back(stats::fit_schedule(resampled_T).beta);
  }
  std::sort(betas.begin(), betas.end());
  return {betas[static_cast<size_t>(0.025 * (kBootstrap - 1))], betas[static_cast<size_t>(0.975 * (kBootstrap - 1) + 0.5)]};
}

// The noisy model teacher-forced on the clean trajectory of `prompt`: one seed's logits, [steps, V].
WorkUnit teacher_forced_unit(size_t prompt, double scale, uint64_t seed) {
  return {fmt::format("evolution/prompt:{}/scale:{}/seed:{}", prompt, scale, seed),
          [prompt, scale, seed](ExperimentSuite& suite) {
            const auto& clean = suite.clean_trajectory(prompt);
            NoiseScope scope(suite.engine("all"), scale, seed);
            UnitResult out;
            out.tensors["logits"] = suite.teacher_forced_logits(clean);
            return out;
          }};
}

std::vector<WorkUnit> evolution_units(const ExperimentSuite& suite, size_t prompt, double scale) {
  std::vector<WorkUnit> units = {suite.trajectory_unit(prompt)};
  for (uint64_t seed : suite.settings().seeds) units.push_back(teacher_forced_unit(prompt, scale, seed));
  return units;
}

ExperimentResult evolution(ExperimentSuite& suite, size_t prompt, double scale) {
  const auto& settings = suite.settings();
  const UnitResult& trajectory = suite.unit(suite.trajectory_unit(prompt));
  const torch::Tensor& clean_logits = unit_tensor(trajectory, "logits");
  const torch::Tensor& token_tensor = unit_tensor(trajectory, "tokens");
  const std::vector<int64_t> tokens(token_tensor.data_ptr<int64_t>(), token_tensor.data_ptr<int64_t>() + token_tensor.numel());
  const size_t steps = tokens.size();
  std::vector<stats::TemperatureObjective> per_step(steps);  // pairs: one per seed
  for (uint64_t seed : settings.seeds) {
    const torch::Tensor& noisy = unit_tensor(suite.unit(teacher_forced_unit(prompt, scale, seed)), "logits");
    for (size_t t = 0; t < steps; ++t) {
      per_step[t].add(clean_logits[static_cast<int64_t>(t)], noisy[static_cast<int64_t>(t)]);
    }
  }
  const size_t S = settings.seeds.size();
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
    best_T_t.push_back(objective.best_temperature(settings.t_lo, settings.t_hi).T);
  }
  double alpha_mean = 0;
  for (double a : alpha_t) alpha_mean += a / static_cast<double>(steps);

  ExperimentResult result;
  result.counters["steps"] = static_cast<double>(steps);
  result.counters["alpha_mean"] = alpha_mean;
  result.counters["alpha_first"] = alpha_t.front();
  result.counters["alpha_last"] = alpha_t.back();
  result.counters["scale"] = scale;
  result.details = {{"prompt", settings.evolution_prompts[prompt]},
                    {"tokens", tokens},
                    {"text", trajectory.meta.at("text")},
                    {"stopped_at_eos", static_cast<int64_t>(steps) < settings.evolution_steps},
                    // Steps whose teacher-forced clean argmax is not the token cached decoding chose
                    // (a near tie the two computations' rounding resolves differently).
                    {"argmax_mismatches", trajectory.meta.at("argmax_mismatches")},
                    {"alpha_t", alpha_t},
                    {"best_T_t", best_T_t},
                    {"sqrt_1p_alpha_t", notebook_T_t}};
  if (steps < 3) {  // too short a continuation for a trend or a schedule
    result.details["trend"] = {{"label", "too few steps"}};
    return result;
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
  const auto [beta_lo, beta_hi] = beta_interval(per_step, best_T_t, settings.t_lo, settings.t_hi);

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
                                                               "std::mt19937_64 seed {}; each resample's per-step "
                                                               "optimum one Newton step in 1/T from the full "
                                                               "sample's; none with one seed", kBootstrap, kBootstrapSeed)},
                                {"rms_error", schedule.rms_error}, {"at_boundary", schedule.at_boundary},
                                {"vs_constant_T", {{"F", f_test.F}, {"p", f_test.p}, {"test", "F(1, steps - 2)"}}}};
  return result;
}

// The timed unit: inject -> one teacher-forced forward of prompt + trajectory -> restore.
void evolution_cycle(ExperimentSuite& suite, size_t prompt, double scale, uint64_t seed) {
  const auto& clean = suite.clean_trajectory(prompt);
  NoiseScope scope(suite.engine("all"), scale, seed);
  torch::Tensor logits = suite.teacher_forced_logits(clean);
  TSTAR_CHECK(logits.defined());
}

ExperimentFamily evolution_family() {
  ExperimentFamily family;
  family.name = "Evolution";
  family.order = 3;
  family.pattern = "Evolution/prompt:<i>/scale:<s>";
  family.description = "exp. 3: alpha(t) over 15 teacher-forced greedy steps, trend, beta fit";
  family.report_section = "evolution";
  family.instances = [](const ExperimentSuite& suite) {
    std::vector<ExperimentInstance> instances;
    const uint64_t timing_seed = suite.settings().seeds.front();
    for (double scale : suite.settings().detail_scales) {
      for (size_t prompt = 0; prompt < suite.settings().evolution_prompts.size(); ++prompt) {
        instances.push_back({fmt::format("Evolution/prompt:{}/scale:{}", prompt, format_scale(scale)), "Evolution",
                             {{"prompt", prompt}, {"scale", scale}},
                             [prompt, scale](ExperimentSuite& s) { return evolution(s, prompt, scale); },
                             [prompt, scale, timing_seed](ExperimentSuite& s) { evolution_cycle(s, prompt, scale, timing_seed); },
                             evolution_units(suite, prompt, scale)});
      }
    }
    return instances;
  };
  return family;
}

TSTAR_REGISTER_EXPERIMENT(evolution_family());

}  // namespace
}  // namespace tstar::experiments
