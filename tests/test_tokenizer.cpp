// Tokenizer parity with Hugging Face `tokenizers` (goldens from
// fixtures/tokenizer/make_tokenizer_golden.py), the independent seed-prompt ids, decoding, BOS
// handling and load/encode errors.
#include <gtest/gtest.h>

#include "tool_runner.h"
#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "tstar/error.h"
#include "sha256.h"
#include "tstar/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;
using tstar::Tokenizer;

namespace {

const fs::path kRepoRoot = ".";  // ctest runs the tests in the source directory
const fs::path kQwenDir = kRepoRoot / "../shared/fixtures/qwen2-tokenizer";
const fs::path kSmallJson = kRepoRoot / "fixtures/tokenizer/small/tokenizer.json";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

#define SKIP_WITHOUT_QWEN()                                                                        \
  if (!fs::exists(kQwenDir / "tokenizer.json"))                                                    \
  GTEST_SKIP() << "Qwen2 tokenizer not found at " << kQwenDir.string()                             \
               << " (shared/ is expected beside the repository)"

// The Qwen tokenizer directory (tokenizer.json + tokenizer_config.json), loaded once: loading
// parses a 5 MB JSON file.
const Tokenizer& qwen() {
  static const Tokenizer tokenizer = Tokenizer::load(kQwenDir);
  return tokenizer;
}

// Loads only tokenizer.json, as the `tokenizers` library that made the goldens does.
Tokenizer load_json_only(const fs::path& path) { return Tokenizer::from_json_text(read_text(path), "", path.string()); }

std::string fmt_byte_token(int b) {  // "<0x0A>", as SentencePiece vocabularies spell byte b
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

std::vector<int64_t> ids_of(const json& array) { return array.get<std::vector<int64_t>>(); }

std::string nfc(const std::string& s) {
  auto* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
  std::string result(reinterpret_cast<const char*>(out));
  std::free(out);
  return result;
}

// ------------------------------------------------------------------------------------------
// Goldens: one test per fixtures/tokenizer/golden_*.json.

// Fixtures are found relative to the working directory, the repository root under ctest; from
// elsewhere the list is empty and GoldensAreFound says why.
std::vector<std::string> golden_files() {
  std::vector<std::string> names;
  if (!fs::is_directory(kRepoRoot / "fixtures/tokenizer")) return names;
  for (const auto& entry : fs::directory_iterator(kRepoRoot / "fixtures/tokenizer")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("golden_", 0) == 0 && entry.path().extension() == ".json") names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(TokenizerGoldens, GoldensAreFound) {
  EXPECT_FALSE(golden_files().empty()) << "no fixtures/tokenizer/golden_*.json below " << fs::absolute(kRepoRoot)
                                       << ": run the tests from the repository root (ctest does)";
}

class TokenizerGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerGolden, MatchesHuggingFaceTokenizers) {
  const json golden = json::parse(read_text(kRepoRoot / "fixtures/tokenizer" / GetParam()));
  const std::string relative = golden.at("tokenizer").get<std::string>();
  const fs::path path = kRepoRoot / relative;
  if (!fs::exists(path)) {
    // Only tokenizers kept outside the repository (../shared) may be absent.
    ASSERT_EQ(relative.rfind("../", 0), 0u) << "golden names a missing in-repo tokenizer: " << relative;
    GTEST_SKIP() << "tokenizer " << path.string() << " not present";
  }
  const Tokenizer tok = load_json_only(path);
  EXPECT_EQ(tok.digest(), golden.at("tokenizer_sha256").get<std::string>()) << "golden made from another file";
  const json& cases = golden.at("cases");
  ASSERT_GE(cases.size(), 200u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE(::testing::Message() << "case " << i << ": " << json(text).dump().substr(0, 80));
    const std::vector<int64_t> ids = tok.encode(text, true);
    ASSERT_EQ(ids, ids_of(c.at("ids")));
    ASSERT_EQ(tok.encode(text, false), ids_of(c.at("ids_no_special")));
    EXPECT_EQ(tok.decode(ids, false), c.at("decoded").get<std::string>());
    EXPECT_EQ(tok.decode(ids, true), c.at("decoded_skip_special").get<std::string>());
    if (!c.at("pieces").is_null()) {  // null: the tokenizer has no pre-tokenizer
      EXPECT_EQ(tok.pre_tokenize(text), c.at("pieces").get<std::vector<std::string>>());
    }
  }
  // Id lists that are not whole encodings (cut byte-fallback runs, reversed orders), when given.
  const json decodes = golden.value("decodes", json::array());
  for (size_t i = 0; i < decodes.size(); ++i) {
    const json& d = decodes[i];
    SCOPED_TRACE(::testing::Message() << "decode " << i << ": " << d.at("ids").dump().substr(0, 80));
    EXPECT_EQ(tok.decode(ids_of(d.at("ids")), false), d.at("decoded").get<std::string>());
    EXPECT_EQ(tok.decode(ids_of(d.at("ids")), true), d.at("decoded_skip_special").get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, TokenizerGolden, ::testing::ValuesIn(golden_files()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param.substr(7, info.param.size() - 12);
                           for (char& ch : name) {
                             if (!std::isalnum(uint8_t(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(Tokenizer, SmallGoldenIsCommitted) {
  const auto names = golden_files();
  EXPECT_NE(std::find(names.begin(), names.end(), "golden_small.json"), names.end());
}

// ------------------------------------------------------------------------------------------
// Qwen2 tokenizer from ../shared

TEST(Tokenizer, QwenSeedPromptsFromIndependentImplementation) {
  SKIP_WITHOUT_QWEN();
  const Tokenizer& tok = qwen();
  std::ifstream in(kQwenDir / "seed_prompts.jsonl");
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json p = json::parse(line);
    const std::string text = p.at("text").get<std::string>();
    SCOPED_TRACE(text);
    const std::vector<int64_t> ids = tok.encode(text);
    EXPECT_EQ(ids, ids_of(p.at("ids")));
    EXPECT_EQ(tok.decode(ids), p.at("decoded").get<std::string>());
    ++count;
  }
  EXPECT_GE(count, 7);
}

TEST(Tokenizer, QwenVocabularyAndSpecialIds) {
  SKIP_WITHOUT_QWEN();
  const Tokenizer tok = Tokenizer::load(kQwenDir / "tokenizer.json");
  EXPECT_EQ(tok.vocab_size(), 151669);  // 151643 BPE entries + 26 added tokens
  EXPECT_EQ(tok.token_to_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok.token_to_id("\xC4\xA0"), 220);  // "Ġ" = byte 0x20
  EXPECT_EQ(tok.token_to_id("no such token"), -1);
  EXPECT_EQ(tok.id_to_token(151667), "<think>");
  EXPECT_EQ(tok.bos_id(), -1);     // tokenizer_config: bos_token null
  EXPECT_EQ(tok.eos_id(), 151645); // tokenizer_config: eos_token <|im_end|>
  EXPECT_TRUE(tok.is_special(151643));
  EXPECT_FALSE(tok.is_special(151667));  // <think> is added but not special
  EXPECT_THROW(tok.id_to_token(151669), tstar::Error);
  // HF skips ids its vocabulary lacks (checked with tokenizers 0.23.3: decode([483, 270]) on a
  // 403-token vocabulary spells token 270 alone).
  EXPECT_EQ(tok.decode({151669, 40, 151669}), tok.decode({40}));
  EXPECT_EQ(tok.decode({-1}), "");
  EXPECT_EQ(tok.digest(), tstar::sha256_hex_file(kQwenDir / "tokenizer.json"));
  // HF decodes the first two tokens of an emoji to " \uFFFD" (checked with tokenizers 0.23.3).
  EXPECT_EQ(tok.decode({11162, 98}), " \xEF\xBF\xBD");
}

TEST(Tokenizer, QwenSpecialTokensInsideText) {
  SKIP_WITHOUT_QWEN();
  const Tokenizer& tok = qwen();
  const std::string text = "<|im_start|>user\nHi<|im_end|><think>";
  const std::vector<int64_t> ids = tok.encode(text);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids[ids.size() - 2], 151645);
  EXPECT_EQ(ids.back(), 151667);
  // The pieces between special tokens are encoded on their own.
  std::vector<int64_t> middle(ids.begin() + 1, ids.end() - 2);
  EXPECT_EQ(middle, tok.encode("user\nHi"));
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.decode(ids, true), "user\nHi<think>");  // <think> is not special
  // An incomplete special token is ordinary text.
  for (int64_t id : tok.encode("<|im_start|")) EXPECT_LT(id, 151643);
}

// The DeepSeek-R1-Distill-Qwen tokenizer is Qwen's with other special tokens and
// tokenizer_config add_bos_token=true, bos "<｜begin▁of▁sentence｜>" (id 151646).
TEST(Tokenizer, DeepSeekDistillConfigPrependsBos) {
  SKIP_WITHOUT_QWEN();
  const std::string bos = "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";
  const std::string eos = "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";
  json tj = json::parse(read_text(kQwenDir / "tokenizer.json"));
  for (json& t : tj["added_tokens"]) {
    if (t["id"] == 151646) t["content"] = bos;
    if (t["id"] == 151643) t["content"] = eos;
  }
  const json config = {{"add_bos_token", true}, {"add_eos_token", false}, {"bos_token", {{"content", bos}}},
                       {"eos_token", eos}, {"tokenizer_class", "LlamaTokenizerFast"}};
  const fs::path dir = fs::temp_directory_path() / ("tstar_deepseek_tok_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << tj.dump();
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
  const Tokenizer deepseek = Tokenizer::load(dir);
  fs::remove_all(dir);

  EXPECT_EQ(deepseek.bos_id(), 151646);
  EXPECT_EQ(deepseek.eos_id(), 151643);
  const std::string prompt = "The capital of France is";
  const std::vector<int64_t> ids = deepseek.encode(prompt);
  std::vector<int64_t> expected = {151646, 785, 6722, 315, 9625, 374};  // seed_prompts ids after BOS
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(deepseek.encode(prompt, false), qwen().encode(prompt));
  EXPECT_EQ(deepseek.decode(ids, true), prompt);
  EXPECT_EQ(deepseek.decode(ids, false), bos + prompt);  // not in the byte alphabet: raw UTF-8
  // BOS written in the text is matched as the special token, and still prepended once.
  EXPECT_EQ(deepseek.encode(bos + prompt, false), expected);
}

// ------------------------------------------------------------------------------------------
// Small fixture tokenizer: round trips, BOS from a synthetic config, errors.

// `length` code points, each from a range picked at random.
std::string random_utf8(std::mt19937& rng, const std::vector<std::pair<int32_t, int32_t>>& ranges, int length) {
  std::string s;
  for (int k = 0; k < length; ++k) {
    const auto& r = ranges[rng() % ranges.size()];
    const int32_t cp = r.first + int32_t(rng() % uint32_t(r.second - r.first + 1));
    utf8proc_uint8_t buf[4];
    s.append(reinterpret_cast<char*>(buf), size_t(utf8proc_encode_char(cp, buf)));
  }
  return s;
}

TEST(Tokenizer, DecodeOfEncodeIsNfcForRandomUtf8) {
  const Tokenizer tok = load_json_only(kSmallJson);
  std::mt19937 rng(20261127);
  // Code point ranges that exercise ASCII, Latin with combining marks, CJK, Hangul and emoji.
  const std::vector<std::pair<int32_t, int32_t>> ranges = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0xC0, 0x17F}, {0x300, 0x36F}, {0x4E00, 0x4E80},
      {0xAC00, 0xAC40}, {0x1100, 0x1175}, {0x1F300, 0x1F64F}, {0x200B, 0x200D}, {0x0600, 0x06FF}};
  for (int trial = 0; trial < 300; ++trial) {
    const std::string s = random_utf8(rng, ranges, int(rng() % 40));
    ASSERT_EQ(tok.decode(tok.encode(s)), nfc(s)) << json(s).dump();
  }
}

// encode() is const and shares its word cache between threads; results must not depend on it.
TEST(Tokenizer, ConcurrentEncodesAgree) {
  const json golden = json::parse(read_text(kRepoRoot / "fixtures/tokenizer/golden_small.json"));
  const Tokenizer tok = load_json_only(kSmallJson);  // fresh, empty cache
  std::vector<std::vector<std::vector<int64_t>>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < golden["cases"].size(); ++i) {
        const size_t k = (i * (t + 1)) % golden["cases"].size();  // different orders per thread
        results[t].push_back(tok.encode(golden["cases"][k]["text"].get<std::string>()));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < results.size(); ++t) {
    for (size_t i = 0; i < results[t].size(); ++i) {
      const size_t k = (i * (t + 1)) % golden["cases"].size();
      ASSERT_EQ(results[t][i], ids_of(golden["cases"][k]["ids"])) << "thread " << t << " case " << k;
    }
  }
}

TEST(Tokenizer, ConfigBosIsPrependedOnlyWithSpecialTokens) {
  const json config = {{"add_bos_token", true}, {"bos_token", "<|endoftext|>"}};
  const Tokenizer plain = load_json_only(kSmallJson);
  const Tokenizer with_bos = Tokenizer::from_json_text(read_text(kSmallJson), config.dump(), "small+bos");
  const int64_t bos = plain.token_to_id("<|endoftext|>");
  ASSERT_GE(bos, 0);
  EXPECT_EQ(with_bos.bos_id(), bos);
  std::vector<int64_t> expected = {bos};
  const std::vector<int64_t> body = plain.encode("hello world");
  expected.insert(expected.end(), body.begin(), body.end());
  EXPECT_EQ(with_bos.encode("hello world"), expected);
  EXPECT_EQ(with_bos.encode("hello world", false), body);
  EXPECT_EQ(with_bos.encode(""), std::vector<int64_t>{bos});
}

TEST(Tokenizer, InvalidUtf8IsAnError) {
  const Tokenizer tok = load_json_only(kSmallJson);
  for (const std::string bad : {std::string("\xFF"), std::string("abc\xC3"), std::string("\xC0\xAF"),
                                std::string("\xED\xA0\x80"), std::string("ok \xF4\x90\x80\x80")}) {
    try {
      tok.encode(bad);
      ADD_FAILURE() << "no error for " << json::binary_t(std::vector<uint8_t>(bad.begin(), bad.end()));
    } catch (const tstar::Error& e) {
      EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
    }
  }
}

TEST(Tokenizer, DecodeReplacesBrokenUtf8LikeHf) {
  const Tokenizer tok = load_json_only(kSmallJson);
  // An emoji the small vocabulary has no token for is split into byte tokens; without its last
  // byte the rest is one maximal invalid subsequence: one U+FFFD.
  const std::string test_tube = "\xF0\x9F\xA7\xAA";
  std::vector<int64_t> ids = tok.encode(test_tube, false);
  ASSERT_GE(ids.size(), 2u);
  ASSERT_EQ(tok.decode(ids), test_tube);
  ids.pop_back();
  EXPECT_EQ(tok.decode(ids), "\xEF\xBF\xBD");
  // A lone continuation byte is replaced too, and the text around it kept.
  std::vector<int64_t> around = tok.encode("a", false);
  const std::vector<int64_t> tail = tok.encode(test_tube, false);
  around.push_back(tail.back());
  EXPECT_EQ(tok.decode(around), "a\xEF\xBF\xBD");
}

// Mutates a tokenizer.json (the small one by default) and expects a load error naming `field`.
void expect_load_error(const std::function<void(json&)>& mutate, const std::string& field,
                       const fs::path& base = kSmallJson) {
  json j = json::parse(read_text(base));
  mutate(j);
  try {
    Tokenizer::from_json_text(j.dump(), "", "mutated.json");
    ADD_FAILURE() << "no error; expected one naming " << field;
  } catch (const tstar::Error& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mutated.json"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, UnsupportedComponentsAreNamed) {
  expect_load_error([](json& j) { j["model"]["type"] = "WordPiece"; }, "WordPiece");
  expect_load_error([](json& j) { j["model"]["type"] = "Unigram"; }, "model.type");
  expect_load_error([](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "Whitespace");
  expect_load_error([](json& j) { j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}}; },
                    "pre_tokenizer.pretokenizers[0].type");
  expect_load_error([](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, "normalizer.type");
  expect_load_error([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "decoder.type");
  expect_load_error([](json& j) { j["post_processor"] = {{"type", "Foo"}}; }, "post_processor.type");
  // A byte-level vocabulary has no <0xNN> tokens to fall back to.
  expect_load_error([](json& j) { j["model"]["byte_fallback"] = true; }, "model.byte_fallback");
  expect_load_error([](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout");
  expect_load_error([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Bogus"; },
                    "pre_tokenizer.pretokenizers[0].behavior");
  expect_load_error([](json& j) { j["truncation"] = {{"max_length", 8}}; }, "truncation");
}

const fs::path kLlama2Json = kRepoRoot / "fixtures/tokenizer/small-llama2/tokenizer.json";

TEST(Tokenizer, MalformedSentencePiecePartsAreNamed) {
  auto metaspace = [](json extra) {
    json m = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}};
    m.update(extra);
    return m;
  };
  expect_load_error([&](json& j) { j["pre_tokenizer"] = metaspace({{"prepend_scheme", "First"}}); },
                    "pre_tokenizer.prepend_scheme", kLlama2Json);
  expect_load_error([&](json& j) { j["pre_tokenizer"] = metaspace({{"replacement", "__"}}); },
                    "pre_tokenizer.replacement", kLlama2Json);
  // HF refuses add_prefix_space false unless the scheme is "never".
  expect_load_error([&](json& j) { j["pre_tokenizer"] = metaspace({{"add_prefix_space", false}}); },
                    "pre_tokenizer.add_prefix_space", kLlama2Json);
  expect_load_error([&](json& j) { j["decoder"]["decoders"][1] = metaspace({{"prepend_scheme", 1}}); },
                    "decoder.decoders[1].prepend_scheme", kLlama2Json);
  expect_load_error([](json& j) { j["normalizer"]["normalizers"][1]["type"] = "Precompiled"; },
                    "normalizer.normalizers[1].type", kLlama2Json);
  expect_load_error([](json& j) { j["normalizer"]["normalizers"][1].erase("content"); },
                    "normalizer.normalizers[1].content", kLlama2Json);
  expect_load_error([](json& j) { j["normalizer"]["normalizers"][1]["pattern"] = {{"String", ""}}; },
                    "normalizer.normalizers[1].pattern.String", kLlama2Json);
  expect_load_error([](json& j) { j["normalizer"]["normalizers"][0]["prepend"] = 3; },
                    "normalizer.normalizers[0].prepend", kLlama2Json);
  expect_load_error([](json& j) { j["decoder"]["decoders"][2]["type"] = "CTC"; }, "decoder.decoders[2].type", kLlama2Json);
  expect_load_error([](json& j) { j["decoder"]["decoders"][3]["content"] = "ab"; }, "decoder.decoders[3].content",
                    kLlama2Json);
  expect_load_error([](json& j) { j["decoder"]["decoders"][3]["start"] = -1; }, "decoder.decoders[3].start", kLlama2Json);
  expect_load_error([](json& j) { j["decoder"]["decoders"][0]["pattern"] = {{"Regex", "(unclosed"}}; },
                    "decoder.decoders[0].pattern", kLlama2Json);
  // byte_fallback with none of the 256 byte tokens in the vocabulary.
  expect_load_error([](json& j) {
    for (int b = 0; b < 256; ++b) j["model"]["vocab"].erase(fmt_byte_token(b));
  }, "model.byte_fallback", kLlama2Json);
  expect_load_error([](json& j) { j["model"]["unk_token"] = "<nope>"; }, "model.unk_token", kLlama2Json);
  expect_load_error([](json& j) { j["model"]["fuse_unk"] = "yes"; }, "model.fuse_unk", kLlama2Json);
}

// HF joins the token strings with spaces when tokenizer.json has no decoder (checked with
// tokenizers 0.23.3: tokens "a", "b", "ab" decode to "a b ab").
TEST(Tokenizer, NoDecoderJoinsTokensWithSpaces) {
  json j = json::parse(read_text(kLlama2Json));
  j["decoder"] = nullptr;
  const Tokenizer tok = Tokenizer::from_json_text(j.dump(), "", "no-decoder.json");
  const std::vector<int64_t> ids = {tok.token_to_id("<s>"), tok.token_to_id("\xE2\x96\x81" "a"), tok.token_to_id("<0x41>")};
  ASSERT_GE(*std::min_element(ids.begin(), ids.end()), 0);
  EXPECT_EQ(tok.decode(ids), "<s> \xE2\x96\x81" "a <0x41>");
  EXPECT_EQ(tok.decode(ids, true), "\xE2\x96\x81" "a <0x41>");
}

// Without the Strip step's leading space and with every character in reach of byte fallback, the
// Llama 2 style decodes what it encodes, whatever the characters.
TEST(Tokenizer, SentencePieceRoundTripsRandomUtf8) {
  const Tokenizer tok = load_json_only(kLlama2Json);
  std::mt19937 rng(20261130);
  const std::vector<std::pair<int32_t, int32_t>> ranges = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0xC0, 0x17F}, {0x300, 0x36F}, {0x4E00, 0x9FFF},
      {0xAC00, 0xD7A3}, {0x1F300, 0x1F64F}, {0x200B, 0x200D}, {0x10000, 0x1FFFF}, {0xE000, 0xF8FF}};
  for (int trial = 0; trial < 300; ++trial) {
    const std::string s = random_utf8(rng, ranges, 1 + int(rng() % 40));
    const std::vector<int64_t> ids = tok.encode(s);
    ASSERT_EQ(ids.front(), tok.token_to_id("<s>"));
    ASSERT_EQ(tok.decode(ids, true), s) << json(s).dump();
  }
}

TEST(Tokenizer, MalformedFilesAreNamed) {
  expect_load_error([](json& j) { j.erase("model"); }, "'model'");
  expect_load_error([](json& j) { j["model"]["merges"][0] = json::array({"\xC4\xA0", "no-such-token"}); },
                    "model.merges[0]");
  expect_load_error([](json& j) { j["model"]["merges"][1] = "onlyone"; }, "model.merges[1]");
  expect_load_error([](json& j) { j["model"]["merges"][2] = 7; }, "model.merges[2]");
  expect_load_error([](json& j) { j["model"]["merges"] = "a b"; }, "model.merges");
  expect_load_error([](json& j) { j["model"]["vocab"] = json::array(); }, "model.vocab");
  expect_load_error([](json& j) { j["model"]["vocab"]["a"] = "1"; }, "model.vocab.a");
  expect_load_error([](json& j) { j["added_tokens"][0]["id"] = "x"; }, "added_tokens[0].id");
  expect_load_error([](json& j) { j["added_tokens"][0]["special"] = 1; }, "added_tokens[0].special");
  expect_load_error([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "(unclosed"}}; },
                    "pre_tokenizer.pretokenizers[0].pattern");
  expect_load_error([](json& j) { j["decoder"] = 5; }, "'decoder'");
  expect_load_error([](json& j) { j = json::array(); }, "top level");
  try {
    Tokenizer::from_json_text("{not json", "", "broken.json");
    ADD_FAILURE() << "no error for invalid JSON";
  } catch (const tstar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.json"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, BadConfigAndPathsAreNamed) {
  const std::string tj = read_text(kSmallJson);
  EXPECT_THROW(Tokenizer::from_json_text(tj, R"({"bos_token": "<nope>"})", "x"), tstar::Error);
  try {
    Tokenizer::from_json_text(tj, R"({"add_bos_token": "yes"})", "x");
    ADD_FAILURE();
  } catch (const tstar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("add_bos_token"), std::string::npos) << e.what();
  }
  try {
    Tokenizer::load("/nonexistent/tokenizer/dir");
    ADD_FAILURE();
  } catch (const tstar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer/dir"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, LoadsDirectoryAndFileAlike) {
  const Tokenizer from_dir = Tokenizer::load(kSmallJson.parent_path());
  const Tokenizer from_file = Tokenizer::load(kSmallJson);
  EXPECT_EQ(from_dir.digest(), from_file.digest());
  EXPECT_EQ(from_dir.encode("Hello <think> world"), from_file.encode("Hello <think> world"));
  EXPECT_EQ(from_dir.token_to_id("<think>"), from_dir.vocab_size() - 1);  // added after training
}

// ------------------------------------------------------------------------------------------
// sha256

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(tstar::sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(tstar::sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(tstar::sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  EXPECT_EQ(tstar::sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalAndFileAgree) {
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(char(i * 7 + 3));
  for (size_t length : {0u, 55u, 56u, 63u, 64u, 65u, 119u, 128u, 300u}) {
    const std::string whole = tstar::sha256_hex(data.data(), length);
    for (size_t cut : {size_t(0), size_t(1), length / 2, length}) {
      if (cut > length) continue;
      tstar::Sha256 h;
      h.update(data.data(), cut);
      h.update(data.data() + cut, length - cut);
      EXPECT_EQ(h.hex_digest(), whole) << length << " " << cut;
    }
  }
  const fs::path file = fs::temp_directory_path() / ("tstar_sha_" + std::to_string(::getpid()));
  std::ofstream(file, std::ios::binary) << data;
  EXPECT_EQ(tstar::sha256_hex_file(file), tstar::sha256_hex(data.data(), data.size()));
  fs::remove(file);
  EXPECT_THROW(tstar::sha256_hex_file("/nonexistent/file"), tstar::Error);
}

// A remembered digest is the file's digest: reused while the file is unchanged, recomputed after a
// same-size rewrite, and a corrupt cache is ignored.
TEST(Sha256, RememberedDigestFollowsTheFile) {
  const fs::path dir = fs::temp_directory_path() / ("tstar_sha_cache_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "weights.bin", cache = dir / "cache" / "file-digests.json";
  std::ofstream(file, std::ios::binary) << "first contents";
  EXPECT_EQ(tstar::remembered_sha256_hex_file(file, cache), tstar::sha256_hex_file(file));
  ASSERT_TRUE(fs::exists(cache));
  // A planted entry with the file's identity is what comes back: the cache is really read.
  auto entries = nlohmann::json::parse(std::ifstream(cache));
  ASSERT_EQ(entries.size(), 1u);
  entries.begin()->at("sha256") = std::string(64, 'e');
  std::ofstream(cache) << entries.dump();
  EXPECT_EQ(tstar::remembered_sha256_hex_file(file, cache), std::string(64, 'e'));
  // Rewritten with the same size (and its old modification time put back): hashed again.
  const auto modified = fs::last_write_time(file);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << "other contents";
  fs::last_write_time(file, modified);
  EXPECT_EQ(tstar::remembered_sha256_hex_file(file, cache), tstar::sha256_hex_file(file));
  std::ofstream(cache) << "{ not json";
  EXPECT_EQ(tstar::remembered_sha256_hex_file(file, cache), tstar::sha256_hex_file(file));
  EXPECT_THROW(tstar::remembered_sha256_hex_file(dir / "missing.bin", cache), tstar::Error);
  fs::remove_all(dir);
}

// ------------------------------------------------------------------------------------------
// CLI

std::string run_tool(const std::string& args, int* status) {
  const auto result = tstar::testing::run_tool(args);
  *status = result.exit_code;
  return result.output;
}

TEST(TokenizeCli, PrintsIdsAndDecodedText) {
  int status = 0;
  const std::string out = run_tool("tokenize --tokenizer " + kSmallJson.parent_path().string() +
                                       " --text 'Hello, world! <think>' --decode",
                                   &status);
  ASSERT_EQ(status, 0) << out;
  const json j = json::parse(out);
  const Tokenizer tok = Tokenizer::load(kSmallJson);
  EXPECT_EQ(ids_of(j.at("ids")), tok.encode("Hello, world! <think>"));
  EXPECT_EQ(j.at("decoded").get<std::string>(), "Hello, world! <think>");
}

TEST(TokenizeCli, ErrorsAndHelp) {
  int status = 0;
  std::string out = run_tool("tokenize --tokenizer /nonexistent --text x", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("/nonexistent"), std::string::npos) << out;
  out = run_tool("tokenize --text x", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--tokenizer"), std::string::npos) << out;
  out = run_tool("tokenize --help", &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("--no-special"), std::string::npos) << out;
}

}  // namespace
