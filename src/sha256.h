// SHA-256 (FIPS 180-4) for provenance digests of tokenizer and weight files, through OpenSSL's
// libcrypto (SHA extensions / AVX2 where the CPU has them: a real checkpoint is gigabytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace tstar {

// Incremental hasher: update() any number of times, then hex_digest() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  std::string hex_digest();  // lower-case hex, 64 characters; finalises the hasher

 private:
  evp_md_ctx_st* context_;
};

std::string sha256_hex(const void* data, size_t size);
// Streams the file; throws tstar::Error naming the path when it cannot be read.
std::string sha256_hex_file(const std::filesystem::path& path);

// sha256_hex_file, remembered in `digest_cache` (a JSON file) under the file's absolute path with
// its device, inode, size and modification and status-change times (ns): a multi-GB checkpoint takes
// seconds to hash and every run records its digest. Any of those changing (a write always moves the
// status-change time) hashes the file again. A cache that cannot be read or written is ignored.
std::string remembered_sha256_hex_file(const std::filesystem::path& path, const std::filesystem::path& digest_cache);

}  // namespace tstar
