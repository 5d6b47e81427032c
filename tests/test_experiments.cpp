// The experiments: statistics are pure functions of their inputs (order of computation, filters,
// repetitions and iteration counts change nothing), noise never outlives them, and every family
// runs end to end through `bench` on the tiny HF fixture model.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "tstar/error.h"
#include "tstar/experiments.h"
#include "tstar/provenance.h"
#include "tool_runner.h"

namespace tstar {
namespace {

namespace fs = std::filesystem;
const std::string kModel = "fixtures/models/qwen2-tiny";

ExperimentSettings small_settings() {
  ExperimentSettings s;
  s.model = kModel;
  s.dtype = torch::kFloat;
  s.seeds = {0, 1, 2};
  s.scales = {0, 0.01, 0.05};
  s.detail_scales = {0.02};
  s.evolution_steps = 6;
  return s;
}

TEST(Experiments, ScaleZeroIsExactlyClean) {
  ExperimentSuite suite(small_settings());
  const auto& r = suite.result("WeightNoise/scale:0").counters;
  EXPECT_EQ(r.at("alpha"), 0.0);
  EXPECT_EQ(r.at("kl_T1"), 0.0);
  EXPECT_EQ(r.at("top1_match"), 1.0);
  EXPECT_EQ(r.at("changed_fraction"), 0.0);
  EXPECT_EQ(r.at("best_T"), 1.0);  // exactly: T = 1 is always a candidate and the slope there is 0
  EXPECT_EQ(r.at("best_T_resolution"), 0.0);
}

// fp32 logits: for an fp32 model the fp32 head is the model's own, bit for bit; for bf16 weights the
// model-dtype (bf16) logits carry rounding noise that the fp32 head does not, so their alpha is larger.
TEST(Experiments, Fp32LogitsAndTheModelDtypeAlpha) {
  ExperimentSuite fp32(small_settings());
  const auto& a = fp32.result("WeightNoise/scale:0.01").counters;
  EXPECT_EQ(a.at("alpha_model_logits"), a.at("alpha"));
  ExperimentSettings bf16_settings = small_settings();
  bf16_settings.dtype = torch::kBFloat16;
  ExperimentSuite bf16(bf16_settings);
  const auto& b = bf16.result("Layer/layer:0/scale:0.02").counters;
  EXPECT_GT(b.at("alpha_model_logits"), b.at("alpha"));
  bf16_settings.logits = LogitsDtype::kModel;
  ExperimentSuite model_logits(bf16_settings);
  EXPECT_EQ(model_logits.result("Layer/layer:0/scale:0.02").counters.at("alpha"), b.at("alpha_model_logits"));
  EXPECT_EQ(model_logits.settings().to_json().at("logits_dtype"), "model");
}

TEST(Experiments, PromptFilesTakeArraysObjectsAndJsonLines) {
  const fs::path dir = fs::temp_directory_path() / ("tstar_prompts_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return dir / name;
  };
  const auto strings = read_prompt_set(write("a.json", R"(["one", "two"])"));
  EXPECT_EQ(strings.prompts, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(strings.answers, (std::vector<std::string>{"", ""}));
  const auto objects = read_prompt_set(write("b.json", R"([{"prompt": "2+2=", "answer": "4"}, {"prompt": "hi"}])"));
  EXPECT_EQ(objects.answers, (std::vector<std::string>{"4", ""}));
  const auto lines = read_prompt_set(write("c.jsonl", "{\"prompt\": \"x\", \"answer\": \"1\"}\n\n\"y\"\n"));
  EXPECT_EQ(lines.prompts, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(lines.answers, (std::vector<std::string>{"1", ""}));
  for (const auto& [name, text, message] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"d.jsonl", "{\"prompt\": \"x\"}\n{oops\n", "line 2"},
           {"e.json", R"([{"prompt": 3}])", "item 0"},
           {"f.json", R"([{"prompt": "x", "answer": 4}])", "\"answer\" must be a string"},
           {"g.json", "[]", "holds no prompts"},
           {"h.json", R"([""])", "empty prompt"}}) {
    try {
      read_prompt_set(write(name, text));
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(read_prompt_set(dir / "missing.json"), Error);
  fs::remove_all(dir);
}

// With answers, P(answer) and accuracy use the answer's first token. Batch size is part of the
// settings (other batches, other padding and summation order), and each setting reproduces its bits.
TEST(Experiments, AnswersBatchesAndTheClusterBootstrap) {
  ExperimentSettings settings = small_settings();
  settings.prompts = {"Count: 1, 2, 3. What's the last number?", "I have 3 apples and 4 oranges. How many fruits in total?",
                      "The capital of France is"};
  settings.answers = {"3", "7", ""};
  ExperimentSuite one_batch(settings);
  const auto& a = one_batch.result("WeightNoise/scale:0.05");
  EXPECT_EQ(a.counters.at("answered_pairs"), 6.0);  // 2 answered prompts x 3 seeds
  EXPECT_GE(a.counters.at("p_answer_T1"), 0.0);
  EXPECT_LE(a.counters.at("p_answer_T1"), 1.0);
  EXPECT_GE(a.counters.at("accuracy_noisy"), 0.0);
  EXPECT_LE(a.counters.at("best_T_boot_lo"), a.counters.at("best_T"));
  EXPECT_GE(a.counters.at("best_T_boot_hi"), a.counters.at("best_T"));
  EXPECT_LE(a.counters.at("alpha_boot_lo"), a.counters.at("alpha"));
  EXPECT_GE(a.counters.at("alpha_boot_hi"), a.counters.at("alpha"));
  EXPECT_EQ(a.details.at("prompt_best_T").size(), 3u);
  EXPECT_EQ(a.details.at("bootstrap").at("resamples"), 1000);
  EXPECT_EQ(a.counters, ExperimentSuite(settings).result("WeightNoise/scale:0.05").counters) << "not reproducible";
  settings.batch_size = 1;
  ExperimentSuite batches_of_one(settings);
  const auto& b = batches_of_one.result("WeightNoise/scale:0.05");
  EXPECT_EQ(b.counters.at("answered_pairs"), 6.0);
  EXPECT_NEAR(b.counters.at("alpha"), a.counters.at("alpha"), 1e-3 * a.counters.at("alpha"));
  EXPECT_EQ(b.counters, ExperimentSuite(settings).result("WeightNoise/scale:0.05").counters) << "not reproducible";
  settings.answers = {"3"};
  EXPECT_THROW(ExperimentSuite{settings}, Error);
}

TEST(Experiments, DefaultGroupsAreTheNotebooksDepthRangesAndExclusions) {
  ExperimentSuite suite(small_settings());
  const auto groups = suite.groups();
  const int64_t layers = suite.config().num_layers;
  ASSERT_LE(layers, 8);  // the tiny model: every layer is in the notebook's "early" (0-7)
  EXPECT_NE(std::find(groups.begin(), groups.end(), "early"), groups.end());
  EXPECT_EQ(std::find(groups.begin(), groups.end(), "late"), groups.end());
  const auto& all = suite.result("Layer/all/scale:0.02").details.at("tensors");
  EXPECT_NE(std::find(all.begin(), all.end(), "model.norm.weight"), all.end());
  ExperimentSettings thirds = small_settings();
  thirds.depth_groups = DepthGroups::kThirds;
  thirds.exclude = exclusion_convention("all-norms");
  ExperimentSuite other(thirds);
  const auto& all_norms = other.result("Layer/all/scale:0.02").details.at("tensors");
  EXPECT_EQ(all_norms.size() + 1, all.size());
}

TEST(Experiments, NoiseGrowsWithScale) {
  ExperimentSuite suite(small_settings());
  const double a1 = suite.result("WeightNoise/scale:0.01").counters.at("alpha");
  const double a5 = suite.result("WeightNoise/scale:0.05").counters.at("alpha");
  EXPECT_GT(a1, 0.0);
  // Common random numbers: the same unit noise at both scales, so alpha scales ~ s^2 (x25).
  EXPECT_GT(a5 / a1, 15.0);
  EXPECT_LT(a5 / a1, 35.0);
  EXPECT_NEAR(suite.result("WeightNoise/scale:0.05").counters.at("realized_ratio"), 1.0, 0.01);  // fp32 keeps all noise
}

// Layer forwards its prompt alone, as the notebook does: the other prompts and the batch size do not
// reach its statistics, and its alpha is the single-prompt forward's.
TEST(Experiments, LayerReadsItsPromptAloneWhateverTheBatch) {
  ExperimentSettings settings = small_settings();
  settings.layer_prompt = 1;
  ExperimentSuite batched(settings);
  const auto reference = batched.result("Layer/mlp/scale:0.02").counters;

  ExperimentSettings other = settings;
  other.batch_size = 1;
  other.prompts[0] = "Something else entirely, and much longer than the layer prompt it sits beside.";
  other.prompts[3] = "Short.";
  ExperimentSuite alone(other);
  EXPECT_EQ(alone.result("Layer/mlp/scale:0.02").counters, reference);  // bit-identical doubles

  // Against the model directly: the prompt's clean and noised logits from a batch of one.
  const std::vector<std::vector<int64_t>> prompt = {batched.prompt_ids().at(1)};
  const torch::Tensor clean = batched.model().last_logits(prompt);
  NoiseEngine& engine = batched.engine("mlp");
  torch::Tensor noisy;
  {
    NoiseScope scope(engine, 0.02, settings.seeds.front());
    noisy = batched.model().last_logits(prompt);
  }
  const auto& seed_alpha = batched.result("Layer/mlp/scale:0.02").details.at("seed_alpha");
  EXPECT_EQ(seed_alpha.at(0).get<double>(), stats::measure(clean[0], noisy[0]).alpha);
}

TEST(Experiments, ResultsDoNotDependOnWhatRanBefore) {
  ExperimentSuite first(small_settings());
  const auto a = first.result("WeightNoise/scale:0.01").counters;
  const auto layer_a = first.result("Layer/mlp/scale:0.02").counters;

  ExperimentSuite second(small_settings());  // another order, other experiments first
  second.result("Evolution/prompt:1/scale:0.02");
  second.result("Layer/attention/scale:0.02");
  const auto layer_b = second.result("Layer/mlp/scale:0.02").counters;
  second.result("TempSweep/scale:0.02");
  for (int i = 0; i < 3; ++i) second.timed_cycle("WeightNoise/scale:0.01");
  const auto b = second.result("WeightNoise/scale:0.01").counters;
  EXPECT_EQ(a, b);  // bit-identical doubles
  EXPECT_EQ(layer_a, layer_b);
}

TEST(Experiments, WeightsHashAsBeforeAfterEverything) {
  ExperimentSuite suite(small_settings());
  for (const auto& name : suite.benchmark_names()) suite.result(name);
  for (const auto& name : suite.benchmark_names()) suite.timed_cycle(name);
  const auto results = suite.results_json();
  EXPECT_EQ(results.at("weights_digest_before"), results.at("weights_digest_after"));
  EXPECT_EQ(results.at("weights_digest_after").get<std::string>(), parameters_digest(Model::load(kModel).parameters()));
}

TEST(Experiments, EvolutionReportsASeriesPerStepAndALabel) {
  ExperimentSuite suite(small_settings());
  for (size_t prompt = 0; prompt < suite.settings().evolution_prompts.size(); ++prompt) {
    const auto& r = suite.result(fmt::format("Evolution/prompt:{}/scale:0.02", prompt));
    const auto steps = static_cast<size_t>(r.counters.at("steps"));
    ASSERT_LE(steps, 6u);
    EXPECT_EQ(r.details.at("alpha_t").size(), steps);
    EXPECT_EQ(r.details.at("best_T_t").size(), steps);
    // Generation stops at the end-of-sequence token and only there.
    const auto tokens = r.details.at("tokens").get<std::vector<int64_t>>();
    const int64_t eos = suite.config().eos_token_id;
    EXPECT_EQ(r.details.at("stopped_at_eos").get<bool>(), steps < 6u);
    if (steps < 6u) EXPECT_EQ(tokens.back(), eos);
    for (size_t i = 0; i + 1 < tokens.size(); ++i) EXPECT_NE(tokens[i], eos);
    if (steps < 3) continue;
    // A direction only when the seeds' slope interval excludes 0.
    const std::string label = r.details.at("trend").at("label");
    const double slope = r.counters.at("slope"), half = r.counters.at("slope_ci95");
    const bool resolved = std::abs(slope) > half;
    EXPECT_EQ(label, resolved ? (slope > 0 ? "increase" : "decrease") : "no trend resolved");
    EXPECT_GE(r.counters.at("beta"), 0.0);
    EXPECT_LE(r.counters.at("beta_ci95_lo"), r.counters.at("beta_ci95_hi"));
    EXPECT_GE(r.counters.at("schedule_p"), 0.0);
    EXPECT_LE(r.counters.at("schedule_p"), 1.0);
  }
}

// Clean and noisy logits of every step come from the same teacher-forced computation: at scale 0
// alpha(t) is exactly 0, and the clean logits agree with the decoding that chose the tokens.
TEST(Experiments, EvolutionAtScaleZeroIsExactlyClean) {
  auto settings = small_settings();
  settings.detail_scales = {0};
  ExperimentSuite suite(settings);
  const auto& r = suite.result("Evolution/prompt:0/scale:0");
  const auto alpha_t = r.details.at("alpha_t").get<std::vector<double>>();
  ASSERT_FALSE(alpha_t.empty());
  for (double a : alpha_t) EXPECT_EQ(a, 0.0);
  EXPECT_EQ(r.details.at("argmax_mismatches").get<int64_t>(), 0);
  const auto& clean = suite.clean_trajectory(0);
  ASSERT_EQ(clean.logits.size(0), static_cast<int64_t>(clean.tokens.size()));
  KVCache cache;
  torch::Tensor step = suite.model().last_logits({clean.prompt_ids}, &cache, 1);
  EXPECT_LT((clean.logits[0] - step[0]).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(torch::equal(suite.teacher_forced_logits(clean), clean.logits));
}

// One seed: nothing to resample, so beta has no interval (and no time is spent on one).
TEST(Experiments, EvolutionWithOneSeedHasNoBetaInterval) {
  auto settings = small_settings();
  settings.seeds = {0};
  ExperimentSuite suite(settings);
  const auto& r = suite.result("Evolution/prompt:0/scale:0.02");
  if (r.counters.at("steps") < 3) GTEST_SKIP() << "too short a continuation for a schedule";
  EXPECT_TRUE(std::isnan(r.counters.at("beta_ci95_lo")));
  EXPECT_TRUE(std::isnan(r.counters.at("beta_ci95_hi")));
  EXPECT_FALSE(std::isnan(r.counters.at("beta")));
}

TEST(Experiments, TempSweepCoversTheNotebookGrid) {
  ExperimentSuite suite(small_settings());
  const auto& r = suite.result("TempSweep/scale:0.02");
  ASSERT_EQ(r.details.at("grid").size(), 35u);
  EXPECT_EQ(r.details.at("kl").size(), 35u);
  // The exact optimum is no worse than any grid point.
  for (const auto& kl : r.details.at("kl")) EXPECT_LE(r.counters.at("kl_best"), kl.get<double>() + 1e-15);
  for (const char* key : {"err_sqrt_1p_alpha", "err_1p_alpha", "err_1p_sigma2_over_var_p"}) {
    EXPECT_TRUE(r.counters.count(key)) << key;
  }
}

TEST(Experiments, BadSettingsAreClearErrors) {
  auto settings = small_settings();
  settings.scales = {-0.1};
  EXPECT_THROW(ExperimentSuite{settings}, Error);
  settings = small_settings();
  settings.seeds.clear();
  EXPECT_THROW(ExperimentSuite{settings}, Error);
  settings = small_settings();
  settings.model = "tiny";  // a preset has no tokenizer: an error on first use, naming the flag
  try {
    ExperimentSuite suite(settings);
    suite.result("WeightNoise/scale:0.01");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--tokenizer"), std::string::npos) << e.what();
  }
}

// The registry: the notebook's four families in order, each instance named after its family's
// pattern, results.json lists the families and gives each result its family and parameters.
TEST(ExperimentRegistry, FamiliesInstancesAndResultsSections) {
  std::vector<std::string> names;
  for (const ExperimentFamily* family : experiment_families()) {
    names.push_back(family->name);
    EXPECT_EQ(family->pattern.rfind(family->name + "/", 0), 0u) << family->pattern;
    EXPECT_FALSE(family->report_section.empty()) << family->name;
  }
  ASSERT_GE(names.size(), 4u);  // the notebook's four first; families added later follow
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 4),
            (std::vector<std::string>{"WeightNoise", "Layer", "Evolution", "TempSweep"}));

  ExperimentSuite suite(small_settings());
  std::map<std::string, size_t> per_family;
  for (const auto& instance : suite.instances()) {
    ++per_family[instance.family];
    EXPECT_EQ(instance.name.rfind(instance.family + "/", 0), 0u) << instance.name;
    EXPECT_TRUE(instance.parameters.contains("scale")) << instance.name;
  }
  EXPECT_EQ(per_family["WeightNoise"], 3u);  // one per scale
  EXPECT_EQ(per_family["Layer"], suite.groups().size());  // per detail scale: every group
  EXPECT_EQ(per_family["Evolution"], 3u);    // per detail scale: every evolution prompt
  EXPECT_EQ(per_family["TempSweep"], 1u);    // per detail scale
  EXPECT_THROW(suite.result("WeightNoise/scale:0.5"), Error);  // not in these settings

  // TempSweep is its own family: computing WeightNoise at a scale adds no TempSweep there.
  suite.result("WeightNoise/scale:0.05");
  suite.result("Layer/mlp/scale:0.02");
  const auto results = suite.results_json();
  EXPECT_EQ(results.at("results").size(), 2u);
  EXPECT_EQ(results.at("families").size(), experiment_families().size());
  EXPECT_EQ(results.at("families")[0].at("section"), "weight_noise");
  const auto& layer = results.at("results").at("Layer/mlp/scale:0.02");
  EXPECT_EQ(layer.at("family"), "Layer");
  EXPECT_EQ(layer.at("instance").at("group"), "mlp");
  EXPECT_EQ(layer.at("instance").at("scale"), 0.02);
}

// The settings' flag table: each flag once, each with help, unknown names refused.
TEST(ExperimentRegistry, SettingFlagsParseAndRefuse) {
  std::set<std::string> seen;
  for (const auto& flag : setting_flags()) {
    EXPECT_TRUE(seen.insert(flag.name).second) << flag.name;
    EXPECT_FALSE(flag.help.empty()) << flag.name;
  }
  const auto settings = settings_from_flags({{"model", kModel}, {"seeds", "3"}, {"scales", "0,0.02"},
                                             {"noise", "laplace"}, {"depth-groups", "thirds"}});
  EXPECT_EQ(settings.seeds, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(settings.scales, (std::vector<double>{0, 0.02}));
  EXPECT_EQ(settings.noise, parse_noise_type("laplace"));
  EXPECT_EQ(settings.depth_groups, DepthGroups::kThirds);
  EXPECT_THROW(settings_from_flags({{"model", kModel}, {"seed", "3"}}), Error);
  EXPECT_THROW(settings_from_flags({{"model", kModel}, {"seeds", "0"}}), Error);
  EXPECT_THROW(settings_from_flags({{"model", kModel}, {"scales", "0,nan"}}), Error);
}

// ------------------------------------------------------------------------------------------
// Through the bench binary

#ifdef TSTAR_BENCH_PATH
struct BenchRun {
  nlohmann::json benchmarks;  // Google Benchmark's JSON
  nlohmann::json results;     // tstar's results.json
};

// Google Benchmark 1.7.1 writes the coefficient of variation of an all-zero counter as a bare NaN,
// which Python's json accepts and nlohmann (strict JSON) does not: read those as null.
nlohmann::json parse_benchmark_json(const fs::path& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const std::string bad : {"-nan", "nan", "-NaN", "NaN"}) {
    for (size_t at = text.find(": " + bad); at != std::string::npos; at = text.find(": " + bad, at)) {
      text.replace(at + 2, bad.size(), "null");
    }
  }
  return nlohmann::json::parse(text);
}

BenchRun run_bench(const std::string& args, const std::string& model = kModel) {
  const fs::path dir = fs::temp_directory_path() / ("tstar_bench_" + std::to_string(getpid()) + "_" +
                                                    std::to_string(std::hash<std::string>{}(args)));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string common = " --model " + model + " --seeds 2 --scales 0,0.01 --detail-scales 0.02 --results " +
                             (dir / "runs").string() + " --benchmark_out_format=json --benchmark_out=" +
                             (dir / "bench.json").string() + " ";
  auto result = testing::run_binary(TSTAR_BENCH_PATH, common + args);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output.find("ERROR OCCURRED"), std::string::npos) << result.output;
  BenchRun run;
  run.benchmarks = parse_benchmark_json(dir / "bench.json");
  for (const auto& entry : fs::directory_iterator(dir / "runs")) {
    run.results = nlohmann::json::parse(std::ifstream(entry.path() / "results.json"));
  }
  fs::remove_all(dir);
  return run;
}

TEST(ExperimentBench, SmokeEveryFamilyOnTheTinyModel) {
  BenchRun run = run_bench("--benchmark_min_time=0.001 --benchmark_filter='WeightNoise|Layer|Evolution|TempSweep'");
  const auto& results = run.results.at("results");
  for (const char* name : {"WeightNoise/scale:0", "WeightNoise/scale:0.01", "Layer/all/scale:0.02", "Layer/layer:1/scale:0.02",
                           "Evolution/prompt:2/scale:0.02", "TempSweep/scale:0.02"}) {
    EXPECT_TRUE(results.contains(name)) << name;
  }
  EXPECT_EQ(run.results.at("weights_digest_before"), run.results.at("weights_digest_after"));
  const auto& context = run.benchmarks.at("context");
  for (const char* key : {"tstar_tstar_commit", "tstar_model", "tstar_tokenizer_sha256", "tstar_libtorch_version",
                          "tstar_curand_version", "tstar_threads", "tstar_blas_libraries", "tstar_seeds", "tstar_prompts_sha256"}) {
    EXPECT_TRUE(context.contains(key)) << key;
  }
  EXPECT_NE(context.at("tstar_model").get<std::string>().find("weight_files_sha256"), std::string::npos);
}

// Every family on a tiny fixture of each architecture (Llama tied and sharded, Llama 3 RoPE scaling,
// Qwen3's q/k norms, Mistral's sliding window, Phi-3's fused projections, dynamic RoPE past its
// max_position_embeddings), leaving the weights as they were.
TEST(ExperimentBench, EveryFamilyOnEachArchitecture) {
  for (const std::string model : {"fixtures/models/llama-tiny", "fixtures/models/llama3-rope-tiny", "fixtures/models/qwen3-tiny",
                                  "fixtures/models/mistral-tiny", "fixtures/models/phi3-tiny",
                                  "fixtures/models/llama-dynamic-rope-tiny", "fixtures/models/gemma2-tiny",
                                  "fixtures/models/gemma3-tiny"}) {
    BenchRun run = run_bench("--benchmark_min_time=0.001 --benchmark_filter='WeightNoise|Layer|Evolution|TempSweep'", model);
    const auto& results = run.results.at("results");
    for (const char* name : {"WeightNoise/scale:0.01", "Layer/attention/scale:0.02", "Layer/layer:1/scale:0.02",
                             "Evolution/prompt:0/scale:0.02", "TempSweep/scale:0.02"}) {
      ASSERT_TRUE(results.contains(name)) << model << " " << name;
    }
    const auto& counters = results.at("WeightNoise/scale:0.01").at("counters");
    EXPECT_GT(counters.at("alpha").get<double>(), 0) << model;
    // The attention group reaches the forward (Phi-3: through the fused qkv_proj).
    EXPECT_GT(results.at("Layer/attention/scale:0.02").at("counters").at("alpha").get<double>(), 0) << model;
    // alpha before final soft-capping beside the sampler's alpha, only where the model caps (Gemma 2).
    const bool capped = model == "fixtures/models/gemma2-tiny";
    EXPECT_EQ(counters.contains("alpha_pre_softcap"), capped) << model;
    EXPECT_EQ(results.at("Layer/mlp/scale:0.02").at("counters").contains("alpha_pre_softcap"), capped) << model;
    if (capped) {
      EXPECT_GT(counters.at("alpha_pre_softcap").get<double>(), 0);
      EXPECT_NE(counters.at("alpha_pre_softcap").get<double>(), counters.at("alpha").get<double>());
    }
    EXPECT_EQ(run.results.at("weights_digest_before"), run.results.at("weights_digest_after")) << model;
  }
}

TEST(ExperimentBench, CountersIgnoreFilterRepetitionsAndIterations) {
  const std::string name = "WeightNoise/scale:0.01";
  BenchRun full = run_bench("--benchmark_min_time=0.001 --benchmark_filter='WeightNoise|TempSweep|Layer/mlp'");
  BenchRun alone = run_bench("--benchmark_min_time=0.05 --benchmark_repetitions=3 --benchmark_filter='^WeightNoise/scale:0.01/'");
  EXPECT_EQ(full.results.at("results").at(name).at("counters"), alone.results.at("results").at(name).at("counters"));
  // Every repetition reports the same statistics, to the bit.
  std::vector<nlohmann::json> alphas;
  for (const auto& b : alone.benchmarks.at("benchmarks")) {
    if (b.at("run_type") == "iteration") alphas.push_back(b.at("alpha"));
  }
  ASSERT_EQ(alphas.size(), 3u);
  EXPECT_EQ(alphas[0], alphas[1]);
  EXPECT_EQ(alphas[1], alphas[2]);
}

TEST(ExperimentBench, ListFamiliesPrintsTheRegistry) {
  const auto result = testing::run_binary(TSTAR_BENCH_PATH, "--list-families");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  std::string expected;
  for (const ExperimentFamily* family : experiment_families()) expected += family->name + "\n";
  EXPECT_NE(result.output.find(expected), std::string::npos) << result.output;
}

TEST(ExperimentBench, BadFlagsExitWithOneLine) {
  auto result = testing::run_binary(TSTAR_BENCH_PATH, "--model " + kModel + " --scales 0,-1");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("scale"), std::string::npos) << result.output;
  result = testing::run_binary(TSTAR_BENCH_PATH, "--model /no/such/model");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("/no/such/model"), std::string::npos) << result.output;
  result = testing::run_binary(TSTAR_BENCH_PATH, "--model " + kModel + " --seeds two");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--seeds"), std::string::npos) << result.output;
}
#endif

}  // namespace
}  // namespace tstar
