// bench as one shard of a run: its block of the experiments' units, written to unit files as they
// complete (and reused when the shard is rerun), then the Google Benchmark benchmarks it owns; the
// manifest tstar merge reads. Also the progress line of a one-process run.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <set>

#include <fmt/format.h>

#include "bench_env.h"
#include "tstar/provenance.h"

namespace tstar::bench {

namespace {

std::string escape_regex(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    if (std::string(".[]()*+?{}|^$\\").find(c) != std::string::npos) escaped += '\\';
    escaped += c;
  }
  return escaped;
}

std::ostream* progress_stream(const BenchEnv& env) { return env.options().quiet ? nullptr : &std::cerr; }

bool stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

struct ShardState {
  shards::ShardSpec spec;
  std::filesystem::path run_dir;
  int repetitions = 1;                      // --benchmark_repetitions
  std::vector<std::string> instances;       // the experiment instances the filter selects
  std::vector<std::string> units;           // every unit they read, in order (all shards)
  std::vector<std::string> selected;        // every benchmark the filter selects, in registration order
  std::vector<std::string> benchmarks;      // those Google Benchmark runs in some shard
  std::vector<std::string> owned_benchmarks;
  size_t reused_units = 0;
};

// Computes the shard's units and returns Google Benchmark's filter narrowed to the benchmarks this
// shard owns ("" when it owns none).
std::string run_shard_units(BenchEnv& env, ShardState& shard, const std::string& filter) {
  env.set_sharded();
  ExperimentSuite& suite = env.experiments();
  shard.instances = selected_instances(env, filter);
  const std::vector<WorkUnit> units = suite.units_of(shard.instances);
  for (const WorkUnit& unit : units) shard.units.push_back(unit.id);
  const auto [begin, end] = shards::block_of(units.size(), shard.spec);
  const std::vector<WorkUnit> mine(units.begin() + static_cast<std::ptrdiff_t>(begin),
                                   units.begin() + static_cast<std::ptrdiff_t>(end));
  if (!mine.empty()) {
    const std::string identity = shards::identity_digest(suite.unit_identity());
    shards::Progress progress(mine.size(), progress_stream(env), stderr_is_terminal());
    shard.reused_units = shards::run_units(suite, mine, shard.run_dir, identity, progress);
  }

  // Benchmarks round-robin over the shards. Under --timing protocol an experiment benchmark's time
  // is its statistics computation, which tstar merge does: no shard runs it.
  const std::set<std::string> instances(shard.instances.begin(), shard.instances.end());
  for (const std::string& name : env.benchmark_names()) {
    if (!filter_selects_benchmark(filter, name)) continue;
    shard.selected.push_back(name);
    if (instances.count(name) != 0 && !env.options().time_cycles) continue;
    shard.benchmarks.push_back(name);
  }
  std::string alternatives;
  for (size_t i = shard.spec.index; i < shard.benchmarks.size(); i += shard.spec.count) {
    shard.owned_benchmarks.push_back(shard.benchmarks[i]);
    alternatives += (alternatives.empty() ? "" : "|") + escape_regex(shard.benchmarks[i]);
  }
  return alternatives.empty() ? "" : "^(" + alternatives + ")(/real_time|/manual_time)?$";
}

void write_shard_manifest(BenchEnv& env, const ShardState& shard, bool wrote_benchmark_json) {
  const auto [begin, end] = shards::block_of(shard.units.size(), shard.spec);
  nlohmann::json manifest = {{"format", 1},
                             {"shard", shard.spec.to_json()},
                             {"settings_flags", env.options().settings},
                             {"timing", env.options().time_cycles ? "cycles" : "protocol"},
                             {"repetitions", shard.repetitions},
                             {"instances", shard.instances},
                             {"units", shard.units},
                             {"unit_block", {begin, end}},
                             {"reused_units", shard.reused_units},
                             {"selected_benchmarks", shard.selected},
                             {"benchmarks", shard.benchmarks},
                             {"owned_benchmarks", shard.owned_benchmarks},
                             {"benchmark_json", wrote_benchmark_json}};
  if (!shard.instances.empty()) {
    ExperimentSuite& suite = env.experiments();
    const nlohmann::json results = suite.results_json();
    manifest["identity"] = suite.unit_identity();
    manifest["provenance"] = results.at("provenance");
    manifest["weights_digest_before"] = results.at("weights_digest_before");
    manifest["weights_digest_after"] = results.at("weights_digest_after");
  } else {
    manifest["identity"] = nullptr;
    manifest["provenance"] = runtime_provenance();
  }
  shards::write_json_atomically(shards::manifest_file(shard.run_dir), manifest.dump(1));
}

}  // namespace

int run_shard(BenchEnv& env, const shards::ShardSpec& shard, const std::filesystem::path& run_dir, int repetitions,
              const std::string& filter, const std::filesystem::path& partial_json) {
  ShardState state;
  state.spec = shard;
  state.run_dir = run_dir;
  state.repetitions = repetitions;
  std::cerr << "tstar: shard " << shard.label() << " (" << shard.source << ") in " << run_dir.string() << "\n";
  const std::string owned = run_shard_units(env, state, filter);
  if (!owned.empty()) {
    benchmark::SetBenchmarkFilter(owned);
    benchmark::AddCustomContext("tstar_shard", fmt::format("{} ({})", shard.label(), shard.source));
    add_provenance_context(env, filter);
    benchmark::RunSpecifiedBenchmarks();
  }
  const bool wrote_benchmark_json = !owned.empty() && std::filesystem::exists(partial_json);
  if (wrote_benchmark_json) {
    std::filesystem::rename(partial_json, run_dir / "benchmark.json");
  } else {
    std::filesystem::remove(partial_json);
  }
  benchmark::Shutdown();
  write_shard_manifest(env, state, wrote_benchmark_json);
  std::cerr << "tstar: shard " << shard.label() << " done: " << shards::manifest_file(run_dir).string()
            << " (join the shards with tstar merge)\n";
  return 0;
}

void show_unit_progress(BenchEnv& env, const std::string& filter) {
  const std::vector<std::string> instances = selected_instances(env, filter);
  if (instances.empty() || env.options().quiet) return;
  ExperimentSuite& suite = env.experiments();
  auto progress = std::make_shared<shards::Progress>(suite.units_of(instances).size(), progress_stream(env),
                                                     stderr_is_terminal());
  suite.on_unit_computed([progress](const std::string& id, double seconds, bool finished) {
    if (finished) {
      progress->finish(seconds, false);
    } else {
      progress->begin(id);
    }
  });
}

}  // namespace tstar::bench
