// `Stats/<loop>/V:151936/pairs:4`: the statistics' vocabulary loops on their own, on synthetic
// Qwen2-wide logits (one WeightNoise scale with 1 seed has 4 pairs): the exact temperature search
// (Newton on the mean KL's slope), the mean KL over the notebook's 35-point grid, and adding the
// pairs (softmax and the per-pair statistics). TSTAR_CPU_ISA=portable|avx2|avx512 forces a kernel
// path; every path gives the same bits, so the counters are the same on each.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench_env.h"
#include "tstar/stats.h"
#include "tstar/synthetic_logits.h"

namespace tstar::bench {
namespace {

constexpr int64_t kVocab = 151936;
constexpr int kPairs = 4;

stats::SyntheticSpec stats_spec() {
  stats::SyntheticSpec spec;
  spec.vocab = kVocab;
  spec.logit_std = 2.0;
  spec.noise_std = 0.6;
  spec.draws = kPairs;
  spec.seed = 2025;
  return spec;
}

struct StatsInputs {
  std::vector<stats::LogitPair> pairs;
  stats::TemperatureObjective objective;
};

// Built once per process, outside the timed loops.
const StatsInputs& inputs(std::shared_ptr<std::optional<StatsInputs>>& cache) {
  if (!cache->has_value()) {
    StatsInputs built;
    built.pairs = stats::gaussian_logit_pairs(stats_spec());
    for (const auto& pair : built.pairs) built.objective.add(pair.clean, pair.noisy);
    *cache = std::move(built);
  }
  return **cache;
}

void set_items(benchmark::State& state, int64_t evaluations_per_iteration) {
  state.SetItemsProcessed(state.iterations() * evaluations_per_iteration * kPairs * kVocab);
}

}  // namespace

void register_stats_benchmarks(BenchEnv& env) {
  auto cache = std::make_shared<std::optional<StatsInputs>>();
  const std::string suffix = fmt::format("V:{}/pairs:{}", kVocab, kPairs);
  env.add_benchmark("Stats/best_temperature/" + suffix, [cache](benchmark::State& state) mutable {
    const StatsInputs& in = inputs(cache);
    stats::TempSearch search;
    for (auto _ : state) benchmark::DoNotOptimize(search = in.objective.best_temperature(0.5, 3.0));
    state.counters["best_T"] = search.T;
    state.counters["slope_evaluations"] = search.evaluations;
    set_items(state, search.evaluations);
  })->Unit(benchmark::kMillisecond);
  env.add_benchmark("Stats/mean_kl_grid/" + suffix, [cache](benchmark::State& state) mutable {
    const StatsInputs& in = inputs(cache);
    const std::vector<double> grid = stats::notebook_temperature_grid();
    auto mean_kl = [&](double T) { return in.objective.mean_kl(T); };
    stats::GridScan scan;
    for (auto _ : state) benchmark::DoNotOptimize(scan = stats::scan_grid(mean_kl, grid));
    state.counters["grid_best_T"] = scan.points[scan.best_index];
    state.counters["kl_grid_best"] = scan.values[scan.best_index];
    set_items(state, static_cast<int64_t>(grid.size()));
  })->Unit(benchmark::kMillisecond);
  env.add_benchmark("Stats/add_pairs/" + suffix, [cache](benchmark::State& state) mutable {
    const StatsInputs& in = inputs(cache);
    for (auto _ : state) {
      stats::TemperatureObjective objective;
      for (const auto& pair : in.pairs) objective.add(pair.clean, pair.noisy);
      benchmark::DoNotOptimize(objective.noise().back().noisy_var_q);
    }
    set_items(state, 1);
  })->Unit(benchmark::kMillisecond);
}

}  // namespace tstar::bench
