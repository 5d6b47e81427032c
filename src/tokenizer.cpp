#include "tstar/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tstar/error.h"
#include "sha256.h"

namespace tstar {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// UTF-8 and Unicode helpers

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid; `bad_len` gets
// the length of the maximal invalid subpart to replace (Unicode "substitution of maximal
// subparts", which is what Rust's String::from_utf8_lossy does).
size_t utf8_sequence_length(std::string_view s, size_t i, size_t* bad_len) {
  const auto b0 = uint8_t(s[i]);
  *bad_len = 1;
  if (b0 < 0x80) return 1;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) {
      *bad_len = k;
      return 0;
    }
    const auto b = uint8_t(s[i + k]);
    const uint8_t klo = k == 1 ? lo : 0x80, khi = k == 1 ? hi : 0xBF;
    if (b < klo || b > khi) {
      *bad_len = k;
      return 0;
    }
  }
  return need;
}

// Offset of the first byte that is not part of valid UTF-8, or npos.
size_t first_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (uint8_t(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t bad;
    size_t len = utf8_sequence_length(s, i, &bad);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t bad;
    size_t len = utf8_sequence_length(s, i, &bad);
    if (len == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      i += bad;
    } else {
      out.append(s.data() + i, len);
      i += len;
    }
  }
  return out;
}

// Decodes one code point of valid UTF-8 at s[i]; advances i.
int32_t next_code_point(std::string_view s, size_t& i) {
  utf8proc_int32_t cp = 0;
  auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                            utf8proc_ssize_t(s.size() - i), &cp);
  i += n > 0 ? size_t(n) : 1;
  return cp;
}

// Code point ending at s[end) (valid UTF-8 assumed).
int32_t last_code_point(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (uint8_t(s[start]) & 0xC0) == 0x80) --start;
  return next_code_point(s, start);
}

void append_utf8(std::string& out, int32_t cp) {
  utf8proc_uint8_t buf[4];
  auto n = utf8proc_encode_char(cp, buf);
  out.append(reinterpret_cast<const char*>(buf), size_t(n));
}

// Unicode White_Space: what `\s` means in the Rust regex crate HF uses for added-token stripping.
bool is_white_space(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// Rust regex `\w` (Alphabetic, marks, decimal digits, connector punctuation, join controls),
// approximated by general category: Alphabetic's Other_Alphabetic symbols are not included.
bool is_word_char(int32_t cp) {
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return cp == 0x200C || cp == 0x200D;
  }
}

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (uint8_t(c) >= 0x80) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte-level alphabet: every byte is shown as a printable code point; the vocabulary's
// token strings are written in that alphabet.

struct ByteAlphabet {
  std::array<int32_t, 256> byte_to_cp{};
  std::vector<int16_t> cp_to_byte;  // -1 when the code point is not an image of a byte

  ByteAlphabet() {
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int32_t next_extra = 256;
    for (int b = 0; b < 256; ++b) byte_to_cp[b] = printable(b) ? b : next_extra++;
    cp_to_byte.assign(size_t(next_extra), -1);
    for (int b = 0; b < 256; ++b) cp_to_byte[size_t(byte_to_cp[b])] = int16_t(b);
  }

  // The raw bytes a token string stands for; false when a character is outside the alphabet.
  bool to_bytes(std::string_view token, std::string* bytes) const {
    bytes->clear();
    for (size_t i = 0; i < token.size();) {
      int32_t cp = next_code_point(token, i);
      if (cp < 0 || size_t(cp) >= cp_to_byte.size() || cp_to_byte[size_t(cp)] < 0) return false;
      bytes->push_back(char(cp_to_byte[size_t(cp)]));
    }
    return true;
  }

  std::string to_token(std::string_view bytes) const {
    std::string token;
    for (char c : bytes) append_utf8(token, byte_to_cp[uint8_t(c)]);
    return token;
  }
};

// ---------------------------------------------------------------------------------------------
// JSON access that names the field on every error.

class Fields {
 public:
  explicit Fields(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(fmt::format("{}: field '{}': {}", origin_, path, what));
  }
  const json& require(const json& obj, const std::string& key, const std::string& path) const {
    if (!obj.is_object()) fail(path, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) fail(join(path, key), "missing");
    return *it;
  }
  const json* optional(const json& obj, const std::string& key) const {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  std::string string(const json& v, const std::string& path) const {
    if (!v.is_string()) fail(path, fmt::format("expected a string, got {}", v.type_name()));
    return v.get<std::string>();
  }
  bool boolean(const json& obj, const std::string& key, bool fallback, const std::string& path) const {
    const json* v = optional(obj, key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(join(path, key), fmt::format("expected a boolean, got {}", v->type_name()));
    return v->get<bool>();
  }
  int32_t id(const json& v, const std::string& path) const {
    if (!v.is_number_integer()) fail(path, fmt::format("expected an integer id, got {}", v.type_name()));
    auto value = v.get<int64_t>();
    if (value < 0 || value > INT32_MAX) fail(path, fmt::format("id {} out of range", value));
    return int32_t(value);
  }
  const json& array(const json& v, const std::string& path) const {
    if (!v.is_array()) fail(path, fmt::format("expected an array, got {}", v.type_name()));
    return v;
  }
  std::string type_of(const json& component, const std::string& path) const {
    return string(require(component, "type", path), join(path, "type"));
  }
  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }
  static std::string index(const std::string& path, size_t i) { return fmt::format("{}[{}]", path, i); }
  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
};

// ---------------------------------------------------------------------------------------------
// Normalizers

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };

