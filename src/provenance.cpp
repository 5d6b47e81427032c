#include "tstar/provenance.h"

#include <curand.h>
#include <dlfcn.h>
#include <link.h>
#include <torch/version.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tstar/compute_profile.h"
#include "tstar/safetensors.h"
#include "embedded_model.h"
#include "sha256.h"
#include "tstar/version.h"

namespace tstar {

std::string parameters_digest(const ParameterMap& params) {
  Sha256 hasher;
  for (const auto& [name, tensor] : params.entries()) {
    torch::Tensor cpu = tensor.to(torch::kCPU).contiguous();
    const std::string header = fmt::format("{}|{}|{}|", name, c10::toString(cpu.scalar_type()),
                                           fmt::join(cpu.sizes(), "x"));
    hasher.update(header.data(), header.size());
    hasher.update(cpu.data_ptr(), cpu.numel() * cpu.element_size());
  }
  return hasher.hex_digest();
}

namespace {

// Paths of loaded shared objects whose file name mentions blas: which BLAS did the dynamic linker
// pick (Debian's alternatives decide between reference BLAS and OpenBLAS at run time).
std::vector<std::string> loaded_blas_libraries() {
  std::vector<std::string> found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        std::string path = info->dlpi_name ? info->dlpi_name : "";
        const std::string file = path.substr(path.find_last_of('/') + 1);
        if (file.find("blas") != std::string::npos) {
          char resolved[4096];
          if (realpath(path.c_str(), resolved)) path = resolved;
          static_cast<std::vector<std::string>*>(data)->push_back(path);
        }
        return 0;
      },
      &found);
  return found;
}

std::string curand_version() {
  int version = 0;
  if (curandGetVersion(&version) != CURAND_STATUS_SUCCESS) return "unknown";
  return fmt::format("{}.{}.{}", version / 1000, (version % 1000) / 100, version % 100);
}

}  // namespace

nlohmann::json runtime_provenance() {
  nlohmann::json out = machine_provenance();
  out.update({
      {"compute_profile", compute_profile_name(active_compute_profile())},
      {"tstar_version", version()},
      {"tstar_commit", git_commit()},
      {"libtorch_version", TORCH_VERSION},
      {"curand_version", curand_version()},
      {"blas_libraries", loaded_blas_libraries()},
      {"cuda_available", torch::cuda::is_available()},
  });
  return out;
}

nlohmann::json model_provenance(const Model& model, const std::string& dir_or_preset) {
  nlohmann::json out = {{"model", dir_or_preset},
                        {"architecture", model.config().architecture},
                        {"parameters", model.parameters().num_elements()},
                        {"dtype", dtype_name(model.dtype())},
                        {"device", model.device().str()}};
  if (model.source_dir().empty()) {
    out["preset"] = dir_or_preset;
    out["weights"] = "deterministic random (Model::from_preset, seed 0)";
    return out;
  }
  nlohmann::json files = nlohmann::json::object();
  for (const auto& path : Checkpoint::open(model.source_dir()).files()) {
    files[path.filename().string()] = remembered_sha256_hex_file(path, cache_root() / "file-digests.json");
  }
  out["weight_files_sha256"] = files;
  out["config_sha256"] = sha256_hex_file(model.source_dir() / "config.json");
  return out;
}

}  // namespace tstar
