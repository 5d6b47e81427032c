// The embedded default model's files, pulled into the read-only data section with the assembler's
// .incbin (CMake passes the fixture directory and the four files' digest; see src/CMakeLists.txt).
#include "embedded_model.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <system_error>

#include "tstar/error.h"

#ifndef TSTAR_EMBEDDED_MODEL_DIR
#error "TSTAR_EMBEDDED_MODEL_DIR must name the embedded model's fixture directory"
#endif

#define TSTAR_EMBED(symbol, file)                                              \
  asm(".section .rodata\n"                                                     \
      ".balign 64\n"                                                           \
      ".global " #symbol "_begin\n" #symbol "_begin:\n"                        \
      ".incbin \"" TSTAR_EMBEDDED_MODEL_DIR "/" file "\"\n"                    \
      ".global " #symbol "_end\n" #symbol "_end:\n"                            \
      ".byte 0\n"                                                              \
      ".previous\n");                                                          \
  extern "C" const char symbol##_begin[];                                      \
  extern "C" const char symbol##_end[];

TSTAR_EMBED(tstar_embedded_config, "config.json")
TSTAR_EMBED(tstar_embedded_weights, "model.safetensors")
TSTAR_EMBED(tstar_embedded_tokenizer, "tokenizer.json")
TSTAR_EMBED(tstar_embedded_tokenizer_config, "tokenizer_config.json")

namespace tstar {

namespace {

std::string_view bytes_between(const char* begin, const char* end) {
  return {begin, static_cast<size_t>(end - begin)};
}

}  // namespace

std::filesystem::path cache_root() {
  for (const auto& [variable, suffix] : {std::pair{"TSTAR_CACHE_DIR", ""}, std::pair{"XDG_CACHE_HOME", "tstar"}}) {
    const char* value = std::getenv(variable);
    if (value && *value) return std::filesystem::path(value) / suffix;
  }
  const char* home = std::getenv("HOME");
  if (home && *home) return std::filesystem::path(home) / ".cache" / "tstar";
  return std::filesystem::temp_directory_path() / "tstar-cache";
}

namespace {

bool holds_embedded_files(const std::filesystem::path& dir) {
  std::error_code error;
  for (const auto& file : embedded_model_files()) {
    const auto size = std::filesystem::file_size(dir / file.name, error);
    if (error || size != file.bytes.size()) return false;
  }
  return true;
}

void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.flush()) throw Error("cannot write the embedded model's file '" + path.string() + "'");
}

}  // namespace

std::vector<EmbeddedFile> embedded_model_files() {
  return {{"config.json", bytes_between(tstar_embedded_config_begin, tstar_embedded_config_end)},
          {"model.safetensors", bytes_between(tstar_embedded_weights_begin, tstar_embedded_weights_end)},
          {"tokenizer.json", bytes_between(tstar_embedded_tokenizer_begin, tstar_embedded_tokenizer_end)},
          {"tokenizer_config.json",
           bytes_between(tstar_embedded_tokenizer_config_begin, tstar_embedded_tokenizer_config_end)}};
}

std::string embedded_model_digest() { return TSTAR_EMBEDDED_FILES_DIGEST; }

std::filesystem::path materialize_embedded_model() {
  const auto dir = cache_root() / ("tstar-counting-" + embedded_model_digest().substr(0, 16));
  if (holds_embedded_files(dir)) return dir;
  std::error_code error;
  std::filesystem::create_directories(dir.parent_path(), error);
  if (error) throw Error("cannot create the cache directory '" + dir.parent_path().string() + "': " + error.message());
  const auto staging = dir.parent_path() / (dir.filename().string() + ".tmp-" + std::to_string(getpid()));
  std::filesystem::remove_all(staging, error);
  std::filesystem::create_directory(staging, error);
  if (error) throw Error("cannot create '" + staging.string() + "': " + error.message());
  for (const auto& file : embedded_model_files()) write_file(staging / file.name, file.bytes);
  std::filesystem::remove_all(dir, error);  // an incomplete copy (sizes differ) is replaced
  std::filesystem::rename(staging, dir, error);
  if (error) {
    std::filesystem::remove_all(staging, error);  // another process won the race; its copy is complete
    if (!holds_embedded_files(dir)) throw Error("cannot write the embedded model to '" + dir.string() + "'");
  }
  return dir;
}

}  // namespace tstar
