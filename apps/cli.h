// Command-line plumbing shared by the `tstar` subcommands. Subcommands throw tstar::Error on user
// errors; only main() prints them and chooses the exit code.
#pragma once

#include <functional>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace tstar::cli {

// Parses "--key value" options and "--flag" switches. Unknown options are errors; `flags` lists
// the switches that take no value. A value may also be given as --key=value.
class Args {
 public:
  Args(const std::vector<std::string>& argv, const std::set<std::string>& options,
       const std::set<std::string>& flags, const std::string& command);
  bool has(const std::string& key) const;
  std::string get(const std::string& key, const std::string& fallback) const;
  std::string required(const std::string& key) const;  // throws "tstar <command>: --key is required"
  int64_t get_int(const std::string& key, int64_t fallback) const;  // throws on non-integers
  double get_double(const std::string& key, double fallback) const;
  bool flag(const std::string& name) const { return flags_set_.count(name) != 0; }

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_set_;
};

// Subcommands: each returns the process exit code and writes its result to `out`.
int cmd_logits(const std::vector<std::string>& argv, std::ostream& out);
int cmd_generate(const std::vector<std::string>& argv, std::ostream& out);
int cmd_params(const std::vector<std::string>& argv, std::ostream& out);
int cmd_tokenize(const std::vector<std::string>& argv, std::ostream& out);
int cmd_noise(const std::vector<std::string>& argv, std::ostream& out);
int cmd_train(const std::vector<std::string>& argv, std::ostream& out);
int cmd_corpus(const std::vector<std::string>& argv, std::ostream& out);
int cmd_merge(const std::vector<std::string>& argv, std::ostream& out);  // cli_merge.cpp

}  // namespace tstar::cli
