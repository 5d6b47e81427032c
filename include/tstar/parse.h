// Whole-string numbers for command-line values: nullopt unless all of `text` is one number, so
// callers can word the error with the flag's name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tstar {

std::optional<int64_t> parse_integer(const std::string& text);
std::optional<double> parse_double(const std::string& text);
// "a,b,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_commas(const std::string& text);

}  // namespace tstar