void parse_normalizer(const json& n, const std::string& path, const Fields& f, std::vector<NormalForm>* out) {
  const std::string type = f.type_of(n, path);
  if (type == "Sequence") {
    const json& list = f.array(f.require(n, "normalizers", path), path + ".normalizers");
    for (size_t i = 0; i < list.size(); ++i) parse_normalizer(list[i], Fields::index(path + ".normalizers", i), f, out);
  } else if (type == "NFC") {
    out->push_back(NormalForm::kNFC);
  } else if (type == "NFD") {
    out->push_back(NormalForm::kNFD);
  } else if (type == "NFKC") {
    out->push_back(NormalForm::kNFKC);
  } else if (type == "NFKD") {
    out->push_back(NormalForm::kNFKD);
  } else {
    f.fail(path + ".type", fmt::format("normalizer '{}' is not supported by tstar (supported: NFC, NFD, NFKC, NFKD, Sequence)", type));
  }
}

std::string apply_normal_form(std::string_view text, NormalForm form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNFC: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::kNFD: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::kNFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::kNFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* mapped = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), utf8proc_ssize_t(text.size()),
                        &mapped, utf8proc_option_t(options));
  if (n < 0) throw Error(std::string("tokenizer: Unicode normalisation failed: ") + utf8proc_errmsg(n));
  std::string result(reinterpret_cast<const char*>(mapped), size_t(n));
  std::free(mapped);
  return result;
}

std::string normalize(std::string_view text, const std::vector<NormalForm>& forms) {
  // ASCII is invariant under every supported form; skip the copy on the common path.
  if (forms.empty() || is_ascii(text)) return std::string(text);
  std::string s(text);
  for (NormalForm form : forms) s = apply_normal_form(s, form);
  return s;
}

// ---------------------------------------------------------------------------------------------
// PCRE2 regex

// HF compiles Split patterns with Oniguruma, whose (?i:...) matched "'ſ" (U+017F) as no
// contraction while PCRE2's Unicode case folding would match it as "'s". Contraction groups made
// only of ASCII letters and apostrophes are therefore rewritten to explicit ASCII case classes.
std::string restrict_caseless_groups_to_ascii(const std::string& pattern) {
  std::string out;
  size_t i = 0;
  while (i < pattern.size()) {
    size_t open = pattern.find("(?i:", i);
    if (open == std::string::npos) break;
    size_t close = pattern.find(')', open);
    if (close == std::string::npos) break;
    std::string body = pattern.substr(open + 4, close - open - 4);
    bool simple = std::all_of(body.begin(), body.end(), [](char c) {
      return std::isalpha(uint8_t(c)) || c == '\'' || c == '|' || c == ' ';
    });
    out += pattern.substr(i, open - i);
    if (!simple) {
      out += pattern.substr(open, close + 1 - open);
    } else {
      out += "(?:";
      for (char c : body) {
        if (std::isalpha(uint8_t(c))) {
          out += fmt::format("[{}{}]", char(std::tolower(uint8_t(c))), char(std::toupper(uint8_t(c))));
        } else {
          out += c;
        }
      }
      out += ")";
    }
    i = close + 1;
  }
  out += pattern.substr(i);
  return out;
}

// Oniguruma's `\s` is Unicode White_Space; PCRE2's (with UCP) also matches U+180E MONGOLIAN VOWEL
// SEPARATOR, which HF puts with punctuation ("x\u180e." pre-tokenizes to "x", "\u180e."). So
// `\s` is spelled out, inside and outside character classes, and `\S` outside them.
constexpr const char* kWhiteSpaceRanges = R"(\t-\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000})";

