// Strict safetensors reading/writing: every malformed input is rejected with a message naming the
// file and the offending key or tensor; valid files round-trip bit-exactly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <limits>
#include <string>

#include "loader_test_util.h"
#include "tstar/safetensors.h"

namespace tstar {
namespace {

using testing::read_file;
using testing::TempDir;
using testing::throws_mentioning;
using testing::write_file;

std::string le64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return bytes;
}

// A safetensors image: length prefix, the given header text, then `data_bytes` zero bytes.
std::string image(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

// Writes `bytes` to dir/name and opens it, returning the path for message checks.
class BadFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& bytes, const std::string& name = "bad.safetensors") {
    write_file(dir_ / name, bytes);
    return (dir_ / name).string();
  }
  TempDir dir_;
};

TEST_F(BadFileTest, TruncatedFileIsRejected) {
  const auto path = write(std::string("\x10\x00\x00\x00\x00", 5));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "5 bytes", "too short"}));
}

TEST_F(BadFileTest, EmptyFileIsRejected) {
  const auto path = write("");
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "0 bytes"}));
}

TEST_F(BadFileTest, HeaderLengthPastEndOfFile) {
  const auto path = write(le64(1000) + "{}");
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "header length 1000", "end of the file"}));
}

TEST_F(BadFileTest, AbsurdHeaderLength) {
  const auto path = write(le64(uint64_t{1} << 62) + "{}");
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "exceeds"}));
}

TEST_F(BadFileTest, InvalidJsonHeader) {
  const auto path = write(image("{\"w\": {\"dtype\": ", 0));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "not valid JSON"}));
}

TEST_F(BadFileTest, InvalidUtf8InHeader) {
  const auto path = write(image("{\"w\xff\": {}}", 0));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "not valid JSON"}));
}

TEST_F(BadFileTest, NulByteInHeader) {
  // A JSON parser that treats NUL as end of input would accept the bytes after it.
  const auto path = write(image(std::string("{}  \0\0  ", 8), 0));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "NUL byte at header offset 4"}));
}

TEST_F(BadFileTest, HeaderNotAnObject) {
  const auto path = write(image("[1, 2]", 0));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "not a JSON object"}));
}

TEST_F(BadFileTest, DeeplyNestedHeader) {
  const auto path = write(image(std::string(200, '[') + std::string(200, ']'), 0));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "nests deeper"}));
}

// Stricter than the reference implementation, which silently keeps the last of two equal names.
TEST_F(BadFileTest, DuplicateTensorName) {
  const auto path = write(image(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                   "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                8));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "repeats the key 'w'"}));
}

TEST_F(BadFileTest, TensorEntryNotAnObject) {
  const auto path = write(image(R"({"w": [1, 2]})", 0));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "JSON object"}));
}

TEST_F(BadFileTest, MissingField) {
  const auto path = write(image(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "missing field 'shape'"}));
}


class UnsupportedDtypeTest : public BadFileTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(UnsupportedDtypeTest, NamesDtypeTensorAndFile) {
  const auto path = write(image(R"({"w": {"dtype": ")" + GetParam() + R"(", "shape": [1], "data_offsets": [0, 8]}})", 8));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); },
                                {path, "unsupported dtype '" + GetParam() + "'", "tensor 'w'"}));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, UnsupportedDtypeTest, ::testing::Values("F64", "I8", "U8", "BOOL", "F8_E4M3", "f32"));

TEST_F(BadFileTest, DtypeNotAString) {
  const auto path = write(image(R"({"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "'dtype'"}));
}

TEST_F(BadFileTest, NegativeShape) {
  const auto path = write(image(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "non-negative"}));
}

TEST_F(BadFileTest, FractionalShape) {
  const auto path = write(image(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 4]}})", 4));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "non-negative"}));
}

TEST_F(BadFileTest, ShapeElementCountOverflow) {
  const auto path =
      write(image(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 4]}})", 4));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "too many elements"}));
}

TEST_F(BadFileTest, ByteCountOverflow) {
  // 2^62 elements fit int64, 2^62 * 4 bytes do not fit uint64.
  const auto path = write(image(R"({"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 4]}})", 4));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "span 4 bytes"}));
}

TEST_F(BadFileTest, WrongByteSize) {
  const auto path = write(image(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "span 8 bytes", "3 x 4"}));
}

TEST_F(BadFileTest, OffsetsPastEndOfData) {
  const auto path = write(image(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "8-byte data region"}));
}

TEST_F(BadFileTest, OffsetsEndBeforeBegin) {
  const auto path = write(image(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "end before they begin"}));
}

