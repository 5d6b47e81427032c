// Process-wide state of the `bench` binary, created by bench_main.cpp and handed to each
// family's registration function (no globals). Models are built or loaded once per process.
#pragma once

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "experiments.h"
#include "model.h"

namespace tstar::bench {

// tstar's own bench flags, as given (strings; parsed where used so errors name the flag).
struct BenchOptions {
  std::string model;                      // directory or preset; "" = the embedded default model
  std::string tokenizer;                  // "" = the model directory's tokenizer.json
  std::vector<std::string> presets = {"tiny", "qwen2.5-0.5b"};  // shape presets for throughput families
  std::string dtype = "bf16";
  std::string logits_dtype;               // fp32|model ("" = the experiments' default, fp32)
  std::string device = "cpu";
  std::string results_dir = "results/runs";
  std::string prompts;                    // JSON file: array of prompt strings
  std::string evolution_prompts;          // JSON file: array of prompt strings
  std::string seeds;                      // number of seeds (0..N-1)
  std::string scales;                     // comma-separated, WeightNoise
  std::string detail_scales;              // comma-separated, Layer/Evolution/TempSweep
  std::string noise;                      // gaussian|uniform|laplace|multiplicative
  std::string reference;                  // tensor_std|row_std|abs_max
  std::string exclusion;                  // notebook|all-norms
  std::string depth_groups;               // notebook|thirds
};

class BenchEnv {
 public:
  explicit BenchEnv(BenchOptions options) : options_(std::move(options)) {}
  const BenchOptions& options() const { return options_; }
  // A model by directory or preset name, built once and shared by every benchmark that asks.
  Model& model(const std::string& dir_or_preset, torch::ScalarType dtype);
  // The experiment suite for --model and the experiment flags (created on first call).
  ExperimentSuite& experiments();
  bool has_experiments() const { return suite_ != nullptr; }

 private:
  BenchOptions options_;
  std::unique_ptr<ExperimentSuite> suite_;
  std::map<std::pair<std::string, int>, std::unique_ptr<Model>> models_;
};

// Each benchmark family registers itself through one of these (called by bench_main.cpp).
void register_forward_benchmarks(BenchEnv& env);
void register_noise_benchmarks(BenchEnv& env);
void register_synthetic_benchmarks(BenchEnv& env);  // bench_synthetic.cpp: no model
void register_experiment_benchmarks(BenchEnv& env);  // bench_experiments.cpp: the notebook's four
// Records provenance in the JSON context: the machine, compute profile and versions always, and the
// experiments' (model, tokenizer, settings) when `filter` selects one of them (loading the model and
// tokenizer); call after benchmark::Initialize, before running.
void add_provenance_context(BenchEnv& env, const std::string& filter);

// "a,b,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_commas(const std::string& s);

}  // namespace tstar::bench
