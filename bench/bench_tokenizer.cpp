// Tokenizer/encode: encoding throughput over a fixed text (fixtures/tokenizer/bench_text.txt,
// compiled in) with the experiments' tokenizer (--tokenizer, else the model's tokenizer.json).
// ci/compare_tokenizer_speed.py times HF `tokenizers` on the same text and tokenizer for the ratio.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "bench_env.h"
#include "tstar/tokenizer.h"

#ifndef TSTAR_BENCH_TEXT_FILE
#error "TSTAR_BENCH_TEXT_FILE must name the tokenizer benchmark's text (bench/CMakeLists.txt)"
#endif

asm(".section .rodata\n"
    ".global tstar_bench_text_begin\ntstar_bench_text_begin:\n"
    ".incbin \"" TSTAR_BENCH_TEXT_FILE "\"\n"
    ".global tstar_bench_text_end\ntstar_bench_text_end:\n"
    ".byte 0\n"
    ".previous\n");
extern "C" const char tstar_bench_text_begin[];
extern "C" const char tstar_bench_text_end[];

namespace tstar::bench {

void register_tokenizer_benchmarks(BenchEnv& env) {
  env.add_benchmark("Tokenizer/encode", [&env](benchmark::State& state) {
    const std::string text(tstar_bench_text_begin, static_cast<size_t>(tstar_bench_text_end - tstar_bench_text_begin));
    try {
      const std::filesystem::path path = env.settings().tokenizer_path();
      const Tokenizer tokenizer = Tokenizer::load(path);
      size_t tokens = 0;
      for (auto _ : state) {
        std::vector<int64_t> ids = tokenizer.encode(text);
        tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
      }
      state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
      state.counters["tokens"] = static_cast<double>(tokens);
      state.SetLabel(path.string());
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
  })->Unit(benchmark::kMicrosecond);
}

}  // namespace tstar::bench
