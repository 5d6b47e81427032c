#include "tstar/compute_environment.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "tstar/error.h"
#include "tstar/noise_kernels.h"
#include "tstar/parse.h"

namespace tstar {

ComputeProfile parse_compute_profile(const std::string& name) {
  if (name == "reference") return ComputeProfile::kReference;
  if (name == "native") return ComputeProfile::kNative;
  throw Error(fmt::format("unknown compute profile '{}' (expected reference or native)", name));
}

std::string compute_profile_name(ComputeProfile profile) {
  switch (profile) {
    case ComputeProfile::kReference: return "reference";
    case ComputeProfile::kNative: return "native";
  }
  TSTAR_CHECK(false);
}

const char* const kComputeFlagsHelp =
    R"(  --compute reference|native  compute profile (default: reference, or $TSTAR_COMPUTE). reference pins
                          every CPU-dependent kernel choice (libtorch at AVX2, oneDNN off, OpenBLAS Haswell
                          kernels, one thread): bit-identical statistics on any x86-64-v3 CPU. native takes
                          the fastest kernels this CPU has: bit-identical on this machine only
  --threads N             compute threads with --compute native (default: all cores)
)";

ComputeOptions take_compute_flags(int& argc, char** argv, bool take_threads) {
  const char* from_environment = std::getenv(kComputeProfileVariable);
  std::string name = from_environment && *from_environment ? from_environment : "reference";
  std::string source = from_environment && *from_environment ? std::string("$") + kComputeProfileVariable : "";
  std::string threads;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string* target = nullptr;
    std::string flag;
    for (auto [candidate, value] : {std::pair{"--compute", &name}, std::pair{"--threads", &threads}}) {
      if (!take_threads && value == &threads) continue;
      if (arg == candidate || arg.rfind(std::string(candidate) + "=", 0) == 0) {
        target = value;
        flag = candidate;
      }
    }
    if (!target) {
      argv[kept++] = argv[i];
      continue;
    }
    if (arg.size() > flag.size()) {
      *target = arg.substr(flag.size() + 1);
    } else if (i + 1 < argc) {
      *target = argv[++i];
    } else {
      throw Error(fmt::format("{} needs a value", flag));
    }
    if (flag == "--compute") source = flag;
  }
  argv[kept] = nullptr;
  argc = kept;
  ComputeOptions options;
  try {
    options.profile = parse_compute_profile(name);
  } catch (const Error& e) {
    throw Error(source.empty() ? e.what() : fmt::format("{}: {}", source, e.what()));
  }
  if (!threads.empty()) {
    const auto value = parse_integer(threads);
    if (!value || *value < 1 || *value > 4096) {
      throw Error(fmt::format("--threads expects a positive integer, got '{}'", threads));
    }
    options.threads = static_cast<int>(*value);
  }
  return options;
}

std::vector<std::pair<std::string, std::string>> pinned_environment(ComputeProfile profile) {
  if (profile == ComputeProfile::kNative) return {};
  return {
      {"ATEN_CPU_CAPABILITY", "avx2"},     // libtorch's vectorised kernels (read at first dispatch)
      {"OPENBLAS_CORETYPE", "Haswell"},    // OpenBLAS's kernel set (read when the library loads)
      {"OMP_NUM_THREADS", "1"},            // OpenMP pool of libtorch and OpenBLAS (read at load)
      {"OPENBLAS_NUM_THREADS", "1"},
      {"MKL_CBWR", "AVX2"},                // MKL's code path, where libtorch's BLAS is MKL (PyPI's torch)
      {"MKL_NUM_THREADS", "1"},
      {"ONEDNN_MAX_CPU_ISA", "AVX2"},      // oneDNN is switched off in-process; this caps it anyway
      {"DNNL_MAX_CPU_ISA", "AVX2"},
      {noise_kernels::kIsaVariable, "avx2"},  // tstar's own kernels
      {kBf16MatmulVariable, "fp32_gemm"},     // bf16 products through fp32 BLAS (Haswell kernels)
      {kComputeProfileVariable, "reference"},
  };
}

bool restarted_to_pin() {
  const char* marker = std::getenv(kRestartedToPinVariable);
  return marker && *marker;
}

bool pin_environment(ComputeProfile profile) {
  bool changed = false;
  for (const auto& [name, value] : pinned_environment(profile)) {
    const char* current = std::getenv(name.c_str());
    if (current && value == current) continue;
    changed = true;
    if (setenv(name.c_str(), value.c_str(), 1) != 0) {
      throw Error(fmt::format("cannot set {} for the {} compute profile: {}", name,
                              compute_profile_name(profile), std::strerror(errno)));
    }
  }
  return changed;
}

void reexec_with_pinned_environment(ComputeProfile profile, char* const* argv) {
  if (!pin_environment(profile)) return;
  setenv(kRestartedToPinVariable, "1", 1);
  execv("/proc/self/exe", argv);
  throw Error(fmt::format("cannot restart with the pinned environment of the {} compute profile (execv "
                          "/proc/self/exe: {}); set the variables yourself: {}",
                          compute_profile_name(profile), std::strerror(errno), [&] {
                            std::string list;
                            for (const auto& [name, value] : pinned_environment(profile)) {
                              list += fmt::format("{}{}={}", list.empty() ? "" : " ", name, value);
                            }
                            return list;
                          }()));
}

int launch_with_pinned_environment(const char* program, char** argv) {
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) {
    std::fprintf(stderr, "error: cannot locate this launcher (/proc/self/exe: %s)\n", error.message().c_str());
    return 127;
  }
  const std::string target = (self.parent_path() / program).string();
  unsetenv(kRestartedToPinVariable);
  try {
    std::vector<char*> copy(argv, argv + 1);
    for (char** arg = argv + 1; *arg; ++arg) copy.push_back(*arg);
    copy.push_back(nullptr);
    int argc = static_cast<int>(copy.size()) - 1;
    pin_environment(take_compute_flags(argc, copy.data(), /*take_threads=*/false).profile);
  } catch (const Error&) {
    // A bad --compute or $TSTAR_COMPUTE: the program reports it with its own message and status.
  }
  execv(target.c_str(), argv);
  std::fprintf(stderr, "error: cannot start %s: %s\n", target.c_str(), std::strerror(errno));
  return 127;
}

}  // namespace tstar
