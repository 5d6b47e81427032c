// The experiment suite: the shared computations every experiment family reads (clean and noisy
// logits of the prompts, clean greedy trajectories, the noise engines), and the registry of
// families (one file each under src/experiments/). Every result is a pure function of (model,
// prompts, seeds, scales, noise settings): it is computed once per process on first request and
// cached, so counters are the same bits whatever benchmark asks, how often, and whether it runs
// alone or in the full suite.
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tstar/model.h"
#include "tstar/noise.h"
#include "tstar/stats.h"
#include "tstar/tokenizer.h"

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
  NoiseType noise;  // gaussian, additive
  ScaleReference reference = ScaleReference::kTensorStd;
  std::vector<std::string> exclude = default_excludes();  // exclusion_convention("notebook")
  std::string exclusion = "notebook";                     // the convention's name, for provenance
  DepthGroups depth_groups = DepthGroups::kNotebook;
  double t_lo = 0.5, t_hi = 3.0;  // bounds of the best-T search

  void validate() const;  // throws tstar::Error on empty seeds/prompts, bad scales, ...
  std::string reference_name() const;
  // --tokenizer as given (a tokenizer.json or its directory), else the model directory's
  // tokenizer.json; throws tstar::Error naming --tokenizer when there is none.
  std::filesystem::path tokenizer_path() const;  // the scale reference, or "none ..." where the noise takes none
  nlohmann::json to_json() const;
};

// The settings a command line may give, one row each: the one place a flag's name, help and
// parsing live (bench builds its flags and --help from this table).
struct SettingFlag {
  std::string name;     // without the leading "--"
  std::string metavar;  // e.g. "N", "A,B,..."
  std::string help;     // lines after the first are indented under it
  // Parses `value` into the settings; throws tstar::Error naming the flag.
  std::function<void(const std::string& value, ExperimentSettings& settings)> apply;
};
const std::vector<SettingFlag>& setting_flags();
// Default settings with `given` (flag name -> value) applied in the table's order.
ExperimentSettings settings_from_flags(const std::map<std::string, std::string>& given);

// A benchmark's statistics: scalar counters plus what counters cannot hold (per-prompt values,
// curves, series), which goes to results.json.
struct ExperimentResult {
  std::string name;
  std::map<std::string, double> counters;
  nlohmann::json details = nlohmann::json::object();
};

class ExperimentSuite;

// The raw result of one unit of the experiments' work (docs/design.md, "Work units"): exactly the
// numbers the aggregates read (tensors, bit for bit: fp32 logits, double scalars, token ids) plus
// names and text in `meta`. A unit's result depends on nothing but the settings, the model and its
// id, so any process computes the same bits, and aggregates over units (means over seeds,
// intervals, pooled predictors, bootstrap) read them the same way whether they were computed in
// this process or loaded from a shard's unit file.
struct UnitResult {
  std::map<std::string, torch::Tensor> tensors;
  nlohmann::json meta = nlohmann::json::object();
  double seconds = 0;  // wall time of its computation (timing only, never a statistic)
};

// One unit of work with a stable id ("noisy/all/scale:0.02/seed:1"): the same id always names the
// same computation, so a family's instances may share units (deduplicated by id).
struct WorkUnit {
  std::string id;
  std::function<UnitResult(ExperimentSuite&)> compute;
};

// One benchmark of a family: its name as --benchmark_filter sees it (without Google Benchmark's
// /real_time suffix), its parameters, its statistics and its timed unit of work.
struct ExperimentInstance {
  std::string name;               // e.g. "Layer/mlp/scale:0.02"
  std::string family;             // e.g. "Layer"
  nlohmann::json parameters;      // e.g. {"group": "mlp", "scale": 0.02}: results.json's "instance"
  std::function<ExperimentResult(ExperimentSuite&)> compute;
  std::function<void(ExperimentSuite&)> timed_cycle;
  std::vector<WorkUnit> units;    // what `compute` reads through ExperimentSuite::unit()
};

