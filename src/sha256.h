// SHA-256 (FIPS 180-4) for provenance digests of tokenizer and weight files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace tstar {

// Incremental hasher: update() any number of times, then hex_digest() once.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hex_digest();  // lower-case hex, 64 characters; finalises the hasher

 private:
  void compress(const uint8_t* block);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const void* data, size_t size);
// Streams the file; throws tstar::Error naming the path when it cannot be read.
std::string sha256_hex_file(const std::filesystem::path& path);

}  // namespace tstar