TEST_F(BadFileTest, MalformedOffsets) {
  for (const std::string offsets : {"[0]", "[0, 4, 8]", R"(["0", 4])", "[-4, 0]", "{}"}) {
    const auto path = write(image(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": )" + offsets + "}}", 4));
    EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "'data_offsets'"}))
        << offsets;
  }
}

TEST_F(BadFileTest, OverlappingTensorsNameBoth) {
  const auto path = write(image(R"({"first": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                   "second": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                                24));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "'first'", "'second'", "overlap"}));
}

TEST_F(BadFileTest, GapBetweenTensors) {
  const auto path = write(image(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}})",
                                24));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "8 unused bytes before tensor 'b'"}));
}

TEST_F(BadFileTest, TrailingBytesAfterLastTensor) {
  const auto path = write(image(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 12));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "holds 12 bytes", "'a'"}));
}

TEST_F(BadFileTest, MetadataValueNotAString) {
  const auto path = write(image(R"({"__metadata__": {"format": "pt", "step": 3}})", 0));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "__metadata__", "'step'"}));
}

TEST_F(BadFileTest, MetadataNotAnObject) {
  const auto path = write(image(R"({"__metadata__": "pt"})", 0));
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "__metadata__"}));
}

TEST(SafetensorsOpen, NonexistentPathIsNamed) {
  TempDir dir;
  const auto path = (dir / "missing.safetensors").string();
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(path); }, {path, "no such file"}));
}

TEST(SafetensorsOpen, DirectoryIsRejected) {
  TempDir dir;
  EXPECT_TRUE(throws_mentioning([&] { SafetensorsFile::open(dir.path()); }, {dir.path().string(), "directory"}));
}

TEST(SafetensorsParse, AcceptsEmptyHeaderAndSpacePadding) {
  const std::string bytes = image("{}      ", 0);
  const ParsedHeader parsed = parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
  EXPECT_TRUE(parsed.tensors.empty());
  EXPECT_EQ(parsed.data_start, 16u);
}

TEST(SafetensorsParse, IgnoresUnknownEntryFieldsLikeTheReference) {
  const std::string bytes = image(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": [1]}})", 4);
  const ParsedHeader parsed = parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
  ASSERT_EQ(parsed.tensors.size(), 1u);
  EXPECT_EQ(parsed.tensors[0].name, "w");
}

TEST(SafetensorsParse, SortsTensorsByOffsetAndKeepsZeroSized) {
  const std::string bytes = image(R"({"late": {"dtype": "BF16", "shape": [2], "data_offsets": [8, 12]},
                                      "empty": {"dtype": "F32", "shape": [0, 5], "data_offsets": [12, 12]},
                                      "early": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}})",
                                  12);
  const ParsedHeader parsed = parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
  ASSERT_EQ(parsed.tensors.size(), 3u);
  EXPECT_EQ(parsed.tensors[0].name, "early");
  EXPECT_EQ(parsed.tensors[0].dtype, torch::kLong);
  EXPECT_TRUE(parsed.tensors[0].shape.empty());
  EXPECT_EQ(parsed.tensors[1].name, "late");
  EXPECT_EQ(parsed.tensors[1].dtype, torch::kBFloat16);
  EXPECT_EQ(parsed.tensors[2].name, "empty");
  EXPECT_EQ(parsed.tensors[2].shape, (std::vector<int64_t>{0, 5}));
}

// ---------------------------------------------------------------- writing and round trips

// Values whose bits must survive: signed zeros, infinities, NaN, subnormals, extremes.
torch::Tensor awkward_values(torch::ScalarType dtype) {
  const float inf = std::numeric_limits<float>::infinity();
  auto special = torch::tensor({0.0f, -0.0f, inf, -inf, std::nanf(""), 1e-40f, -3.5f, 65504.0f, 1e-8f},
                               torch::kFloat);
  auto random = torch::randn({5, 7}, torch::TensorOptions().dtype(torch::kFloat)).mul(100);
  return torch::cat({special, random.flatten()}).reshape({4, 11}).to(dtype);
}

// Bitwise equality through an integer view of the same width.
bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto bits = a.element_size() == 2 ? torch::kShort : (a.element_size() == 4 ? torch::kInt : torch::kLong);
  return torch::equal(a.contiguous().view(bits), b.contiguous().view(bits));
}

