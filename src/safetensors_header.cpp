// Strict validation of a safetensors image (layout described in safetensors.h). Nothing here
// touches torch tensors, so the libFuzzer target compiles this file alone.
#include "tstar/safetensors_header.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <string_view>

#include "tstar/error.h"

namespace tstar {
namespace {

using json = nlohmann::json;

constexpr uint64_t kLengthPrefixBytes = 8;
// A valid header nests three levels deep (root -> tensor entry -> shape); the cap only stops
// pathological inputs early, so it sits well above that.
constexpr int kMaxJsonDepth = 16;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeSpec {
  const char* name;
  c10::ScalarType type;
  uint64_t size;
};
constexpr DtypeSpec kDtypes[] = {
    {"F32", c10::ScalarType::Float, 4},  {"F16", c10::ScalarType::Half, 2},
    {"BF16", c10::ScalarType::BFloat16, 2}, {"I64", c10::ScalarType::Long, 8},
    {"I32", c10::ScalarType::Int, 4},
};
constexpr const char* kSupportedDtypeList = "F32, F16, BF16, I64, I32";

[[noreturn]] void fail(const std::string& origin, const std::string& what) {
  throw Error(fmt::format("{}: {}", origin, what));
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

// nlohmann (like the reference implementation) keeps the last of two equal keys silently, which
// would hide a tensor entry; this parser callback rejects duplicates (at every level) and absurd
// nesting while the header is parsed.
class DuplicateKeyGuard {
 public:
  explicit DuplicateKeyGuard(const std::string& origin) : origin_(origin) {}

  bool operator()(int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxJsonDepth) fail(origin_, fmt::format("header JSON nests deeper than {} levels", kMaxJsonDepth));
    switch (event) {
      case json::parse_event_t::object_start: open_objects_.emplace_back(); break;
      case json::parse_event_t::object_end: open_objects_.pop_back(); break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!open_objects_.back().insert(key).second) fail(origin_, fmt::format("header repeats the key '{}'", key));
        break;
      }
      default: break;
    }
    return true;
  }

 private:
  const std::string& origin_;
  std::vector<std::set<std::string>> open_objects_;
};

json parse_header_json(const uint8_t* begin, uint64_t length, const std::string& origin) {
  // nlohmann stops at a NUL byte as if the input ended there, which would accept anything after
  // it; JSON never contains a raw NUL, so reject it up front (found by differential fuzzing
  // against the reference implementation).
  if (const void* nul = std::memchr(begin, 0, length)) {
    fail(origin, fmt::format("header is not valid JSON: NUL byte at header offset {}",
                             static_cast<const uint8_t*>(nul) - begin));
  }
  DuplicateKeyGuard guard(origin);
  try {
    return json::parse(begin, begin + length, std::ref(guard));
  } catch (const json::exception& e) {
    fail(origin, fmt::format("header is not valid JSON: {}", e.what()));
  }
}

const DtypeSpec& parse_dtype(const json& value, const std::string& tensor, const std::string& origin) {
  if (!value.is_string()) fail(origin, fmt::format("tensor '{}': 'dtype' must be a string", tensor));
  const auto& name = value.get_ref<const std::string&>();
  for (const auto& spec : kDtypes) {
    if (name == spec.name) return spec;
  }
  fail(origin, fmt::format("unsupported dtype '{}' for tensor '{}' (supported: {})", name, tensor,
                           kSupportedDtypeList));
}

// Element count of `shape`, refusing anything that would not fit torch's int64 sizes.
uint64_t parse_shape(const json& value, const std::string& tensor, const std::string& origin,
                     std::vector<int64_t>& shape) {
  if (!value.is_array()) fail(origin, fmt::format("tensor '{}': 'shape' must be an array", tensor));
  constexpr uint64_t kMaxCount = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t numel = 1;
  for (const auto& dim : value) {
    if (!dim.is_number_unsigned()) {
      fail(origin, fmt::format("tensor '{}': shape {} must hold non-negative integers", tensor, value.dump()));
    }
    const auto size = dim.get<uint64_t>();
    if (size > kMaxCount || __builtin_mul_overflow(numel, size, &numel) || numel > kMaxCount) {
      fail(origin, fmt::format("tensor '{}': shape {} has too many elements", tensor, value.dump()));
    }
    shape.push_back(static_cast<int64_t>(size));
  }
  return numel;
}

void parse_offsets(const json& value, const std::string& tensor, const std::string& origin, TensorInfo& info) {
  if (!value.is_array() || value.size() != 2 || !value[0].is_number_unsigned() || !value[1].is_number_unsigned()) {
    fail(origin, fmt::format("tensor '{}': 'data_offsets' must be [begin, end] with non-negative integers, got {}",
                             tensor, value.dump()));
  }
  info.begin = value[0].get<uint64_t>();
  info.end = value[1].get<uint64_t>();
  if (info.begin > info.end) {
    fail(origin, fmt::format("tensor '{}': data_offsets [{}, {}] end before they begin", tensor, info.begin, info.end));
  }
}

