#include "tstar/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
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
  Regex(const std::string& pattern, const std::string& where) {
    const uint32_t options = PCRE2_UTF | PCRE2_UCP;
    const std::string source = spell_out_white_space(restrict_caseless_groups_to_ascii(pattern));
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
// Patterns: HF's {"String": s} (a literal) or {"Regex": r}, as Split, Replace and their decoders
// take them.

class Pattern {
 public:
  // Reads `holder.pattern`; an empty pattern is refused (HF has no useful behaviour for it).
  static Pattern parse(const json& holder, const std::string& path, const Fields& f) {
    const json& pattern = f.require(holder, "pattern", path);
    const std::string where = path + ".pattern";
    Pattern out;
    if (const json* r = pattern.is_object() ? f.optional(pattern, "Regex") : nullptr) {
      const std::string source = f.string(*r, where + ".Regex");
      if (source.empty()) f.fail(where + ".Regex", "empty pattern");
      out.regex_ = std::make_shared<const Regex>(source, f.origin() + ": " + where);
    } else if (const json* s = pattern.is_object() ? f.optional(pattern, "String") : nullptr) {
      out.literal_ = f.string(*s, where + ".String");
      if (out.literal_.empty()) f.fail(where + ".String", "empty pattern");
    } else {
      f.fail(where, "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    return out;
  }

  // Calls on_match(start, end) for each non-empty, non-overlapping match, left to right.
  template <typename F>
  void for_each_match(std::string_view text, pcre2_match_data* md, F&& on_match) const {
    if (regex_) return regex_->for_each_match(text, md, on_match);
    for (size_t pos = text.find(literal_); pos != std::string_view::npos; pos = text.find(literal_, pos + literal_.size())) {
      on_match(pos, pos + literal_.size());
    }
  }

  // Every match replaced by `content` (HF's Replace normalizer and decoder).
  std::string replace_all(std::string_view text, std::string_view content, pcre2_match_data* md) const {
    std::string out;
    out.reserve(text.size() + text.size() / 2);
    size_t copied = 0;
    for_each_match(text, md, [&](size_t start, size_t end) {
      out.append(text.data() + copied, start - copied);
      out.append(content);
      copied = end;
    });
    out.append(text.data() + copied, text.size() - copied);
    return out;
  }

 private:
  std::string literal_;                 // used when regex_ is null
  std::shared_ptr<const Regex> regex_;  // shared: patterns are copied with their steps
};

std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> new_match_data() {
  return {pcre2_match_data_create(1, nullptr), &pcre2_match_data_free};
}

// ---------------------------------------------------------------------------------------------
// Normalizers: Unicode normal forms (utf8proc), Replace and Prepend, in order.

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };

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

struct NormalizerStep {
  enum class Kind { kNormalForm, kReplace, kPrepend };
  Kind kind = Kind::kNormalForm;
  NormalForm form = NormalForm::kNFC;
  Pattern pattern;   // kReplace
  std::string text;  // kReplace: the replacement; kPrepend: the prefix
};

class Normalizer {
 public:
  void parse(const json& n, const std::string& path, const Fields& f);

  std::string apply(std::string_view text, pcre2_match_data* md) const {
    std::string s(text);
    for (const NormalizerStep& step : steps_) {
      switch (step.kind) {
        case NormalizerStep::Kind::kNormalForm:
          if (!is_ascii(s)) s = apply_normal_form(s, step.form);  // ASCII is invariant under all four
          break;
        case NormalizerStep::Kind::kReplace:
          s = step.pattern.replace_all(s, step.text, md);
          break;
        case NormalizerStep::Kind::kPrepend:
          if (!s.empty()) s.insert(0, step.text);  // HF leaves an empty string empty
          break;
      }
    }
    return s;
  }

 private:
  std::vector<NormalizerStep> steps_;
};

void Normalizer::parse(const json& n, const std::string& path, const Fields& f) {
  const std::string type = f.type_of(n, path);
  NormalizerStep step;
  if (type == "Sequence") {
    const json& list = f.array(f.require(n, "normalizers", path), path + ".normalizers");
    for (size_t i = 0; i < list.size(); ++i) parse(list[i], Fields::index(path + ".normalizers", i), f);
    return;
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.form = type == "NFC" ? NormalForm::kNFC : type == "NFD" ? NormalForm::kNFD
              : type == "NFKC" ? NormalForm::kNFKC : NormalForm::kNFKD;
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::kReplace;
    step.pattern = Pattern::parse(n, path, f);
    step.text = f.string(f.require(n, "content", path), path + ".content");
  } else if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::kPrepend;
    step.text = f.string(f.require(n, "prepend", path), path + ".prepend");
  } else {
    f.fail(path + ".type", fmt::format("normalizer '{}' is not supported by tstar (supported: NFC, NFD, NFKC, NFKD, "
                                       "Replace, Prepend, Sequence)", type));
  }
  steps_.push_back(std::move(step));
}

// ---------------------------------------------------------------------------------------------
// Metaspace (SentencePiece's "▁" for spaces), shared by the pre-tokenizer and the decoder.

enum class PrependScheme { kFirst, kAlways, kNever };

struct Metaspace {
  std::string replacement;  // one character
  PrependScheme prepend_scheme = PrependScheme::kAlways;
  bool split = true;
};

// obj[key], a string of exactly one character (a Rust `char` in HF).
std::string one_character(const json& obj, const char* key, const std::string& path, const Fields& f) {
  const std::string key_path = Fields::join(path, key);
  const std::string s = f.string(f.require(obj, key, path), key_path);
  size_t end = 0;
  if (s.empty() || first_invalid_utf8(s) != std::string::npos || (next_code_point(s, end), end != s.size())) {
    f.fail(key_path, fmt::format("expected one character, got '{}'", s));
  }
  return s;
}

Metaspace parse_metaspace(const json& m, const std::string& path, const Fields& f) {
  Metaspace out;
  out.replacement = one_character(m, "replacement", path, f);
  if (const json* scheme = f.optional(m, "prepend_scheme")) {
    const std::string name = f.string(*scheme, Fields::join(path, "prepend_scheme"));
    if (name == "first") {
      out.prepend_scheme = PrependScheme::kFirst;
    } else if (name == "never") {
      out.prepend_scheme = PrependScheme::kNever;
    } else if (name != "always") {
      f.fail(Fields::join(path, "prepend_scheme"), fmt::format("'{}' is not one of first, always, never", name));
    }
  }
  // Older files: add_prefix_space (true = "always"); HF refuses false unless the scheme is "never".
  if (!f.boolean(m, "add_prefix_space", true, path) && out.prepend_scheme != PrependScheme::kNever) {
    f.fail(Fields::join(path, "add_prefix_space"), "false does not match prepend_scheme (only \"never\" does)");
  }
  out.split = f.boolean(m, "split", true, path);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer

// What HF's ByteLevel pre-tokenizer splits on when use_regex is true (the GPT-2 pattern).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// HF's SplitDelimiterBehavior: what becomes of a matched delimiter.
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Run {  // a stretch of text, matched by a split pattern or between two matches
  size_t start, end;
  bool matched;
};

// The pieces HF keeps from the runs (which cover the text in order) under `behavior`.
std::vector<Run> apply_split_behavior(const std::vector<Run>& runs, SplitBehavior behavior) {
  std::vector<Run> pieces;
  pieces.reserve(runs.size());
  bool previous_matched = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return runs;
    case SplitBehavior::kRemoved:
      for (const Run& r : runs) {
        if (!r.matched) pieces.push_back(r);
      }
      return pieces;
    case SplitBehavior::kContiguous:  // neighbouring runs of the same kind are joined
      for (const Run& r : runs) {
        if (!pieces.empty() && r.matched == previous_matched) {
          pieces.back().end = r.end;
        } else {
          pieces.push_back(r);
        }
        previous_matched = r.matched;
      }
      return pieces;
    case SplitBehavior::kMergedWithPrevious:  // a delimiter joins the piece before it, once
      for (const Run& r : runs) {
        if (!pieces.empty() && r.matched && !previous_matched) {
          pieces.back().end = r.end;
        } else {
          pieces.push_back(r);
        }
        previous_matched = r.matched;
      }
      return pieces;
    case SplitBehavior::kMergedWithNext:  // a delimiter joins the piece after it, once
      for (auto r = runs.rbegin(); r != runs.rend(); ++r) {
        if (!pieces.empty() && r->matched && !previous_matched) {
          pieces.back().start = r->start;
        } else {
          pieces.push_back(*r);
        }
        previous_matched = r->matched;
      }
      std::reverse(pieces.begin(), pieces.end());
      return pieces;
  }
  return pieces;
}

// The runs `pattern` cuts `text` into: matches and the gaps between them (`invert` swaps them).
std::vector<Run> split_runs(std::string_view text, const Pattern& pattern, bool invert, pcre2_match_data* md) {
  std::vector<Run> runs;
  size_t gap_start = 0;
  pattern.for_each_match(text, md, [&](size_t start, size_t end) {
    if (gap_start < start) runs.push_back({gap_start, start, invert});
    runs.push_back({start, end, !invert});
    gap_start = end;
  });
  if (gap_start < text.size()) runs.push_back({gap_start, text.size(), invert});
  return runs;
}

struct PreTokenizerStep {
  enum class Kind { kSplit, kMetaspace };
  Kind kind = Kind::kSplit;
  Pattern pattern;  // kSplit
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  Metaspace metaspace;  // kMetaspace
};

struct PreTokenizer {
  std::vector<PreTokenizerStep> steps;  // applied in order, then the ByteLevel step if any
  bool byte_level = false;              // a ByteLevel step ends the sequence: pieces become bytes
  bool byte_level_prefix_space = false;
  std::unique_ptr<Regex> byte_level_regex;  // set when ByteLevel.use_regex is true
};

SplitBehavior parse_split_behavior(const json& p, const std::string& path, const Fields& f) {
  const std::string name = f.string(f.require(p, "behavior", path), path + ".behavior");
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  f.fail(path + ".behavior", fmt::format("Split behavior '{}' is not one of Isolated, Removed, MergedWithPrevious, "
                                         "MergedWithNext, Contiguous", name));
}

void parse_pre_tokenizer(const json& p, const std::string& path, const Fields& f, PreTokenizer* out) {
  const std::string type = f.type_of(p, path);
  if (type == "Sequence") {
    const json& list = f.array(f.require(p, "pretokenizers", path), path + ".pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) parse_pre_tokenizer(list[i], Fields::index(path + ".pretokenizers", i), f, out);
    return;
  }
  if (out->byte_level) f.fail(path, "tstar needs ByteLevel to be the last pre-tokenizer");
  PreTokenizerStep step;
  if (type == "Split") {
    step.pattern = Pattern::parse(p, path, f);
    step.behavior = parse_split_behavior(p, path, f);
    step.invert = f.boolean(p, "invert", false, path);
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::Kind::kMetaspace;
    step.metaspace = parse_metaspace(p, path, f);
  } else if (type == "ByteLevel") {
    out->byte_level = true;
    out->byte_level_prefix_space = f.boolean(p, "add_prefix_space", true, path);
    if (f.boolean(p, "use_regex", true, path)) {
      out->byte_level_regex = std::make_unique<Regex>(kGpt2Pattern, "ByteLevel GPT-2 pattern");
    }
    return;
  } else {
    f.fail(path + ".type", fmt::format("pre-tokenizer '{}' is not supported by tstar (supported: Split, Metaspace, "
                                       "ByteLevel, Sequence of them)", type));
  }
  out->steps.push_back(std::move(step));
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

// Decodes the code point at s[i] of valid UTF-8 (checked on input) and advances i past it.
int32_t decode_valid_utf8(std::string_view s, size_t& i) {
  const auto byte = [&](size_t k) { return int32_t(uint8_t(s[i + k]) & 0x3F); };
  const auto b0 = uint8_t(s[i]);
  int32_t cp;
  if (b0 < 0x80) {
    cp = b0;
    i += 1;
  } else if (b0 < 0xE0) {
    cp = (int32_t(b0 & 0x1F) << 6) | byte(1);
    i += 2;
  } else if (b0 < 0xF0) {
    cp = (int32_t(b0 & 0x0F) << 12) | (byte(1) << 6) | byte(2);
    i += 3;
  } else {
    cp = (int32_t(b0 & 0x07) << 18) | (byte(1) << 12) | (byte(2) << 6) | byte(3);
    i += 4;
  }
  return cp;
}

// HF's BPE model on one piece. Its initial symbols are the piece's characters: the byte-alphabet
// character of each byte after a ByteLevel pre-tokenizer, else the UTF-8 characters themselves.
// A character without a token becomes its <0xNN> byte tokens (byte_fallback), else unk_token
// (consecutive ones fused into one with fuse_unk), else nothing, as HF drops it.
struct BpeModel {
  ByteAlphabet alphabet;
  bool byte_level = false;
  std::array<int32_t, 256> byte_ids{};    // byte-level: id of each byte's character, -1 when absent
  std::array<int32_t, 128> ascii_ids{};   // character level: id of each ASCII character, -1 when absent
  std::unordered_map<int32_t, int32_t> char_ids;  // character level: the other one-character tokens
  bool byte_fallback = false;
  std::array<int32_t, 256> fallback_ids{};  // the "<0xNN>" tokens, -1 when absent
  int32_t unk_id = -1;
  bool fuse_unk = false;
  PairMap merges;
  bool ignore_merges = false;
  std::unordered_map<std::string, int32_t> word_ids;  // filled only when ignore_merges: piece -> id
  // Character level, where a piece can be a whole text (no pre-tokenizer): the pairs of adjacent
  // initial symbols that some chain of merges could ever join. Between any other two symbols the
  // word splits into parts that merge independently, which keeps long words fast.
  PairMap joinable;
  bool has_joinable = false;

  struct Merge {
    int32_t left, right, merged;
  };
  void index_joinable_pairs(const std::vector<Merge>& list, size_t id_count);
  void encode_word(std::string_view piece, std::vector<int32_t>& out) const;

 private:
  int32_t char_id(int32_t cp) const {
    if (cp < 128) return ascii_ids[size_t(cp)];
    auto it = char_ids.find(cp);
    return it == char_ids.end() ? -1 : it->second;
  }
  bool push_fallback_bytes(std::string_view character, std::vector<int32_t>& symbols) const;
  void merge(std::vector<int32_t>& symbols) const;
  void merge_in_parts(std::vector<int32_t>& symbols) const;
  void merge_by_scan(std::vector<int32_t>& symbols) const;
  void merge_by_heap(std::vector<int32_t>& symbols) const;
};

// All of the character's bytes as <0xNN> tokens, or false (nothing pushed) when one is missing.
bool BpeModel::push_fallback_bytes(std::string_view character, std::vector<int32_t>& symbols) const {
  for (char c : character) {
    if (fallback_ids[uint8_t(c)] < 0) return false;
  }
  for (char c : character) symbols.push_back(fallback_ids[uint8_t(c)]);
  return true;
}

void BpeModel::encode_word(std::string_view piece, std::vector<int32_t>& out) const {
  if (ignore_merges) {
    auto it = word_ids.find(std::string(piece));
    if (it != word_ids.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(piece.size());
  bool unk_pending = false;  // HF holds an unk back to fuse it with the next one
  auto add_known = [&](int32_t id) {
    if (unk_pending) symbols.push_back(unk_id);
    unk_pending = false;
    symbols.push_back(id);
  };
  auto add_unknown = [&](std::string_view character) {
    if (byte_fallback && push_fallback_bytes(character, symbols)) return;  // a pending unk stays pending, as in HF
    if (unk_id < 0) return;
    if (unk_pending && !fuse_unk) symbols.push_back(unk_id);
    unk_pending = true;
  };
  if (byte_level) {
    for (char c : piece) {
      const int32_t id = byte_ids[uint8_t(c)];
      if (id >= 0) {
        add_known(id);
      } else {
        add_unknown(alphabet.to_token(std::string_view(&c, 1)));
      }
    }
  } else {
    for (size_t i = 0; i < piece.size();) {
      const size_t start = i;
      const int32_t id = char_id(decode_valid_utf8(piece, i));
      if (id >= 0) {
        add_known(id);
      } else {
        add_unknown(piece.substr(start, i - start));
      }
    }
  }
  if (unk_pending) symbols.push_back(unk_id);
  if (has_joinable && symbols.size() > 48) {
    merge_in_parts(symbols);
  } else {
    merge(symbols);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
}

void BpeModel::merge(std::vector<int32_t>& symbols) const {
  // Both strategies apply the lowest-rank merge first, leftmost among equal ranks (HF's order);
  // the heap avoids quadratic time on long pieces such as whitespace runs.
  if (symbols.size() <= 48) {
    merge_by_scan(symbols);
  } else {
    merge_by_heap(symbols);
  }
}

// No merge ever crosses a boundary between symbols that are not joinable, so the parts between
// such boundaries give the same result merged one by one as the whole word would.
void BpeModel::merge_in_parts(std::vector<int32_t>& symbols) const {
  std::vector<int32_t> result, part;
  result.reserve(symbols.size());
  auto flush = [&] {
    merge(part);
    result.insert(result.end(), part.begin(), part.end());
    part.clear();
  };
  for (size_t i = 0; i < symbols.size(); ++i) {
    if (i > 0 && !joinable.find(symbols[i - 1], symbols[i])) flush();
    part.push_back(symbols[i]);
  }
  flush();
  symbols = std::move(result);
}

// A merge (a, b) joins the last initial symbol of a with the first of b. The initial symbols at
// a token's ends are found through all the merges that make it, and the token itself when it can
// be an initial symbol (a character, a byte token, unk): a superset at worst, which only means
// fewer splits. Merged tokens are longer than their parts, so the search ends.
void BpeModel::index_joinable_pairs(const std::vector<Merge>& list, size_t id_count) {
  std::vector<std::vector<size_t>> made_by(id_count);  // token -> indexes into list
  for (size_t k = 0; k < list.size(); ++k) made_by[size_t(list[k].merged)].push_back(k);
  std::vector<uint8_t> initial(id_count, 0);
  auto mark_initial = [&](int32_t id) {
    if (id >= 0 && size_t(id) < id_count) initial[size_t(id)] = 1;
  };
  for (int32_t id : ascii_ids) mark_initial(id);
  for (const auto& entry : char_ids) mark_initial(entry.second);
  for (int32_t id : fallback_ids) mark_initial(id);
  mark_initial(unk_id);
  enum : uint8_t { kUnseen, kInProgress, kDone };
  std::array<std::vector<uint8_t>, 2> state{std::vector<uint8_t>(id_count, kUnseen), std::vector<uint8_t>(id_count, kUnseen)};
  std::array<std::vector<std::vector<int32_t>>, 2> ends{std::vector<std::vector<int32_t>>(id_count),
                                                        std::vector<std::vector<int32_t>>(id_count)};
  // side 0: first initial symbols, side 1: last ones.
  std::function<const std::vector<int32_t>&(int32_t, int)> ends_of = [&](int32_t t, int side) -> const std::vector<int32_t>& {
    auto& result = ends[size_t(side)][size_t(t)];
    uint8_t& s = state[size_t(side)][size_t(t)];
    if (s != kUnseen) return result;  // done, or a cycle of merges: what is known so far
    s = kInProgress;
    if (initial[size_t(t)]) result.push_back(t);
    for (size_t k : made_by[size_t(t)]) {
      const int32_t part = side == 0 ? list[k].left : list[k].right;
      const std::vector<int32_t> more = ends_of(part, side);
      for (int32_t e : more) {
        if (std::find(result.begin(), result.end(), e) == result.end()) result.push_back(e);
      }
    }
    s = kDone;
    return result;
  };
  joinable.reserve(list.size() * 2);
  for (const Merge& m : list) {
    const std::vector<int32_t> lasts = ends_of(m.left, 1);
    for (int32_t x : lasts) {
      for (int32_t y : ends_of(m.right, 0)) joinable.insert(x, y, PairMap::Value{0, 0});
    }
  }
  has_joinable = true;
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

// ---------------------------------------------------------------------------------------------
// Decoders: HF's decode_chain, a list of token strings through each step in turn, then joined.

struct DecoderStep {
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  Kind kind = Kind::kByteLevel;
  Pattern pattern;      // kReplace
  std::string content;  // kReplace: the replacement; kStrip: the character stripped
  size_t strip_start = 0, strip_stop = 0;  // kStrip: at most this many at each end
  Metaspace metaspace;  // kMetaspace
};

// The byte an HF ByteFallback token "<0xNN>" stands for, or -1. Like HF (Rust's u8::from_str_radix)
// it takes either case and a '+' sign before a single digit.
int byte_fallback_value(std::string_view token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  auto digit = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int high = digit(token[3]), low = digit(token[4]);
  if (token[3] == '+' && low >= 0) return low;
  return high >= 0 && low >= 0 ? high * 16 + low : -1;
}

// Runs of <0xNN> tokens become their UTF-8 text, or one U+FFFD per byte when not valid UTF-8.
std::vector<std::string> fuse_fallback_bytes(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  std::string bytes;
  auto flush = [&] {
    if (bytes.empty()) return;
    if (first_invalid_utf8(bytes) == std::string_view::npos) {
      out.push_back(bytes);
    } else {
      for (size_t i = 0; i < bytes.size(); ++i) out.push_back("\xEF\xBF\xBD");
    }
    bytes.clear();
  };
  for (std::string& token : tokens) {
    const int value = byte_fallback_value(token);
    if (value >= 0) {
      bytes.push_back(char(value));
    } else {
      flush();
      out.push_back(std::move(token));
    }
  }
  flush();
  return out;
}

// Up to `start` leading and `stop` trailing copies of `character` removed.
std::string strip_token(std::string_view token, std::string_view character, size_t start, size_t stop) {
  size_t begin = 0, end = token.size();
  for (size_t k = 0; k < start && token.substr(begin, character.size()) == character; ++k) begin += character.size();
  for (size_t k = 0; k < stop && end - begin >= character.size() &&
                     token.substr(end - character.size(), character.size()) == character; ++k) {
    end -= character.size();
  }
  return std::string(token.substr(begin, end - begin));
}

// "▁" back to spaces; in the first token HF drops every "▁" unless the scheme is "never".
std::vector<std::string> undo_metaspace(std::vector<std::string> tokens, const Metaspace& m) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    const bool drop = i == 0 && m.prepend_scheme != PrependScheme::kNever;
    std::string out;
    for (size_t pos = 0;;) {
      const size_t hit = tokens[i].find(m.replacement, pos);
      out.append(tokens[i], pos, hit == std::string::npos ? std::string::npos : hit - pos);
      if (hit == std::string::npos) break;
      if (!drop) out += ' ';
      pos = hit + m.replacement.size();
    }
    tokens[i] = std::move(out);
  }
  return tokens;
}

class Decoder {
 public:
  // `decoder` may be null: HF then joins the tokens with spaces.
  void parse(const json* decoder, const std::string& path, const Fields& f) {
    present_ = decoder != nullptr;
    if (decoder) parse_step(*decoder, path, f);
  }
  // Just ByteLevel: decode() takes the fast path of precomputed bytes per id.
  bool byte_level_only() const { return steps_.size() == 1 && steps_[0].kind == DecoderStep::Kind::kByteLevel; }
  std::string decode(std::vector<std::string> tokens, const ByteAlphabet& alphabet) const;

 private:
  void parse_step(const json& d, const std::string& path, const Fields& f);
  std::vector<std::string> apply(const DecoderStep& step, std::vector<std::string> tokens, const ByteAlphabet& alphabet,
                                 pcre2_match_data* md) const;
  bool present_ = false;
  std::vector<DecoderStep> steps_;
};

void Decoder::parse_step(const json& d, const std::string& path, const Fields& f) {
  const std::string type = f.type_of(d, path);
  DecoderStep step;
  if (type == "Sequence") {
    const json& list = f.array(f.require(d, "decoders", path), path + ".decoders");
    for (size_t i = 0; i < list.size(); ++i) parse_step(list[i], Fields::index(path + ".decoders", i), f);
    return;
  } else if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::kByteLevel;
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::kReplace;
    step.pattern = Pattern::parse(d, path, f);
    step.content = f.string(f.require(d, "content", path), path + ".content");
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::kStrip;
    step.content = one_character(d, "content", path, f);
    auto count = [&](const char* key) {
      const json& v = f.require(d, key, path);
      if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
        f.fail(Fields::join(path, key), fmt::format("expected a count >= 0, got {}", v.dump()));
      }
      return v.get<size_t>();
    };
    step.strip_start = count("start");
    step.strip_stop = count("stop");
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::kMetaspace;
    step.metaspace = parse_metaspace(d, path, f);
  } else {
    f.fail(path + ".type", fmt::format("decoder '{}' is not supported by tstar (supported: ByteLevel, Replace, "
                                       "ByteFallback, Fuse, Strip, Metaspace, Sequence)", type));
  }
  steps_.push_back(std::move(step));
}

std::vector<std::string> Decoder::apply(const DecoderStep& step, std::vector<std::string> tokens,
                                        const ByteAlphabet& alphabet, pcre2_match_data* md) const {
  switch (step.kind) {
    case DecoderStep::Kind::kByteLevel: {  // one string of all the bytes, broken UTF-8 replaced
      std::string bytes, token_bytes;
      for (const std::string& token : tokens) bytes += alphabet.to_bytes(token, &token_bytes) ? token_bytes : token;
      return {utf8_lossy(bytes)};
    }
    case DecoderStep::Kind::kReplace:
      for (std::string& token : tokens) token = step.pattern.replace_all(token, step.content, md);
      return tokens;
    case DecoderStep::Kind::kByteFallback:
      return fuse_fallback_bytes(std::move(tokens));
    case DecoderStep::Kind::kFuse: {
      std::string joined;
      for (const std::string& token : tokens) joined += token;
      return {joined};
    }
    case DecoderStep::Kind::kStrip:
      for (std::string& token : tokens) token = strip_token(token, step.content, step.strip_start, step.strip_stop);
      return tokens;
    case DecoderStep::Kind::kMetaspace:
      return undo_metaspace(std::move(tokens), step.metaspace);
  }
  return tokens;
}

std::string Decoder::decode(std::vector<std::string> tokens, const ByteAlphabet& alphabet) const {
  const auto md = new_match_data();
  for (const DecoderStep& step : steps_) tokens = apply(step, std::move(tokens), alphabet, md.get());
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0 && !present_) out += ' ';
    out += tokens[i];
  }
  return out;
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
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  BpeModel bpe;  // holds the byte alphabet too
  AddedTokenMatcher raw_matcher, normalized_matcher;
  Template post;
  Decoder decoder;
  std::unordered_map<std::string, int32_t> token_ids;  // vocabulary and added tokens, by content
  std::vector<std::string> id_tokens;                   // content by id; empty for holes
  std::vector<std::string> id_bytes;                    // a ByteLevel decoder's bytes for each id
  std::vector<uint8_t> id_special;                      // 1 for special added tokens
  std::vector<uint8_t> id_present;
  int32_t bos = -1, eos = -1;

  // Word cache (HF keeps one too): raw piece bytes -> ids. Bounded; never evicts.
  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kCacheMaxWordBytes = 256;
  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void load_model(const json& model, const Fields& f);
  void load_vocab(const json& vocab, const Fields& f);
  void load_merges(const json& merges, const Fields& f);
  void load_added_tokens(const json& root, const Fields& f);
  void load_config(const json& config, const Fields& f);
  void register_token(const std::string& content, int32_t id);
  void finish_id_tables();

  void encode_piece(std::string_view raw, std::vector<int32_t>& out) const;
  // `at_start`: the segment begins the input text (Metaspace's prepend_scheme "first").
  void encode_text(std::string_view raw_segment, bool at_start, pcre2_match_data* md, std::vector<int32_t>& out) const;
  // Calls sink(piece) for each piece the pre-tokenizer makes of `text`, starting at step `step`;
  // pieces are raw bytes after a ByteLevel step, else UTF-8.
  template <typename Sink>
  void for_each_piece(std::string_view text, size_t step, bool at_start, pcre2_match_data* md, Sink& sink) const;
  template <typename Sink>
  void split_pieces(std::string_view text, size_t step, bool at_start, pcre2_match_data* md, Sink& sink) const;
  template <typename Sink>
  void metaspace_pieces(std::string_view text, size_t step, bool at_start, pcre2_match_data* md, Sink& sink) const;
  template <typename Sink>
  void byte_level_pieces(std::string_view text, pcre2_match_data* md, Sink& sink) const;
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
    f.fail("model.type", fmt::format("model '{}' is not supported by tstar (supported: BPE)", type));
  }
  if (const json* dropout = f.optional(model, "dropout")) {  // 0 draws nothing: the same as null
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      f.fail("model.dropout", fmt::format("BPE dropout {} is not supported by tstar (must be null)", dropout->dump()));
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* v = f.optional(model, key)) {
      if (!f.string(*v, std::string("model.") + key).empty()) f.fail(std::string("model.") + key, "not supported by tstar (must be empty)");
    }
  }
  bpe.byte_level = pre_tokenizer.byte_level;
  bpe.byte_fallback = f.boolean(model, "byte_fallback", false, "model");
  bpe.fuse_unk = f.boolean(model, "fuse_unk", false, "model");
  bpe.ignore_merges = f.boolean(model, "ignore_merges", false, "model");
  load_vocab(f.require(model, "vocab", "model"), f);
  if (const json* unk = f.optional(model, "unk_token")) {
    auto it = token_ids.find(f.string(*unk, "model.unk_token"));
    if (it == token_ids.end()) f.fail("model.unk_token", "not in model.vocab");
    bpe.unk_id = it->second;
  }
  if (bpe.byte_fallback && std::all_of(bpe.fallback_ids.begin(), bpe.fallback_ids.end(), [](int32_t id) { return id < 0; })) {
    f.fail("model.byte_fallback", "true but model.vocab has none of the byte tokens <0x00> ... <0xFF>");
  }
  load_merges(f.require(model, "merges", "model"), f);
}

