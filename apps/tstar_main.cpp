// `tstar`: the command-line tool. Dispatches to a subcommand; prints errors and picks exit codes.
#include <algorithm>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cli.h"
#include "tstar/compute_profile.h"
#include "tstar/error.h"

namespace {

using Command = std::function<int(const std::vector<std::string>&, std::ostream&)>;

const char* kUsage = R"(tstar: weight-noise and temperature experiments on Hugging Face causal LMs

usage: tstar [--compute reference|native] [--threads N] <command> [options]
       (tstar <command> --help for the options)

commands:
  logits     last-position logits of a prompt (top-k as JSON, full vector as safetensors)
  generate   greedy continuation with the KV cache
  params     every parameter's name, shape and dtype, and the total count (--groups: noise groups)
  noise      the first values of a parameter's noise stream, with their cuRAND positions
  tokenize   token ids of a text with a tokenizer.json (JSON), optionally decoded back
  train      train the embedded counting model (fixtures/models/tstar-counting)
  corpus     write the embedded model's training corpus as text
  merge      join the run directories of a sharded bench run (bench --shard K/N, Slurm arrays)

options of every command:
)";

}  // namespace

int main(int argc, char** argv) {
  const std::vector<char*> original_argv(argv, argv + argc + 1);
  tstar::ComputeOptions compute;
  // The trainer sets its own thread count (its --threads is part of its recipe).
  const bool training = std::find_if(argv + 1, argv + argc, [](const char* a) { return std::string(a) == "train"; }) !=
                        argv + argc;
  const int flags_status = tstar::run_reporting_errors([&] {
    compute = tstar::take_compute_flags(argc, argv, /*take_threads=*/!training);  // anywhere on the line
    return 0;
  });
  if (flags_status != 0) return 2;
  const std::map<std::string, Command> commands = {
      {"logits", tstar::cli::cmd_logits},
      {"generate", tstar::cli::cmd_generate},
      {"params", tstar::cli::cmd_params},
      {"noise", tstar::cli::cmd_noise},
      {"tokenize", tstar::cli::cmd_tokenize},
      {"train", tstar::cli::cmd_train},
      {"corpus", tstar::cli::cmd_corpus},
      {"merge", tstar::cli::cmd_merge},
  };
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage << tstar::kComputeFlagsHelp;
    return argc < 2 ? 2 : 0;
  }
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::cerr << "tstar: unknown command '" << argv[1] << "' (see tstar --help)\n";
    return 2;
  }
  std::vector<std::string> rest(argv + 2, argv + argc);
  tstar::exit_skipping_teardown(tstar::run_reporting_errors([&] {
    // Pinning the profile may restart the process (same arguments) before any library work.
    tstar::reexec_with_pinned_environment(compute.profile, original_argv.data());
    tstar::apply_compute_profile(compute.profile, compute.threads);
    return it->second(rest, std::cout);
  }));
}
