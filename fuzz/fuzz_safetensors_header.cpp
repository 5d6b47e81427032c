// libFuzzer target for the safetensors header parser. Every input must either be accepted with a
// self-consistent result or be rejected with tstar::Error; a crash, a sanitizer report, any other
// exception type, or an accepted header that breaks the layout invariants is a bug.
#include <cstddef>
#include <cstdint>

#include "tstar/error.h"
#include "safetensors_invariants.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tstar::fuzz::check_accepted(tstar::parse_safetensors(data, size, "fuzz-input"), size);
  } catch (const tstar::Error&) {
    // Rejected with a message: the expected outcome for almost every input.
  }
  return 0;
}
