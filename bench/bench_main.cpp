// `bench`: Google Benchmark's main plus tstar's own flags. tstar flags are consumed here; everything
// else goes to Google Benchmark unchanged. After the run, the experiments' full results (what
// counters cannot hold) go to <results>/<run id>/results.json.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <cstring>
#include <functional>
#include <map>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench_env.h"
#include "tstar/error.h"
#include "tstar/parse.h"
#include "tstar/compute_profile.h"
#include "tstar/error.h"
#include "tstar/parse.h"

namespace tstar::bench {

Model& BenchEnv::model(const std::string& dir_or_preset, torch::ScalarType dtype) {
  auto key = std::make_pair(dir_or_preset, static_cast<int>(dtype));
  auto it = models_.find(key);
  if (it == models_.end()) {
    LoadOptions load;
    load.dtype = dtype;
    load.device = settings_.device;
    it = models_.emplace(key, std::make_unique<Model>(Model::open(dir_or_preset, load))).first;
  }
  return *it->second;
}

namespace {

const char* kHelpHeader = "tstar bench: weight-noise experiments and throughput as Google Benchmark fixtures\n";

const char* kOtherFamilies = R"(  Synthetic/...                    no model: Gaussian logits + i.i.d. noise (known truth)
  Forward/<preset>/<dtype>/prefill:<T>, Decode/<preset>/<dtype>   tokens/s
  NoiseGen/<generator>, Inject/..., Restore/...                   noise throughput
  Tokenizer/encode                  bytes/s of the experiments' tokenizer on a fixed text
)";

const char* kHelpFooter = R"(
Statistics depend only on model, prompts, seeds, settings and the compute profile: the same bits
whatever the filter, repetitions or iteration count, and under --compute reference on any x86-64-v3
CPU. An experiment benchmark's time is its statistics computation's wall time (--timing protocol),
or its own unit of work (--timing cycles; WeightNoise, Layer: one inject -> forward -> restore cycle;
Evolution: the same with the teacher-forced forward; TempSweep: a cycle plus the grid sweep of its
pairs). Either way the label gives the statistics time.
)";

// bench's own flags beside the experiment settings (one row each: parsing and --help).
struct BenchFlag {
  std::string name, metavar, help;
  bool takes_value = true;
  std::function<void(const std::string&, BenchOptions&)> apply;
};

std::vector<BenchFlag> bench_flags() {
  return {
      {"presets", "A,B", "shape presets of the throughput families (default: tiny,qwen2.5-0.5b)", true,
       [](const std::string& v, BenchOptions& o) { o.presets = split_commas(v); }},
      {"results", "DIR",
       "run directory root (default: results/runs): <run id>/results.json holds the\n"
       "experiments' curves and provenance, <run id>/benchmark.json Google Benchmark's\n"
       "JSON (unless --benchmark_out is given); ci/report, ci/compare read them",
       true, [](const std::string& v, BenchOptions& o) { o.results_dir = v; }},
      {"timing", "protocol|cycles",
       "what experiment benchmarks time: protocol (default), the wall time of each\n"
       "one's statistics computation (manual time; nothing runs twice); cycles, its\n"
       "unit of work, as often as --benchmark_min_time asks (real time; ci/smoke.sh)",
       true, [](const std::string& v, BenchOptions& o) {
         if (v != "protocol" && v != "cycles") {
           throw Error(fmt::format("bench: --timing expects protocol or cycles, got '{}'", v));
         }
         o.time_cycles = v == "cycles";
       }},
      {"shard", "K/N",
       "compute only shard K of N (0 <= K < N) of the experiments' units and benchmarks;\n"
       "inside a Slurm job array SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT choose it\n"
       "when this flag is absent. `tstar merge` joins the shards' run directories",
       true, [](const std::string& v, BenchOptions& o) { o.shard = v; }},
      {"run-dir", "DIR",
       "this run's directory exactly (default: a new <results>/<run id>, or in a Slurm\n"
       "array <results>/slurm-<array job id>/shard-<K>); a shard rerun with the same\n"
       "directory reuses the units it already finished",
       true, [](const std::string& v, BenchOptions& o) { o.run_dir = v; }},
      {"quiet", "", "no progress line (units done/total, current unit, ETA) on stderr", false,
       [](const std::string&, BenchOptions& o) { o.quiet = true; }},
      {"list-families", "",
       "print the experiment families' names, one per line, and exit (what the CI\n"
       "scripts select with --benchmark_filter)",
       false, [](const std::string&, BenchOptions& o) { o.list_families = true; }},
  };
}