std::string spell_out_white_space(const std::string& pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceRanges) : "[" + std::string(kWhiteSpaceRanges) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceRanges) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // leading ] is literal
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {  // [:alpha:]
      size_t end = pattern.find(":]", i + 2);
      if (end != std::string::npos) {
        out += pattern.substr(i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

class Regex {
 public:
  Regex(const std::string& pattern, bool literal, const std::string& where) {
    uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0u);
    const std::string source = literal ? pattern : spell_out_white_space(restrict_caseless_groups_to_ascii(pattern));
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options, &error_code,
                          &error_offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof message);
      throw Error(fmt::format("{}: regex does not compile at offset {}: {}", where, error_offset,
                              reinterpret_cast<const char*>(message)));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex() { pcre2_code_free(code_); }

  // Calls on_match(start, end) for each non-empty match in `text` (offsets relative to text).
  template <typename F>
  void for_each_match(std::string_view text, pcre2_match_data* md, F&& on_match) const {
    PCRE2_SIZE offset = 0;
    while (offset <= text.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), offset,
                           PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) return;
      if (rc < 0) throw Error(fmt::format("tokenizer: regex match failed (PCRE2 error {})", rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] > ov[0]) {
        on_match(size_t(ov[0]), size_t(ov[1]));
        offset = ov[1];
      } else {  // empty match: step over one character
        size_t next = ov[0];
        if (next >= text.size()) return;
        next_code_point(text, next);
        offset = next;
      }
    }
  }

 private:
  pcre2_code* code_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer

// What HF's ByteLevel pre-tokenizer splits on when use_regex is true (the GPT-2 pattern).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct SplitStep {
  std::unique_ptr<Regex> regex;
  bool remove_matches = false;  // behavior "Removed" (else "Isolated")
  bool invert = false;
};

struct PreTokenizer {
  std::vector<SplitStep> splits;        // applied in order, then the ByteLevel step
  bool byte_level_prefix_space = false;
  std::unique_ptr<Regex> byte_level_regex;  // set when ByteLevel.use_regex is true
};

void parse_split(const json& p, const std::string& path, const Fields& f, PreTokenizer* out) {
  const json& pattern = f.require(p, "pattern", path);
  std::string regex_source;
  bool literal;
  if (const json* r = pattern.is_object() ? f.optional(pattern, "Regex") : nullptr) {
    regex_source = f.string(*r, path + ".pattern.Regex");
    literal = false;
  } else if (const json* s = pattern.is_object() ? f.optional(pattern, "String") : nullptr) {
    regex_source = f.string(*s, path + ".pattern.String");
    literal = true;
  } else {
    f.fail(path + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
  }
  SplitStep step;
  step.regex = std::make_unique<Regex>(regex_source, literal, f.origin() + ": " + path + ".pattern");
  const std::string behavior = f.string(f.require(p, "behavior", path), path + ".behavior");
  if (behavior == "Removed") {
    step.remove_matches = true;
  } else if (behavior != "Isolated") {
    f.fail(path + ".behavior", fmt::format("Split behavior '{}' is not supported by tstar (supported: Isolated, Removed)", behavior));
  }
  step.invert = f.boolean(p, "invert", false, path);
  out->splits.push_back(std::move(step));
}

// Returns true once the ByteLevel step has been seen (it must come last).
bool parse_pre_tokenizer(const json& p, const std::string& path, const Fields& f, PreTokenizer* out, bool byte_level_seen) {
  const std::string type = f.type_of(p, path);
  if (type == "Sequence") {
    const json& list = f.array(f.require(p, "pretokenizers", path), path + ".pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) {
      byte_level_seen = parse_pre_tokenizer(list[i], Fields::index(path + ".pretokenizers", i), f, out, byte_level_seen);
    }
    return byte_level_seen;
  }
  if (byte_level_seen) f.fail(path, "tstar needs ByteLevel to be the last pre-tokenizer");
  if (type == "Split") {
    parse_split(p, path, f, out);
    return false;
  }
  if (type == "ByteLevel") {
    out->byte_level_prefix_space = f.boolean(p, "add_prefix_space", true, path);
    if (f.boolean(p, "use_regex", true, path)) {
      out->byte_level_regex = std::make_unique<Regex>(kGpt2Pattern, false, "ByteLevel GPT-2 pattern");
    }
    return true;
  }
  f.fail(path + ".type", fmt::format("pre-tokenizer '{}' is not supported by tstar (supported: Split, ByteLevel, Sequence of them)", type));
}

// ---------------------------------------------------------------------------------------------
// BPE model

// Open-addressing map from a pair of token ids to (merge rank, merged id).
class PairMap {
 public:
  struct Value {
    uint32_t rank;
    int32_t merged;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, Value{0, 0});
    mask_ = cap - 1;
  }
  // Keeps the first (lowest-rank) entry when a pair is listed twice, like HF.
  void insert(int32_t a, int32_t b, Value v) {
    const uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return;
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        values_[i] = v;
        return;
      }
    }
  }
  const Value* find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> 29) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0;
};

struct BpeModel {
  std::array<int32_t, 256> byte_ids{};  // token id of each single byte, -1 when absent
  PairMap merges;
  bool ignore_merges = false;
  std::unordered_map<std::string, int32_t> raw_bytes_to_id;  // filled only when ignore_merges
  int32_t unk_id = -1;

  void encode_word(std::string_view raw, std::vector<int32_t>& out) const;

 private:
  void merge_by_scan(std::vector<int32_t>& symbols) const;
  void merge_by_heap(std::vector<int32_t>& symbols) const;
};

