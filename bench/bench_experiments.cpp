// The notebook's four experiments as Google Benchmark fixtures. Counters are the statistics
// (computed once per process by ExperimentSuite, identical across iterations and repetitions);
// the timed loop is one inject -> forward -> restore cycle.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <regex>

#include "bench_env.h"
#include "cli.h"
#include "error.h"
#include "json_file.h"
#include "provenance.h"

namespace tstar::bench {

namespace {

double parse_number(const std::string& text, const std::string& flag) {
  if (auto value = cli::parse_double(text)) return *value;
  throw Error(fmt::format("bench: --{} expects numbers, got '{}'", flag, text));
}

std::vector<double> parse_scales(const std::string& text, const std::string& flag) {
  std::vector<double> scales;
  for (const auto& item : split_commas(text)) {
    scales.push_back(parse_number(item, flag));
    validate_scale(scales.back());
  }
  if (scales.empty()) throw Error(fmt::format("bench: --{} lists no scales", flag));
  return scales;
}

PromptSet read_prompt_file(const std::string& path, const std::string& flag) {
  try {
    return read_prompt_set(path);
  } catch (const Error& e) {
    throw Error(fmt::format("bench: --{}: {}", flag, e.what()));
  }
}

ExperimentSettings settings_from(const BenchOptions& options) {
  ExperimentSettings settings;
  settings.model = options.model.empty() ? default_model() : options.model;
  settings.tokenizer = options.tokenizer;
  settings.dtype = parse_dtype(options.dtype);
  if (!options.logits_dtype.empty()) settings.logits = parse_logits_dtype(options.logits_dtype);
  settings.device = torch::Device(options.device);
  if (!options.prompts.empty()) {
    const PromptSet set = read_prompt_file(options.prompts, "prompts");
    settings.prompts = set.prompts;
    bool any_answer = false;
    for (const auto& answer : set.answers) any_answer = any_answer || !answer.empty();
    if (any_answer) settings.answers = set.answers;
  }
  if (!options.evolution_prompts.empty()) {
    settings.evolution_prompts = read_prompt_file(options.evolution_prompts, "evolution-prompts").prompts;
  }
  if (!options.seeds.empty()) {
    const double count = parse_number(options.seeds, "seeds");
    if (count < 1 || count != static_cast<double>(static_cast<uint64_t>(count))) {
      throw Error(fmt::format("bench: --seeds expects a positive integer, got '{}'", options.seeds));
    }
    settings.seeds.clear();
    for (uint64_t s = 0; s < static_cast<uint64_t>(count); ++s) settings.seeds.push_back(s);
  }
  if (!options.scales.empty()) settings.scales = parse_scales(options.scales, "scales");
  if (!options.detail_scales.empty()) settings.detail_scales = parse_scales(options.detail_scales, "detail-scales");
  if (!options.noise.empty()) settings.noise = parse_noise_type(options.noise);
  if (!options.reference.empty()) settings.reference = parse_scale_reference(options.reference);
  if (!options.exclusion.empty()) {
    settings.exclude = exclusion_convention(options.exclusion);
    settings.exclusion = options.exclusion;
  }
  if (!options.depth_groups.empty()) settings.depth_groups = parse_depth_groups(options.depth_groups);
  return settings;
}

// Runs `timed` in the loop and publishes `result`'s counters. Library errors become a skipped
// benchmark with the message (Google Benchmark would otherwise terminate on the exception).
void run_experiment(benchmark::State& state, const std::function<const ExperimentResult&()>& result,
                    const std::function<void()>& timed) {
  try {
    const ExperimentResult& stats = result();
    for (auto _ : state) timed();
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
  if (!suite_) suite_ = std::make_unique<ExperimentSuite>(settings_from(options_));
  return *suite_;
}

void register_experiment_benchmarks(BenchEnv& env) {
  ExperimentSuite& suite = env.experiments();
  const auto& settings = suite.settings();
  const uint64_t timing_seed = settings.seeds.front();
  auto add = [](const std::string& name, std::function<void(benchmark::State&)> body) {
    benchmark::RegisterBenchmark(name.c_str(), [body](benchmark::State& state) { body(state); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  };
  for (double scale : settings.scales) {
    add(ExperimentSuite::weight_noise_name(scale), [&suite, scale, timing_seed](benchmark::State& state) {
      run_experiment(state, [&]() -> const ExperimentResult& { return suite.weight_noise(scale); },
                     [&] { suite.timed_cycle("all", scale, timing_seed); });
    });
  }
  for (double scale : settings.detail_scales) {
    for (const std::string& group : suite.groups()) {
      add(ExperimentSuite::layer_name(group, scale), [&suite, group, scale, timing_seed](benchmark::State& state) {
        run_experiment(state, [&]() -> const ExperimentResult& { return suite.layer(group, scale); },
                       [&] { suite.timed_cycle(group, scale, timing_seed); });
      });
    }
    for (size_t prompt = 0; prompt < settings.evolution_prompts.size(); ++prompt) {
      add(ExperimentSuite::evolution_name(prompt, scale), [&suite, prompt, scale, timing_seed](benchmark::State& state) {
        run_experiment(state, [&]() -> const ExperimentResult& { return suite.evolution(prompt, scale); },
                       [&] { suite.timed_evolution_cycle(prompt, scale, timing_seed); });
      });
    }
    add(ExperimentSuite::temp_sweep_name(scale), [&suite, scale, timing_seed](benchmark::State& state) {
      run_experiment(state, [&]() -> const ExperimentResult& { return suite.temp_sweep(scale); },
                     [&] { suite.timed_cycle("all", scale, timing_seed); });
    });
  }
}

}  // namespace tstar::bench
