// The compute profiles (compute_profile.h). The reference profile must pin every CPU-dependent
// kernel choice: for each knob, a run under the reference profile with a hostile value of that knob
// in its environment (what another machine, or a user's shell, would bring) must give the same bits
// as a plain reference run. Each hostile value is shown to matter: the native profile, which leaves
// the knob alone, gives different bits with it. So a knob dropped from the profile fails a test on
// any machine where that knob changes the numbers (oneDNN's bf16 path only exists with AVX-512).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tstar/compute_profile.h"
#include "tstar/error.h"
#include "tool_runner.h"

namespace tstar {
namespace {

namespace fs = std::filesystem;

bool cpu_has(const std::string& flag) {
  return machine_provenance().at("cpu_isa").value(flag, false);
}

// The variables of the reference profile as a shell prefix, with `override` (VAR=value) replacing
// or adding one: a native run with exactly one knob different from the reference.
std::string reference_environment_with(const std::string& override) {
  const std::string overridden = override.substr(0, override.find('='));
  std::string prefix = "env";
  for (const auto& [name, value] : pinned_environment(ComputeProfile::kReference)) {
    if (name != overridden && name != kComputeProfileVariable) prefix += " " + name + "=" + value;
  }
  return prefix + " " + override;
}

struct BenchRun {
  nlohmann::json results;     // results.json "results": every statistic of the run
  nlohmann::json provenance;  // results.json "provenance"
};

// A small bench run (WeightNoise at one scale, one Evolution prompt: noise, prefill, decode).
BenchRun bench_run(const std::string& environment, const std::string& flags, std::string program = "") {
#ifndef TSTAR_BENCH_PATH
  ADD_FAILURE() << "bench is not built";
  return {};
#else
  const fs::path dir = fs::temp_directory_path() / ("tstar_profile_" + std::to_string(::getpid()) + "_" +
                                                    std::to_string(std::rand()));
  fs::remove_all(dir);
  const std::string args = "--results " + dir.string() +
                           " --seeds 1 --scales 0.02 --detail-scales 0.02 --benchmark_min_time=0.001"
                           " '--benchmark_filter=^(WeightNoise|Evolution/prompt:0)/' " + flags;
  if (program.empty()) program = TSTAR_BENCH_PATH;
  const auto result = testing::run_binary(environment + " " + program, args);
  EXPECT_EQ(result.exit_code, 0) << environment << " bench " << args << "\n" << result.output;
  BenchRun run;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream in(entry.path() / "results.json");
    if (!in) continue;
    const auto j = nlohmann::json::parse(in);
    run.results = j.at("results");
    run.provenance = j.at("provenance");
  }
  fs::remove_all(dir);
  EXPECT_FALSE(run.results.is_null()) << "no results.json from: " << environment << " bench " << args << "\n"
                                      << result.output;
  return run;
#endif
}

// `bench` is a launcher that pins the environment before the program loads libtorch; the program
// started directly restarts itself to pin it. Both give the same statistics; only the direct start
// restarts.
TEST(Launcher, PinsWithoutARestartAndMatchesADirectStart) {
#ifdef TSTAR_BENCH_PATH
  const BenchRun launched = bench_run("env", "--dtype fp32");
  const std::string program = (fs::path(TSTAR_BENCH_PATH).parent_path() / "bench-torch").string();
  const BenchRun direct = bench_run("env", "--dtype fp32", program);
  ASSERT_FALSE(launched.results.is_null());
  EXPECT_EQ(launched.provenance.at("restarted_to_pin_profile"), false);
  EXPECT_EQ(direct.provenance.at("restarted_to_pin_profile"), true);
  EXPECT_EQ(direct.provenance.at("compute_profile"), "reference");
  EXPECT_TRUE(launched.results == direct.results);
#endif
}

// Hostile values: each one changes the numbers when nothing pins it (checked below).
struct Knob {
  std::string variable_setting;  // VAR=value
  bool matters_here;             // whether this CPU has the path the value selects
};

std::vector<Knob> hostile_knobs() {
  return {
      {"ATEN_CPU_CAPABILITY=default", true},
      {"ATEN_CPU_CAPABILITY=avx512", cpu_has("avx512f") && cpu_has("avx512bw") && cpu_has("avx512vl")},
      {"OPENBLAS_CORETYPE=Prescott", true},
      {"OPENBLAS_CORETYPE=SkylakeX", cpu_has("avx512f")},
      {"OMP_NUM_THREADS=2", true},
  };
}

class ReferenceProfile : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceProfile, HostileEnvironmentGivesTheSameBits) {
  const std::string dtype = "--dtype " + GetParam();
  const BenchRun plain = bench_run("env", dtype);
  ASSERT_EQ(plain.provenance.at("compute_profile"), "reference");
  EXPECT_EQ(plain.provenance.at("libtorch_cpu_capability"), "avx2");
  EXPECT_EQ(plain.provenance.at("openblas_core"), "Haswell");
  EXPECT_EQ(plain.provenance.at("onednn_enabled"), false);
  EXPECT_EQ(plain.provenance.at("bf16_matmul_path"), "fp32_gemm");
  EXPECT_EQ(plain.provenance.at("threads"), 1);
  std::vector<std::string> hostile = {"TSTAR_CPU_ISA=avx512", "TSTAR_CPU_ISA=portable", "TSTAR_BF16_MATMUL=libtorch",
                                      "ONEDNN_MAX_CPU_ISA=AVX512_CORE_AMX", "TSTAR_COMPUTE=native"};
  for (const auto& knob : hostile_knobs()) hostile.push_back(knob.variable_setting);
  for (const auto& setting : hostile) {
    const BenchRun run = bench_run("env " + setting, dtype + " --compute reference");
    EXPECT_EQ(run.provenance.at("compute_profile"), "reference") << setting;
    EXPECT_TRUE(run.results == plain.results) << "statistics moved under the reference profile with " << setting;
  }
}

