// Error tiers (after google/benchmark): user errors are thrown as tstar::Error with a message
// that names the file, key or tensor; broken invariants abort via TSTAR_CHECK with file:line.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>

namespace tstar {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// For main() only: runs a program's body; any exception becomes one "error: ..." line on stderr
// and exit code 1.
int run_reporting_errors(const std::function<int()>& body);

// For the end of main() only, once every file is closed: flushes stdout/stderr and exits without
// running static destructors. Debian's libtorch unregisters its thousands of operator kernels and
// frees their tables at exit: ~0.2 s, a tenth of a short run's wall time.
[[noreturn]] void exit_skipping_teardown(int status);

}  // namespace tstar

#define TSTAR_CHECK(cond)                                                              \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: internal check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)