// The vocabulary, and the model's lookup tables made from it (before any added token is known:
// HF's model looks only in its own vocabulary).
void Tokenizer::Impl::load_vocab(const json& vocab, const Fields& f) {
  if (!vocab.is_object()) f.fail("model.vocab", fmt::format("expected an object, got {}", vocab.type_name()));
  id_tokens.reserve(vocab.size());
  token_ids.reserve(vocab.size() + 1024);
  bpe.ascii_ids.fill(-1);
  std::string raw;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    // The field path is only built for the error message (this loop runs ~150k times).
    const int64_t value = it.value().is_number_integer() ? it.value().get<int64_t>() : -1;
    int32_t id = value >= 0 && value <= INT32_MAX ? int32_t(value) : f.id(it.value(), "model.vocab." + it.key());
    const std::string& token = it.key();
    register_token(token, id);
    if (bpe.ignore_merges) {
      if (!bpe.byte_level) {
        bpe.word_ids[token] = id;
      } else if (bpe.alphabet.to_bytes(token, &raw)) {
        bpe.word_ids[raw] = id;
      }
    }
    size_t end = 0;
    if (!bpe.byte_level && !token.empty() && first_invalid_utf8(token) == std::string::npos) {
      const int32_t cp = next_code_point(token, end);
      if (end == token.size()) {  // a one-character token
        if (cp < 128) {
          bpe.ascii_ids[size_t(cp)] = id;
        } else {
          bpe.char_ids[cp] = id;
        }
      }
    }
  }
  bpe.byte_ids.fill(-1);
  bpe.fallback_ids.fill(-1);
  for (int b = 0; b < 256; ++b) {
    auto it = token_ids.find(bpe.alphabet.to_token(std::string(1, char(b))));
    if (it != token_ids.end()) bpe.byte_ids[size_t(b)] = it->second;
    it = token_ids.find(fmt::format("<0x{:02X}>", b));
    if (it != token_ids.end()) bpe.fallback_ids[size_t(b)] = it->second;
  }
}

