#include "tstar/compute_profile.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "bf16_gemv.h"
#include "onednn_matmul.h"
#include "tstar/parse.h"
#include "tstar/error.h"
#include "tstar/noise_kernels.h"

namespace tstar {

namespace {

// libtorch's vectorised-kernel level (default, avx2, avx512), from at::show_config(): the getter
// behind it is not exported by libtorch 1.13.
std::string libtorch_cpu_capability() {
  static const std::string kLabel = "CPU capability usage: ";
  const std::string config = at::show_config();
  const auto at = config.find(kLabel);
  if (at == std::string::npos) return "unknown";
  const auto begin = at + kLabel.size();
  std::string level = config.substr(begin, config.find('\n', begin) - begin);
  for (char& c : level) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return level.empty() || level == "no avx" ? "default" : level;
}

// "model name" and "flags" of the first processor in /proc/cpuinfo (Linux).
struct CpuInfo {
  std::string model = "unknown";
  std::set<std::string> flags;
};

Error not_pinned(const std::string& knob, const std::string& got, const std::string& want) {
  return Error(fmt::format("reference compute profile: {} is {}, not {} (start the program through its main, "
                           "which pins the environment, or export the variables of pinned_environment)",
                           knob, got, want));
}

CpuInfo read_cpuinfo_file() {
  CpuInfo info;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  bool have_model = false, have_flags = false;
  while (std::getline(in, line) && !(have_model && have_flags)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && !have_model) {
      info.model = value;
      have_model = true;
    } else if (key == "flags" && !have_flags) {
      std::istringstream words(value);
      for (std::string flag; words >> flag;) info.flags.insert(flag);
      have_flags = true;
    }
  }
  return info;
}

// The processor does not change while the process runs: read /proc/cpuinfo once.
const CpuInfo& read_cpuinfo() {
  static const CpuInfo info = read_cpuinfo_file();
  return info;
}

// OpenBLAS reports the kernel set it chose at load time; "not loaded" under another BLAS.
std::string openblas_core() {
  using CoreName = char* (*)();
  auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return core_name ? core_name() : "not loaded";
}

int openblas_threads() {
  using NumThreads = int (*)();
  auto num_threads = reinterpret_cast<NumThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return num_threads ? num_threads() : 0;
}

// The knobs the environment pins (read when the libraries load or first dispatch), checked before
// anything in the process is changed, so a refusal leaves the process as it was.
void check_reference_environment(const CpuInfo& cpu) {
  if (!cpu.flags.count("avx2") || !cpu.flags.count("fma")) {
    throw Error(fmt::format("the reference compute profile needs an x86-64-v3 CPU (AVX2 and FMA); '{}' lacks "
                            "them: use --compute native", cpu.model));
  }
  const std::string capability = libtorch_cpu_capability();
  if (capability != "avx2") throw not_pinned("libtorch's CPU capability", capability, "avx2");
  const std::string core = openblas_core();
  if (core != "not loaded" && core != "Haswell") throw not_pinned("OpenBLAS's core", core, "Haswell");
  const std::string noise_path = noise_kernels::path_name(noise_kernels::selected_path());
  if (noise_path != "portable" && noise_path != "avx2") throw not_pinned("tstar's noise and statistics kernels", noise_path, "avx2");
}

// The knobs set in-process by apply_compute_profile.
void check_reference_settings() {
  if (at::globalContext().userEnabledMkldnn()) throw not_pinned("oneDNN", "enabled", "disabled");
  if (at::get_num_threads() != 1) throw not_pinned("libtorch's thread count", std::to_string(at::get_num_threads()), "1");
}

}  // namespace

nlohmann::json apply_compute_profile(ComputeProfile profile, int threads) {
  const CpuInfo& cpu = read_cpuinfo();
  if (profile == ComputeProfile::kReference) {
    if (threads > 1) {
      throw Error(fmt::format("--threads {}: the reference compute profile computes on one thread (its "
                              "statistics must not depend on the thread count); use --compute native",
                              threads));
    }
    check_reference_environment(cpu);
    at::globalContext().setUserEnabledMkldnn(false);
    at::set_num_threads(1);
    check_reference_settings();
  } else {
    const int all_cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::globalContext().setUserEnabledMkldnn(true);
    at::set_num_threads(threads > 0 ? threads : all_cores);
  }
  nlohmann::json out = machine_provenance();
  out["compute_profile"] = compute_profile_name(profile);
  nlohmann::json pinned = nlohmann::json::object();
  for (const auto& [name, value] : pinned_environment(profile)) pinned[name] = value;
  out["pinned_environment"] = pinned;
  return out;
}

