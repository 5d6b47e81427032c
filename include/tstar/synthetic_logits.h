// Synthetic (clean, noisy) logit pairs with known structure: Gaussian logits plus i.i.d. Gaussian
// noise, drawn from std::mt19937_64 with our own Box-Muller transform so that the values are the
// same on every platform (std::normal_distribution is implementation-defined).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "tstar/stats.h"

namespace tstar::stats {

struct SyntheticSpec {
  int64_t vocab = 2000;
  double logit_std = 1.0;  // clean logits ~ N(0, logit_std^2)
  double noise_std = 0.3;  // noisy = clean + N(0, noise_std^2), independent per entry
  int draws = 100;         // pairs, each with its own clean vector and noise
  uint64_t seed = 1;
  // Keep only clean draws whose largest softmax probability exceeds this (rejection sampling),
  // to study peaked distributions; 0 keeps every draw.
  double min_max_p = 0.0;
  int max_attempts = 100000;  // clean draws tried before giving up (tstar::Error)
};

struct LogitPair {
  torch::Tensor clean;  // [V] double
  torch::Tensor noisy;  // [V] double
};

std::vector<LogitPair> gaussian_logit_pairs(const SyntheticSpec& spec);
TemperatureObjective synthetic_objective(const SyntheticSpec& spec);

}  // namespace tstar::stats
