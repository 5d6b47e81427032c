// The embedded default model (fixtures/models/tstar-counting): its files are compiled into the
// library, so `tstar` and `bench` run their main job from any directory, with the source tree gone.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tstar {

struct EmbeddedFile {
  std::string name;        // file name inside the model directory, e.g. "model.safetensors"
  std::string_view bytes;  // the file's content, in the binary's read-only data
};

// config.json, model.safetensors, tokenizer.json and tokenizer_config.json as built in.
std::vector<EmbeddedFile> embedded_model_files();

// sha256 over the four files' sha256 digests, computed when the binary was configured.
std::string embedded_model_digest();

// Where tstar keeps files it can recompute: $TSTAR_CACHE_DIR, else $XDG_CACHE_HOME/tstar, else
// $HOME/.cache/tstar, else <temp dir>/tstar-cache.
std::filesystem::path cache_root();

// A directory holding the embedded files: <cache root>/tstar-counting-<digest prefix>, written on
// first use (to a temporary directory, then renamed, so concurrent first uses are safe) and reused
// while its files have the embedded sizes. The cache root is $TSTAR_CACHE_DIR, else
// $XDG_CACHE_HOME/tstar, else $HOME/.cache/tstar, else <temp dir>/tstar-cache. Throws tstar::Error
// naming the path when it cannot be written.
std::filesystem::path materialize_embedded_model();

}  // namespace tstar