// The other half: without the profile, each hostile value does change the statistics (fp32, where
// libtorch's kernels and OpenBLAS do the arithmetic), so the test above can fail.
TEST(NativeProfile, EachHostileKnobChangesFp32Statistics) {
  const BenchRun reference = bench_run("env", "--dtype fp32");
  const BenchRun native_pinned = bench_run(reference_environment_with("TSTAR_CPU_ISA=avx2"),
                                      "--dtype fp32 --compute native --threads 1");
  ASSERT_TRUE(native_pinned.results == reference.results)
      << "native with the reference environment and one thread should compute as the reference does in fp32";
  for (const auto& knob : hostile_knobs()) {
    if (!knob.matters_here) continue;
    const bool threads = knob.variable_setting.rfind("OMP_NUM_THREADS", 0) == 0;
    const BenchRun run = bench_run(reference_environment_with(knob.variable_setting),
                              std::string("--dtype fp32 --compute native --threads ") + (threads ? "2" : "1"));
    EXPECT_FALSE(run.results == reference.results) << knob.variable_setting << " did not change fp32 statistics";
  }
}

// bf16 matmul goes to oneDNN on CPUs with AVX-512 (BW, VL, DQ) unless the profile turns it off.
TEST(NativeProfile, OneDnnChangesBf16StatisticsWhereItRuns) {
  if (!(cpu_has("avx512bw") && cpu_has("avx512vl") && cpu_has("avx512dq"))) {
    GTEST_SKIP() << "no AVX-512: libtorch never sends bf16 matmul to oneDNN on this CPU";
  }
  const BenchRun reference = bench_run("env", "--dtype bf16");
  const BenchRun native = bench_run("env", "--dtype bf16 --compute native --threads 1");
  EXPECT_EQ(native.provenance.at("bf16_matmul_path"), "onednn");
  EXPECT_FALSE(native.results == reference.results);
}

// tstar's own noise and statistics kernels are the one family whose paths agree by construction:
// forcing each path through TSTAR_CPU_ISA (both kernels take it) leaves the statistics alone even
// under native, and provenance names it.
// A forced path the CPU lacks falls back to the best one below it.
TEST(NativeProfile, EveryNoiseKernelPathGivesTheSameStatistics) {
  const bool avx2 = cpu_has("avx2") && cpu_has("fma");
  const BenchRun best = bench_run("env", "--dtype bf16 --compute native --threads 1");
  for (const char* path : {"portable", "avx2"}) {
    const BenchRun forced = bench_run(std::string("env TSTAR_CPU_ISA=") + path, "--dtype bf16 --compute native --threads 1");
    EXPECT_TRUE(forced.results == best.results) << "TSTAR_CPU_ISA=" << path;
    EXPECT_EQ(forced.provenance.at("noise_kernel_path"), avx2 ? path : "portable") << "TSTAR_CPU_ISA=" << path;
  }
  EXPECT_EQ(best.provenance.at("noise_kernel_path"), cpu_has("avx512bw") ? "avx512" : avx2 ? "avx2" : "portable");
}

TEST(NativeProfile, BadKernelPathOverrideIsOneError) {
#ifdef TSTAR_BENCH_PATH
  const auto result = testing::run_binary(std::string("env TSTAR_CPU_ISA=sse9 ") + TSTAR_BENCH_PATH,
                                          "--compute native --benchmark_filter=NoiseGen");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("TSTAR_CPU_ISA='sse9': expected portable, avx2 or avx512"), std::string::npos)
      << result.output;
#endif
}

