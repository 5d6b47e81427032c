// `bench`: Google Benchmark's main plus tstar's own flags. tstar flags are consumed here; everything
// else goes to Google Benchmark unchanged. After the run, the experiments' full results (what
// counters cannot hold) go to <results>/<run id>/results.json.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench_env.h"
#include "cli.h"
#include "compute_profile.h"
#include "error.h"

namespace tstar::bench {

Model& BenchEnv::model(const std::string& dir_or_preset, torch::ScalarType dtype) {
  auto key = std::make_pair(dir_or_preset, static_cast<int>(dtype));
  auto it = models_.find(key);
  if (it == models_.end()) {
    LoadOptions load;
    load.dtype = dtype;
    load.device = torch::Device(options_.device);
    it = models_.emplace(key, std::make_unique<Model>(Model::open(dir_or_preset, load))).first;
  }
  return *it->second;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

namespace {

const char* kHelp = R"(tstar bench: weight-noise experiments and throughput as Google Benchmark fixtures

Families (names as --benchmark_filter sees them):
  WeightNoise/scale:<s>            exp. 1: alpha, best T, every T* predictor and its error, KL, P(correct)
  Layer/<group>/scale:<s>          exp. 2: one noise group at a time (all, attention, mlp, lm_head,
                                   early, middle, late, layer:N)
  Evolution/prompt:<i>/scale:<s>   exp. 3: alpha(t) over 15 teacher-forced greedy steps, trend, beta fit
  TempSweep/scale:<s>              exp. 4: KL and P(correct) over T = 0.80..1.48, exact best T
  Synthetic/...                    no model: Gaussian logits + i.i.d. noise (known truth)
  Forward/<preset>/<dtype>/prefill:<T>, Decode/<preset>/<dtype>   tokens/s
  NoiseGen/<generator>, Inject/..., Restore/...                   noise throughput
  Tokenizer/encode                                                bytes/s

tstar options (Google Benchmark's own options, e.g. --benchmark_filter=REGEX, follow below):
  --model DIR|PRESET      model of the experiments (default: the embedded default model)
  --tokenizer PATH        tokenizer.json or its directory (default: the model directory's)
  --dtype fp32|bf16|fp16  experiment weight dtype (default: bf16, as the notebook)
  --logits-dtype fp32|model  precision of the final norm and lm_head (default: fp32, so bf16 rounding
                          of the logits puts no floor under alpha; model: as HF computes them).
                          WeightNoise and Layer also report alpha_model_logits, alpha on the
                          model-dtype logits from the same forward
  --device cpu|cuda       device (default: cpu)
  --prompts FILE          prompts: a JSON array of strings or of {"prompt", "answer"} objects, or JSON
                          Lines of either (default: the notebook's four); with answers, P(answer) and
                          accuracy are reported (fixtures/prompts/ has a 256-question set for the
                          embedded model and a 128-prompt general set)
  --evolution-prompts FILE  prompts for Evolution, same formats (default: the notebook's three)
  --seeds N               noise seeds 0..N-1 per scale (default: 8)
  --scales A,B,...        WeightNoise scales (default: 0,0.001,0.002,0.005,0.01,0.02,0.05)
  --detail-scales A,...   Layer/Evolution/TempSweep scales (default: 0.01)
  --noise TYPE            gaussian|uniform|laplace|multiplicative (default: gaussian)
  --reference REF         tensor_std|row_std|abs_max (default: tensor_std)
  --exclude CONVENTION    parameters never noised: notebook (default: the notebook's rule, "weight" in
                          the name and none of layernorm/ln/embed, so the final norm and lm_head are
                          noised, biases, embeddings and per-layer norms are not) or all-norms (also
                          skips model.norm.weight); tstar params --groups lists each group's tensors
  --depth-groups notebook|thirds  early/middle/late: the notebook's layers 0-7/8-23/24-31 cut at the
                          model's depth (default), or thirds of the depth
  --presets A,B           shape presets of the throughput families (default: tiny,qwen2.5-0.5b)
@COMPUTE_FLAGS@  --results DIR           run directory root (default: results/runs): <run id>/results.json holds the
                          experiments' curves and provenance, <run id>/benchmark.json Google Benchmark's
                          JSON (unless --benchmark_out is given); ci/report, ci/compare read them

Statistics depend only on model, prompts, seeds, settings and the compute profile: the same bits
whatever the filter, repetitions or iteration count, and under --compute reference on any x86-64-v3
CPU. Timings are of one inject -> forward -> restore cycle.
)";

// Removes tstar's flags from argv (both "--flag value" and "--flag=value"), filling `options`.
BenchOptions take_tstar_flags(int& argc, char** argv) {
  BenchOptions options;
  std::string presets;
  const std::vector<std::pair<std::string, std::string*>> flags = {
      {"model", &options.model},         {"tokenizer", &options.tokenizer},
      {"dtype", &options.dtype},         {"device", &options.device},
      {"logits-dtype", &options.logits_dtype},
      {"results", &options.results_dir}, {"prompts", &options.prompts},
      {"evolution-prompts", &options.evolution_prompts},
      {"seeds", &options.seeds},         {"scales", &options.scales},
      {"detail-scales", &options.detail_scales},
      {"noise", &options.noise},         {"reference", &options.reference},
      {"exclude", &options.exclusion},   {"depth-groups", &options.depth_groups},
      {"presets", &presets}};
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    bool consumed = false;
    for (const auto& [name, target] : flags) {
      const std::string flag = "--" + name;
      if (arg == flag) {
        if (i + 1 >= argc) throw Error("bench: " + flag + " needs a value");
        *target = argv[++i];
        consumed = true;
      } else if (arg.rfind(flag + "=", 0) == 0) {
        *target = arg.substr(flag.size() + 1);
        consumed = true;
      }
      if (consumed) break;
    }
    if (!consumed) argv[kept++] = argv[i];
  }
  argc = kept;
  if (!presets.empty()) options.presets = split_commas(presets);
  return options;
}

bool has_flag(int argc, char** argv, const std::string& flag) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == flag || arg.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

// A run id that sorts by time and cannot collide between concurrent processes.
std::string run_id() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  return fmt::format("{}-{}", stamp, getpid());
}

// Temporary file + rename: a reader never sees a half-written results.json.
void write_atomically(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  const auto temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error(fmt::format("cannot write {}", temporary));
  }
  std::filesystem::rename(temporary, path);
}

}  // namespace
}  // namespace tstar::bench

int main(int argc, char** argv) {
  return tstar::cli::run_reporting_errors([&] {
    // The compute profile first: pinning it may restart the process before any library work
    // (and before anything is printed, which the restart would print again).
    const std::vector<char*> original_argv(argv, argv + argc + 1);
    const tstar::ComputeOptions compute = tstar::take_compute_flags(argc, argv);
    tstar::reexec_with_pinned_environment(compute.profile, original_argv.data());
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
        std::string help = tstar::bench::kHelp;
        const std::string placeholder = "@COMPUTE_FLAGS@";
        help.replace(help.find(placeholder), placeholder.size(), tstar::kComputeFlagsHelp);
        std::cout << help << "\n";
        break;  // Google Benchmark prints its own help next
      }
    }
    tstar::apply_compute_profile(compute.profile, compute.threads);
    tstar::bench::BenchEnv env(tstar::bench::take_tstar_flags(argc, argv));
    const auto run_dir = std::filesystem::path(env.options().results_dir) / tstar::bench::run_id();
    // Google Benchmark's own JSON (timings of every repetition, all counters) lands beside
    // results.json unless the user chose a file; the console output is unchanged.
    std::vector<char*> args(argv, argv + argc);
    std::string out_flag, format_flag;
    if (!tstar::bench::has_flag(argc, argv, "--benchmark_out") && !tstar::bench::has_flag(argc, argv, "--help") &&
        !tstar::bench::has_flag(argc, argv, "--benchmark_list_tests")) {
      std::filesystem::create_directories(run_dir);
      out_flag = "--benchmark_out=" + (run_dir / "benchmark.json").string();
      args.push_back(out_flag.data());
      if (!tstar::bench::has_flag(argc, argv, "--benchmark_out_format")) {
        format_flag = "--benchmark_out_format=json";
        args.push_back(format_flag.data());
      }
    }
    int args_count = static_cast<int>(args.size());
    args.push_back(nullptr);
    argc = args_count;
    argv = args.data();
    tstar::bench::register_experiment_benchmarks(env);
    tstar::bench::register_synthetic_benchmarks(env);
    tstar::bench::register_forward_benchmarks(env);
    tstar::bench::register_noise_benchmarks(env);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    tstar::bench::add_provenance_context(env, benchmark::GetBenchmarkFilter());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (env.has_experiments() && env.experiments().has_results()) {
      const auto path = run_dir / "results.json";
      tstar::bench::write_atomically(path, env.experiments().results_json().dump(1));
      std::cerr << "tstar: results written to " << path.string() << "\n";
    }
    if (!out_flag.empty()) std::cerr << "tstar: Google Benchmark JSON written to " << (run_dir / "benchmark.json").string() << "\n";
    return 0;
  });
}

