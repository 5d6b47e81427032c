#include "tstar/synthetic_logits.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "tstar/error.h"

namespace tstar::stats {
namespace {

// Standard normal draws: Box-Muller on 53-bit uniforms from mt19937_64 (portable, unlike
// std::normal_distribution). Both outputs of each transform are used.
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed) : rng_(seed) {}
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = uniform_open_closed();
    const double u2 = uniform_open_closed();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * M_PI * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  double uniform_open_closed() {  // (0, 1], so log() is finite
    return (static_cast<double>(rng_() >> 11) + 1.0) * 0x1.0p-53;
  }
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

torch::Tensor normal_vector(NormalStream& normals, int64_t size, double std) {
  torch::Tensor out = torch::empty({size}, torch::kDouble);
  double* data = out.data_ptr<double>();
  for (int64_t i = 0; i < size; ++i) data[i] = std * normals.next();
  return out;
}

// max_i softmax(z)_i = 1 / sum_i exp(z_i - max z); a sequential loop, so thread-count independent.
double max_softmax_probability(const torch::Tensor& logits) {
  const double* z = logits.data_ptr<double>();
  const int64_t size = logits.numel();
  const double max = *std::max_element(z, z + size);
  double sum = 0;
  for (int64_t i = 0; i < size; ++i) sum += std::exp(z[i] - max);
  return 1.0 / sum;
}

}  // namespace

std::vector<LogitPair> gaussian_logit_pairs(const SyntheticSpec& spec) {
  if (spec.vocab < 2 || spec.draws < 1 || !(spec.logit_std >= 0) || !(spec.noise_std >= 0))
    throw Error("synthetic: need vocab >= 2, draws >= 1 and non-negative standard deviations");
  NormalStream normals(spec.seed);
  std::vector<LogitPair> pairs;
  int attempts = 0;
  while (static_cast<int>(pairs.size()) < spec.draws) {
    if (++attempts > spec.max_attempts)
      throw Error("synthetic: fewer than " + std::to_string(spec.draws) + " clean draws with max p > " +
                  std::to_string(spec.min_max_p) + " in " + std::to_string(spec.max_attempts) + " attempts");
    torch::Tensor clean = normal_vector(normals, spec.vocab, spec.logit_std);
    if (max_softmax_probability(clean) <= spec.min_max_p) continue;
    torch::Tensor noisy = clean + normal_vector(normals, spec.vocab, spec.noise_std);
    pairs.push_back({clean, noisy});
  }
  return pairs;
}

TemperatureObjective synthetic_objective(const SyntheticSpec& spec) {
  TemperatureObjective objective;
  for (const LogitPair& pair : gaussian_logit_pairs(spec)) objective.add(pair.clean, pair.noisy);
  return objective;
}

}  // namespace tstar::stats
