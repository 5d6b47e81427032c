// Reading a JSON document from disk with errors that name the file (and nlohmann's position).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

namespace tstar {

// Throws tstar::Error naming `path` when it is missing, a directory, unreadable or not valid JSON.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace tstar
