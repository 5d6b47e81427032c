#include "sha256.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

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

namespace {

// What identifies one version of a file's bytes, as far as the file system says.
nlohmann::json file_identity(const std::filesystem::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return nullptr;
  auto ns = [](const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; };
  return {{"device", static_cast<uint64_t>(info.st_dev)}, {"inode", static_cast<uint64_t>(info.st_ino)},
          {"size", static_cast<int64_t>(info.st_size)}, {"mtime_ns", ns(info.st_mtim)},
          {"ctime_ns", ns(info.st_ctim)}};
}

nlohmann::json read_digest_cache(const std::filesystem::path& cache) {
  std::ifstream in(cache);
  if (!in) return nlohmann::json::object();
  auto parsed = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() ? parsed : nlohmann::json::object();
}

// Temporary file + rename, so concurrent runs never read a half-written cache (one of two
// simultaneous updates may be lost: it is only a cache).
void write_digest_cache(const std::filesystem::path& cache, const nlohmann::json& entries) {
  std::error_code error;
  std::filesystem::create_directories(cache.parent_path(), error);
  const auto temporary = cache.string() + "." + std::to_string(::getpid()) + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << entries.dump(1);
    if (!out.flush()) return;
  }
  std::filesystem::rename(temporary, cache, error);
  if (error) std::filesystem::remove(temporary, error);
}

}  // namespace

std::string remembered_sha256_hex_file(const std::filesystem::path& path, const std::filesystem::path& digest_cache) {
  std::error_code error;
  const auto absolute = std::filesystem::absolute(path, error).lexically_normal().string();
  const nlohmann::json identity = file_identity(path);
  if (error || identity.is_null()) return sha256_hex_file(path);  // which names the problem
  nlohmann::json entries = read_digest_cache(digest_cache);
  const auto known = entries.find(absolute);
  if (known != entries.end() && known->is_object() && known->value("identity", nlohmann::json()) == identity &&
      known->contains("sha256") && known->at("sha256").is_string()) {
    return known->at("sha256").get<std::string>();
  }
  const std::string digest = sha256_hex_file(path);
  if (file_identity(path) == identity) {  // unchanged while it was read
    entries[absolute] = {{"identity", identity}, {"sha256", digest}};
    write_digest_cache(digest_cache, entries);
  }
  return digest;
}

}  // namespace tstar
