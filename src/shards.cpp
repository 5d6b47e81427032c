// Shards of the experiments' work: shard selection, unit files, resume and progress.
#include "tstar/shards.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "sha256.h"
#include "tstar/error.h"
#include "tstar/parse.h"
#include "tstar/safetensors.h"

namespace tstar::shards {

namespace {

constexpr const char* kSlurmSource = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT";

size_t parse_count(const std::string& text, const std::string& what) {
  size_t used = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || text[0] == '-' || text[0] == '+') {
    throw Error(fmt::format("{}: expected a non-negative integer, got '{}'", what, text));
  }
  return static_cast<size_t>(value);
}

}  // namespace

std::string ShardSpec::label() const { return fmt::format("{}/{}", index, count); }

nlohmann::json ShardSpec::to_json() const { return {{"index", index}, {"count", count}, {"source", source}}; }

ShardSpec parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos) throw Error(fmt::format("--shard: expected K/N (e.g. 0/4), got '{}'", text));
  ShardSpec shard;
  shard.index = parse_count(text.substr(0, slash), "--shard K");
  shard.count = parse_count(text.substr(slash + 1), "--shard N");
  if (shard.count == 0 || shard.index >= shard.count) {
    throw Error(fmt::format("--shard {}: needs 0 <= K < N", text));
  }
  shard.source = "--shard";
  return shard;
}

std::optional<ShardSpec> slurm_shard(const std::function<const char*(const char*)>& getenv) {
  const char* count = getenv("SLURM_ARRAY_TASK_COUNT");
  if (count == nullptr) return std::nullopt;
  const char* id = getenv("SLURM_ARRAY_TASK_ID");
  if (id == nullptr) throw Error("SLURM_ARRAY_TASK_COUNT is set but SLURM_ARRAY_TASK_ID is not");
  const char* min = getenv("SLURM_ARRAY_TASK_MIN");
  ShardSpec shard;
  shard.count = parse_count(count, "SLURM_ARRAY_TASK_COUNT");
  const size_t task = parse_count(id, "SLURM_ARRAY_TASK_ID");
  const size_t first = min == nullptr ? 0 : parse_count(min, "SLURM_ARRAY_TASK_MIN");
  if (shard.count == 0 || task < first || task - first >= shard.count) {
    throw Error(fmt::format("SLURM_ARRAY_TASK_ID={} is not one of {} consecutive tasks from {}: submit the array "
                            "as --array=0-{} (no step, no gaps)",
                            task, shard.count, first, shard.count == 0 ? 0 : shard.count - 1));
  }
  shard.index = task - first;
  shard.source = kSlurmSource;
  return shard;
}

std::pair<size_t, size_t> block_of(size_t items, const ShardSpec& shard) {
  return {items * shard.index / shard.count, items * (shard.index + 1) / shard.count};
}

// ---------------------------------------------------------------------------------------------
// Unit files

std::string identity_digest(const nlohmann::json& identity) {
  const std::string text = identity.dump();
  return sha256_hex(text.data(), text.size());
}

std::filesystem::path unit_file(const std::filesystem::path& run_dir, const std::string& id) {
  std::string name = id;
  std::replace(name.begin(), name.end(), '/', '+');
  return run_dir / "units" / (name + ".safetensors");
}

// safetensors has no F64: doubles travel as their bit patterns in I64 tensors, named in the metadata.
void write_unit(const std::filesystem::path& file, const std::string& id, const UnitResult& result,
                const std::string& identity_sha256) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  nlohmann::json doubles = nlohmann::json::array();
  for (const auto& [name, tensor] : result.tensors) {
    torch::Tensor stored = tensor.to(torch::kCPU).contiguous();
    if (stored.scalar_type() == torch::kDouble) {
      stored = stored.view(torch::kLong);
      doubles.push_back(name);
    }
    tensors.emplace_back(name, stored);
  }
  std::filesystem::create_directories(file.parent_path());
  write_safetensors(file, tensors,
                    {{"tstar_unit", id},
                     {"tstar_identity_sha256", identity_sha256},
                     {"tstar_unit_meta", result.meta.dump()},
                     {"tstar_unit_doubles", doubles.dump()},
                     {"tstar_unit_seconds", fmt::format("{}", result.seconds)}});
}

