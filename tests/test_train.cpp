// The training tool on a toy shape: it learns (loss falls), it is bit-reproducible for a seed and
// thread count, and what it writes loads back as the same model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tstar/model.h"
#include "train.h"

namespace tstar {
namespace {

TrainOptions toy_options(const std::filesystem::path& out) {
  TrainOptions o;
  o.out_dir = out;
  o.tokenizer_dir = "fixtures/embedded/tokenizer";
  o.steps = 12;
  o.batch_size = 8;
  o.threads = 1;
  o.warmup_steps = 2;
  o.hidden_size = 32;
  o.intermediate_size = 64;
  o.num_layers = 1;
  o.num_heads = 2;
  o.num_kv_heads = 1;
  o.log_every = 4;
  o.held_out_examples = 4;
  return o;
}

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::filesystem::path fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("tstar_test_train_" + name);
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(Train, LossFallsAndRunsAreBitIdentical) {
  const auto dir_a = fresh_dir("a"), dir_b = fresh_dir("b");
  const TrainResult a = train_counting_model(toy_options(dir_a));
  const TrainResult b = train_counting_model(toy_options(dir_b));
  ASSERT_EQ(a.curve.size(), 3u);
  EXPECT_LT(a.curve.back().loss, a.curve.front().loss);
  EXPECT_EQ(file_bytes(dir_a / "model.safetensors"), file_bytes(dir_b / "model.safetensors"));
  for (size_t i = 0; i < a.curve.size(); ++i) EXPECT_EQ(a.curve[i].loss, b.curve[i].loss);

  TrainOptions other_seed = toy_options(fresh_dir("c"));
  other_seed.seed = 2;
  train_counting_model(other_seed);
  EXPECT_NE(file_bytes(dir_a / "model.safetensors"), file_bytes(other_seed.out_dir / "model.safetensors"));
}

TEST(Train, WrittenDirectoryLoadsAsAQwen2WithTheTrainedShape) {
  const auto dir = fresh_dir("load");
  const TrainResult result = train_counting_model(toy_options(dir));
  Model model = Model::load(dir);
  EXPECT_EQ(model.config().architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(model.config().hidden_size, 32);
  EXPECT_EQ(model.config().vocab_size % 64, 0);
  EXPECT_EQ(model.parameters().num_elements(), result.num_parameters);
  EXPECT_TRUE(std::filesystem::exists(dir / "tokenizer.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "MODEL_CARD.md"));
}

}  // namespace
}  // namespace tstar
