// Forward/<model>/<dtype>/prefill:<T> and Decode/<model>/<dtype>: model throughput in tokens/s.
// On a CUDA device (--device cuda) each iteration is timed by CUDA events (manual time), and fp16
// is measured beside fp32 and bf16.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <memory>
#include <random>
#include <vector>

#include "bench_env.h"
#include "tstar/device_timer.h"
#include "tstar/error.h"

namespace tstar::bench {

namespace {

// Deterministic token ids in [0, vocab): throughput must not depend on which ids, but runs must repeat.
std::vector<int64_t> synthetic_prompt(int64_t length, int64_t vocab_size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, vocab_size - 1);
  std::vector<int64_t> ids(static_cast<size_t>(length));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

void prefill_benchmark(benchmark::State& state, BenchEnv& env, const std::string& model_name,
                       torch::ScalarType dtype, int64_t length) {
  Model& model = env.model(model_name, dtype);
  const auto prompt = synthetic_prompt(length, model.config().vocab_size, 1);
  if (model.device().is_cuda()) {
    DeviceTimer timer(model.device());
    for (auto _ : state) {
      timer.start();
      benchmark::DoNotOptimize(model.last_logits({prompt}).data_ptr());
      state.SetIterationTime(timer.stop());
    }
  } else {
    for (auto _ : state) {
      benchmark::DoNotOptimize(model.last_logits({prompt}).data_ptr());
    }
  }
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(length), benchmark::Counter::kIsIterationInvariantRate);
}

constexpr int64_t kDecodePrompt = 32;
constexpr int64_t kDecodeWindow = 256;  // the cache is refilled every kDecodeWindow tokens (untimed)

void decode_benchmark(benchmark::State& state, BenchEnv& env, const std::string& model_name,
                      torch::ScalarType dtype) {
  Model& model = env.model(model_name, dtype);
  const auto prompt = synthetic_prompt(kDecodePrompt, model.config().vocab_size, 2);
  KVCache cache;
  int64_t next = model.last_logits({prompt}, &cache, kDecodeWindow).argmax(-1).item<int64_t>();
  // Greedy decoding reads each token on the host (item()): that read is the step's synchronisation.
  std::unique_ptr<DeviceTimer> timer;
  if (model.device().is_cuda()) timer = std::make_unique<DeviceTimer>(model.device());
  for (auto _ : state) {
    if (cache.length == kDecodePrompt + kDecodeWindow) {
      state.PauseTiming();
      next = model.last_logits({prompt}, &cache, kDecodeWindow).argmax(-1).item<int64_t>();
      state.ResumeTiming();
    }
    if (timer) timer->start();
    next = model.decode_step({next}, cache).argmax(-1).item<int64_t>();
    if (timer) state.SetIterationTime(timer->stop());
  }
  state.counters["tokens_per_s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

void register_forward_benchmarks(BenchEnv& env) {
  const bool on_cuda = env.settings().device.is_cuda();
  std::vector<const char*> dtypes = {"fp32", "bf16"};
  if (on_cuda) dtypes.push_back("fp16");  // the CPU has no half-precision matmul
  // Google Benchmark's own clock on the CPU; CUDA events (manual time) on a GPU.
  auto timed = [on_cuda](benchmark::internal::Benchmark* b) { return on_cuda ? b->UseManualTime() : b->UseRealTime(); };
  for (const std::string& preset : env.options().presets) {
    for (const char* dtype_label : dtypes) {
      const torch::ScalarType dtype = parse_dtype(dtype_label);
      for (int64_t length : {32, 128}) {
        auto* prefill = env.add_benchmark(
            fmt::format("Forward/{}/{}/prefill:{}", preset, dtype_label, length).c_str(),
            [&env, preset, dtype, length](benchmark::State& state) {
              prefill_benchmark(state, env, preset, dtype, length);
            })
            ->Unit(benchmark::kMillisecond);
        timed(prefill);
      }
      auto* decode = env.add_benchmark(fmt::format("Decode/{}/{}", preset, dtype_label).c_str(),
                                       [&env, preset, dtype](benchmark::State& state) {
                                         decode_benchmark(state, env, preset, dtype);
                                       })
                         ->Unit(benchmark::kMillisecond);
      timed(decode);
    }
  }
}

}  // namespace tstar::bench
