#include "cli.h"

#include <cmath>

#include <fmt/format.h>

#include "tstar/error.h"
#include "tstar/parse.h"

namespace tstar::cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& options,
           const std::set<std::string>& flags, const std::string& command)
    : command_(command) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      throw Error(fmt::format("tstar {}: unexpected argument '{}' (see tstar {} --help)", command, arg, command));
    }
    std::string key = arg.substr(2);
    std::string value;
    bool inline_value = false;
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
      inline_value = true;
    }
    if (flags.count(key)) {
      if (inline_value) throw Error(fmt::format("tstar {}: --{} takes no value", command, key));
      flags_set_.insert(key);
    } else if (options.count(key)) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) throw Error(fmt::format("tstar {}: --{} needs a value", command, key));
        value = argv[++i];
      }
      values_[key] = value;
    } else {
      throw Error(fmt::format("tstar {}: unknown option '--{}' (see tstar {} --help)", command, key, command));
    }
  }
}

bool Args::has(const std::string& key) const { return values_.count(key) != 0; }

std::string Args::get(const std::string& key, const std::string& fallback) const {
  auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::required(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw Error(fmt::format("tstar {}: --{} is required", command_, key));
  return it->second;
}

int64_t Args::get_int(const std::string& key, int64_t fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  if (auto v = parse_integer(it->second)) return *v;
  throw Error(fmt::format("tstar {}: --{} expects an integer, got '{}'", command_, key, it->second));
}

double Args::get_double(const std::string& key, double fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  if (auto v = parse_double(it->second)) return *v;
  throw Error(fmt::format("tstar {}: --{} expects a number, got '{}'", command_, key, it->second));
}

}  // namespace tstar::cli
