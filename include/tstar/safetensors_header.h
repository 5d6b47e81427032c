// The torch-free half of the safetensors reader: parsing and validating a file image held in
// memory. Kept apart from safetensors.h so that the libFuzzer target (fuzz/) can compile it with
// clang and sanitizers without linking libtorch; only the header-only ScalarType enum is used.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tstar {

struct TensorInfo {
  std::string name;
  c10::ScalarType dtype;       // kFloat, kHalf, kBFloat16 (plus kLong/kInt for golden files)
  std::vector<int64_t> shape;
  uint64_t begin = 0;          // offsets relative to the start of the data region
  uint64_t end = 0;
};

// Parses and validates a complete safetensors image held in memory (used by the fuzzer and by
// SafetensorsFile). `origin` names the file in error messages. Throws tstar::Error.
struct ParsedHeader {
  std::vector<TensorInfo> tensors;             // sorted by data offset
  std::map<std::string, std::string> metadata; // "__metadata__"
  uint64_t data_start = 0;                     // 8 + header length
};
ParsedHeader parse_safetensors(const uint8_t* bytes, uint64_t size, const std::string& origin);

// The format's dtype names ("F32", "F16", "BF16", "I64", "I32") and their byte sizes; "" and 0
// for scalar types this reader does not support.
std::string safetensors_dtype_name(c10::ScalarType dtype);
uint64_t safetensors_dtype_size(c10::ScalarType dtype);

// Largest header the reference implementation accepts (safetensors MAX_HEADER_SIZE).
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

}  // namespace tstar