ComputeProfile active_compute_profile() {
  for (const auto& [name, value] : pinned_environment(ComputeProfile::kReference)) {
    const char* current = std::getenv(name.c_str());
    if (!current || value != current) return ComputeProfile::kNative;
  }
  try {
    check_reference_environment(read_cpuinfo());
    check_reference_settings();
  } catch (const Error&) {
    return ComputeProfile::kNative;
  }
  return ComputeProfile::kReference;
}

bool native_kernel_choices() { return at::globalContext().userEnabledMkldnn(); }

const char* bf16_matmul_name(Bf16Matmul path) {
  switch (path) {
    case Bf16Matmul::kOneDnn: return "onednn";
    case Bf16Matmul::kFp32Gemm: return "fp32_gemm";
    case Bf16Matmul::kLibtorch: return "libtorch";
  }
  TSTAR_CHECK(false);
  return "";
}

Bf16Matmul bf16_matmul_path() {
  const CpuInfo& cpu = read_cpuinfo();
  // libtorch 1.13 sends bf16 matmul to oneDNN when it is enabled and the CPU has AVX-512 BW/VL/DQ.
  const bool onednn_bf16 = at::globalContext().userEnabledMkldnn() && cpu.flags.count("avx512bw") &&
                           cpu.flags.count("avx512vl") && cpu.flags.count("avx512dq");
  const char* forced = std::getenv(kBf16MatmulVariable);
  if (!forced || !*forced) return onednn_bf16 ? Bf16Matmul::kOneDnn : Bf16Matmul::kFp32Gemm;
  for (Bf16Matmul path : {Bf16Matmul::kOneDnn, Bf16Matmul::kFp32Gemm, Bf16Matmul::kLibtorch}) {
    if (std::strcmp(forced, bf16_matmul_name(path)) != 0) continue;
    if (path == Bf16Matmul::kOneDnn && !onednn_bf16) {
      throw Error(fmt::format("{}=onednn: oneDNN's bf16 path is not available here (oneDNN off, as under "
                              "--compute reference, or a CPU without AVX-512 BW/VL/DQ)", kBf16MatmulVariable));
    }
    return path;
  }
  throw Error(fmt::format("{}='{}': expected fp32_gemm, onednn or libtorch", kBf16MatmulVariable, forced));
}

int parallel_loop_threads() {
  std::atomic<int> team{1};
  at::parallel_for(0, 4096, 1, [&](int64_t, int64_t) {
    const int member = at::get_thread_num() + 1;
    for (int seen = team.load(); member > seen && !team.compare_exchange_weak(seen, member);) {}
  });
  return team.load();
}

nlohmann::json machine_provenance() {
  const CpuInfo& cpu = read_cpuinfo();
  nlohmann::json isa = nlohmann::json::object();
  for (const char* flag : {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
                           "amx_tile", "amx_bf16"}) {
    isa[flag] = cpu.flags.count(flag) != 0;
  }
  const bool onednn = at::globalContext().userEnabledMkldnn();
  return {
      {"cpu_model", cpu.model},
      {"cpu_isa", isa},
      {"libtorch_cpu_capability", libtorch_cpu_capability()},
      {"onednn_enabled", onednn},
      {"bf16_matmul_path", bf16_matmul_name(bf16_matmul_path())},
      // up to bf16_gemv::kMaxRows rows (decode) on the onednn path: tstar's kernel, or oneDNN ("off")
      {"bf16_gemv", [] {
         const auto kernel = bf16_gemv::kernel_for(bf16_matmul_path(), native_kernel_choices());
         return kernel ? bf16_gemv::kernel_name(*kernel) : "off";
       }()},
      // more rows (prefill) on the onednn path: oneDNN's matmul called directly, or torch::linear
      {"bf16_gemm", [] {
         if (bf16_matmul_path() != Bf16Matmul::kOneDnn) return std::string(bf16_matmul_name(bf16_matmul_path()));
         if (!onednn_matmul::available()) return std::string("torch_linear");
         return fmt::format("onednn_matmul {}, weights packed from their {}th product at one version",
                            onednn_matmul::kernel_name(), onednn_matmul::PackedWeights::kUnpackedUses + 1);
       }()},
      {"fp32_matmul_path", "blas"},
      {"openblas_core", openblas_core()},
      {"openblas_threads", openblas_threads()},
      {"threads", at::get_num_threads()},
      {"parallel_loop_threads", parallel_loop_threads()},
      {"noise_kernel_path", noise_kernels::path_name(noise_kernels::selected_path())},
      {"restarted_to_pin_profile", restarted_to_pin()},
  };
}

}  // namespace tstar
