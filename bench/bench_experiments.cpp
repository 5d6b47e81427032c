// Every registered experiment family as Google Benchmark fixtures. Counters are the statistics
// (computed once per process by ExperimentSuite, identical across iterations and repetitions);
// the timed loop is the instance's own unit of work.
#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <regex>

#include "bench_env.h"
#include "tstar/provenance.h"

namespace tstar::bench {

namespace {

// Runs the instance's timed unit in the loop and publishes its counters. Library errors become a
// skipped benchmark with the message (Google Benchmark would otherwise terminate on the exception).
void run_experiment(benchmark::State& state, ExperimentSuite& suite, const std::string& name) {
  try {
    const ExperimentResult& stats = suite.result(name);
    for (auto _ : state) suite.timed_cycle(name);
    for (const auto& [key, value] : stats.counters) state.counters[key] = value;
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Google Benchmark's filter semantics: "", "all" or "." select everything; a leading '-' negates;
// otherwise a regular-expression search in the run name.
bool filter_selects(const std::string& filter, const std::string& run_name) {
  if (filter.empty() || filter == "all" || filter == ".") return true;
  if (filter[0] == '-') return !std::regex_search(run_name, std::regex(filter.substr(1), std::regex::extended));
  return std::regex_search(run_name, std::regex(filter, std::regex::extended));
}

}  // namespace

void add_provenance_context(BenchEnv& env, const std::string& filter) {
  ExperimentSuite& suite = env.experiments();
  bool selected = false;
  for (const auto& name : suite.benchmark_names()) selected = selected || filter_selects(filter, name + "/real_time");
  // The experiments' provenance loads their model and tokenizer: only when one of them will run.
  const nlohmann::json provenance = selected ? suite.provenance() : runtime_provenance();
  for (const auto& [key, value] : provenance.items()) {
    benchmark::AddCustomContext("tstar_" + key, value.is_string() ? value.get<std::string>() : value.dump());
  }
}

ExperimentSuite& BenchEnv::experiments() {
  if (!suite_) suite_ = std::make_unique<ExperimentSuite>(settings_);
  return *suite_;
}

void register_experiment_benchmarks(BenchEnv& env) {
  ExperimentSuite& suite = env.experiments();
  for (const ExperimentInstance& instance : suite.instances()) {
    const std::string name = instance.name;
    benchmark::RegisterBenchmark(name.c_str(), [&suite, name](benchmark::State& state) { run_experiment(state, suite, name); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

}  // namespace tstar::bench
