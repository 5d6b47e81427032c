// Tokenizer/encode: byte-level BPE encoding throughput over fixtures/tokenizer/bench_text.txt.
// Uses the Qwen2 tokenizer from ../shared when present, else the small fixture tokenizer.
// ci/compare_tokenizer_speed.py times HF `tokenizers` on the same text for the ratio.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "tokenizer.h"

namespace {

namespace fs = std::filesystem;

std::optional<fs::path> bench_tokenizer_path() {
  const fs::path root = TSTAR_SOURCE_DIR;
  for (const fs::path& candidate : {root / "../shared/fixtures/qwen2-tokenizer/tokenizer.json",
                                    root / "fixtures/tokenizer/small/tokenizer.json"}) {
    if (fs::exists(candidate)) return candidate;
  }
  return std::nullopt;
}

void BM_TokenizerEncode(benchmark::State& state) {
  const fs::path text_path = fs::path(TSTAR_SOURCE_DIR) / "fixtures/tokenizer/bench_text.txt";
  std::ifstream in(text_path, std::ios::binary);
  const auto tokenizer_path = bench_tokenizer_path();
  if (!in || !tokenizer_path) {
    state.SkipWithError("fixtures/tokenizer/bench_text.txt or a tokenizer.json is missing");
    return;
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const tstar::Tokenizer tokenizer = tstar::Tokenizer::load(*tokenizer_path);
  size_t tokens = 0;
  for (auto _ : state) {
    std::vector<int64_t> ids = tokenizer.encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
  state.counters["tokens"] = double(tokens);
  state.SetLabel(tokenizer_path->parent_path().filename().string());
}

BENCHMARK(BM_TokenizerEncode)->Name("Tokenizer/encode")->Unit(benchmark::kMicrosecond);

}  // namespace
