// Splitting the experiments' work over processes (docs/design.md, "Work units and shards"): which
// shard a process is, which units and benchmarks it takes, the unit files it writes as each unit
// completes (and reuses when rerun), its manifest, and the progress line of a long run.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "tstar/experiments.h"

namespace tstar::shards {

struct ShardSpec {
  size_t index = 0;
  size_t count = 1;
  std::string source;  // what chose it: "--shard" or "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"
  std::string label() const;  // "1/3"
  nlohmann::json to_json() const;
};

// "K/N" with 0 <= K < N; throws tstar::Error naming --shard.
ShardSpec parse_shard(const std::string& text);
// Inside a Slurm job array (SLURM_ARRAY_TASK_COUNT set): task SLURM_ARRAY_TASK_ID -
// SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT; nullopt outside one. `getenv` returns nullptr for
// an unset variable. Throws tstar::Error naming the variable when a value is unusable.
std::optional<ShardSpec> slurm_shard(const std::function<const char*(const char*)>& getenv);

// The items [begin, end) of `items` a shard takes: contiguous blocks whose sizes differ by at most
// one, so a shard's units share their noise group's engine.
std::pair<size_t, size_t> block_of(size_t items, const ShardSpec& shard);

// ---- Unit files: <run dir>/units/<id with '/' as '+'>.safetensors ----

// sha256 of the identity (ExperimentSuite::unit_identity) that every unit file records.
std::string identity_digest(const nlohmann::json& identity);
std::filesystem::path unit_file(const std::filesystem::path& run_dir, const std::string& id);
// Temporary file + rename: a reader never sees a half-written unit. Doubles are stored bit for bit.
void write_unit(const std::filesystem::path& file, const std::string& id, const UnitResult& result,
                const std::string& identity_sha256);
struct StoredUnit {
  std::string id;
  std::string identity_sha256;
  UnitResult result;
};
// Throws tstar::Error naming the file when it is truncated, corrupt or not a unit file.
StoredUnit read_unit(const std::filesystem::path& file);
// Every unit file under <run dir>/units (temporary files of a killed writer are skipped), sorted.
std::vector<std::filesystem::path> unit_files(const std::filesystem::path& run_dir);

// ---- Progress on stderr ----

// Units done / total, the current unit and an ETA from the units computed so far: one line
// rewritten in place on a terminal, a plain line at most every `interval_s` otherwise (and at the
// end); nothing when `out` is null (--quiet).
class Progress {
 public:
  Progress(size_t total, std::ostream* out, bool terminal, double interval_s = 10.0);
  void begin(const std::string& id);
  void finish(double seconds, bool reused);
  void close();  // ends the terminal line (at the last unit by itself)

 private:
  std::string line() const;
  void show(bool force);
  size_t total_, done_ = 0, reused_ = 0;
  double computed_seconds_ = 0;
  size_t computed_ = 0;
  std::string current_;
  std::ostream* out_;
  bool terminal_;
  double interval_s_;
  std::chrono::steady_clock::time_point start_, last_shown_;
  bool shown_ = false;
  bool closed_ = false;
};

// Computes `units` in order, each written to its file as it completes; a unit whose file exists with
// the same identity is reused (resume after a kill). Throws tstar::Error naming a file computed with
// another identity. Returns how many were reused.
size_t run_units(ExperimentSuite& suite, const std::vector<WorkUnit>& units, const std::filesystem::path& run_dir,
                 const std::string& identity_sha256, Progress& progress);

// ---- The manifest, <run dir>/shard.json, written when a shard has finished ----

void write_json_atomically(const std::filesystem::path& path, const std::string& text);
std::filesystem::path manifest_file(const std::filesystem::path& run_dir);

}  // namespace tstar::shards
