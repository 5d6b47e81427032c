// `tstar merge RUN_DIR...`: joins the run directories of a sharded bench run (bench --shard K/N, or
// a Slurm array) into one results.json and one Google Benchmark benchmark.json whose statistics
// are the bits a one-process run of the same settings writes: the aggregates run here, through the
// same code, on the units the shards computed (docs/design.md, "Work units and shards").
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "cli.h"
#include "tstar/error.h"
#include "tstar/experiments.h"
#include "tstar/shards.h"

// Google Benchmark's own statistics over repetitions (exported by libbenchmark; declared in its
// internal statistics.h): the aggregate rows' counters are computed by the very functions a
// one-process run uses.
namespace benchmark {
double StatisticsMean(const std::vector<double>& v);
double StatisticsMedian(const std::vector<double>& v);
double StatisticsStdDev(const std::vector<double>& v);
double StatisticsCV(const std::vector<double>& v);
}  // namespace benchmark

namespace tstar::cli {

namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

const char* kMergeHelp = R"(usage: tstar merge RUN_DIR... [--out DIR]

Joins the run directories of every shard of one bench run (bench --shard K/N, or the tasks of a
Slurm array) into DIR/results.json and DIR/benchmark.json (default DIR: merged/ beside the first
RUN_DIR). Their statistics are bit-identical to one process running the same settings. Refused,
with a message naming what is wrong: shards of different settings, model, tstar commit, prompts or
compute profile; a unit missing or given twice; a truncated or corrupt unit file; a shard that did
not finish (no shard.json: rerun it with the same --run-dir to resume).
)";

struct Shard {
  fs::path dir;
  nlohmann::json manifest;
};

Shard read_shard(const fs::path& dir) {
  const fs::path file = shards::manifest_file(dir);
  if (!fs::is_regular_file(file)) {
    throw Error(fmt::format("tstar merge: {} has no shard.json: not a shard's run directory, or its shard did not "
                            "finish (rerun it with --run-dir {} to resume)",
                            dir.string(), dir.string()));
  }
  Shard shard{dir, {}};
  try {
    shard.manifest = nlohmann::json::parse(std::ifstream(file));
    shard.manifest.at("shard").at("count").get<size_t>();
  } catch (const std::exception& e) {
    throw Error(fmt::format("tstar merge: {} is not a valid shard manifest ({})", file.string(), e.what()));
  }
  return shard;
}

// The first key of `what` on which two shards differ, most specific first, with the message naming it.
void check_same_run(const Shard& first, const Shard& other) {
  const auto field = [](const Shard& s, const char* key) {
    const auto& identity = s.manifest.at("identity");
    return identity.is_object() && identity.contains(key) ? identity.at(key) : nlohmann::json();
  };
  const std::pair<const char*, const char*> checks[] = {
      {"tstar_commit", "tstar commit"},        {"compute_profile", "compute profile"},
      {"weights_sha256", "model digest"},      {"model", "model"},
      {"prompts_sha256", "prompts"},           {"tokenizer_sha256", "tokenizer"},
      {"settings", "settings"},
  };
  for (const auto& [key, label] : checks) {
    const nlohmann::json a = field(first, key), b = field(other, key);
    if (a != b) {
      throw Error(fmt::format("tstar merge: {} and {} are shards of different runs: their {} differ ({} vs {})",
                              first.dir.string(), other.dir.string(), label, a.dump().substr(0, 200),
                              b.dump().substr(0, 200)));
    }
  }
  for (const char* key : {"settings_flags", "instances", "units", "selected_benchmarks", "benchmarks", "timing",
                          "repetitions"}) {
    if (first.manifest.at(key) != other.manifest.at(key)) {
      throw Error(fmt::format("tstar merge: {} and {} are shards of different runs: their {} differ",
                              first.dir.string(), other.dir.string(), std::string(key) == "settings_flags"
                                                                             ? "settings"
                                                                             : std::string("benchmark ") + key));
    }
  }
}