// An experiment family. Each registers itself (TSTAR_REGISTER_EXPERIMENT in its own file); the
// bench registration, --help, `bench --list-families`, results.json's "families" and the CI
// scripts' family selection all come from the registry.
struct ExperimentFamily {
  std::string name;            // e.g. "Layer"
  int order = 0;               // position in listings (the notebook's experiment number)
  std::string pattern;         // e.g. "Layer/<group>/scale:<s>"
  std::string description;     // one line for --help
  std::string report_section;  // ci/report's section module for this family
  std::function<std::vector<ExperimentInstance>(const ExperimentSuite&)> instances;  // from the settings
};

// Every registered family, in `order`.
std::vector<const ExperimentFamily*> experiment_families();
bool register_experiment_family(ExperimentFamily family);

#define TSTAR_REGISTER_EXPERIMENT_CONCAT2(a, b) a##b
#define TSTAR_REGISTER_EXPERIMENT_CONCAT(a, b) TSTAR_REGISTER_EXPERIMENT_CONCAT2(a, b)
// At namespace scope in a family's file: TSTAR_REGISTER_EXPERIMENT(make_family());
#define TSTAR_REGISTER_EXPERIMENT(family_expression)                                            \
  [[maybe_unused]] static const bool TSTAR_REGISTER_EXPERIMENT_CONCAT(tstar_experiment_registered_, \
                                                                      __LINE__) =                \
      ::tstar::register_experiment_family(family_expression)

// How every family formats a scale in its names ("0.02", "0").
std::string format_scale(double scale);

// One prompt (its index in the settings' prompts), or every prompt (std::nullopt).
using PromptSelection = std::optional<size_t>;

class ExperimentSuite {
 public:
  // `compute_units` false: a suite that aggregates units loaded with add_unit() (tstar merge) and
  // never opens the model; asking it for a unit it was not given throws.
  explicit ExperimentSuite(ExperimentSettings settings, bool compute_units = true);
  const ExperimentSettings& settings() const { return settings_; }
  const ModelConfig& config() const { return config_; }
  std::vector<std::string> groups() const;  // the noise engine's groups for this model

  // Every instance of every registered family for these settings, in listing order.
  const std::vector<ExperimentInstance>& instances() const { return instances_; }
  std::vector<std::string> benchmark_names() const;
  // An instance's statistics (computed on first request, then cached); throws tstar::Error on an
  // unknown name.
  const ExperimentResult& result(const std::string& name);
  // One timed unit of an instance's work.
  void timed_cycle(const std::string& name);

  // ---- Work units ----
  // The units the named instances read, each once, in instance order then declaration order: the
  // stable list that shards split.
  std::vector<WorkUnit> units_of(const std::vector<std::string>& instance_names) const;
  // A unit's result: the stored one, else computed now and stored (throws tstar::Error in a suite
  // that does not compute units).
  const UnitResult& unit(const WorkUnit& unit);
  // Computes a unit without storing it (a shard writes it to its file and moves on).
  UnitResult compute_unit(const WorkUnit& unit);
  // A result computed elsewhere (a unit file); its `seconds` count toward the statistics time of
  // the first instance that reads it.
  void add_unit(const std::string& id, UnitResult result);
  // Called before (finished false) and after (true, with its wall time) each unit this suite
  // computes: progress.
  void on_unit_computed(std::function<void(const std::string& id, double seconds, bool finished)> observer) {
    unit_observer_ = std::move(observer);
  }
  // The shared units the families declare. `prompt`: that prompt alone (a batch of one, as the
  // notebook's Layer experiment runs it), or every prompt in settings().batch_size batches.
  WorkUnit clean_unit(PromptSelection prompt = std::nullopt) const;  // clean
  WorkUnit noisy_unit(const std::string& group, double scale, uint64_t seed,
                      PromptSelection prompt = std::nullopt) const;  // noised
  WorkUnit trajectory_unit(size_t prompt) const;                        // a clean greedy run
  // Wall time of an instance's statistics computation (its protocol cost, on first request: work
  // another instance already did, e.g. shared noisy logits, is not counted again); 0 before.
  double statistics_seconds(const std::string& name) const;

