// Invariants of an accepted safetensors header, shared by the fuzz targets: what SafetensorsFile
// relies on when it hands out views into the mapping. A violation aborts (a fuzzer finding).
#pragma once

#include <cstdint>

#include "tstar/error.h"
#include "tstar/safetensors_header.h"

namespace tstar::fuzz {

inline uint64_t element_count(const tstar::TensorInfo& tensor) {
  uint64_t count = 1;
  for (int64_t dim : tensor.shape) {
    TSTAR_CHECK(dim >= 0);
    TSTAR_CHECK(!__builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count));
  }
  return count;
}

inline void check_accepted(const tstar::ParsedHeader& parsed, uint64_t size) {
  TSTAR_CHECK(parsed.data_start >= 8 && parsed.data_start <= size);
  const uint64_t data_bytes = size - parsed.data_start;
  uint64_t covered = 0;
  for (const auto& tensor : parsed.tensors) {
    TSTAR_CHECK(tensor.begin == covered);  // sorted, no gap, no overlap
    TSTAR_CHECK(tensor.begin <= tensor.end && tensor.end <= data_bytes);
    const uint64_t item = tstar::safetensors_dtype_size(tensor.dtype);
    TSTAR_CHECK(item > 0);
    TSTAR_CHECK(tensor.end - tensor.begin == element_count(tensor) * item);
    covered = tensor.end;
  }
  TSTAR_CHECK(covered == data_bytes);
}

}  // namespace tstar::fuzz