// Every unit file of every shard into the suite: each expected unit exactly once, none unreadable.
void load_units(const std::vector<Shard>& shards_given, ExperimentSuite& suite) {
  const auto expected_list = shards_given.front().manifest.at("units").get<std::vector<std::string>>();
  const std::set<std::string> expected(expected_list.begin(), expected_list.end());
  std::map<std::string, fs::path> found;
  for (const Shard& shard : shards_given) {
    const std::string identity = shard.manifest.at("identity").is_null()
                                     ? std::string()
                                     : shards::identity_digest(shard.manifest.at("identity"));
    for (const fs::path& file : shards::unit_files(shard.dir)) {
      shards::StoredUnit unit;
      try {
        unit = shards::read_unit(file);
      } catch (const Error& e) {
        throw Error(fmt::format("tstar merge: {}", e.what()));
      }
      if (expected.count(unit.id) == 0) {
        throw Error(fmt::format("tstar merge: {} holds unit '{}', which these settings do not have", file.string(),
                                unit.id));
      }
      if (unit.identity_sha256 != identity) {
        throw Error(fmt::format("tstar merge: {} was computed by another run than its shard's (settings, model or "
                                "tstar build differ)",
                                file.string()));
      }
      if (const auto it = found.find(unit.id); it != found.end()) {
        throw Error(fmt::format("tstar merge: unit '{}' is given twice: {} and {} (overlapping shards?)", unit.id,
                                it->second.string(), file.string()));
      }
      found.emplace(unit.id, file);
      suite.add_unit(unit.id, std::move(unit.result));
    }
  }
  std::vector<std::string> missing;
  for (const std::string& id : expected_list) {
    if (found.count(id) == 0) missing.push_back(id);
  }
  if (!missing.empty()) {
    const size_t count = shards_given.front().manifest.at("shard").at("count").get<size_t>();
    std::set<size_t> owners;
    for (const std::string& id : missing) {
      const size_t position = static_cast<size_t>(
          std::find(expected_list.begin(), expected_list.end(), id) - expected_list.begin());
      for (size_t k = 0; k < count; ++k) {
        const auto [begin, end] = shards::block_of(expected_list.size(), shards::ShardSpec{k, count, ""});
        if (position >= begin && position < end) owners.insert(k);
      }
    }
    std::string owner_list;
    for (size_t k : owners) owner_list += fmt::format("{}{}/{}", owner_list.empty() ? "" : ", ", k, count);
    throw Error(fmt::format("tstar merge: {} of {} units are missing, e.g. '{}' (from shard {})", missing.size(),
                            expected_list.size(), missing.front(), owner_list));
  }
}

// ---- Google Benchmark JSON ----
// It writes NaN and +-Infinity bare, which is not JSON: they travel through nlohmann as these strings.
constexpr const char* kNaN = "tstar:NaN";
constexpr const char* kInfinity = "tstar:Infinity";
constexpr const char* kMinusInfinity = "tstar:-Infinity";

std::string quote_bare_numbers(const std::string& text) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const auto& [bare, quoted] : {std::pair<std::string, const char*>{"-Infinity", kMinusInfinity},
                                       {"Infinity", kInfinity},
                                       {"NaN", kNaN}}) {
      if (text.compare(i, bare.size(), bare) == 0) {
        out += fmt::format("\"{}\"", quoted);
        i += bare.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

std::string unquote_bare_numbers(std::string text) {
  for (const auto& [quoted, bare] : {std::pair<std::string, std::string>{kMinusInfinity, "-Infinity"},
                                     {kInfinity, "Infinity"},
                                     {kNaN, "NaN"}}) {
    const std::string needle = "\"" + quoted + "\"";
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at)) {
      text.replace(at, needle.size(), bare);
    }
  }
  return text;
}

ordered_json number(double value) {
  if (std::isnan(value)) return kNaN;
  if (std::isinf(value)) return value > 0 ? kInfinity : kMinusInfinity;
  return value;
}

ordered_json read_benchmark_json(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return ordered_json::parse(quote_bare_numbers(text));
  } catch (const std::exception& e) {
    throw Error(fmt::format("tstar merge: {} is not Google Benchmark JSON ({})", file.string(), e.what()));
  }
}

double repetition_statistic(const std::string& aggregate, double value, size_t repetitions) {
  const std::vector<double> values(repetitions, value);  // a statistic is the same in every repetition
  if (aggregate == "mean") return benchmark::StatisticsMean(values);
  if (aggregate == "median") return benchmark::StatisticsMedian(values);
  if (aggregate == "stddev") return benchmark::StatisticsStdDev(values);
  if (aggregate == "cv") return benchmark::StatisticsCV(values);
  throw Error(fmt::format("tstar merge: unknown Google Benchmark aggregate '{}'", aggregate));
}

// `row` with the instance's statistics as counters (aggregate rows: their statistic over the
// repetitions) and the one-process label.
ordered_json with_statistics(const ordered_json& row, const ExperimentResult& result, double statistics_s) {
  ordered_json out;
  for (const auto& [key, value] : row.items()) {
    if (key != "label") out[key] = value;
  }
  const bool aggregate = row.value("run_type", "iteration") == "aggregate";
  const size_t repetitions = row.value("repetitions", 1);
  for (const auto& [key, value] : result.counters) {
    out[key] = number(aggregate ? repetition_statistic(row.at("aggregate_name").get<std::string>(), value, repetitions)
                                : value);
  }
  out["label"] = fmt::format("statistics {:.3g} s", statistics_s);
  return out;
}

