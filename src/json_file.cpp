#include "json_file.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tstar/error.h"

namespace tstar {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) throw Error(fmt::format("{}: no such file", path.string()));
  if (std::filesystem::is_directory(status)) {
    throw Error(fmt::format("{}: is a directory, expected a JSON file", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("{}: read failed", path.string()));
  const std::string bytes = text.str();
  // nlohmann takes a NUL byte for the end of input and would ignore whatever follows it.
  if (const auto nul = bytes.find('\0'); nul != std::string::npos) {
    throw Error(fmt::format("{}: invalid JSON: NUL byte at offset {}", path.string(), nul));
  }
  try {
    return nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
  }
}

}  // namespace tstar
