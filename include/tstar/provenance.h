// Provenance recorded with every result: versions, digests, threads, BLAS, device.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "tstar/model.h"

namespace tstar {

// sha256 over every parameter's name, dtype, shape and bytes, in checkpoint order: equal digests
// mean bit-identical weights (used to prove that noise never outlives an experiment).
std::string parameters_digest(const ParameterMap& params);

// Build and runtime facts: tstar version and commit, libtorch and cuRAND versions, the BLAS library
// actually loaded, the compute profile in effect and the machine (compute_profile.h: CPU model and
// ISA, each kernel family's path, threads).
nlohmann::json runtime_provenance();

// The model's identity: directory and sha256 of each weight file and of config.json, or the preset
// name and seed for random-weight presets.
nlohmann::json model_provenance(const Model& model, const std::string& dir_or_preset);

}  // namespace tstar