// What a one-process --timing protocol run reports: the statistics time as manual time, one
// iteration per repetition, and Google Benchmark's aggregates when repeated.
std::vector<ordered_json> protocol_rows(const std::string& name, size_t repetitions, double statistics_s) {
  std::vector<ordered_json> rows;
  const std::string run_name = name + "/manual_time";
  const double ms = statistics_s * 1e3;
  for (size_t r = 0; r < repetitions; ++r) {
    rows.push_back({{"name", run_name}, {"family_index", 0}, {"per_family_instance_index", 0},
                    {"run_name", run_name}, {"run_type", "iteration"}, {"repetitions", repetitions},
                    {"repetition_index", r}, {"threads", 1}, {"iterations", 1}, {"real_time", ms},
                    {"cpu_time", ms}, {"time_unit", "ms"}});
  }
  if (repetitions < 2) return rows;
  for (const char* aggregate : {"mean", "median", "stddev", "cv"}) {
    const double value = repetition_statistic(aggregate, ms, repetitions);
    rows.push_back({{"name", run_name + "_" + aggregate}, {"family_index", 0}, {"per_family_instance_index", 0},
                    {"run_name", run_name}, {"run_type", "aggregate"}, {"repetitions", repetitions},
                    {"threads", 1}, {"aggregate_name", aggregate},
                    {"aggregate_unit", std::string(aggregate) == "cv" ? "percentage" : "time"},
                    {"iterations", repetitions}, {"real_time", value}, {"cpu_time", value}, {"time_unit", "ms"}});
  }
  return rows;
}

bool is_row_of(const ordered_json& row, const std::string& name) {
  const std::string run_name = row.value("run_name", "");
  return run_name == name || run_name == name + "/real_time" || run_name == name + "/manual_time";
}

// The context a one-process run records, when no shard ran Google Benchmark: tstar's provenance.
ordered_json context_from(const nlohmann::json& provenance) {
  ordered_json context;
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S+00:00", &utc);
  context["date"] = stamp;
  context["executable"] = "tstar merge";
  for (const auto& [key, value] : provenance.items()) {
    context["tstar_" + key] = value.is_string() ? value.get<std::string>() : value.dump();
  }
  return context;
}

ordered_json merged_benchmarks(const std::vector<Shard>& shards_given, ExperimentSuite& suite) {
  const nlohmann::json& manifest = shards_given.front().manifest;
  const size_t count = manifest.at("shard").at("count").get<size_t>();
  std::vector<ordered_json> shard_json(count);
  for (const Shard& shard : shards_given) {
    if (!shard.manifest.at("benchmark_json").get<bool>()) continue;
    const fs::path file = shard.dir / "benchmark.json";
    if (!fs::is_regular_file(file)) {
      throw Error(fmt::format("tstar merge: {} is missing (its shard.json says it was written)", file.string()));
    }
    shard_json[shard.manifest.at("shard").at("index").get<size_t>()] = read_benchmark_json(file);
  }
  ordered_json out;
  out["context"] = context_from(manifest.at("provenance"));
  for (const auto& json : shard_json) {
    if (json.is_object()) {
      out["context"] = json.at("context");
      break;
    }
  }
  out["context"].erase("tstar_shard");  // the first shard's own
  out["context"]["tstar_shards"] = fmt::format("{} (merged by tstar merge)", count);

  const auto run_list = manifest.at("benchmarks").get<std::vector<std::string>>();
  const auto instances = manifest.at("instances").get<std::vector<std::string>>();
  const std::set<std::string> instance_set(instances.begin(), instances.end());
  const bool protocol = manifest.at("timing") == "protocol";
  const size_t repetitions = manifest.at("repetitions").get<size_t>();
  ordered_json rows = ordered_json::array();
  size_t family_index = 0;
  for (const std::string& name : manifest.at("selected_benchmarks").get<std::vector<std::string>>()) {
    const bool experiment = instance_set.count(name) != 0;
    std::vector<ordered_json> found;
    if (experiment && protocol) {
      found = protocol_rows(name, repetitions, suite.statistics_seconds(name));
    } else {
      const size_t position = static_cast<size_t>(std::find(run_list.begin(), run_list.end(), name) - run_list.begin());
      const size_t owner = position % count;
      if (!shard_json[owner].is_object()) {
        throw Error(fmt::format("tstar merge: benchmark '{}' was run by shard {}/{}, which is not given", name, owner,
                                count));
      }
      for (const auto& row : shard_json[owner].at("benchmarks")) {
        if (is_row_of(row, name)) found.push_back(row);
      }
      if (found.empty()) {
        throw Error(fmt::format("tstar merge: shard {}/{}'s benchmark.json has no '{}'", owner, count, name));
      }
    }
    for (ordered_json& row : found) {
      if (experiment) row = with_statistics(row, suite.result(name), suite.statistics_seconds(name));
      row["family_index"] = family_index;
      row["per_family_instance_index"] = 0;
      rows.push_back(std::move(row));
    }
    ++family_index;
  }
  out["benchmarks"] = rows;
  return out;
}

