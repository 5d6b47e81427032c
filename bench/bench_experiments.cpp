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
// A shard only times cycles: tstar merge computes the statistics from every shard's units.
void run_experiment(benchmark::State& state, ExperimentSuite& suite, const std::string& name, bool cycles,
                    bool sharded, torch::Device device) {
  try {
    std::unique_ptr<DeviceTimer> timer;
    if ((cycles || sharded) && device.is_cuda()) timer = std::make_unique<DeviceTimer>(device);
    if (sharded) {
      for (auto _ : state) {
        if (timer) timer->start();
        suite.timed_cycle(name);
        if (timer) state.SetIterationTime(timer->stop());
      }
      return;
    }
    const ExperimentResult& stats = suite.result(name);
    const double statistics_s = suite.statistics_seconds(name);
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

}  // namespace

bool filter_selects(const std::string& filter, const std::string& run_name) {
  if (filter.empty() || filter == "all" || filter == ".") return true;
  if (filter[0] == '-') return !std::regex_search(run_name, std::regex(filter.substr(1), std::regex::extended));
  return std::regex_search(run_name, std::regex(filter, std::regex::extended));
}

bool filter_selects_benchmark(const std::string& filter, const std::string& name) {
  bool selected = false;
  for (const char* suffix : {"", "/real_time", "/manual_time"}) selected = selected || filter_selects(filter, name + suffix);
  return selected;
}

void add_provenance_context(BenchEnv& env, const std::string& filter) {
  ExperimentSuite& suite = env.experiments();
  bool selected = false;
  for (const auto& name : suite.benchmark_names()) selected = selected || filter_selects_benchmark(filter, name);
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

benchmark::internal::Benchmark* BenchEnv::add_benchmark(const std::string& name,
                                                        std::function<void(benchmark::State&)> run) {
  benchmark_names_.push_back(name);
  return benchmark::RegisterBenchmark(name.c_str(), std::move(run));
}

std::vector<std::string> selected_instances(BenchEnv& env, const std::string& filter) {
  std::vector<std::string> names;
  for (const auto& name : env.experiments().benchmark_names()) {
    if (filter_selects_benchmark(filter, name)) names.push_back(name);
  }
  return names;
}

void register_experiment_benchmarks(BenchEnv& env) {
  ExperimentSuite& suite = env.experiments();
  const bool cycles = env.options().time_cycles;
  const torch::Device device = env.settings().device;
  for (const ExperimentInstance& instance : suite.instances()) {
    const std::string name = instance.name;
    auto* benchmark = env.add_benchmark(name, [&env, &suite, name, cycles, device](benchmark::State& state) {
      run_experiment(state, suite, name, cycles, env.sharded(), device);
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
