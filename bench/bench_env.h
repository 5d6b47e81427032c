// Process-wide state of the `bench` binary, created by bench_main.cpp and handed to each
// family's registration function (no globals). Models are built or loaded once per process.
#pragma once

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tstar/experiments.h"
#include "tstar/model.h"
#include "tstar/shards.h"

namespace tstar::bench {

// tstar's own bench flags, as given. The experiment settings are the library's table
// (setting_flags()); bench adds its own few (bench_main.cpp's table).
struct BenchOptions {
  std::map<std::string, std::string> settings;  // experiment setting flag name -> value
  std::vector<std::string> presets = {"tiny", "qwen2.5-0.5b"};  // shape presets for throughput families
  std::string results_dir = "results/runs";
  bool list_families = false;
  // What an experiment benchmark times: false, the wall time of its statistics computation (the
  // protocol cost; nothing runs again); true, cycles of its unit of work.
  bool time_cycles = false;
  std::string shard;    // --shard K/N as given ("" = none)
  std::string run_dir;  // --run-dir: this run's directory exactly (resume: rerun with the same one)
  bool quiet = false;   // --quiet: no progress on stderr
};

class BenchEnv {
 public:
  // Parses the settings now, so a bad flag is reported before any benchmark is registered.
  explicit BenchEnv(BenchOptions options)
      : options_(std::move(options)), settings_(settings_from_flags(options_.settings)) {}
  const BenchOptions& options() const { return options_; }
  const ExperimentSettings& settings() const { return settings_; }
  // A model by directory or preset name, built once and shared by every benchmark that asks.
  Model& model(const std::string& dir_or_preset, torch::ScalarType dtype);
  // The experiment suite for --model and the experiment flags (created on first call).
  ExperimentSuite& experiments();
  bool has_experiments() const { return suite_ != nullptr; }
  // Every benchmark registers through here, so that a shard knows every name (in registration order).
  benchmark::internal::Benchmark* add_benchmark(const std::string& name, std::function<void(benchmark::State&)> run);
  const std::vector<std::string>& benchmark_names() const { return benchmark_names_; }
  // In a shard, experiment benchmarks only time their cycles: their statistics need every shard's
  // units (tstar merge).
  bool sharded() const { return sharded_; }
  void set_sharded() { sharded_ = true; }

 private:
  BenchOptions options_;
  ExperimentSettings settings_;
  std::unique_ptr<ExperimentSuite> suite_;
  std::map<std::pair<std::string, int>, std::unique_ptr<Model>> models_;
  std::vector<std::string> benchmark_names_;
  bool sharded_ = false;
};

// Each benchmark family registers itself through one of these (called by bench_main.cpp).
void register_forward_benchmarks(BenchEnv& env);
void register_noise_benchmarks(BenchEnv& env);
void register_synthetic_benchmarks(BenchEnv& env);  // bench_synthetic.cpp: no model
void register_stats_benchmarks(BenchEnv& env);      // bench_stats.cpp: no model, the statistics' loops
void register_experiment_benchmarks(BenchEnv& env);  // bench_experiments.cpp: every registered family
void register_tokenizer_benchmarks(BenchEnv& env);   // bench_tokenizer.cpp
// Records provenance in the JSON context: the machine, compute profile and versions always, and the
// experiments' (model, tokenizer, settings) when `filter` selects one of them (loading the model and
// tokenizer); call after benchmark::Initialize, before running.
void add_provenance_context(BenchEnv& env, const std::string& filter);
// Google Benchmark's filter semantics: "", "all" or "." select everything; a leading '-' negates;
// otherwise a regular-expression search in the run name.
bool filter_selects(const std::string& filter, const std::string& run_name);
// Whether `filter` selects a benchmark registered as `name` (with or without its time suffix).
bool filter_selects_benchmark(const std::string& filter, const std::string& name);
// The experiment instances `filter` selects, in listing order.
std::vector<std::string> selected_instances(BenchEnv& env, const std::string& filter);
// bench_shard.cpp: this process as shard `shard` of a run (--shard K/N, or a Slurm array task):
// computes its block of the units into <run_dir>/units (reusing those already there), runs the
// benchmarks it owns (Google Benchmark's JSON to `partial_json`, renamed to benchmark.json when
// complete), then writes <run_dir>/shard.json, what tstar merge reads. Returns the exit status.
int run_shard(BenchEnv& env, const shards::ShardSpec& shard, const std::filesystem::path& run_dir, int repetitions,
              const std::string& filter, const std::filesystem::path& partial_json);
// Progress of a one-process run over the units of the instances `filter` selects (stderr).
void show_unit_progress(BenchEnv& env, const std::string& filter);

}  // namespace tstar::bench
