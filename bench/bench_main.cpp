// `bench`: Google Benchmark's main plus tstar's own flags. tstar flags are consumed here; everything
// else goes to Google Benchmark unchanged.
#include <benchmark/benchmark.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "bench_env.h"
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

namespace {

const char* kHelp = R"(tstar bench: weight-noise experiments and throughput as Google Benchmark fixtures

tstar options (Google Benchmark's own options, e.g. --benchmark_filter=REGEX, follow below):
  --model DIR|PRESET   model for the experiments (default: the embedded default model)
  --presets A,B        shape presets for throughput benchmarks (default: tiny,qwen2.5-0.5b)
  --dtype fp32|bf16    weight dtype (default: bf16)
  --device cpu|cuda    device (default: cpu)
  --results DIR        where runs/<id>/results.json go (default: results/runs)
)";

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

// Removes tstar's flags from argv (both "--flag value" and "--flag=value"), filling `options`.
BenchOptions take_tstar_flags(int& argc, char** argv) {
  BenchOptions options;
  const std::vector<std::pair<std::string, std::string*>> string_flags = {
      {"model", &options.model}, {"dtype", &options.dtype}, {"device", &options.device},
      {"results", &options.results_dir}};
  std::string presets;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool consumed = false;
    auto match = [&](const std::string& name, std::string* target) {
      std::string flag = "--" + name;
      if (arg == flag) {
        if (i + 1 >= argc) throw Error("bench: " + flag + " needs a value");
        *target = argv[++i];
        return true;
      }
      if (arg.rfind(flag + "=", 0) == 0) {
        *target = arg.substr(flag.size() + 1);
        return true;
      }
      return false;
    };
    for (auto& [name, target] : string_flags) consumed = consumed || match(name, target);
    consumed = consumed || match("presets", &presets);
    if (!consumed) argv[kept++] = argv[i];
  }
  argc = kept;
  if (!presets.empty()) options.presets = split_commas(presets);
  return options;
}

}  // namespace
}  // namespace tstar::bench

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::cout << tstar::bench::kHelp << "\n";
      break;  // Google Benchmark prints its own help next
    }
  }
  try {
    tstar::bench::BenchEnv env(tstar::bench::take_tstar_flags(argc, argv));
    tstar::bench::register_forward_benchmarks(env);
    tstar::bench::register_synthetic_benchmarks(env);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  } catch (const tstar::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
