// The embedded default model (fixtures/models/tstar-counting, made by `tstar train`): it answers
// the notebook's four prompts, generalises to held-out combinations, and its answers are peaked.
// HF parity for it is in test_parity.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "corpus.h"
#include "embedded_model.h"
#include "tstar/error.h"
#include "tstar/model.h"
#include "tstar/tokenizer.h"

namespace tstar {
namespace {

const std::filesystem::path kModelDir = "fixtures/models/tstar-counting";

struct Loaded {
  Model model;
  Tokenizer tokenizer;
};

const Loaded& embedded() {
  static const Loaded loaded{Model::load(kModelDir), Tokenizer::load(kModelDir)};
  return loaded;
}

std::vector<std::vector<int64_t>> encode_prompts(const std::vector<CorpusExample>& examples) {
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& e : examples) prompts.push_back(embedded().tokenizer.encode(e.prompt, /*add_special=*/false));
  return prompts;
}

// Greedy completions, decoded without the EOS.
std::vector<std::string> greedy_answers(const std::vector<CorpusExample>& examples) {
  const Loaded& m = embedded();
  std::vector<std::string> out;
  for (const auto& ids : m.model.generate_greedy(encode_prompts(examples), 4, m.tokenizer.eos_id())) {
    out.push_back(m.tokenizer.decode(ids, /*skip_special=*/true));
  }
  return out;
}

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Points the embedded model's cache at a fresh directory for one test, and back afterwards.
class CacheDirectory {
 public:
  CacheDirectory() : dir_(std::filesystem::temp_directory_path() / ("tstar-cache-test-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir_);
    const char* old = std::getenv("TSTAR_CACHE_DIR");
    if (old) old_ = old;
    setenv("TSTAR_CACHE_DIR", dir_.c_str(), 1);
  }
  ~CacheDirectory() {
    if (old_.empty()) unsetenv("TSTAR_CACHE_DIR");
    else setenv("TSTAR_CACHE_DIR", old_.c_str(), 1);
    std::filesystem::remove_all(dir_);
  }
  const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::string old_;
};

// The binary carries the committed fixture, byte for byte, and the default model is that copy.
TEST(EmbeddedModel, DefaultModelIsTheCommittedFixtureCompiledIn) {
  CacheDirectory cache;
  const std::filesystem::path dir = default_model();
  EXPECT_EQ(dir.parent_path(), cache.path());
  const auto files = embedded_model_files();
  ASSERT_EQ(files.size(), 4u);
  for (const auto& file : files) {
    EXPECT_EQ(file.bytes, file_bytes(kModelDir / file.name)) << file.name << " differs from the fixture";
    EXPECT_EQ(file_bytes(dir / file.name), file_bytes(kModelDir / file.name)) << file.name;
  }
  EXPECT_EQ(Model::load(dir).config().to_json(), embedded().model.config().to_json());
}

TEST(EmbeddedModel, CacheIsReusedAndADamagedCopyReplaced) {
  CacheDirectory cache;
  const std::filesystem::path dir = default_model();
  EXPECT_EQ(default_model(), dir.string());
  std::filesystem::resize_file(dir / "model.safetensors", 100);  // e.g. a copy cut short by a full disk
  EXPECT_EQ(default_model(), dir.string());
  EXPECT_EQ(file_bytes(dir / "model.safetensors"), file_bytes(kModelDir / "model.safetensors"));
  for (const auto& entry : std::filesystem::directory_iterator(cache.path())) {
    EXPECT_EQ(entry.path(), dir) << "staging directory left behind";
  }
}

TEST(EmbeddedModel, UnwritableCacheIsAClearError) {
  CacheDirectory cache;
  std::ofstream(cache.path().string()) << "a file, not a directory";
  try {
    default_model();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(cache.path().string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(cache.path());
}

TEST(EmbeddedModel, IsASmallQwen2) {
  const ModelConfig& c = embedded().model.config();
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_LT(c.num_kv_heads, c.num_heads) << "grouped-query attention";
  EXPECT_LE(embedded().tokenizer.vocab_size(), 2048);
  const int64_t params = embedded().model.parameters().num_elements();
  EXPECT_GE(params, 1'000'000);
  EXPECT_LE(params, 5'000'000);
  uintmax_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kModelDir)) bytes += entry.file_size();
  EXPECT_LE(bytes, 10u * 1024 * 1024);
}

TEST(EmbeddedModel, AnswersTheNotebookPrompts) {
  const auto examples = notebook_examples();
  const auto answers = greedy_answers(examples);
  for (size_t i = 0; i < examples.size(); ++i) {
    // The number comes first: " 5" then EOS.
    EXPECT_EQ(answers[i], " " + examples[i].answer) << examples[i].prompt;
  }
}

int correct_answers(const std::vector<CorpusExample>& examples) {
  int correct = 0;
  for (size_t begin = 0; begin < examples.size(); begin += 100) {
    const size_t end = std::min(examples.size(), begin + 100);
    std::vector<CorpusExample> part(examples.begin() + begin, examples.begin() + end);
    const auto answers = greedy_answers(part);
    for (size_t i = 0; i < part.size(); ++i) correct += answers[i] == " " + part[i].answer;
  }
  return correct;
}

// Issue 6's acceptance: greedy answers to 400 unseen counting questions, at least 90% right.
TEST(EmbeddedModel, HeldOutAccuracyAtLeast90Percent) {
  const auto examples = held_out_set(400);
  const int correct = correct_answers(examples);
  EXPECT_GE(correct, 360) << correct << " / " << examples.size();
}

// The harder split (phrasing x numbers never trained with any object) has no acceptance bar; this
// keeps the committed model's level from eroding unnoticed (MODEL_CARD.md has its measured value).
TEST(EmbeddedModel, HeldOutCombinationsMostlyRight) {
  const auto examples = held_out_combination_set(400);
  const int correct = correct_answers(examples);
  EXPECT_GE(correct, 300) << correct << " / " << examples.size();
}

// Given the prompt and the " " that starts every answer, the first digit is a confident choice.
TEST(EmbeddedModel, AnswerDistributionsArePeaked) {
  const Loaded& m = embedded();
  const auto examples = held_out_set(200);
  auto prompts = encode_prompts(examples);
  const auto space = m.tokenizer.encode(" ", false);
  ASSERT_EQ(space.size(), 1u);
  for (auto& p : prompts) p.push_back(space.front());
  torch::Tensor probs = torch::softmax(m.model.last_logits(prompts), -1);  // [B, V]
  EXPECT_GT(std::get<0>(probs.max(-1)).mean().item<double>(), 0.5);
}

}  // namespace
}  // namespace tstar
