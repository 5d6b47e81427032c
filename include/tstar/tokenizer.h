// Hugging Face `tokenizer.json` BPE tokenizer with id-for-id parity with the `tokenizers` library:
// byte-level BPE (Qwen2/2.5/3, DeepSeek-R1-Distill-Qwen, Llama 3, GPT-2 style) and
// SentencePiece-style BPE (Llama 2, Mistral, Gemma, Phi-3: characters with "▁" for spaces,
// byte_fallback to <0xNN> tokens, unk_token/fuse_unk).
//
// Pipeline of encode(), HF's stages in HF's order: added/special tokens are cut out first
// (leftmost-longest match on the raw text for tokens with normalized=false, then on the normalized
// text for the others); each remaining segment is normalized (NFC/NFD/NFKC/NFKD via utf8proc,
// Replace, Prepend), split by the pre-tokenizer (Split regexes via PCRE2 with JIT, Metaspace,
// then ByteLevel, which maps pieces to bytes; none at all is allowed), and each piece is merged by
// BPE rank; finally the post-processor (and tokenizer_config.json's add_bos_token) adds BOS/EOS
// when add_special is true. decode() runs HF's decoder chain (ByteLevel, Replace, ByteFallback,
// Fuse, Strip, Metaspace) over the token strings.
// Components tstar does not implement are rejected at load time with an error naming them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tstar {

class Tokenizer {
 public:
  // `path` is a directory holding tokenizer.json (and optionally tokenizer_config.json) or a
  // tokenizer.json file (a tokenizer_config.json beside it is then read too).
  // Throws tstar::Error naming the file and the field on anything unsupported or malformed.
  static Tokenizer load(const std::filesystem::path& path);
  // Same, from JSON texts; `config_json` may be empty (no tokenizer_config.json). `origin` names
  // the source in error messages.
  static Tokenizer from_json_text(const std::string& tokenizer_json, const std::string& config_json,
                                  const std::string& origin);

  // Throws tstar::Error when `text` is not valid UTF-8 (HF's Python API cannot even receive such
  // text, so there is no behaviour to mirror).
  std::vector<int64_t> encode(std::string_view text, bool add_special = true) const;
  // The decoder chain of tokenizer.json (tokens joined by spaces when it has none, as HF does).
  // Broken UTF-8 becomes U+FFFD as in HF: one per maximal invalid subsequence after ByteLevel
  // (String::from_utf8_lossy), one per byte of an invalid <0xNN> run after ByteFallback. Ids the
  // vocabulary lacks are skipped, as HF does: a model's vocabulary is often larger than its
  // tokenizer's (padding rows).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = false) const;

  // The pre-tokenizer alone (no normalizer, no added tokens), pieces in the byte-level alphabet
  // after a ByteLevel step: what HF's `pre_tokenizer.pre_tokenize_str(text)` returns (the whole
  // text when there is no pre-tokenizer). For tests and debugging.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  int64_t token_to_id(std::string_view token) const;  // -1 when unknown
  std::string id_to_token(int64_t id) const;          // throws when out of range
  int64_t vocab_size() const;                         // largest id + 1, added tokens included
  int64_t bos_id() const;                             // -1 when none
  int64_t eos_id() const;                             // -1 when none
  bool is_special(int64_t id) const;
  const std::string& digest() const;                  // sha256 hex of the tokenizer.json bytes

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable after load except for the locked word cache
};

}  // namespace tstar