// Throughput-only runs (no experiment selected) still record the machine and profile.
TEST(ComputeProfile, ThroughputRunsRecordTheMachine) {
#ifdef TSTAR_BENCH_PATH
  const fs::path out = fs::temp_directory_path() / ("tstar_profile_ctx_" + std::to_string(::getpid()) + ".json");
  const auto result = testing::run_binary(TSTAR_BENCH_PATH, "--benchmark_filter=NoiseGen/tstar_portable_1thread --benchmark_min_time=0.001 "
                                          "--benchmark_out_format=json --benchmark_out=" + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::ifstream in(out);
  const auto context = nlohmann::json::parse(in).at("context");
  fs::remove(out);
  EXPECT_EQ(context.at("tstar_compute_profile"), "reference");
  for (const char* key : {"tstar_cpu_model", "tstar_cpu_isa", "tstar_bf16_matmul_path", "tstar_openblas_core"}) {
    EXPECT_TRUE(context.contains(key)) << key;
  }
#endif
}

TEST(ComputeProfile, BenchHelpListsEveryTstarFlag) {
#ifdef TSTAR_BENCH_PATH
  const auto result = testing::run_binary(TSTAR_BENCH_PATH, "--help");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  for (const char* flag : {"--compute", "--threads", "--prompts", "--logits-dtype", "--exclude", "--depth-groups",
                           "--seeds", "--results", "--benchmark_filter"}) {
    EXPECT_NE(result.output.find(flag), std::string::npos) << flag;
  }
  // Printed once: the restart that pins the profile happens before anything is printed.
  const auto first = result.output.find("--logits-dtype");
  EXPECT_EQ(result.output.find("--logits-dtype", first + 1), std::string::npos) << result.output;
#endif
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ReferenceProfile, ::testing::Values("fp32", "bf16"));

TEST(ComputeFlags, ParsedAndRemovedFromTheCommandLine) {
  std::vector<std::string> words = {"bench", "--compute", "native", "--seeds", "2", "--threads=3", "x"};
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  int argc = static_cast<int>(words.size());
  const ComputeOptions options = take_compute_flags(argc, argv.data());
  EXPECT_EQ(options.profile, ComputeProfile::kNative);
  EXPECT_EQ(options.threads, 3);
  ASSERT_EQ(argc, 4);
  EXPECT_STREQ(argv[1], "--seeds");
  EXPECT_STREQ(argv[3], "x");
  EXPECT_EQ(argv[4], nullptr);
}

TEST(ComputeFlags, BadValuesAreErrorsNamingTheFlag) {
  auto parse = [](std::vector<std::string> words) {
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    int argc = static_cast<int>(words.size());
    take_compute_flags(argc, argv.data());
  };
  EXPECT_THROW(parse({"bench", "--compute", "fast"}), Error);
  EXPECT_THROW(parse({"bench", "--compute"}), Error);
  EXPECT_THROW(parse({"bench", "--threads", "0"}), Error);
  EXPECT_THROW(parse({"bench", "--threads=two"}), Error);
  try {
    parse({"bench", "--compute=fast"});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--compute"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("reference or native"), std::string::npos) << e.what();
  }
}

TEST(ComputeProfile, ReferenceRefusesMoreThanOneThread) {
  EXPECT_THROW(apply_compute_profile(ComputeProfile::kReference, 2), Error);
}

// This test process was not started through a main that pins the environment (ctest gives it
// OMP_NUM_THREADS=2 and no ATEN_CPU_CAPABILITY): the reference profile must say which knob is off
// instead of computing unpinned numbers, and the process must report itself as native.
TEST(ComputeProfile, UnpinnedProcessIsNativeAndReferenceSaysWhichKnob) {
  if (std::getenv("ATEN_CPU_CAPABILITY") || std::getenv("OPENBLAS_CORETYPE")) {
    GTEST_SKIP() << "the test's own environment pins knobs";
  }
  EXPECT_EQ(active_compute_profile(), ComputeProfile::kNative);
  try {
    apply_compute_profile(ComputeProfile::kReference);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reference compute profile"), std::string::npos) << e.what();
  }
}

TEST(ComputeProfile, ProvenanceNamesTheMachineAndEveryPath) {
  const auto machine = machine_provenance();
  for (const char* key : {"cpu_model", "cpu_isa", "libtorch_cpu_capability", "onednn_enabled", "bf16_matmul_path",
                          "openblas_core", "threads", "noise_kernel_path"}) {
    EXPECT_TRUE(machine.contains(key)) << key;
  }
  EXPECT_TRUE(machine.at("cpu_isa").contains("avx512_bf16"));
  EXPECT_TRUE(machine.at("cpu_isa").contains("amx_bf16"));
}

// ATen's parallel_for shares work through an OpenMP pragma in a header: a library compiled without
// -fopenmp ran every loop on one thread whatever --threads said.
TEST(ComputeProfile, LibraryLoopsUseTheThreadCount) {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  EXPECT_EQ(parallel_loop_threads(), 2);
  EXPECT_EQ(machine_provenance().at("parallel_loop_threads"), 2);
  at::set_num_threads(1);
  EXPECT_EQ(parallel_loop_threads(), 1);
  at::set_num_threads(threads);
}

TEST(ComputeProfile, TstarCliRunsUnderBothProfiles) {
  auto reference = testing::run_tool("--compute reference logits --ids 1,2,3 --top 1");
  EXPECT_EQ(reference.exit_code, 0) << reference.output;
  auto bad = testing::run_tool("logits --compute fastest --ids 1,2,3");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("unknown compute profile 'fastest'"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace tstar