void BpeModel::encode_word(std::string_view raw, std::vector<int32_t>& out) const {
  if (ignore_merges) {
    auto it = raw_bytes_to_id.find(std::string(raw));
    if (it != raw_bytes_to_id.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(raw.size());
  for (char c : raw) {
    int32_t id = byte_ids[uint8_t(c)];
    if (id < 0) id = unk_id;
    if (id < 0) throw Error(fmt::format("tokenizer: byte 0x{:02x} has no token and the model has no unk_token", uint8_t(c)));
    symbols.push_back(id);
  }
  // Both strategies apply the lowest-rank merge first, leftmost among equal ranks (HF's order);
  // the heap avoids quadratic time on long pieces such as whitespace runs.
  if (symbols.size() <= 48) {
    merge_by_scan(symbols);
  } else {
    merge_by_heap(symbols);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
}

void BpeModel::merge_by_scan(std::vector<int32_t>& symbols) const {
  constexpr uint32_t kNone = UINT32_MAX;
  std::vector<PairMap::Value> pair(symbols.size() > 1 ? symbols.size() - 1 : 0, PairMap::Value{kNone, -1});
  auto lookup = [&](size_t i) {
    const PairMap::Value* v = merges.find(symbols[i], symbols[i + 1]);
    pair[i] = v ? *v : PairMap::Value{kNone, -1};
  };
  for (size_t i = 0; i < pair.size(); ++i) lookup(i);
  while (!pair.empty()) {
    size_t best = 0;
    for (size_t i = 1; i < pair.size(); ++i) {
      if (pair[i].rank < pair[best].rank) best = i;
    }
    if (pair[best].rank == kNone) return;
    symbols[best] = pair[best].merged;
    symbols.erase(symbols.begin() + std::ptrdiff_t(best) + 1);
    pair.erase(pair.begin() + std::ptrdiff_t(best));
    if (best < pair.size()) lookup(best);
    if (best > 0) lookup(best - 1);
  }
}

void BpeModel::merge_by_heap(std::vector<int32_t>& symbols) const {
  struct Node {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
    bool alive;
  };
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const int32_t n = int32_t(symbols.size());
  std::vector<Node> nodes(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) nodes[size_t(i)] = Node{symbols[size_t(i)], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t left) {
    const Node& l = nodes[size_t(left)];
    if (l.next < 0) return;
    if (const PairMap::Value* v = merges.find(l.id, nodes[size_t(l.next)].id)) queue.push({v->rank, left, v->merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Node& left = nodes[size_t(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Node& right = nodes[size_t(left.next)];
    const PairMap::Value* current = merges.find(left.id, right.id);
    if (!current || current->merged != top.merged) continue;  // stale entry
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) nodes[size_t(right.next)].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  symbols.clear();
  for (int32_t i = 0; i >= 0 && i < n; i = nodes[size_t(i)].next) symbols.push_back(nodes[size_t(i)].id);
}

// ---------------------------------------------------------------------------------------------
// Added tokens

struct AddedToken {
  std::string content;  // as matched (normalized first when `normalized`)
  int32_t id = -1;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = true;
};

struct Segment {
  size_t start, end;
  int32_t id;  // -1: ordinary text to tokenize
};

// Leftmost-longest search for a set of added tokens, with HF's single_word/lstrip/rstrip rules.
class AddedTokenMatcher {
 public:
  void add(const AddedToken& token) {
    if (token.content.empty()) return;
    auto& bucket = by_first_byte_[uint8_t(token.content[0])];
    bucket.push_back(token);
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
    any_ = true;
  }
  std::vector<Segment> split(std::string_view text) const;

 private:
  const AddedToken* longest_at(std::string_view text, size_t pos) const {
    for (const AddedToken& t : by_first_byte_[uint8_t(text[pos])]) {
      if (text.compare(pos, t.content.size(), t.content) == 0) return &t;
    }
    return nullptr;
  }
  std::array<std::vector<AddedToken>, 256> by_first_byte_;
  bool any_ = false;
};

size_t whitespace_run_start(std::string_view s) {  // start of the trailing whitespace run
  size_t start = s.size();
  while (start > 0) {
    size_t cp_start = start - 1;
    while (cp_start > 0 && (uint8_t(s[cp_start]) & 0xC0) == 0x80) --cp_start;
    size_t i = cp_start;
    if (!is_white_space(next_code_point(s, i))) break;
    start = cp_start;
  }
  return start;
}

size_t whitespace_run_length(std::string_view s) {  // length of the leading whitespace run
  size_t i = 0;
  while (i < s.size()) {
    size_t next = i;
    if (!is_white_space(next_code_point(s, next))) break;
    i = next;
  }
  return i;
}

std::vector<Segment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Segment> segments;
  size_t emitted = 0;  // end of the last segment pushed
  for (size_t pos = 0; any_ && pos < text.size();) {
    const AddedToken* token = longest_at(text, pos);
    if (!token) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + token->content.size();
    pos = stop;  // the search resumes after the match even when the match is discarded
    if (token->single_word) {
      bool word_before = start > 0 && is_word_char(last_code_point(text.substr(0, start)));
      size_t after = stop;
      bool word_after = stop < text.size() && is_word_char(next_code_point(text, after));
      if (word_before || word_after) continue;
    }
    if (token->lstrip) start = std::max(whitespace_run_start(text.substr(0, start)), emitted);
    if (token->rstrip) stop += whitespace_run_length(text.substr(stop));
    start = std::max(start, emitted);
    if (emitted < start) segments.push_back({emitted, start, -1});
    segments.push_back({start, stop, token->id});
    emitted = stop;
    pos = std::max(pos, stop);
  }
  if (emitted < text.size()) segments.push_back({emitted, text.size(), -1});
  return segments;
}

// ---------------------------------------------------------------------------------------------
// Post-processor: ids put before and after the sequence when add_special is true.

struct Template {
  std::vector<int32_t> prefix, suffix;
};

void parse_template_processing(const json& p, const std::string& path, const Fields& f, Template* out) {
  const json& single = f.array(f.require(p, "single", path), path + ".single");
  const json* specials = f.optional(p, "special_tokens");
  Template local;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string item_path = Fields::index(path + ".single", i);
    const json& item = single[i];
    if (item.is_object() && item.contains("Sequence")) {
      if (seen_sequence) f.fail(item_path, "tstar supports one sequence ($A) in the single template");
      seen_sequence = true;
      continue;
    }
    const json& special = f.require(item, "SpecialToken", item_path);
    const std::string name = f.string(f.require(special, "id", item_path + ".SpecialToken"), item_path + ".SpecialToken.id");
    if (!specials || !specials->contains(name)) f.fail(path + ".special_tokens", fmt::format("no entry for '{}'", name));
    const std::string ids_path = path + ".special_tokens." + name + ".ids";
    const json& ids = f.array(f.require((*specials)[name], "ids", path + ".special_tokens." + name), ids_path);
    auto& target = seen_sequence ? local.suffix : local.prefix;
    for (size_t k = 0; k < ids.size(); ++k) target.push_back(f.id(ids[k], Fields::index(ids_path, k)));
  }
  if (!seen_sequence) f.fail(path + ".single", "no {\"Sequence\": ...} item");
  out->prefix.insert(out->prefix.begin(), local.prefix.begin(), local.prefix.end());
  out->suffix.insert(out->suffix.end(), local.suffix.begin(), local.suffix.end());
}

void parse_post_processor(const json& p, const std::string& path, const Fields& f, Template* out) {
  const std::string type = f.type_of(p, path);
  if (type == "ByteLevel") return;  // only adjusts offsets
  if (type == "TemplateProcessing") return parse_template_processing(p, path, f, out);
  if (type == "Sequence") {
    const json& list = f.array(f.require(p, "processors", path), path + ".processors");
    for (size_t i = 0; i < list.size(); ++i) parse_post_processor(list[i], Fields::index(path + ".processors", i), f, out);
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {  // single: cls $A sep
    auto pair_id = [&](const char* key) {
      const json& pair = f.array(f.require(p, key, path), Fields::join(path, key));
      if (pair.size() != 2) f.fail(Fields::join(path, key), "expected [token, id]");
      return f.id(pair[1], Fields::join(path, key) + "[1]");
    };
    out->prefix.insert(out->prefix.begin(), pair_id("cls"));
    out->suffix.push_back(pair_id("sep"));
    return;
  }
  f.fail(path + ".type", fmt::format("post-processor '{}' is not supported by tstar (supported: ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing, Sequence)", type));
}

void parse_decoder(const json& d, const std::string& path, const Fields& f) {
  const std::string type = f.type_of(d, path);
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    const json& list = f.array(f.require(d, "decoders", path), path + ".decoders");
    if (list.size() != 1) f.fail(path + ".decoders", "tstar supports only a single ByteLevel decoder");
    return parse_decoder(list[0], path + ".decoders[0]", f);
  }
  f.fail(path + ".type", fmt::format("decoder '{}' is not supported by tstar (supported: ByteLevel)", type));
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("tokenizer: cannot open " + path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error("tokenizer: read error in " + path.string());
  return buffer.str();
}

json parse_json(const std::string& text, const std::string& origin) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", origin, e.what()));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  std::string origin;
  std::string digest;
  ByteAlphabet alphabet;
  std::vector<NormalForm> normal_forms;
  PreTokenizer pre_tokenizer;
  BpeModel bpe;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  Template post;
  std::unordered_map<std::string, int32_t> token_ids;  // vocabulary and added tokens, by content
  std::vector<std::string> id_tokens;                   // content by id; empty for holes
  std::vector<std::string> id_bytes;                    // what decode() emits for each id
  std::vector<uint8_t> id_special;                      // 1 for special added tokens
  std::vector<uint8_t> id_present;
  int32_t bos = -1, eos = -1;

  // Word cache (HF keeps one too): raw piece bytes -> ids. Bounded; never evicts.
  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kCacheMaxWordBytes = 256;
  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void load_model(const json& model, const Fields& f);
  void load_added_tokens(const json& root, const Fields& f);
  void load_config(const json& config, const Fields& f);
  void register_token(const std::string& content, int32_t id);
  void finish_id_tables();

  void encode_piece(std::string_view raw, std::vector<int32_t>& out) const;
  void encode_text(std::string_view normalized, pcre2_match_data* md, std::vector<int32_t>& out) const;
  // Calls sink(raw_bytes) for each piece the pre-tokenizer makes of `text`, starting at split `step`.
  template <typename Sink>
  void for_each_piece(std::string_view text, size_t step, pcre2_match_data* md, Sink& sink) const;
};

void Tokenizer::Impl::register_token(const std::string& content, int32_t id) {
  token_ids[content] = id;
  if (size_t(id) >= id_tokens.size()) id_tokens.resize(size_t(id) + 1);
  id_tokens[size_t(id)] = content;
  if (size_t(id) >= id_present.size()) id_present.resize(size_t(id) + 1, 0);
  id_present[size_t(id)] = 1;
}

void Tokenizer::Impl::load_model(const json& model, const Fields& f) {
  const std::string type = model.contains("type") ? f.type_of(model, "model") : "BPE";
  if (type != "BPE") {
    f.fail("model.type", fmt::format("model '{}' is not supported by tstar (supported: byte-level BPE)", type));
  }
  if (const json* dropout = f.optional(model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) f.fail("model.dropout", "BPE dropout is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* v = f.optional(model, key)) {
      if (!f.string(*v, std::string("model.") + key).empty()) f.fail(std::string("model.") + key, "not supported by tstar (must be empty)");
    }
  }
  if (f.boolean(model, "byte_fallback", false, "model")) f.fail("model.byte_fallback", "not supported by tstar (SentencePiece-style BPE)");
  bpe.ignore_merges = f.boolean(model, "ignore_merges", false, "model");

  const json& vocab = f.require(model, "vocab", "model");
  if (!vocab.is_object()) f.fail("model.vocab", fmt::format("expected an object, got {}", vocab.type_name()));
  id_tokens.reserve(vocab.size());
  token_ids.reserve(vocab.size() + 1024);
  std::string raw;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    // The field path is only built for the error message (this loop runs ~150k times).
    const int64_t value = it.value().is_number_integer() ? it.value().get<int64_t>() : -1;
    int32_t id = value >= 0 && value <= INT32_MAX ? int32_t(value) : f.id(it.value(), "model.vocab." + it.key());
    register_token(it.key(), id);
    if (bpe.ignore_merges && alphabet.to_bytes(it.key(), &raw)) bpe.raw_bytes_to_id[raw] = id;
  }
  bpe.byte_ids.fill(-1);
  for (int b = 0; b < 256; ++b) {
    auto it = token_ids.find(alphabet.to_token(std::string(1, char(b))));
    if (it != token_ids.end()) bpe.byte_ids[size_t(b)] = it->second;
  }
  if (const json* unk = f.optional(model, "unk_token")) {
    auto it = token_ids.find(f.string(*unk, "model.unk_token"));
    if (it == token_ids.end()) f.fail("model.unk_token", "not in model.vocab");
    bpe.unk_id = it->second;
  }

  const json& merges = f.array(f.require(model, "merges", "model"), "model.merges");
  bpe.merges.reserve(merges.size());
  // Field paths are only built for error messages (this loop runs ~150k times).
  auto path_of = [](size_t rank) { return Fields::index("model.merges", rank); };
  auto id_of = [&](const std::string& token, size_t rank) {
    auto it = token_ids.find(token);
    if (it == token_ids.end()) f.fail(path_of(rank), fmt::format("token '{}' is not in model.vocab", token));
    return it->second;
  };
  std::string left, right;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    if (m.is_string()) {  // older files: "a b"
      const std::string& s = m.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        f.fail(path_of(rank), "expected \"left right\"");
      }
      left.assign(s, 0, space);
      right.assign(s, space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get_ref<const std::string&>();
      right = m[1].get_ref<const std::string&>();
    } else {
      f.fail(path_of(rank), "expected a \"left right\" string or a [left, right] pair of strings");
    }
    int32_t a = id_of(left, rank), b = id_of(right, rank), merged = id_of(left + right, rank);
    bpe.merges.insert(a, b, PairMap::Value{uint32_t(rank), merged});
  }
}

void Tokenizer::Impl::load_added_tokens(const json& root, const Fields& f) {
  const json* list = f.optional(root, "added_tokens");
  if (!list) return;
  f.array(*list, "added_tokens");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string path = Fields::index("added_tokens", i);
    const json& t = (*list)[i];
    AddedToken token;
    token.id = f.id(f.require(t, "id", path), path + ".id");
    token.content = f.string(f.require(t, "content", path), path + ".content");
    token.special = f.boolean(t, "special", false, path);
    token.single_word = f.boolean(t, "single_word", false, path);
    token.lstrip = f.boolean(t, "lstrip", false, path);
    token.rstrip = f.boolean(t, "rstrip", false, path);
    token.normalized = f.boolean(t, "normalized", !token.special, path);
    register_token(token.content, token.id);
    if (size_t(token.id) >= id_special.size()) id_special.resize(size_t(token.id) + 1, 0);
    id_special[size_t(token.id)] = token.special ? 1 : 0;
    if (token.normalized) {
      token.content = normalize(token.content, normal_forms);
      normalized_matcher.add(token);
    } else {
      raw_matcher.add(token);
    }
  }
}

void Tokenizer::Impl::load_config(const json& config, const Fields& f) {
  auto token_of = [&](const char* key) -> int32_t {
    const json* v = f.optional(config, key);
    if (!v) return -1;
    std::string content = v->is_object() ? f.string(f.require(*v, "content", key), std::string(key) + ".content")
                                         : f.string(*v, key);
    auto it = token_ids.find(content);
    if (it == token_ids.end()) f.fail(key, fmt::format("token '{}' is not in the vocabulary", content));
    return it->second;
  };
  bos = token_of("bos_token");
  eos = token_of("eos_token");
  // transformers' Llama-style fast tokenizers rebuild the template from these flags; only the
  // "add" direction is honoured so that tokenizers whose class ignores the flag keep their template.
  if (f.boolean(config, "add_bos_token", false, "")) {
    if (bos < 0) f.fail("add_bos_token", "true but bos_token is not set");
    if (post.prefix.empty() || post.prefix.front() != bos) post.prefix.insert(post.prefix.begin(), bos);
  }
  if (f.boolean(config, "add_eos_token", false, "")) {
    if (eos < 0) f.fail("add_eos_token", "true but eos_token is not set");
    if (post.suffix.empty() || post.suffix.back() != eos) post.suffix.push_back(eos);
  }
}

void Tokenizer::Impl::finish_id_tables() {
  id_special.resize(id_tokens.size(), 0);
  id_present.resize(id_tokens.size(), 0);
  id_bytes.resize(id_tokens.size());
  for (size_t id = 0; id < id_tokens.size(); ++id) {
    // HF's ByteLevel decoder maps a token through the byte alphabet when every character is in
    // it, and otherwise emits the token's own UTF-8 (added tokens such as "<｜begin▁of▁sentence｜>").
    if (!alphabet.to_bytes(id_tokens[id], &id_bytes[id])) id_bytes[id] = id_tokens[id];
  }
}

void Tokenizer::Impl::encode_piece(std::string_view raw, std::vector<int32_t>& out) const {
  if (raw.empty()) return;
  const bool cacheable = raw.size() <= kCacheMaxWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(raw);
    std::shared_lock lock(cache_mutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  bpe.encode_word(raw, out);
  if (cacheable) {
    std::unique_lock lock(cache_mutex);
    if (cache.size() < kCacheCapacity) cache.emplace(std::move(key), std::vector<int32_t>(out.begin() + std::ptrdiff_t(first), out.end()));
  }
}

template <typename Sink>
void Tokenizer::Impl::for_each_piece(std::string_view text, size_t step, pcre2_match_data* md, Sink& sink) const {
  if (text.empty()) return;
  if (step < pre_tokenizer.splits.size()) {
    const SplitStep& split = pre_tokenizer.splits[step];
    size_t gap_start = 0;
    auto emit = [&](size_t start, size_t end, bool matched) {
      if (start == end) return;
      if (split.remove_matches && matched != split.invert) return;
      for_each_piece(text.substr(start, end - start), step + 1, md, sink);
    };
    split.regex->for_each_match(text, md, [&](size_t start, size_t end) {
      emit(gap_start, start, false);
      emit(start, end, true);
      gap_start = end;
    });
    emit(gap_start, text.size(), false);
    return;
  }
  // The ByteLevel step: optional prefix space, optional GPT-2 split; its pieces go to the sink.
  std::string prefixed;
  std::string_view piece = text;
  if (pre_tokenizer.byte_level_prefix_space && text.front() != ' ') {
    prefixed = " ";
    prefixed += text;
    piece = prefixed;
  }
  if (!pre_tokenizer.byte_level_regex) return sink(piece);
  size_t gap_start = 0;
  auto emit = [&](size_t start, size_t end) {
    if (start < end) sink(piece.substr(start, end - start));
  };
  pre_tokenizer.byte_level_regex->for_each_match(piece, md, [&](size_t start, size_t end) {
    emit(gap_start, start);
    emit(start, end);
    gap_start = end;
  });
  emit(gap_start, piece.size());
}

void Tokenizer::Impl::encode_text(std::string_view raw_segment, pcre2_match_data* md, std::vector<int32_t>& out) const {
  const std::string normalized = normalize(raw_segment, normal_forms);
  for (const Segment& s : normalized_matcher.split(normalized)) {
    if (s.id >= 0) {
      out.push_back(s.id);
    } else {
      auto sink = [&](std::string_view raw) { encode_piece(raw, out); };
      for_each_piece(std::string_view(normalized).substr(s.start, s.end - s.start), 0, md, sink);
    }
  }
}

// ---------------------------------------------------------------------------------------------

Tokenizer Tokenizer::from_json_text(const std::string& tokenizer_json, const std::string& config_json,
                                    const std::string& origin) {
  auto impl = std::make_shared<Impl>();
  impl->origin = origin;
  impl->digest = sha256_hex(tokenizer_json.data(), tokenizer_json.size());
  const json root = parse_json(tokenizer_json, origin);
  const Fields f(origin);
  if (!root.is_object()) f.fail("", "expected a JSON object at the top level");
  if (const json* t = f.optional(root, "truncation")) {
    (void)t;
    f.fail("truncation", "truncation is not supported by tstar (set it to null)");
  }
  if (const json* n = f.optional(root, "normalizer")) parse_normalizer(*n, "normalizer", f, &impl->normal_forms);
  const json& pre = f.require(root, "pre_tokenizer", "");
  if (pre.is_null()) f.fail("pre_tokenizer", "missing (tstar needs a ByteLevel pre-tokenizer)");
  if (!parse_pre_tokenizer(pre, "pre_tokenizer", f, &impl->pre_tokenizer, false)) {
    f.fail("pre_tokenizer", "no ByteLevel pre-tokenizer (tstar supports byte-level BPE only)");
  }
  impl->load_model(f.require(root, "model", ""), f);
  impl->load_added_tokens(root, f);
  if (const json* p = f.optional(root, "post_processor")) parse_post_processor(*p, "post_processor", f, &impl->post);
  const json* decoder = f.optional(root, "decoder");
  if (!decoder) f.fail("decoder", "missing (tstar needs a ByteLevel decoder)");
  parse_decoder(*decoder, "decoder", f);
  if (!config_json.empty()) {
    const std::string config_origin = origin + " (tokenizer_config.json)";
    const json config = parse_json(config_json, config_origin);
    if (!config.is_object()) Fields(config_origin).fail("", "expected a JSON object at the top level");
    impl->load_config(config, Fields(config_origin));
  }
  if (impl->bos < 0 && !impl->post.prefix.empty()) impl->bos = impl->post.prefix.front();
  impl->finish_id_tables();
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  fs::path json_path = path;
  if (fs::is_directory(path)) json_path = path / "tokenizer.json";
  if (!fs::is_regular_file(json_path)) throw Error("tokenizer: no tokenizer.json at " + json_path.string());
  const fs::path config_path = json_path.parent_path() / "tokenizer_config.json";
  const std::string config = fs::is_regular_file(config_path) ? read_file(config_path) : std::string();
  return from_json_text(read_file(json_path), config, json_path.string());
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  if (size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
    throw Error(fmt::format("tokenizer: input text is not valid UTF-8 (byte offset {})", bad));
  }
  const Impl& impl = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(pcre2_match_data_create(1, nullptr),
                                                                       &pcre2_match_data_free);
  for (const Segment& s : impl.raw_matcher.split(text)) {
    if (s.id >= 0) {
      ids.push_back(s.id);
    } else {
      impl.encode_text(text.substr(s.start, s.end - s.start), md.get(), ids);
    }
  }
  std::vector<int64_t> result;
  const size_t extra = add_special ? impl.post.prefix.size() + impl.post.suffix.size() : 0;
  result.reserve(ids.size() + extra);
  if (add_special) result.insert(result.end(), impl.post.prefix.begin(), impl.post.prefix.end());
  result.insert(result.end(), ids.begin(), ids.end());
  if (add_special) result.insert(result.end(), impl.post.suffix.begin(), impl.post.suffix.end());
  return result;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  const Impl& impl = *impl_;
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || size_t(id) >= impl.id_bytes.size() || !impl.id_present[size_t(id)]) continue;
    if (skip_special && impl.id_special[size_t(id)]) continue;
    bytes += impl.id_bytes[size_t(id)];
  }
  return utf8_lossy(bytes);
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  if (size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
    throw Error(fmt::format("tokenizer: input text is not valid UTF-8 (byte offset {})", bad));
  }
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(pcre2_match_data_create(1, nullptr),
                                                                       &pcre2_match_data_free);
  std::vector<std::string> pieces;
  auto sink = [&](std::string_view raw) { pieces.push_back(impl_->alphabet.to_token(raw)); };
  impl_->for_each_piece(text, 0, md.get(), sink);
  return pieces;
}

int64_t Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_ids.find(std::string(token));
  return it == impl_->token_ids.end() ? -1 : it->second;
}

std::string Tokenizer::id_to_token(int64_t id) const {
  if (id < 0 || size_t(id) >= impl_->id_tokens.size() || !impl_->id_present[size_t(id)]) {
    throw Error(fmt::format("tokenizer: id {} is not in the vocabulary ({})", id, impl_->origin));
  }
  return impl_->id_tokens[size_t(id)];
}

int64_t Tokenizer::vocab_size() const { return int64_t(impl_->id_tokens.size()); }
int64_t Tokenizer::bos_id() const { return impl_->bos; }
int64_t Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::is_special(int64_t id) const {
  return id >= 0 && size_t(id) < impl_->id_special.size() && impl_->id_special[size_t(id)];
}
const std::string& Tokenizer::digest() const { return impl_->digest; }

}  // namespace tstar