void Tokenizer::Impl::load_merges(const json& list, const Fields& f) {
  const json& merges = f.array(list, "model.merges");
  bpe.merges.reserve(merges.size());
  // Field paths are only built for error messages (this loop runs ~150k times).
  auto path_of = [](size_t rank) { return Fields::index("model.merges", rank); };
  auto id_of = [&](const std::string& token, size_t rank) {
    auto it = token_ids.find(token);
    if (it == token_ids.end()) f.fail(path_of(rank), fmt::format("token '{}' is not in model.vocab", token));
    return it->second;
  };
  std::string left, right;
  std::vector<BpeModel::Merge> merge_list;
  merge_list.reserve(merges.size());
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
    merge_list.push_back({a, b, merged});
  }
  if (!bpe.byte_level) bpe.index_joinable_pairs(merge_list, id_tokens.size());
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
    if (token.normalized) {  // HF matches it in normalized text, so normalizes it too ("▁" prepended, ...)
      token.content = normalizer.apply(token.content, new_match_data().get());
      id_tokens[size_t(token.id)] = token.content;  // HF's id_to_token (and decode) give the normalized form
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
  if (!decoder.byte_level_only()) return;
  id_bytes.resize(id_tokens.size());
  for (size_t id = 0; id < id_tokens.size(); ++id) {
    // HF's ByteLevel decoder maps a token through the byte alphabet when every character is in
    // it, and otherwise emits the token's own UTF-8 (added tokens such as "<｜begin▁of▁sentence｜>").
    if (!bpe.alphabet.to_bytes(id_tokens[id], &id_bytes[id])) id_bytes[id] = id_tokens[id];
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
void Tokenizer::Impl::for_each_piece(std::string_view text, size_t step, bool at_start, pcre2_match_data* md,
                                     Sink& sink) const {
  if (text.empty()) return;  // HF drops empty pieces
  if (step == pre_tokenizer.steps.size()) {
    if (pre_tokenizer.byte_level) return byte_level_pieces(text, md, sink);
    return sink(text);
  }
  if (pre_tokenizer.steps[step].kind == PreTokenizerStep::Kind::kMetaspace) {
    return metaspace_pieces(text, step, at_start, md, sink);
  }
  split_pieces(text, step, at_start, md, sink);
}

template <typename Sink>
void Tokenizer::Impl::split_pieces(std::string_view text, size_t step, bool at_start, pcre2_match_data* md,
                                   Sink& sink) const {
  const PreTokenizerStep& split = pre_tokenizer.steps[step];
  for (const Run& piece : apply_split_behavior(split_runs(text, split.pattern, split.invert, md), split.behavior)) {
    for_each_piece(text.substr(piece.start, piece.end - piece.start), step + 1, at_start && piece.start == 0, md, sink);
  }
}

// HF's Metaspace: spaces become the replacement, which is put in front too (always, or only at
// the start of the input text for "first", unless already there); with `split`, each replacement
// starts a new piece.
template <typename Sink>
void Tokenizer::Impl::metaspace_pieces(std::string_view text, size_t step, bool at_start, pcre2_match_data* md,
                                       Sink& sink) const {
  const Metaspace& m = pre_tokenizer.steps[step].metaspace;
  std::string replaced;
  replaced.reserve(text.size() + text.size() / 4 + m.replacement.size());
  const bool starts_with_replacement = text.front() == ' ' || text.compare(0, m.replacement.size(), m.replacement) == 0;
  const bool prepend = !starts_with_replacement && (m.prepend_scheme == PrependScheme::kAlways ||
                                                    (m.prepend_scheme == PrependScheme::kFirst && at_start));
  if (prepend) replaced = m.replacement;
  for (char c : text) {
    if (c == ' ') {
      replaced += m.replacement;
    } else {
      replaced += c;
    }
  }
  const std::string_view s = replaced;
  if (!m.split) return for_each_piece(s, step + 1, at_start, md, sink);
  std::vector<Run> runs;
  size_t gap_start = 0;
  for (size_t pos = s.find(m.replacement); pos != std::string_view::npos; pos = s.find(m.replacement, pos + m.replacement.size())) {
    if (gap_start < pos) runs.push_back({gap_start, pos, false});
    runs.push_back({pos, pos + m.replacement.size(), true});
    gap_start = pos + m.replacement.size();
  }
  if (gap_start < s.size()) runs.push_back({gap_start, s.size(), false});
  for (const Run& piece : apply_split_behavior(runs, SplitBehavior::kMergedWithNext)) {
    for_each_piece(s.substr(piece.start, piece.end - piece.start), step + 1, at_start && piece.start == 0, md, sink);
  }
}

// The ByteLevel step: optional prefix space, optional GPT-2 split; its pieces go to the sink.
template <typename Sink>
void Tokenizer::Impl::byte_level_pieces(std::string_view text, pcre2_match_data* md, Sink& sink) const {
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

void Tokenizer::Impl::encode_text(std::string_view raw_segment, bool at_start, pcre2_match_data* md,
                                  std::vector<int32_t>& out) const {
  const std::string normalized = normalizer.apply(raw_segment, md);
  for (const Segment& s : normalized_matcher.split(normalized)) {
    if (s.id >= 0) {
      out.push_back(s.id);
    } else {
      auto sink = [&](std::string_view raw) { encode_piece(raw, out); };
      for_each_piece(std::string_view(normalized).substr(s.start, s.end - s.start), 0, at_start && s.start == 0, md, sink);
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
  if (const json* n = f.optional(root, "normalizer")) impl->normalizer.parse(*n, "normalizer", f);
  if (const json* p = f.optional(root, "pre_tokenizer")) parse_pre_tokenizer(*p, "pre_tokenizer", f, &impl->pre_tokenizer);
  impl->load_model(f.require(root, "model", ""), f);
  impl->load_added_tokens(root, f);
  if (const json* p = f.optional(root, "post_processor")) parse_post_processor(*p, "post_processor", f, &impl->post);
  impl->decoder.parse(f.optional(root, "decoder"), "decoder", f);
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
  const auto md = new_match_data();
  for (const Segment& s : impl.raw_matcher.split(text)) {
    if (s.id >= 0) {
      ids.push_back(s.id);
    } else {
      impl.encode_text(text.substr(s.start, s.end - s.start), s.start == 0, md.get(), ids);
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
  auto wanted = [&](int64_t id) {  // HF skips ids its vocabulary lacks
    return id >= 0 && size_t(id) < impl.id_tokens.size() && impl.id_present[size_t(id)] &&
           !(skip_special && impl.id_special[size_t(id)]);
  };
  if (impl.decoder.byte_level_only()) {
    std::string bytes;
    for (int64_t id : ids) {
      if (wanted(id)) bytes += impl.id_bytes[size_t(id)];
    }
    return utf8_lossy(bytes);
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    if (wanted(id)) tokens.push_back(impl.id_tokens[size_t(id)]);
  }
  return impl.decoder.decode(std::move(tokens), impl.bpe.alphabet);
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  if (size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
    throw Error(fmt::format("tokenizer: input text is not valid UTF-8 (byte offset {})", bad));
  }
  const auto md = new_match_data();
  std::vector<std::string> pieces;
  auto sink = [&](std::string_view piece) {
    pieces.push_back(impl_->pre_tokenizer.byte_level ? impl_->bpe.alphabet.to_token(piece) : std::string(piece));
  };
  impl_->for_each_piece(text, 0, true, md.get(), sink);
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