// "  --name METAVAR" padded to a column, then the help; its further lines aligned under it.
std::string help_row(const std::string& flag, const std::string& help) {
  constexpr size_t kColumn = 26;
  std::string row = "  " + flag;
  row += row.size() + 1 < kColumn ? std::string(kColumn - row.size(), ' ') : "\n" + std::string(kColumn, ' ');
  for (char c : help) {
    row += c;
    if (c == '\n') row += std::string(kColumn, ' ');
  }
  return row + "\n";
}

std::string help_text() {
  std::string text = kHelpHeader;
  text += "\nFamilies (names as --benchmark_filter sees them):\n";
  for (const ExperimentFamily* family : experiment_families()) {
    text += help_row(family->pattern, family->description);
  }
  text += kOtherFamilies;
  text += "\ntstar options (Google Benchmark's own options, e.g. --benchmark_filter=REGEX, follow below):\n";
  for (const auto& flag : setting_flags()) text += help_row("--" + flag.name + " " + flag.metavar, flag.help);
  text += kComputeFlagsHelp;
  for (const auto& flag : bench_flags()) {
    text += help_row("--" + flag.name + (flag.metavar.empty() ? "" : " " + flag.metavar), flag.help);
  }
  return text + kHelpFooter;
}

// Removes tstar's flags from argv (both "--flag value" and "--flag=value"), filling the options.
BenchOptions take_tstar_flags(int& argc, char** argv) {
  BenchOptions options;
  std::map<std::string, std::function<void(const std::string&)>> takes_value;
  std::map<std::string, std::function<void()>> switches;
  for (const auto& flag : setting_flags()) {
    takes_value[flag.name] = [&options, name = flag.name](const std::string& v) { options.settings[name] = v; };
  }
  for (const auto& flag : bench_flags()) {
    if (flag.takes_value) {
      takes_value[flag.name] = [&options, apply = flag.apply](const std::string& v) { apply(v, options); };
    } else {
      switches[flag.name] = [&options, apply = flag.apply] { apply("", options); };
    }
  }
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      argv[kept++] = argv[i];
      continue;
    }
    const size_t equals = arg.find('=');
    const std::string name = arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    if (auto it = switches.find(name); it != switches.end() && equals == std::string::npos) {
      it->second();
    } else if (auto value = takes_value.find(name); value != takes_value.end()) {
      if (equals != std::string::npos) {
        value->second(arg.substr(equals + 1));
      } else {
        if (i + 1 >= argc) throw Error("bench: --" + name + " needs a value");
        value->second(argv[++i]);
      }
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
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

// --benchmark_repetitions=N as given to Google Benchmark (1 when absent).
int repetitions_flag(int argc, char** argv) {
  const std::string prefix = "--benchmark_repetitions=";
  int repetitions = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind(prefix, 0) == 0) repetitions = std::max(1, std::atoi(arg.c_str() + prefix.size()));
  }
  return repetitions;
}

// The shard this process is: --shard, else a Slurm array task's, else none.
std::optional<shards::ShardSpec> shard_of(const BenchOptions& options) {
  if (!options.shard.empty()) return shards::parse_shard(options.shard);
  return shards::slurm_shard([](const char* name) { return std::getenv(name); });
}

