#include "sha256.h"

#include <openssl/evp.h>

#include <fstream>
#include <vector>

#include "tstar/error.h"

namespace tstar {

// A failing libcrypto call is a broken installation, not a user error.
Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  TSTAR_CHECK(context_ != nullptr && EVP_DigestInit_ex(context_, EVP_sha256(), nullptr) == 1);
}

Sha256::~Sha256() { EVP_MD_CTX_free(context_); }

void Sha256::update(const void* data, size_t size) {
  if (size > 0) TSTAR_CHECK(EVP_DigestUpdate(context_, data, size) == 1);
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  TSTAR_CHECK(EVP_DigestFinal_ex(context_, digest, &length) == 1 && length == 32);
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string sha256_hex(const void* data, size_t size) {
  Sha256 hasher;
  hasher.update(data, size);
  return hasher.hex_digest();
}

std::string sha256_hex_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("sha256: cannot open " + path.string());
  Sha256 hasher;
  std::vector<char> chunk(1 << 20);
  while (in) {
    in.read(chunk.data(), std::streamsize(chunk.size()));
    hasher.update(chunk.data(), size_t(in.gcount()));
  }
  if (in.bad()) throw Error("sha256: read error in " + path.string());
  return hasher.hex_digest();
}

}  // namespace tstar