StoredUnit read_unit(const std::filesystem::path& file) {
  try {
    const auto stored = SafetensorsFile::open(file);
    const auto& metadata = stored->metadata();
    for (const char* key : {"tstar_unit", "tstar_identity_sha256", "tstar_unit_meta", "tstar_unit_doubles",
                            "tstar_unit_seconds"}) {
      if (metadata.count(key) == 0) throw Error(fmt::format("no '{}' in its metadata: not a tstar unit file", key));
    }
    StoredUnit unit;
    unit.id = metadata.at("tstar_unit");
    unit.identity_sha256 = metadata.at("tstar_identity_sha256");
    unit.result.meta = nlohmann::json::parse(metadata.at("tstar_unit_meta"));
    unit.result.seconds = parse_double(metadata.at("tstar_unit_seconds")).value_or(0.0);
    const auto doubles = nlohmann::json::parse(metadata.at("tstar_unit_doubles")).get<std::set<std::string>>();
    for (const auto& info : stored->tensors()) {
      // Logits stay in the read-only mapping (a merge of a large study holds every unit at once);
      // the small rest is copied.
      torch::Tensor tensor = info.dtype == torch::kFloat ? stored->view(info) : stored->load(info.name);
      unit.result.tensors[info.name] = doubles.count(info.name) ? tensor.view(torch::kDouble) : tensor;
    }
    return unit;
  } catch (const std::exception& e) {
    throw Error(fmt::format("unit file {} is truncated or corrupt ({}); delete it and rerun its shard to recompute it",
                            file.string(), e.what()));
  }
}

std::vector<std::filesystem::path> unit_files(const std::filesystem::path& run_dir) {
  std::vector<std::filesystem::path> files;
  const auto dir = run_dir / "units";
  if (!std::filesystem::is_directory(dir)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".safetensors") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// ---------------------------------------------------------------------------------------------
// Progress

namespace {

std::string duration_text(double seconds) {
  const auto s = static_cast<long long>(std::lround(seconds));
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{} min {} s", s / 60, s % 60);
  return fmt::format("{} h {} min", s / 3600, (s % 3600) / 60);
}

}  // namespace

Progress::Progress(size_t total, std::ostream* out, bool terminal, double interval_s)
    : total_(total), out_(out), terminal_(terminal), interval_s_(interval_s),
      start_(std::chrono::steady_clock::now()), last_shown_(start_) {}

std::string Progress::line() const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string text = fmt::format("tstar: units {}/{}", done_, total_);
  if (reused_ > 0) text += fmt::format(" ({} reused)", reused_);
  if (done_ < total_ && !current_.empty()) text += ", now " + current_;
  text += ", " + duration_text(elapsed) + " elapsed";
  if (done_ < total_ && computed_ > 0) {
    text += ", ETA " + duration_text(computed_seconds_ / static_cast<double>(computed_) * static_cast<double>(total_ - done_));
  }
  return text;
}

void Progress::show(bool force) {
  if (out_ == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  if (terminal_) {
    *out_ << "\r" << line() << "\x1b[K" << std::flush;
  } else if (force || !shown_ || std::chrono::duration<double>(now - last_shown_).count() >= interval_s_) {
    *out_ << line() << "\n" << std::flush;
  } else {
    return;
  }
  shown_ = true;
  last_shown_ = now;
}

void Progress::begin(const std::string& id) {
  current_ = id;
  show(false);
}

void Progress::finish(double seconds, bool reused) {
  ++done_;
  if (reused) {
    ++reused_;
  } else {
    ++computed_;
    computed_seconds_ += seconds;
  }
  show(done_ == total_);
  if (done_ == total_) close();
}

void Progress::close() {
  if (out_ != nullptr && terminal_ && shown_ && !closed_) *out_ << "\n" << std::flush;
  closed_ = true;
}

size_t run_units(ExperimentSuite& suite, const std::vector<WorkUnit>& units, const std::filesystem::path& run_dir,
                 const std::string& identity_sha256, Progress& progress) {
  size_t reused = 0;
  for (const WorkUnit& unit : units) {
    progress.begin(unit.id);
    const auto file = unit_file(run_dir, unit.id);
    if (std::filesystem::exists(file)) {
      const StoredUnit stored = read_unit(file);
      if (stored.id != unit.id || stored.identity_sha256 != identity_sha256) {
        throw Error(fmt::format("{} holds unit '{}' of another run (other settings, model or tstar build): use a new "
                                "--run-dir, or delete the file",
                                file.string(), stored.id));
      }
      ++reused;
      progress.finish(0, true);
      continue;
    }
    const UnitResult result = suite.compute_unit(unit);
    write_unit(file, unit.id, result, identity_sha256);
    progress.finish(result.seconds, false);
  }
  progress.close();
  return reused;
}

void write_json_atomically(const std::filesystem::path& path, const std::string& text) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  const auto temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error(fmt::format("cannot write {}", temporary));
  }
  std::filesystem::rename(temporary, path);
}

std::filesystem::path manifest_file(const std::filesystem::path& run_dir) { return run_dir / "shard.json"; }

}  // namespace tstar::shards