TensorInfo parse_tensor_entry(const std::string& name, const json& entry, uint64_t data_bytes,
                              const std::string& origin) {
  if (!entry.is_object()) fail(origin, fmt::format("tensor '{}': header entry must be a JSON object", name));
  // Other fields are ignored, as the reference implementation ignores them.
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(field)) fail(origin, fmt::format("tensor '{}': missing field '{}'", name, field));
  }
  TensorInfo info;
  info.name = name;
  const DtypeSpec& dtype = parse_dtype(entry["dtype"], name, origin);
  info.dtype = dtype.type;
  const uint64_t numel = parse_shape(entry["shape"], name, origin, info.shape);
  parse_offsets(entry["data_offsets"], name, origin, info);
  if (info.end > data_bytes) {
    fail(origin, fmt::format("tensor '{}': data_offsets [{}, {}] run past the end of the {}-byte data region", name,
                             info.begin, info.end, data_bytes));
  }
  uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(numel, dtype.size, &expected_bytes) || info.end - info.begin != expected_bytes) {
    fail(origin, fmt::format("tensor '{}': data_offsets [{}, {}] span {} bytes but shape {} of {} needs {} x {}",
                             name, info.begin, info.end, info.end - info.begin, entry["shape"].dump(), dtype.name,
                             numel, dtype.size));
  }
  return info;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& origin) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;
  if (!value.is_object()) fail(origin, "'__metadata__' must be a JSON object of strings");
  for (const auto& item : value.items()) {
    if (!item.value().is_string()) {
      fail(origin, fmt::format("'__metadata__' key '{}' must map to a string, got {}", item.key(), item.value().dump()));
    }
    metadata.emplace(item.key(), item.value().get<std::string>());
  }
  return metadata;
}

// Like the reference implementation: tensors tile the data region exactly, with no overlap, no
// gap and nothing left over.
void check_layout(std::vector<TensorInfo>& tensors, uint64_t data_bytes, const std::string& origin) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : (a.end != b.end ? a.end < b.end : a.name < b.name);
  });
  const TensorInfo* previous = nullptr;
  for (const auto& tensor : tensors) {
    const uint64_t covered = previous ? previous->end : 0;
    if (previous && tensor.begin < covered) {
      fail(origin, fmt::format("tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", previous->name, previous->begin,
                               previous->end, tensor.name, tensor.begin, tensor.end));
    }
    if (tensor.begin > covered) {
      fail(origin, fmt::format("{} unused bytes before tensor '{}'{}", tensor.begin - covered, tensor.name,
                               previous ? fmt::format(" (after tensor '{}')", previous->name) : std::string()));
    }
    previous = &tensor;
  }
  const uint64_t covered = previous ? previous->end : 0;
  if (covered != data_bytes) {
    fail(origin, fmt::format("data region holds {} bytes but the tensors cover {}{}", data_bytes, covered,
                             previous ? fmt::format(" (last tensor '{}')", previous->name) : std::string()));
  }
}

}  // namespace

ParsedHeader parse_safetensors(const uint8_t* bytes, uint64_t size, const std::string& origin) {
  if (size < kLengthPrefixBytes) {
    fail(origin, fmt::format("file is {} bytes, too short for the 8-byte header length", size));
  }
  const uint64_t header_bytes = read_le64(bytes);
  if (header_bytes > kMaxSafetensorsHeaderBytes) {
    fail(origin, fmt::format("header length {} exceeds the {}-byte limit", header_bytes, kMaxSafetensorsHeaderBytes));
  }
  if (header_bytes > size - kLengthPrefixBytes) {
    fail(origin, fmt::format("header length {} runs past the end of the file ({} bytes)", header_bytes, size));
  }
  ParsedHeader parsed;
  parsed.data_start = kLengthPrefixBytes + header_bytes;
  const uint64_t data_bytes = size - parsed.data_start;

  const json header = parse_header_json(bytes + kLengthPrefixBytes, header_bytes, origin);
  if (!header.is_object()) fail(origin, "header is not a JSON object");
  for (const auto& item : header.items()) {
    if (item.key() == kMetadataKey) {
      parsed.metadata = parse_metadata(item.value(), origin);
    } else {
      parsed.tensors.push_back(parse_tensor_entry(item.key(), item.value(), data_bytes, origin));
    }
  }
  check_layout(parsed.tensors, data_bytes, origin);
  return parsed;
}

std::string safetensors_dtype_name(c10::ScalarType dtype) {
  for (const auto& spec : kDtypes) {
    if (spec.type == dtype) return spec.name;
  }
  return {};
}

uint64_t safetensors_dtype_size(c10::ScalarType dtype) {
  for (const auto& spec : kDtypes) {
    if (spec.type == dtype) return spec.size;
  }
  return 0;
}

}  // namespace tstar
