// What the experiment families share: the temperature report's counters, the prompt-level
// statistics and bootstrap of the seeds x prompts grid, and that grid's objective.
#pragma once

#include <string>
#include <vector>

#include "tstar/error.h"
#include "tstar/experiments.h"
#include "tstar/stats.h"

namespace tstar::experiments {

double half_width(const stats::Interval& interval);  // 0 where the interval is undefined
double top1_rate(const std::vector<stats::LogitNoise>& noise);
// The report's scalars as counters; each predictor's formula, value and error also as JSON.
void add_temperature_counters(const stats::TemperatureReport& report, ExperimentResult& result);
// Over the seeds x prompts grid (pairs seed-major): a cluster bootstrap of best T, alpha, the KL
// reduction and each predictor's error; each prompt's own best T; with answers, P(answer) and accuracy.
void add_prompt_statistics(ExperimentSuite& suite, const stats::TemperatureObjective& objective,
                           const stats::TemperatureReport& report, ExperimentResult& result);
// Every (seed, prompt) pair with the whole model noised at `scale`, seed-major: index = s * P + p.
stats::TemperatureObjective all_pairs_objective(ExperimentSuite& suite, double scale);

// ---- Reading units ----
// A unit's tensor (throws tstar::Error naming the unit and tensor when absent).
const torch::Tensor& unit_tensor(const UnitResult& unit, const std::string& name);
double unit_double(const UnitResult& unit, const std::string& name, int64_t index);
int64_t unit_int(const UnitResult& unit, const std::string& name, int64_t index);
// The clean unit and one noisy unit per seed of `group` at `scale`: what an instance over seeds reads.
std::vector<WorkUnit> seed_units(const ExperimentSuite& suite, const std::string& group, double scale,
                                 PromptSelection prompt = std::nullopt);
const torch::Tensor& clean_statistics(ExperimentSuite& suite, PromptSelection prompt = std::nullopt);  // [P or 1, V]

}  // namespace tstar::experiments
