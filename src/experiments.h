// The notebook's four experiments (REFERENCE §1) as reusable computations. Every result is a pure
// function of (model, prompts, seeds, scales, noise settings): it is computed once per process on
// first request and cached, so counters are the same bits whatever benchmark asks, how often, and
// whether it runs alone or in the full suite.
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model.h"
#include "noise.h"
#include "stats.h"
#include "tokenizer.h"

namespace tstar {

std::vector<std::string> notebook_prompts();            // experiments 1, 2, 4
std::vector<std::string> notebook_evolution_prompts();  // experiment 3
std::vector<double> notebook_scales();                  // 0, 0.001, ..., 0.05

// A prompt file: a JSON array of strings or of {"prompt": ..., "answer": ...} objects (answer
// optional), or JSON Lines of either. Throws tstar::Error naming the file and line.
struct PromptSet {
  std::vector<std::string> prompts;
  std::vector<std::string> answers;  // one per prompt, "" where none is given
};
PromptSet read_prompt_set(const std::filesystem::path& path);

struct ExperimentSettings {
  std::string model;      // directory or preset
  std::string tokenizer;  // tokenizer.json or its directory; "" = the model directory's
  torch::ScalarType dtype = torch::kBFloat16;  // the notebook ran bf16
  LogitsDtype logits = LogitsDtype::kFloat32;  // statistics on fp32 logits; model-dtype alpha reported beside
  torch::Device device = torch::kCPU;
  std::vector<std::string> prompts = notebook_prompts();
  // Expected answers, one per prompt or none: with them P(correct) is the probability of the
  // answer's first token (after a space) and accuracy is measured, instead of the clean argmax.
  std::vector<std::string> answers;
  size_t batch_size = 64;  // prompts per forward pass (clean and noisy batched alike)
  std::vector<std::string> evolution_prompts = notebook_evolution_prompts();
  int64_t evolution_steps = 15;
  size_t layer_prompt = 0;                     // the notebook's layer study uses prompt 1 only
  std::vector<uint64_t> seeds = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<double> scales = notebook_scales();  // WeightNoise
  std::vector<double> detail_scales = {0.01};      // Layer, Evolution, TempSweep
  NoiseType noise = NoiseType::kGaussian;
  ScaleReference reference = ScaleReference::kTensorStd;
  std::vector<std::string> exclude = default_excludes();  // exclusion_convention("notebook")
  std::string exclusion = "notebook";                     // the convention's name, for provenance
  DepthGroups depth_groups = DepthGroups::kNotebook;
  double t_lo = 0.5, t_hi = 3.0;  // bounds of the best-T search

  void validate() const;  // throws tstar::Error on empty seeds/prompts, bad scales, ...
  nlohmann::json to_json() const;
};

// A benchmark's statistics: scalar counters plus what counters cannot hold (per-prompt values,
// curves, series), which goes to results.json.
struct ExperimentResult {
  std::string name;
  std::map<std::string, double> counters;
  nlohmann::json details;
};

class ExperimentSuite {
 public:
  explicit ExperimentSuite(ExperimentSettings settings);
  const ExperimentSettings& settings() const { return settings_; }
  const ModelConfig& config() const { return config_; }
  std::vector<std::string> benchmark_names() const;  // every experiment this suite can run
  std::vector<std::string> groups() const;  // the noise engine's groups for this model

  // Names as --benchmark_filter sees them (without Google Benchmark's /real_time suffix).
  static std::string weight_noise_name(double scale);
  static std::string layer_name(const std::string& group, double scale);
  static std::string evolution_name(size_t prompt, double scale);
  static std::string temp_sweep_name(double scale);

  const ExperimentResult& weight_noise(double scale);
  const ExperimentResult& layer(const std::string& group, double scale);
  const ExperimentResult& evolution(size_t prompt, double scale);
  const ExperimentResult& temp_sweep(double scale);

  // The timed unit of WeightNoise/Layer/TempSweep: inject -> batched forward of every prompt ->
  // restore (the scope restores also when the forward throws).
  void timed_cycle(const std::string& group, double scale, uint64_t seed);
  // The timed unit of Evolution: inject -> prefill + teacher-forced cached decode -> restore.
  void timed_evolution_cycle(size_t prompt, double scale, uint64_t seed);

  // Everything computed so far plus provenance; the live weights' digest is recomputed here.
  nlohmann::json results_json();
  bool has_results() const { return !results_.empty(); }
  nlohmann::json provenance();

 private:
  struct Trajectory {  // a clean greedy continuation and the logits that chose it
    std::vector<int64_t> prompt_ids;
    std::vector<int64_t> tokens;  // [steps]
    torch::Tensor logits;         // [steps, V] fp32
  };
  Model& model();
  const Tokenizer& tokenizer();                            // loaded and prompts encoded on first use
  const std::vector<std::vector<int64_t>>& prompt_ids();
  NoiseEngine& engine(const std::string& group);
  struct Logits {
    torch::Tensor statistics;   // [P, V] fp32, in settings_.logits precision
    torch::Tensor model_dtype;  // [P, V] fp32, what the model-dtype head gives (HF's logits)
  };
  Logits forward_prompts();
  const Logits& clean_logits();
  const Logits& noisy_logits(const std::string& group, double scale, uint64_t seed);
  const Trajectory& clean_trajectory(size_t prompt);
  torch::Tensor teacher_forced_logits(const Trajectory& clean) const;  // [steps, V]
  const ExperimentResult& remember(ExperimentResult result);
  void add_prompt_statistics(const stats::TemperatureObjective& objective, const stats::TemperatureReport& report,
                             size_t seeds, size_t prompts, ExperimentResult& result);

  ExperimentSettings settings_;
  ModelConfig config_;
  std::unique_ptr<Model> model_;
  std::optional<Tokenizer> tokenizer_;
  std::vector<std::vector<int64_t>> prompt_ids_;
  std::vector<int64_t> answer_ids_;  // first token of " " + answer per prompt, -1 where none
  std::string clean_digest_;
  std::string engine_group_;  // one engine (with its clean copies) at a time bounds memory
  std::unique_ptr<NoiseEngine> engine_;
  std::optional<Logits> clean_logits_;
  std::map<std::string, Logits> noisy_logits_;
  std::map<size_t, Trajectory> trajectories_;
  std::map<std::string, ExperimentResult> results_;
  std::map<std::string, InjectionReport> injection_reports_;  // by "group/scale/seed"
};

}  // namespace tstar
