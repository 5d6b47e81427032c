// Structure-aware companion of fuzz_safetensors_header: the input is the JSON header alone. The
// harness adds the length prefix and a zero-filled data region as long as the largest
// data_offsets end it can find, so mutations reach the dtype/shape/layout checks instead of
// mostly failing on the framing (random images almost never have a matching data region).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tstar/error.h"
#include "safetensors_invariants.h"

namespace {

constexpr uint64_t kMaxDataBytes = uint64_t{1} << 20;

// Largest plausible data_offsets end in the header, or 0 when there is none (or it is huge).
uint64_t data_region_bytes(const uint8_t* header, size_t size) {
  const auto parsed = nlohmann::json::parse(header, header + size, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return 0;
  uint64_t end = 0;
  for (const auto& entry : parsed) {
    if (!entry.is_object() || !entry.contains("data_offsets")) continue;
    const auto& offsets = entry["data_offsets"];
    if (offsets.is_array() && offsets.size() == 2 && offsets[1].is_number_unsigned()) {
      end = std::max(end, offsets[1].get<uint64_t>());
    }
  }
  return end <= kMaxDataBytes ? end : 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint64_t data_bytes = data_region_bytes(data, size);
  std::vector<uint8_t> image(8 + size + data_bytes, 0);
  for (int i = 0; i < 8; ++i) image[i] = static_cast<uint8_t>(static_cast<uint64_t>(size) >> (8 * i));
  std::copy(data, data + size, image.begin() + 8);
  try {
    tstar::fuzz::check_accepted(tstar::parse_safetensors(image.data(), image.size(), "fuzz-input"), image.size());
  } catch (const tstar::Error&) {
  }
  return 0;
}
