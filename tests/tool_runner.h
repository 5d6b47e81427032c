// Runs the built `tstar` and `bench` binaries (paths set by tests/CMakeLists.txt) for CLI tests.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace tstar::testing {

struct ToolResult {
  int exit_code = -1;   // -1 when the process did not exit normally (e.g. crashed)
  std::string output;   // stdout and stderr together
};

// Runs `binary args`; stderr joins stdout unless merge_stderr is false (then it is discarded).
inline ToolResult run_binary(const std::string& binary, const std::string& args, bool merge_stderr = true) {
  const std::string command = binary + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  ToolResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) result.output.append(buf, n);
  const int status = pclose(pipe);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

inline ToolResult run_tool(const std::string& args, bool merge_stderr = true) {
  return run_binary(TSTAR_TOOL_PATH, args, merge_stderr);
}

}  // namespace tstar::testing
