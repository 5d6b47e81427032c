// `tstar logits|generate|params`: JSON results, --out safetensors, and one-line errors with exit 1.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>

#include "tstar/model.h"
#include "tstar/safetensors.h"
#include "tstar/tokenizer.h"
#include "tool_runner.h"

namespace tstar {
namespace {

using testing::run_tool;
const std::string kQwen = "fixtures/models/qwen2-tiny";

// This test process computes unpinned (native) on its thread count; the tool must compute as it
// does for the bits to match, so it runs under the native profile with the same threads.
std::string same_compute_as_this_process() {
  return " --compute native --threads " + std::to_string(at::get_num_threads()) + " ";
}

TEST(CliModel, LogitsTopKMatchesLibraryAndWritesFullVector) {
  const auto out = std::filesystem::temp_directory_path() / ("tstar_cli_logits_" + std::to_string(getpid()) + ".safetensors");
  auto result = run_tool("logits" + same_compute_as_this_process() + "--model " + kQwen + " --text 'The capital of France is' --top 3 --out " + out.string(),
                         /*merge_stderr=*/false);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto j = nlohmann::json::parse(result.output);
  Model model = Model::load(kQwen);
  auto ids = Tokenizer::load(kQwen).encode("The capital of France is");
  EXPECT_EQ(j.at("ids").get<std::vector<int64_t>>(), ids);
  torch::Tensor expected = model.last_logits({ids})[0];
  ASSERT_EQ(j.at("top").size(), 3u);
  EXPECT_EQ(j["top"][0]["id"].get<int64_t>(), expected.argmax().item<int64_t>());
  EXPECT_FLOAT_EQ(j["top"][0]["logit"].get<float>(), expected.max().item<float>());
  auto file = SafetensorsFile::open(out);
  torch::Tensor written = file->load("logits");
  EXPECT_EQ(written.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(written, expected));
  std::filesystem::remove(out);
}

TEST(CliModel, GenerateMatchesLibraryGreedy) {
  auto result = run_tool("generate" + same_compute_as_this_process() + "--model " + kQwen + " --ids 348,336,25 --max-new 4 --no-stop", false);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto j = nlohmann::json::parse(result.output);
  Model model = Model::load(kQwen);
  EXPECT_EQ(j.at("ids").get<std::vector<int64_t>>(), model.generate_greedy({{348, 336, 25}}, 4).front());
}

TEST(CliModel, ParamsListsEveryTensorAndTheTotal) {
  auto result = run_tool("params --model fixtures/models/llama-tiny", false);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto j = nlohmann::json::parse(result.output);
  Model model = Model::load("fixtures/models/llama-tiny");
  EXPECT_EQ(j.at("parameters").size(), model.parameters().size());
  EXPECT_EQ(j.at("total").get<int64_t>(), model.parameters().num_elements());
  EXPECT_EQ(j.at("total").get<int64_t>(), model.config().num_parameters());
  EXPECT_TRUE(j.at("tied_lm_head").get<bool>());
}

// Gemma's four norms per layer (and Gemma 3's q/k norms) in the count the config implies, as loaded.
TEST(CliModel, ParamsCountsGemmasNorms) {
  for (const std::string dir : {"fixtures/models/gemma2-tiny", "fixtures/models/gemma3-tiny"}) {
    auto result = run_tool("params --model " + dir, false);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    auto j = nlohmann::json::parse(result.output);
    Model model = Model::load(dir);
    EXPECT_EQ(j.at("total").get<int64_t>(), model.parameters().num_elements()) << dir;
    EXPECT_EQ(j.at("total").get<int64_t>(), model.config().num_parameters()) << dir;
    EXPECT_TRUE(j.at("tied_lm_head").get<bool>()) << dir;
  }
}

// Bad input: exit code 1 (not a crash), one line naming the culprit.
void expect_one_line_error(const std::string& args, const std::string& must_name) {
  auto result = run_tool(args);
  EXPECT_EQ(result.exit_code, 1) << args << "\n" << result.output;
  EXPECT_NE(result.output.find(must_name), std::string::npos) << result.output;
  EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1) << result.output;
}

TEST(CliModel, BadInputIsOneLineAndExitOne) {
  expect_one_line_error("logits --model /no/such/dir --ids 1", "/no/such/dir");
  expect_one_line_error("logits --model tiny --ids 1,x", "'x'");
  expect_one_line_error("logits --model tiny --ids 99999", "99999");
  expect_one_line_error("logits --model tiny --ids 1 --dtype int4", "int4");
  expect_one_line_error("logits --model tiny --text hi", "tokenizer");
  expect_one_line_error("logits --model tiny --ids 1 --top -2", "--top");
  expect_one_line_error("generate --model tiny --ids 1 --max-new abc", "--max-new");
  expect_one_line_error("params --model tiny --bogus", "--bogus");
}

TEST(CliModel, HelpDocumentsEveryOption) {
  auto result = run_tool("logits --help");
  EXPECT_EQ(result.exit_code, 0);
  for (const char* option : {"--model", "--dtype", "--device", "--text", "--ids", "--tokenizer", "--top", "--out"}) {
    EXPECT_NE(result.output.find(option), std::string::npos) << option;
  }
  for (const std::string& preset : preset_names()) EXPECT_NE(result.output.find(preset), std::string::npos) << preset;
  result = run_tool("generate --help");
  EXPECT_NE(result.output.find("--max-new"), std::string::npos);
  result = run_tool("--help");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.output.find("params"), std::string::npos);
}

}  // namespace
}  // namespace tstar
