// Every registered experiment family as Google Benchmark fixtures. Counters are the statistics
// (computed once per process by ExperimentSuite, identical across iterations and repetitions);
// the timed loop is the instance's own unit of work.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <regex>

#include "bench_env.h"
#include "tstar/device_timer.h"
#include "tstar/provenance.h"

namespace tstar::bench {

namespace {

// Publishes the instance's counters; the loop either times cycles of its unit of work or reports
// its statistics computation's wall time. Library errors become a skipped benchmark
// with the message (Google Benchmark would otherwise terminate on the exception).
// On a CUDA device a cycle is timed by CUDA events (its restore is still queued when it returns).
void run_experiment(benchmark::State& state, ExperimentSuite& suite, const std::string& name, bool cycles,
                    torch::Device device) {
  try {
    const ExperimentResult& stats = suite.result(name);
    const double statistics_s = suite.statistics_seconds(name);
    std::unique_ptr<DeviceTimer> timer;
    if (cycles && device.is_cuda()) timer = std::make_unique<DeviceTimer>(device);
    for (auto _ : state) {
      if (cycles) {
        if (timer) timer->start();
        suite.timed_cycle(name);
        if (timer) state.SetIterationTime(timer->stop());
      } else {
        state.SetIterationTime(statistics_s);
      }
    }
    for (const auto& [key, value] : stats.counters) state.counters[key] = value;
    state.SetLabel(fmt::format("statistics {:.3g} s", statistics_s));
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
  for (const auto& name : suite.benchmark_names()) {
    for (const char* suffix : {"/real_time", "/manual_time"}) selected = selected || filter_selects(filter, name + suffix);
  }
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
  const bool cycles = env.options().time_cycles;
  const torch::Device device = env.settings().device;
  for (const ExperimentInstance& instance : suite.instances()) {
    const std::string name = instance.name;
    auto* benchmark = benchmark::RegisterBenchmark(name.c_str(), [&suite, name, cycles, device](benchmark::State& state) {
      run_experiment(state, suite, name, cycles, device);
    });
    benchmark->Unit(benchmark::kMillisecond);
    if (cycles && !device.is_cuda()) {
      benchmark->UseRealTime();
    } else {
      benchmark->UseManualTime();
    }
  }
}

}  // namespace tstar::bench