std::filesystem::path run_dir_of(const BenchOptions& options, const std::optional<shards::ShardSpec>& shard) {
  if (!options.run_dir.empty()) return options.run_dir;
  const char* array_job = std::getenv("SLURM_ARRAY_JOB_ID");
  if (shard && shard->source != "--shard" && array_job != nullptr) {  // a requeued task finds its units again
    return std::filesystem::path(options.results_dir) / fmt::format("slurm-{}", array_job) /
           fmt::format("shard-{}", shard->index);
  }
  return std::filesystem::path(options.results_dir) / run_id();
}

}  // namespace
}  // namespace tstar::bench

int main(int argc, char** argv) {
  tstar::exit_skipping_teardown(tstar::run_reporting_errors([&] {
    // The compute profile first: pinning it may restart the process before any library work
    // (and before anything is printed, which the restart would print again).
    const std::vector<char*> original_argv(argv, argv + argc + 1);
    const tstar::ComputeOptions compute = tstar::take_compute_flags(argc, argv);
    tstar::reexec_with_pinned_environment(compute.profile, original_argv.data());
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
        std::cout << tstar::bench::help_text() << "\n";
        break;  // Google Benchmark prints its own help next
      }
    }
    tstar::apply_compute_profile(compute.profile, compute.threads);
    tstar::bench::BenchEnv env(tstar::bench::take_tstar_flags(argc, argv));
    if (env.options().list_families) {
      for (const tstar::ExperimentFamily* family : tstar::experiment_families()) std::cout << family->name << "\n";
      return 0;
    }
    const auto shard = tstar::bench::shard_of(env.options());
    const auto run_dir = tstar::bench::run_dir_of(env.options(), shard);
    // Google Benchmark's own JSON (timings of every repetition, all counters) lands beside
    // results.json unless the user chose a file; the console output is unchanged. It is written to a
    // temporary name and renamed when complete: a killed run leaves nothing that looks finished.
    std::vector<char*> args(argv, argv + argc);
    std::string out_flag, format_flag;
    const auto benchmark_json = run_dir / "benchmark.json";
    const auto benchmark_json_partial = run_dir / "benchmark.json.tmp";
    if (!tstar::bench::has_flag(argc, argv, "--benchmark_out") && !tstar::bench::has_flag(argc, argv, "--help") &&
        !tstar::bench::has_flag(argc, argv, "--benchmark_list_tests")) {
      std::filesystem::create_directories(run_dir);
      out_flag = "--benchmark_out=" + benchmark_json_partial.string();
      args.push_back(out_flag.data());
      if (!tstar::bench::has_flag(argc, argv, "--benchmark_out_format")) {
        format_flag = "--benchmark_out_format=json";
        args.push_back(format_flag.data());
      }
    } else if (shard && tstar::bench::has_flag(argc, argv, "--benchmark_out")) {
      throw tstar::Error("bench: a shard writes its own benchmark.json; drop --benchmark_out");
    }
    int args_count = static_cast<int>(args.size());
    args.push_back(nullptr);
    argc = args_count;
    argv = args.data();
    tstar::bench::register_experiment_benchmarks(env);
    tstar::bench::register_synthetic_benchmarks(env);
    tstar::bench::register_stats_benchmarks(env);
    tstar::bench::register_forward_benchmarks(env);
    tstar::bench::register_noise_benchmarks(env);
    tstar::bench::register_tokenizer_benchmarks(env);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    const std::string filter = benchmark::GetBenchmarkFilter();
    if (shard) {
      return tstar::bench::run_shard(env, *shard, run_dir, tstar::bench::repetitions_flag(argc, argv), filter,
                                     benchmark_json_partial);
    }
    tstar::bench::show_unit_progress(env, filter);
    tstar::bench::add_provenance_context(env, filter);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (env.has_experiments() && env.experiments().has_results()) {
      const auto path = run_dir / "results.json";
      tstar::shards::write_json_atomically(path, env.experiments().results_json().dump(1));
      std::cerr << "tstar: results written to " << path.string() << "\n";
    }
    if (!out_flag.empty()) {
      std::filesystem::rename(benchmark_json_partial, benchmark_json);
      std::cerr << "tstar: Google Benchmark JSON written to " << benchmark_json.string() << "\n";
    }
    return 0;
  }));
}
