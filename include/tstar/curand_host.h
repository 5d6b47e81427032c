// libcurand's host Philox4_32_10 generator (legacy ordering), the reference tstar's noise stream is
// checked against, with every cuRAND return code checked: a failure throws tstar::Error naming the
// call and its file:line.
#pragma once

#include <curand.h>

#include <cstdint>
#include <vector>

namespace tstar {

// Throws tstar::Error "<file>:<line>: <call> failed: cuRAND status <n>" unless `status` is success.
void check_curand(curandStatus_t status, const char* call, const char* file, int line);
#define TSTAR_CURAND_CHECK(call) ::tstar::check_curand((call), #call, __FILE__, __LINE__)

class CurandHostGenerator {
 public:
  CurandHostGenerator(uint64_t seed, uint64_t offset = 0);
  ~CurandHostGenerator();
  CurandHostGenerator(const CurandHostGenerator&) = delete;
  CurandHostGenerator& operator=(const CurandHostGenerator&) = delete;

  void set_offset(uint64_t offset);  // the next value is element `offset` of the stream
  void uint32(uint32_t* out, size_t count);
  void normals(float* out, size_t count);  // count must be even (the host API draws pairs)

 private:
  curandGenerator_t generator_ = nullptr;
};

// Elements [first, first + count) of a stream from the host API: the uint32 stream (curandGenerate)
// and its standard normals (curandGenerateNormal).
std::vector<uint32_t> curand_host_uint32(uint64_t stream_seed, uint64_t first, int64_t count);
std::vector<float> curand_host_normals(uint64_t stream_seed, uint64_t first, int64_t count);

}  // namespace tstar
