// Shard selection, unit files and progress (include/tstar/shards.h). The end-to-end checks (merged ==
// one process for several N, resume after SIGKILL, the merge's refusals) are tests/python/test_shards.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "tstar/error.h"
#include "tstar/shards.h"

namespace tstar {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ShardSpec, ParsesKOfN) {
  const shards::ShardSpec shard = shards::parse_shard("2/7");
  EXPECT_EQ(shard.index, 2u);
  EXPECT_EQ(shard.count, 7u);
  EXPECT_EQ(shard.label(), "2/7");
  EXPECT_EQ(shard.source, "--shard");
  for (const char* bad : {"7/7", "1/0", "3", "-1/4", "a/4", "1/4x", "/4", ""}) {
    EXPECT_NE(error_of([&] { shards::parse_shard(bad); }).find("--shard"), std::string::npos) << bad;
  }
}

TEST(ShardSpec, FromASlurmArray) {
  std::map<std::string, std::string> env;
  const auto getenv = [&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  EXPECT_FALSE(shards::slurm_shard(getenv).has_value());  // not in an array
  env = {{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "3"}};
  auto shard = shards::slurm_shard(getenv);
  ASSERT_TRUE(shard.has_value());
  EXPECT_EQ(shard->label(), "2/3");
  EXPECT_EQ(shard->source, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT");
  env = {{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_COUNT", "3"}, {"SLURM_ARRAY_TASK_MIN", "4"}};
  EXPECT_EQ(shards::slurm_shard(getenv)->label(), "1/3");  // --array=4-6
  env = {{"SLURM_ARRAY_TASK_ID", "6"}, {"SLURM_ARRAY_TASK_COUNT", "3"}};  // --array=0-6:3
  EXPECT_NE(error_of([&] { shards::slurm_shard(getenv); }).find("--array=0-2"), std::string::npos);
  env = {{"SLURM_ARRAY_TASK_COUNT", "3"}};
  EXPECT_NE(error_of([&] { shards::slurm_shard(getenv); }).find("SLURM_ARRAY_TASK_ID"), std::string::npos);
}

TEST(ShardSpec, BlocksCoverEveryItemOnce) {
  for (size_t items : {0u, 1u, 5u, 32u, 33u}) {
    for (size_t count : {1u, 2u, 3u, 7u, 40u}) {
      size_t next = 0;
      for (size_t k = 0; k < count; ++k) {
        const auto [begin, end] = shards::block_of(items, {k, count, ""});
        EXPECT_EQ(begin, next);
        EXPECT_LE(end - begin, items / count + 1);
        next = end;
      }
      EXPECT_EQ(next, items);
    }
  }
}

class UnitFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tstar-unit-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

uint64_t bits_of(double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

TEST_F(UnitFileTest, RoundTripsEveryBit) {
  const std::vector<double> doubles = {0.1, -0.0, 1e-310, std::numeric_limits<double>::max(),
                                       std::numeric_limits<double>::infinity(),
                                       std::numeric_limits<double>::quiet_NaN(), 1.0 / 3.0};
  UnitResult unit;
  unit.tensors["doubles"] = torch::tensor(doubles, torch::kDouble);
  unit.tensors["logits"] = torch::randn({3, 5}, torch::kFloat);
  unit.tensors["ids"] = torch::tensor(std::vector<int64_t>{7, -1, 151935}, torch::kLong);
  unit.meta = {{"text", "caf\u00e9 \U0001F95A"}, {"targets", {"a.weight", "b.weight"}}};
  unit.seconds = 0.123456789012345;
  const fs::path file = shards::unit_file(dir_, "noisy/layer:3/scale:0.02/seed:1");
  EXPECT_EQ(file.filename(), "noisy+layer:3+scale:0.02+seed:1.safetensors");
  shards::write_unit(file, "noisy/layer:3/scale:0.02/seed:1", unit, "abc");
  EXPECT_EQ(shards::unit_files(dir_), std::vector<fs::path>{file});

  const shards::StoredUnit stored = shards::read_unit(file);
  EXPECT_EQ(stored.id, "noisy/layer:3/scale:0.02/seed:1");
  EXPECT_EQ(stored.identity_sha256, "abc");
  EXPECT_EQ(stored.result.meta, unit.meta);
  EXPECT_EQ(stored.result.seconds, unit.seconds);
  const torch::Tensor& read_doubles = stored.result.tensors.at("doubles");
  ASSERT_EQ(read_doubles.scalar_type(), torch::kDouble);
  for (size_t i = 0; i < doubles.size(); ++i) {
    EXPECT_EQ(bits_of(read_doubles.data_ptr<double>()[i]), bits_of(doubles[i])) << i;
  }
  EXPECT_TRUE(torch::equal(stored.result.tensors.at("logits"), unit.tensors.at("logits")));
  EXPECT_TRUE(torch::equal(stored.result.tensors.at("ids"), unit.tensors.at("ids")));
}

TEST_F(UnitFileTest, RefusesATruncatedFile) {
  UnitResult unit;
  unit.tensors["logits"] = torch::zeros({4, 100}, torch::kFloat);
  const fs::path file = shards::unit_file(dir_, "clean");
  shards::write_unit(file, "clean", unit, "abc");
  fs::resize_file(file, fs::file_size(file) - 10);
  const std::string message = error_of([&] { shards::read_unit(file); });
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(Progress, PlainLinesOrNothing) {
  std::ostringstream out;
  shards::Progress plain(3, &out, /*terminal=*/false, /*interval_s=*/3600);
  for (const char* id : {"clean", "noisy/all/scale:0/seed:0", "noisy/all/scale:0/seed:1"}) {
    plain.begin(id);
    plain.finish(0.5, std::string(id) == "clean");
  }
  // The first line, then nothing until the last (the interval is an hour).
  const std::string lines = out.str();
  EXPECT_EQ(lines.rfind("tstar: units 0/3, now clean, ", 0), 0u) << lines;
  EXPECT_NE(lines.find("\ntstar: units 3/3 (1 reused), "), std::string::npos) << lines;
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 2) << lines;

  std::ostringstream terminal;
  shards::Progress rewritten(2, &terminal, /*terminal=*/true);
  rewritten.begin("clean");
  rewritten.finish(2.0, false);
  rewritten.begin("noisy/all/scale:0/seed:0");
  EXPECT_NE(terminal.str().find("\rtstar: units 1/2, now noisy/all/scale:0/seed:0, 0 s elapsed, ETA 2 s"),
            std::string::npos)
      << terminal.str();
  rewritten.finish(2.0, false);
  EXPECT_EQ(terminal.str().back(), '\n');

  shards::Progress quiet(2, nullptr, false);  // --quiet: nothing to write to
  quiet.begin("clean");
  quiet.finish(1.0, false);
}

}  // namespace
}  // namespace tstar
