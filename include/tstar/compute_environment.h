// The part of the compute profiles (compute_profile.h) that acts before libtorch loads: the profile
// a command line asks for and the environment that profile pins. Nothing here touches libtorch, so a
// launcher linked without it can pin the environment and then start the program that loads the
// libraries: one library load instead of a load, a restart and a second load (Debian's libtorch
// pulls in ~290 shared libraries; loading them costs about half a second).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tstar {

enum class ComputeProfile { kReference, kNative };

ComputeProfile parse_compute_profile(const std::string& name);  // reference|native, else tstar::Error
std::string compute_profile_name(ComputeProfile profile);

// Environment variable that selects the profile when no --compute flag is given.
inline constexpr const char* kComputeProfileVariable = "TSTAR_COMPUTE";

// What a program's --compute and --threads flags ask for.
struct ComputeOptions {
  ComputeProfile profile = ComputeProfile::kReference;
  int threads = 0;  // 0: all cores (native); the reference profile uses one
};

// Removes `--compute NAME` and, when `take_threads`, `--threads N` (also as --flag=value) from argv
// and returns them; without --compute, $TSTAR_COMPUTE, else reference. Throws tstar::Error on a bad
// or missing value. (`tstar train` keeps its own --threads: training sets its thread count itself.)
ComputeOptions take_compute_flags(int& argc, char** argv, bool take_threads = true);

// The --help text of those two flags (both programs print it).
extern const char* const kComputeFlagsHelp;

// The environment a profile requires before libraries load: (variable, value) pairs. Empty for
// native, which leaves the environment (and any override the user set) alone.
std::vector<std::pair<std::string, std::string>> pinned_environment(ComputeProfile profile);

// When the environment differs from pinned_environment(profile), sets it and replaces the process
// with a fresh copy of itself (execv of /proc/self/exe with the same argv). Returns only when the
// environment already matches. Throws tstar::Error when the re-execution fails.
void reexec_with_pinned_environment(ComputeProfile profile, char* const* argv);

// $TSTAR_BF16_MATMUL forces the bf16 matmul path (compute_profile.h, Bf16Matmul).
inline constexpr const char* kBf16MatmulVariable = "TSTAR_BF16_MATMUL";

// Set in the environment when a program restarted itself to pin its profile (a start that did not
// come through its launcher); the launchers clear it. Provenance records it.
inline constexpr const char* kRestartedToPinVariable = "TSTAR_RESTARTED_TO_PIN";
bool restarted_to_pin();

// Sets the environment `profile` pins; returns true when anything had to change.
bool pin_environment(ComputeProfile profile);

// A launcher's whole job: pins the environment of the profile `argv` asks for (--compute, else
// $TSTAR_COMPUTE, else reference; a bad value is left for the program to report), then replaces the
// process with `program` (a file name in the launcher's own directory), same arguments. Returns
// only on failure, with a message on stderr and the exit status to use.
int launch_with_pinned_environment(const char* program, char** argv);

}  // namespace tstar
