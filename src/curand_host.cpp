#include "tstar/curand_host.h"

#include <fmt/format.h>

#include "tstar/error.h"

namespace tstar {

void check_curand(curandStatus_t status, const char* call, const char* file, int line) {
  if (status != CURAND_STATUS_SUCCESS) {
    throw Error(fmt::format("{}:{}: {} failed: cuRAND status {}", file, line, call, static_cast<int>(status)));
  }
}

CurandHostGenerator::CurandHostGenerator(uint64_t seed, uint64_t offset) {
  TSTAR_CURAND_CHECK(curandCreateGeneratorHost(&generator_, CURAND_RNG_PSEUDO_PHILOX4_32_10));
  try {
    TSTAR_CURAND_CHECK(curandSetPseudoRandomGeneratorSeed(generator_, seed));
    TSTAR_CURAND_CHECK(curandSetGeneratorOrdering(generator_, CURAND_ORDERING_PSEUDO_LEGACY));
    set_offset(offset);
  } catch (...) {
    curandDestroyGenerator(generator_);
    throw;
  }
}

CurandHostGenerator::~CurandHostGenerator() { curandDestroyGenerator(generator_); }

void CurandHostGenerator::set_offset(uint64_t offset) {
  TSTAR_CURAND_CHECK(curandSetGeneratorOffset(generator_, offset));
}

void CurandHostGenerator::uint32(uint32_t* out, size_t count) {
  if (count > 0) TSTAR_CURAND_CHECK(curandGenerate(generator_, out, count));
}

void CurandHostGenerator::normals(float* out, size_t count) {
  if (count > 0) TSTAR_CURAND_CHECK(curandGenerateNormal(generator_, out, count, 0.0f, 1.0f));
}

std::vector<uint32_t> curand_host_uint32(uint64_t stream_seed, uint64_t first, int64_t count) {
  CurandHostGenerator host(stream_seed, first);
  std::vector<uint32_t> out(static_cast<size_t>(count));
  host.uint32(out.data(), out.size());
  return out;
}

std::vector<float> curand_host_normals(uint64_t stream_seed, uint64_t first, int64_t count) {
  CurandHostGenerator host(stream_seed, first);
  std::vector<float> out(static_cast<size_t>(count + (count & 1)));  // the host API draws normals in pairs
  host.normals(out.data(), out.size());
  out.resize(static_cast<size_t>(count));
  return out;
}

}  // namespace tstar