nlohmann::json merged_provenance(const std::vector<Shard>& shards_given) {
  nlohmann::json provenance = shards_given.front().manifest.at("provenance");
  nlohmann::json list = nlohmann::json::array();
  for (const Shard& shard : shards_given) {
    nlohmann::json entry = shard.manifest.at("shard");
    entry["run_dir"] = shard.dir.string();
    entry["cpu_model"] = shard.manifest.at("provenance").value("cpu_model", "");
    entry["reused_units"] = shard.manifest.value("reused_units", 0);
    list.push_back(entry);
  }
  provenance["shards"] = list;
  return provenance;
}

}  // namespace

int cmd_merge(const std::vector<std::string>& argv, std::ostream& out) {
  std::vector<fs::path> dirs;
  fs::path out_dir;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--help" || argv[i] == "-h") {
      out << kMergeHelp;
      return 0;
    }
    if (argv[i] == "--out") {
      if (i + 1 >= argv.size()) throw Error("tstar merge: --out needs a value");
      out_dir = argv[++i];
    } else if (argv[i].rfind("--out=", 0) == 0) {
      out_dir = argv[i].substr(6);
    } else if (argv[i].rfind("--", 0) == 0) {
      throw Error(fmt::format("tstar merge: unknown option '{}' (see tstar merge --help)", argv[i]));
    } else {
      dirs.push_back(argv[i]);
    }
  }
  if (dirs.empty()) throw Error("tstar merge: give the shards' run directories (see tstar merge --help)");
  if (out_dir.empty()) out_dir = fs::absolute(dirs.front()).parent_path() / "merged";

  std::vector<Shard> shards_given;
  std::set<size_t> indices;
  for (const fs::path& dir : dirs) {
    shards_given.push_back(read_shard(dir));
    check_same_run(shards_given.front(), shards_given.back());
    const auto& spec = shards_given.back().manifest.at("shard");
    if (spec.at("count") != shards_given.front().manifest.at("shard").at("count")) {
      throw Error(fmt::format("tstar merge: {} is shard {}/{} but {} is of {} shards", dir.string(),
                              spec.at("index").dump(), spec.at("count").dump(), dirs.front().string(),
                              shards_given.front().manifest.at("shard").at("count").dump()));
    }
    if (!indices.insert(spec.at("index").get<size_t>()).second) {
      throw Error(fmt::format("tstar merge: shard {}/{} is given twice ({} is one of them)", spec.at("index").dump(),
                              spec.at("count").dump(), dir.string()));
    }
  }
  const nlohmann::json& manifest = shards_given.front().manifest;
  ExperimentSettings settings = settings_from_flags(manifest.at("settings_flags").get<std::map<std::string, std::string>>());
  ExperimentSuite suite(settings, /*compute_units=*/false);
  if (!manifest.at("identity").is_null() && suite.settings().to_json() != manifest.at("identity").at("settings")) {
    throw Error(fmt::format("tstar merge: the settings of {} do not rebuild the same here (paths?)",
                            dirs.front().string()));
  }
  load_units(shards_given, suite);
  for (const std::string& name : manifest.at("instances").get<std::vector<std::string>>()) suite.result(name);

  nlohmann::json results = suite.results_json(merged_provenance(shards_given),
                                              manifest.value("weights_digest_before", ""),
                                              manifest.value("weights_digest_after", ""));
  for (const Shard& shard : shards_given) {  // every shard must have restored the clean weights
    if (shard.manifest.value("weights_digest_after", "") != shard.manifest.value("weights_digest_before", "")) {
      results["weights_digest_after"] = shard.manifest.value("weights_digest_after", "");
    }
  }
  const ordered_json benchmarks = merged_benchmarks(shards_given, suite);
  if (!manifest.at("instances").empty()) {
    shards::write_json_atomically(out_dir / "results.json", results.dump(1));
  }
  shards::write_json_atomically(out_dir / "benchmark.json", unquote_bare_numbers(benchmarks.dump(2)));
  out << fmt::format("tstar merge: {} shards, {} units -> {}\n", shards_given.size(), manifest.at("units").size(),
                     out_dir.string());
  return 0;
}

}  // namespace tstar::cli
