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

#include "model.h"

namespace tstar::bench {

struct BenchOptions {
  std::string model = "";                 // directory or preset; "" = the embedded default model
  std::vector<std::string> presets = {"tiny", "qwen2.5-0.5b"};  // shape presets for throughput families
  std::string dtype = "bf16";
  std::string device = "cpu";
  std::string results_dir = "results/runs";
};

class BenchEnv {
 public:
  explicit BenchEnv(BenchOptions options) : options_(std::move(options)) {}
  const BenchOptions& options() const { return options_; }
  // A model by directory or preset name, built once and shared by every benchmark that asks.
  Model& model(const std::string& dir_or_preset, torch::ScalarType dtype);

 private:
  BenchOptions options_;
  std::map<std::pair<std::string, int>, std::unique_ptr<Model>> models_;
};

// Each benchmark family registers itself through one of these (called by bench_main.cpp).
void register_forward_benchmarks(BenchEnv& env);
void register_synthetic_benchmarks(BenchEnv& env);  // bench_synthetic.cpp: no model

}  // namespace tstar::bench