  // Everything computed so far plus provenance; the live weights' digest is recomputed here.
  nlohmann::json results_json();
  // The same from given provenance and weight digests (tstar merge: the shards' own).
  nlohmann::json results_json(nlohmann::json provenance, const std::string& digest_before,
                              const std::string& digest_after) const;
  // What every process that computes units of these settings must share, compared by tstar merge
  // (settings, model and its weights' digest, tokenizer, prompts, tstar commit, compute profile).
  nlohmann::json unit_identity();
  bool has_results() const { return !results_.empty(); }
  nlohmann::json provenance();

  // ---- What the units are computed from (each cached; a merge suite never opens the model) ----
  struct Logits {
    torch::Tensor statistics;   // [selected prompts, V] fp32, in settings().logits precision
    torch::Tensor model_dtype;  // [selected prompts, V] fp32, what the model-dtype head gives (HF's logits)
    torch::Tensor pre_softcap;  // [selected prompts, V] fp32, `statistics` before final soft-capping; undefined without it
  };
  struct Trajectory {  // a clean greedy continuation (cached decode, model-dtype head) and its teacher-forced clean logits
    std::vector<int64_t> prompt_ids;
    std::vector<int64_t> tokens;  // [steps]
    torch::Tensor logits;         // [steps, V] fp32, teacher_forced_logits() of the clean weights
    int64_t argmax_mismatches = 0;  // steps where argmax(logits) is not the token decoding chose
  };
  Model& model();
  const Tokenizer& tokenizer();  // loaded and prompts encoded on first use
  const std::vector<std::vector<int64_t>>& prompt_ids();
  const std::vector<int64_t>& answer_ids();  // first token of " " + answer per prompt, -1 where none
  NoiseEngine& engine(const std::string& group);
  const Logits& clean_logits(PromptSelection prompt = std::nullopt);
  const Trajectory& clean_trajectory(size_t prompt);
  // [steps, V] under the live weights: the prompt and the trajectory in one forward (step t's input is
  // known), or step by step through the KV cache where the logits depend on the forward's length.
  torch::Tensor teacher_forced_logits(const Trajectory& clean);
  // inject -> batched forward of the selected prompts -> restore (the scope restores also on a throw).
  void forward_cycle(const std::string& group, double scale, uint64_t seed, PromptSelection prompt = std::nullopt);

 private:
  // The selected prompts' last logits; `noised`: the engine whose noise is live (nullptr: the clean pass).
  Logits forward_prompts(PromptSelection prompt, const NoiseEngine* noised = nullptr);
  std::vector<std::vector<int64_t>> selected_prompt_ids(PromptSelection prompt);
  bool layer_inputs_fit(PromptSelection prompt);  // whether the clean pass may record every layer's input
  const ExperimentInstance& instance(const std::string& name) const;

  ExperimentSettings settings_;
  ModelConfig config_;
  std::vector<ExperimentInstance> instances_;
  std::unique_ptr<Model> model_;
  std::optional<Tokenizer> tokenizer_;
  std::vector<std::vector<int64_t>> prompt_ids_;
  std::vector<int64_t> answer_ids_;
  std::string clean_digest_;
  std::optional<nlohmann::json> model_provenance_;
  // One engine at a time; the clean copies (at most one of each noised parameter) are shared.
  std::string engine_group_;
  std::shared_ptr<CleanStore> clean_store_;
  std::unique_ptr<NoiseEngine> engine_;
  std::map<PromptSelection, Logits> clean_logits_;
  // Per selection, per batch of its clean pass, when recorded.
  std::map<PromptSelection, std::vector<Model::LayerInputs>> clean_layer_inputs_;
  std::map<size_t, Trajectory> trajectories_;
  std::map<std::string, ExperimentResult> results_;
  std::map<std::string, double> statistics_seconds_;
  bool compute_units_ = true;
  std::map<std::string, UnitResult> units_;
  std::map<std::string, double> loaded_unit_seconds_;  // added units whose time is not yet attributed
  std::function<void(const std::string&, double, bool)> unit_observer_;
};

}  // namespace tstar