TEST(SafetensorsWrite, RoundTripIsBitExact) {
  torch::manual_seed(7);
  TempDir dir;
  const auto path = dir / "round.safetensors";
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f32", awkward_values(torch::kFloat)},
      {"f16", awkward_values(torch::kHalf)},
      {"bf16", awkward_values(torch::kBFloat16)},
      {"i64", torch::arange(-5, 7, torch::kLong).reshape({3, 4})},
      {"i32", torch::tensor({std::numeric_limits<int32_t>::min(), 0, std::numeric_limits<int32_t>::max()})},
      {"scalar", torch::tensor(2.5f)},
      {"empty", torch::zeros({0, 3}, torch::kBFloat16)},
      {"transposed", torch::arange(12, torch::kFloat).reshape({3, 4}).t()},
  };
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "round trip"}});

  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->tensors().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    const TensorInfo* info = file->find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->dtype, expected.scalar_type()) << name;
    EXPECT_TRUE(same_bits(file->load(name), expected)) << name;
    EXPECT_TRUE(same_bits(file->view(*info), expected)) << name;
  }
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "round trip"}}));
}

TEST(SafetensorsWrite, LayoutMatchesReferenceWriter) {
  TempDir dir;
  const auto path = dir / "layout.safetensors";
  write_safetensors(path, {{"b16", torch::ones({3}, torch::kBFloat16)}, {"a32", torch::ones({1}, torch::kFloat)}},
                    {{"k", "v"}});
  const std::string bytes = read_file(path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  EXPECT_EQ(header_bytes % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_bytes + 4 + 6);
  // Widest dtype first, so every tensor starts aligned to its element size; spaces pad the header.
  const std::string header = bytes.substr(8, header_bytes);
  const std::string expected = R"({"__metadata__":{"k":"v"},"a32":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("b16":{"dtype":"BF16","shape":[3],"data_offsets":[4,10]}})";
  EXPECT_EQ(header.substr(0, expected.size()), expected);
  EXPECT_EQ(header.substr(expected.size()), std::string(header.size() - expected.size(), ' '));
}

TEST(SafetensorsWrite, ReplacesAtomicallyAndLeavesNoTemporaries) {
  TempDir dir;
  const auto path = dir / "w.safetensors";
  write_safetensors(path, {{"x", torch::zeros({2})}});
  write_safetensors(path, {{"y", torch::ones({3})}});
  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->find("x"), nullptr);
  EXPECT_TRUE(torch::equal(file->load("y"), torch::ones({3})));
  size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++entries;
    EXPECT_EQ(entry.path().filename(), "w.safetensors");
  }
  EXPECT_EQ(entries, 1u);
}

TEST(SafetensorsWrite, RejectsBadInputsNamingThem) {
  TempDir dir;
  const auto path = dir / "bad.safetensors";
  EXPECT_TRUE(throws_mentioning([&] { write_safetensors(path, {{"d", torch::zeros({2}, torch::kDouble)}}); },
                                {path.string(), "tensor 'd'", "Double"}));
  EXPECT_TRUE(throws_mentioning([&] { write_safetensors(path, {{"x", torch::zeros({1})}, {"x", torch::zeros({1})}}); },
                                {path.string(), "tensor 'x'"}));
  EXPECT_TRUE(throws_mentioning([&] { write_safetensors(path, {{"__metadata__", torch::zeros({1})}}); },
                                {path.string(), "__metadata__"}));
  const auto nowhere = dir / "no-such-dir" / "x.safetensors";
  EXPECT_TRUE(throws_mentioning([&] { write_safetensors(nowhere, {{"x", torch::zeros({1})}}); }, {nowhere.string()}));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(SafetensorsView, IsZeroCopyAndKeepsMappingAlive) {
  TempDir dir;
  const auto path = dir / "v.safetensors";
  const auto values = torch::arange(6, torch::kFloat).reshape({2, 3});
  write_safetensors(path, {{"v", values}});
  auto file = SafetensorsFile::open(path);
  const torch::Tensor first = file->view(*file->find("v"));
  const torch::Tensor second = file->view(*file->find("v"));
  EXPECT_EQ(first.data_ptr(), second.data_ptr());
  const torch::Tensor owned = file->load("v");
  EXPECT_NE(owned.data_ptr(), first.data_ptr());
  file.reset();  // the views hold the mapping
  EXPECT_TRUE(torch::equal(first, values));
}

TEST(SafetensorsLoad, AbsentTensorIsNamed) {
  TempDir dir;
  const auto path = dir / "a.safetensors";
  write_safetensors(path, {{"a", torch::zeros({1})}});
  const auto file = SafetensorsFile::open(path);
  EXPECT_TRUE(throws_mentioning([&] { file->load("b"); }, {path.string(), "'b'"}));
}

// ---------------------------------------------------------------- checkpoints

class CheckpointTest : public ::testing::Test {
 protected:
  // Two shards: "a" and "b" in the first, "c" in the second; the index as given.
  void write_shards(const std::string& index_json) {
    write_safetensors(dir_ / "model-00001-of-00002.safetensors",
                      {{"a", torch::full({2}, 1.0f)}, {"b", torch::full({3}, 2.0f)}});
    write_safetensors(dir_ / "model-00002-of-00002.safetensors", {{"c", torch::full({4}, 3.0f)}});
    write_file(dir_ / "model.safetensors.index.json", index_json);
  }
  std::string index_path() const { return (dir_ / "model.safetensors.index.json").string(); }
  TempDir dir_;
};

constexpr const char* kGoodIndex = R"({"metadata": {"total_size": 36}, "weight_map": {
    "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
    "c": "model-00002-of-00002.safetensors"}})";

