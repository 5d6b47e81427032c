// `tstar noise`: the first values of one parameter's noise stream, with the cuRAND seed,
// subsequence and offset each came from, so anyone can check them against libcurand directly.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "cli.h"
#include "tstar/curand_host.h"
#include "tstar/error.h"
#include "tstar/noise.h"

namespace tstar::cli {

namespace {

const char* kNoiseHelp = R"(usage: tstar noise --seed S --param NAME [--count N] [--first K] [--type T]

Prints JSON with the first N unit noise values (std 1, before any scaling) of parameter NAME's
stream for user seed S, each with the cuRAND position it came from:
  curand_init(curand_seed, subsequence, offset, &state); component `component` of curand4()
  (uint32) or curand_normal4() (gaussian). The host API gives the same stream:
  curandCreateGeneratorHost(CURAND_RNG_PSEUDO_PHILOX4_32_10),
  curandSetPseudoRandomGeneratorSeed(curand_seed),
  curandSetGeneratorOrdering(CURAND_ORDERING_PSEUDO_LEGACY), element `index`.
The output also carries libcurand's own values for the same elements and the largest difference.

options:
  --seed S        user seed (non-negative integer)
  --param NAME    Hugging Face parameter name, e.g. model.layers.0.mlp.up_proj.weight
  --count N       number of values (default 8)
  --first K       index of the first element (default 0)
  --type T        gaussian (default), uniform, laplace, multiplicative (gaussian unit noise)
)";

}  // namespace

int cmd_noise(const std::vector<std::string>& argv, std::ostream& out) {
  for (const auto& a : argv) {
    if (a == "--help" || a == "-h") {
      out << kNoiseHelp;
      return 0;
    }
  }
  Args args(argv, {"seed", "param", "count", "first", "type"}, {}, "noise");
  const uint64_t seed = parse_seed(args.required("seed"));
  const std::string name = args.required("param");
  const NoiseType type = parse_noise_type(args.get("type", "gaussian"));
  const int64_t count = args.get_int("count", 8);
  const int64_t first = args.get_int("first", 0);
  if (count < 0 || count > (int64_t{1} << 24)) throw Error("tstar noise: --count must be in [0, 2^24]");
  if (first < 0) throw Error("tstar noise: --first must be >= 0");

  const philox::Kind kind = type.distribution;
  const uint64_t stream = tensor_seed(seed, name);
  const uint64_t aligned = static_cast<uint64_t>(first) & ~uint64_t{3};
  const int64_t lead = first - static_cast<int64_t>(aligned);
  std::vector<float> values(count + lead);
  generate_unit_noise(kind, stream, aligned, count + lead, values.data());
  std::vector<uint32_t> raw = curand_host_uint32(stream, first, count);
  std::vector<float> reference;
  if (kind == philox::Kind::kGaussian) reference = curand_host_normals(stream, first, count);

  nlohmann::json elements = nlohmann::json::array();
  double max_diff = 0;
  int64_t uint32_mismatches = 0;
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t n = static_cast<uint64_t>(first + i);
    const philox::CurandPosition pos = philox::curand_position(n);
    const uint32_t ours = philox::stream_block(stream, n >> 2).v[n & 3];
    uint32_mismatches += ours != raw[i];
    nlohmann::json e = {{"index", n},          {"subsequence", pos.subsequence}, {"offset", pos.offset},
                        {"component", pos.component}, {"uint32", ours},     {"value", values[lead + i]}};
    if (!reference.empty()) {
      e["curand_host"] = reference[i];
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(values[lead + i]) - reference[i]));
    }
    elements.push_back(e);
  }
  nlohmann::json result = {
      {"param", name},
      {"seed", seed},
      {"type", noise_type_name(type)},
      {"curand_seed", stream},
      {"curand_seed_hex", fmt::format("0x{:016x}", stream)},
      {"counter_mapping",
       "element n: curand_init(curand_seed, (n >> 2) & 65535, 4 * (n >> 18)), component n & 3 of curand4 / "
       "curand_normal4; host API (PHILOX4_32_10, legacy ordering) element n"},
      {"seed_derivation", "curand_seed = splitmix64(splitmix64(seed) ^ fnv1a64(param))"},
      {"uint32_mismatches_vs_libcurand", uint32_mismatches},
      {"values", elements}};
  if (!reference.empty()) result["max_abs_diff_vs_libcurand"] = max_diff;
  out << result.dump(2) << "\n";
  return uint32_mismatches == 0 ? 0 : 1;
}

}  // namespace tstar::cli
