// NoiseGen/<generator>: unit normals/s from cuRAND's host API (one thread), tstar's CPU generator
// (all threads and one thread on the selected kernel path; one thread on each kernel path this CPU
// runs: tstar_<path>_1thread), and torch's normal_.
// Inject/<model>/<dtype>/<method> and Restore/<model>/<dtype>/<method>: one noise injection or one
// restore over the default targets, tstar's engine against the notebook's algorithm ("seed-style").
// NoiseBandwidth/<model>/<dtype>/<phase>: the engine's inject, restore and inject + restore against a
// plain copy of the same bytes in the same run, as bytes read + written per second (inject reads the
// clean copy and writes the live weights; restore copies them back), the ratio that says how close
// the fused kernel is to the memory's roofline. On a CUDA device all of them are timed by CUDA events.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <map>
#include <memory>
#include <unordered_map>

#include "bench_env.h"
#include "tstar/curand_host.h"
#include "tstar/device_timer.h"
#include "tstar/error.h"
#include "tstar/noise.h"
#include "tstar/noise_kernels.h"

namespace tstar::bench {

namespace {

constexpr int64_t kNoiseGenCount = int64_t{1} << 22;  // 4 M normals (16 MiB) per iteration
constexpr uint64_t kBenchSeed = 1234;

void set_rate_counters(benchmark::State& state, const char* what, double per_iteration) {
  state.counters[what] = benchmark::Counter(per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}

void noise_gen_curand_host(benchmark::State& state) {
  try {
    CurandHostGenerator generator(kBenchSeed);
    std::vector<float> out(kNoiseGenCount);
    for (auto _ : state) {
      generator.set_offset(0);
      generator.normals(out.data(), out.size());
      benchmark::DoNotOptimize(out.data());
    }
    set_rate_counters(state, "normals_per_s", kNoiseGenCount);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void noise_gen_tstar(benchmark::State& state, int threads) {
  const int saved = at::get_num_threads();
  if (threads > 0) at::set_num_threads(threads);
  std::vector<float> out(kNoiseGenCount);
  for (auto _ : state) {
    generate_unit_noise(philox::Kind::kGaussian, kBenchSeed, 0, kNoiseGenCount, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  at::set_num_threads(saved);
  state.SetLabel(noise_kernels::path_name(noise_kernels::selected_path()));
  set_rate_counters(state, "normals_per_s", kNoiseGenCount);
}

// One kernel path, forced, on the calling thread.
void noise_gen_tstar_path(benchmark::State& state, noise_kernels::KernelPath path) {
  std::vector<float> out(kNoiseGenCount);
  for (auto _ : state) {
    noise_kernels::generate_with(path, philox::Kind::kGaussian, kBenchSeed, 0, kNoiseGenCount, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(noise_kernels::path_name(path));
  set_rate_counters(state, "normals_per_s", kNoiseGenCount);
}

void noise_gen_torch(benchmark::State& state) {
  torch::manual_seed(kBenchSeed);
  torch::Tensor out = torch::empty({kNoiseGenCount}, torch::kFloat);
  for (auto _ : state) {
    out.normal_();  // what torch::randn does after allocating
    benchmark::DoNotOptimize(out.data_ptr());
  }
  set_rate_counters(state, "normals_per_s", kNoiseGenCount);
}

// The notebook's weight_noise_context, step for step: per targeted tensor clone, std().item(),
// randn_like * (s * std), add_; restore looks each name up in a freshly built name -> parameter
// dict (`dict(model.named_parameters())[name]`) and copies the clone back. A baseline only.
class SeedStyleInjector {
 public:
  SeedStyleInjector(ParameterMap& params, std::vector<size_t> targets) : params_(params), targets_(std::move(targets)) {}

  void inject(double scale) {
    for (size_t index : targets_) {
      torch::Tensor& param = params_.tensor(index);
      originals_.emplace_back(params_.name(index), param.clone());
      double weight_std = param.std().item<double>();
      torch::Tensor noise = torch::randn_like(param) * (scale * weight_std);
      param.add_(noise);
    }
  }

  void restore() {
    for (const auto& [name, original] : originals_) {
      std::unordered_map<std::string, torch::Tensor*> named_parameters;
      for (size_t i = 0; i < params_.size(); ++i) named_parameters[params_.name(i)] = &params_.tensor(i);
      named_parameters.at(name)->copy_(original);
    }
    originals_.clear();
  }

 private:
  ParameterMap& params_;
  std::vector<size_t> targets_;
  std::vector<std::pair<std::string, torch::Tensor>> originals_;
};

// One engine and one seed-style injector per (model, dtype), built on first use.
struct Injectors {
  torch::Device device = torch::kCPU;
  std::unique_ptr<NoiseEngine> engine;
  std::unique_ptr<SeedStyleInjector> seed_style;
  int64_t numel = 0;
  int64_t bytes = 0;
};

using InjectorCache = std::map<std::string, Injectors>;

Injectors& injectors_for(InjectorCache& cache, BenchEnv& env, const std::string& preset, torch::ScalarType dtype) {
  const std::string key = preset + "/" + dtype_name(dtype);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Model& model = env.model(preset, dtype);
  std::vector<size_t> targets = select_targets(model.parameters(), model.config(), TargetSpec{});
  Injectors injectors;
  injectors.device = model.device();
  injectors.engine = std::make_unique<NoiseEngine>(model.parameters(), targets, NoiseType{},
                                                   ScaleReference::kTensorStd);
  injectors.seed_style = std::make_unique<SeedStyleInjector>(model.parameters(), targets);
  injectors.numel = injectors.engine->target_numel();
  injectors.bytes = static_cast<int64_t>(injectors.engine->clean_bytes());
  return cache.emplace(key, std::move(injectors)).first->second;
}

// Times inject (timed_inject) or restore (!timed_inject) of one method; the other half runs untimed.
void inject_restore_benchmark(benchmark::State& state, Injectors& injectors, bool tstar, bool timed_inject) {
  constexpr double kScale = 0.01;
  DeviceTimer timer(injectors.device);
  uint64_t seed = 0;
  for (auto _ : state) {
    ++seed;
    timer.start();
    if (tstar) {
      injectors.engine->inject(kScale, seed);
    } else {
      injectors.seed_style->inject(kScale);
    }
    double inject_s = timer.stop();
    timer.start();
    if (tstar) {
      injectors.engine->restore();
    } else {
      injectors.seed_style->restore();
    }
    double restore_s = timer.stop();
    state.SetIterationTime(timed_inject ? inject_s : restore_s);
  }
  set_rate_counters(state, "bytes_per_s", static_cast<double>(injectors.bytes));
  set_rate_counters(state, "params_per_s", static_cast<double>(injectors.numel));
}

enum class Phase { kInject, kRestore, kInjectRestore, kCopy };
constexpr std::pair<Phase, const char*> kPhases[] = {
    {Phase::kInject, "inject"}, {Phase::kRestore, "restore"}, {Phase::kInjectRestore, "inject_restore"}, {Phase::kCopy, "copy"}};

// Bytes read + written by one phase over weights of `bytes` bytes.
double moved_bytes(Phase phase, double bytes) { return (phase == Phase::kInjectRestore ? 4 : 2) * bytes; }

void bandwidth_benchmark(benchmark::State& state, Injectors& injectors, Phase phase) {
  constexpr double kScale = 0.01;
  NoiseEngine& engine = *injectors.engine;
  DeviceTimer timer(injectors.device);
  torch::Tensor from, to;  // the copy's buffers: as many bytes as the targets
  if (phase == Phase::kCopy) {
    from = torch::ones({injectors.bytes}, torch::TensorOptions().dtype(torch::kByte).device(injectors.device));
    to = torch::empty_like(from);
  }
  uint64_t seed = 0;
  for (auto _ : state) {
    ++seed;
    if (phase == Phase::kRestore) engine.inject(kScale, seed);  // untimed: work queued before start()
    timer.start();
    switch (phase) {
      case Phase::kInject: engine.inject(kScale, seed); break;
      case Phase::kRestore: engine.restore(); break;
      case Phase::kInjectRestore:
        engine.inject(kScale, seed);
        engine.restore();
        break;
      case Phase::kCopy: to.copy_(from); break;
    }
    state.SetIterationTime(timer.stop());
    if (phase == Phase::kInject) engine.restore();
  }
  set_rate_counters(state, "bytes_per_s", moved_bytes(phase, static_cast<double>(injectors.bytes)));
  set_rate_counters(state, "params_per_s", static_cast<double>(injectors.numel));
}

}  // namespace

void register_noise_benchmarks(BenchEnv& env) {
  env.add_benchmark("NoiseGen/curand_host", noise_gen_curand_host)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  env.add_benchmark("NoiseGen/tstar_cpu", [](benchmark::State& s) { noise_gen_tstar(s, 0); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  env.add_benchmark("NoiseGen/tstar_cpu_1thread", [](benchmark::State& s) { noise_gen_tstar(s, 1); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  using noise_kernels::KernelPath;
  for (KernelPath path : {KernelPath::kPortable, KernelPath::kAvx2, KernelPath::kAvx512}) {
    if (!noise_kernels::cpu_runs(path)) continue;  // a path the CPU lacks has nothing to measure
    env.add_benchmark(fmt::format("NoiseGen/tstar_{}_1thread", noise_kernels::path_name(path)).c_str(),
                                 [path](benchmark::State& s) { noise_gen_tstar_path(s, path); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  env.add_benchmark("NoiseGen/torch_randn", noise_gen_torch)->Unit(benchmark::kMillisecond)->UseRealTime();

  auto cache = std::make_shared<InjectorCache>();
  const torch::ScalarType dtype = env.settings().dtype;
  const std::string dtype_label = dtype_name(dtype);
  for (const std::string& preset : env.options().presets) {
    for (const char* method : {"tstar", "seed-style"}) {
      const bool tstar = std::string(method) == "tstar";
      for (const char* phase : {"Inject", "Restore"}) {
        const bool timed_inject = std::string(phase) == "Inject";
        env.add_benchmark(
            fmt::format("{}/{}/{}/{}", phase, preset, dtype_label, method).c_str(),
            [&env, cache, preset, dtype, tstar, timed_inject](benchmark::State& state) {
              inject_restore_benchmark(state, injectors_for(*cache, env, preset, dtype), tstar, timed_inject);
            })
            ->Unit(benchmark::kMillisecond)
            ->UseManualTime();
      }
    }
    for (const auto& [phase, phase_name] : kPhases) {
      benchmark::RegisterBenchmark(fmt::format("NoiseBandwidth/{}/{}/{}", preset, dtype_label, phase_name).c_str(),
                                   [&env, cache, preset, dtype, phase = phase](benchmark::State& state) {
                                     bandwidth_benchmark(state, injectors_for(*cache, env, preset, dtype), phase);
                                   })
          ->Unit(benchmark::kMillisecond)
          ->UseManualTime();
    }
  }
}

}  // namespace tstar::bench