TEST_F(CheckpointTest, SingleFile) {
  write_safetensors(dir_ / "model.safetensors", {{"w", torch::ones({2, 2})}, {"b", torch::zeros({2})}});
  const Checkpoint checkpoint = Checkpoint::open(dir_.path());
  EXPECT_EQ(checkpoint.tensors().size(), 2u);
  EXPECT_EQ(checkpoint.files(), std::vector<std::filesystem::path>{dir_ / "model.safetensors"});
  const auto* entry = checkpoint.find("w");
  ASSERT_NE(entry, nullptr);
  EXPECT_TRUE(torch::equal(entry->file->view(*entry->info), torch::ones({2, 2})));
  EXPECT_EQ(checkpoint.find("missing"), nullptr);
}

TEST_F(CheckpointTest, Sharded) {
  write_shards(kGoodIndex);
  const Checkpoint checkpoint = Checkpoint::open(dir_.path());
  EXPECT_EQ(checkpoint.files().size(), 2u);
  ASSERT_EQ(checkpoint.tensors().size(), 3u);
  const auto* c = checkpoint.find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->file->path(), dir_ / "model-00002-of-00002.safetensors");
  EXPECT_TRUE(torch::equal(c->file->load("c"), torch::full({4}, 3.0f)));
  EXPECT_TRUE(torch::equal(checkpoint.find("b")->file->view(*checkpoint.find("b")->info), torch::full({3}, 2.0f)));
}

TEST_F(CheckpointTest, MissingShardIsNamed) {
  write_shards(R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                                  "c": "model-00002-of-00002.safetensors", "d": "model-00003-of-00003.safetensors"}})");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); },
                                {index_path(), "model-00003-of-00003.safetensors", "'d'", "does not exist"}));
}

TEST_F(CheckpointTest, TensorMissingFromItsShard) {
  write_shards(R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                                  "c": "model-00002-of-00002.safetensors", "z": "model-00002-of-00002.safetensors"}})");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); },
                                {index_path(), "tensor 'z'", "model-00002-of-00002.safetensors"}));
}

TEST_F(CheckpointTest, TensorMappedToTheWrongShard) {
  write_shards(R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                                  "c": "model-00001-of-00002.safetensors"}})");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); }, {index_path(), "'c'"}));
}

TEST_F(CheckpointTest, TensorUnlistedInWeightMap) {
  write_shards(R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); },
                                {index_path(), "'b'", "model-00001-of-00002.safetensors", "does not list"}));
}

TEST_F(CheckpointTest, TensorInTwoShards) {
  write_shards(kGoodIndex);
  write_safetensors(dir_ / "model-00002-of-00002.safetensors", {{"c", torch::zeros({4})}, {"a", torch::zeros({2})}});
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); },
                                {"'a'", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}));
}

TEST_F(CheckpointTest, ShardNameMustStayInDirectory) {
  write_shards(R"({"weight_map": {"a": "../model-00001-of-00002.safetensors"}})");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); }, {index_path(), "'a'", "plain file name"}));
}

TEST_F(CheckpointTest, MalformedIndex) {
  write_shards("{\"weight_map\": ");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); }, {index_path(), "invalid JSON"}));
  write_file(dir_ / "model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); }, {index_path(), "'weight_map'"}));
  write_file(dir_ / "model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); }, {index_path(), "'a'"}));
}

TEST_F(CheckpointTest, CorruptShardIsNamed) {
  write_shards(kGoodIndex);
  write_file(dir_ / "model-00002-of-00002.safetensors", "junk");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); },
                                {(dir_ / "model-00002-of-00002.safetensors").string(), "too short"}));
}

TEST_F(CheckpointTest, DirectoryProblemsAreNamed) {
  const auto missing = (dir_ / "nope").string();
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(missing); }, {missing, "does not exist"}));
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_.path()); },
                                {dir_.path().string(), "model.safetensors", "model.safetensors.index.json"}));
  write_file(dir_ / "plain", "x");
  EXPECT_TRUE(throws_mentioning([&] { Checkpoint::open(dir_ / "plain"); }, {(dir_ / "plain").string(), "not a directory"}));
}

}  // namespace
}  // namespace tstar
