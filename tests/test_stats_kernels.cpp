// The statistics' vocabulary kernels (stats_kernels.h): their exp against the C library's and a
// long-double reference, every path this CPU runs giving the portable path's bits on awkward inputs,
// and the statistics built on them against the plain scalar formulas they replaced.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "tstar/stats.h"
#include "tstar/stats_kernels.h"
#include "tstar/synthetic_logits.h"

namespace tstar {
namespace {

namespace sk = stats_kernels;
using sk::KernelPath;

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<KernelPath> vector_paths() {
  std::vector<KernelPath> paths;
  for (KernelPath path : {KernelPath::kAvx2, KernelPath::kAvx512})
    if (noise_kernels::cpu_runs(path)) paths.push_back(path);
  return paths;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// |got - exact| in units in the last place of the double nearest `exact` (subnormal spacing below 2^-1022).
double ulp_error(double got, long double exact) {
  const double nearest = static_cast<double>(exact);
  if (got == nearest) return 0;  // also both infinite
  const double ulp = std::max(std::nextafter(std::fabs(nearest), kInf) - std::fabs(nearest),
                              std::numeric_limits<double>::denorm_min());
  return static_cast<double>(std::fabs(static_cast<long double>(got) - exact) / ulp);
}

TEST(StatsKernelsExp, WithinOneUlpOfTheExactValueAndOfTheCLibrary) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> wide(-746.0, 710.0), narrow(-2.0, 2.0), tiny(-1e-8, 1e-8);
  double worst = 0;
  for (int i = 0; i < 600000; ++i) {
    const double x = i % 3 == 0 ? wide(rng) : i % 3 == 1 ? narrow(rng) : tiny(rng);
    const double got = sk::exp(x), libm = std::exp(x);
    worst = std::max(worst, ulp_error(got, std::exp(static_cast<long double>(x))));
    ASSERT_LE(ulp_error(got, libm), 1.0) << std::hexfloat << x << " " << got << " " << libm;
  }
  EXPECT_LT(worst, 1.0);
}

TEST(StatsKernelsExp, EdgesUnderflowOverflowAndNaN) {
  EXPECT_EQ(sk::exp(0.0), 1.0);
  EXPECT_EQ(sk::exp(-0.0), 1.0);
  EXPECT_EQ(sk::exp(1e-300), 1.0);
  EXPECT_EQ(sk::exp(-kInf), 0.0);
  EXPECT_EQ(sk::exp(-1e300), 0.0);
  EXPECT_EQ(sk::exp(-745.2), 0.0);
  EXPECT_EQ(sk::exp(-745.13), std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(sk::exp(-708.5), std::exp(-708.5));  // subnormal result, rounded once
  EXPECT_EQ(sk::exp(709.78), std::exp(709.78));
  EXPECT_EQ(sk::exp(709.79), kInf);
  EXPECT_EQ(sk::exp(kInf), kInf);
  EXPECT_TRUE(std::isnan(sk::exp(std::numeric_limits<double>::quiet_NaN())));
  EXPECT_EQ(sk::exp(1.0), std::exp(1.0));
}

// Logits with the awkward values a vocabulary holds: a normal bulk, a few far-below entries (masked
// or never-chosen tokens), exact repeats of the maximum.
std::vector<double> awkward_logits(int64_t n, uint64_t seed, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = normal(rng);
  for (int64_t i = 3; i < n; i += 97) v[static_cast<size_t>(i)] = -1e30;
  if (n > 5) v[5] = -std::numeric_limits<double>::max();
  if (n > 11) v[11] = v[1];
  return v;
}

struct KernelResults {
  double exp_sum;
  sk::ExpSumAndGap gap;
  sk::TiltedMoments moments;
  std::vector<double> exps;
};

KernelResults run_kernels(KernelPath path, const std::vector<double>& y, const std::vector<double>& z,
                          const std::vector<double>& p, double b) {
  const int64_t n = static_cast<int64_t>(y.size());
  double y_max = y[0];
  for (double v : y) y_max = std::max(y_max, v);
  KernelResults r;
  r.exp_sum = sk::exp_sum(path, y.data(), n, b, y_max * b);
  r.gap = sk::exp_sum_and_gap(path, y.data(), z.data(), p.data(), n, b, y_max * b);
  r.moments = sk::tilted_moments(path, y.data(), z.data(), n, b, y_max * b, 0.25);
  r.exps.resize(y.size());
  sk::exp_shifted(path, y.data(), n, y_max * b, r.exps.data());
  return r;
}

void expect_same_bits(const KernelResults& a, const KernelResults& b, const std::string& what) {
  EXPECT_TRUE(same_bits(a.exp_sum, b.exp_sum)) << what;
  EXPECT_TRUE(same_bits(a.gap.exp_sum, b.gap.exp_sum)) << what;
  EXPECT_TRUE(same_bits(a.gap.gap, b.gap.gap)) << what;
  EXPECT_TRUE(same_bits(a.moments.sum, b.moments.sum)) << what;
  EXPECT_TRUE(same_bits(a.moments.first, b.moments.first)) << what;
  EXPECT_TRUE(same_bits(a.moments.second, b.moments.second)) << what;
  ASSERT_EQ(a.exps.size(), b.exps.size());
  EXPECT_EQ(std::memcmp(a.exps.data(), b.exps.data(), a.exps.size() * sizeof(double)), 0) << what;
}

// Vocabulary sizes below, at and around the 8-lane and 16-element steps, and Qwen2's (151936 = 8 *
// 18992) with one more; temperatures from very hot to very cold.
TEST(StatsKernelsPaths, EveryPathGivesThePortableBits) {
  const std::vector<KernelPath> paths = vector_paths();
  if (paths.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 31, 1001, 151936, 151937}) {
    const auto y = awkward_logits(n, 11 + n, 3.0), z = awkward_logits(n, 12 + n, 2.0);
    std::vector<double> p(y.size());
    for (size_t i = 0; i < p.size(); ++i) p[i] = 1.0 / static_cast<double>(i + 2);
    for (double b : {1.0, 1.0 / 1.3, 1e-4, 25.0, 1e3}) {
      const KernelResults portable = run_kernels(KernelPath::kPortable, y, z, p, b);
      for (KernelPath path : paths)
        expect_same_bits(run_kernels(path, y, z, p, b), portable,
                         std::string(noise_kernels::path_name(path)) + " n " + std::to_string(n) + " b " +
                             std::to_string(b));
    }
  }
}

TEST(StatsKernelsPaths, ExpShiftedIsExpOnEveryPath) {
  std::vector<double> x = {-kInf, -1e300, -746.0, -745.13, -708.5, -1.0, -0.0, 0.0, 1e-300, 0.5, 709.78, 709.79, kInf};
  for (int i = 0; i < 40; ++i) x.push_back(-700.0 + 35.0 * i);
  std::vector<KernelPath> paths = vector_paths();
  paths.push_back(KernelPath::kPortable);
  for (KernelPath path : paths) {
    std::vector<double> out(x.size());
    sk::exp_shifted(path, x.data(), static_cast<int64_t>(x.size()), 0.0, out.data());
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_TRUE(same_bits(out[i], sk::exp(x[i]))) << noise_kernels::path_name(path) << " " << x[i];
  }
}

// ---- Against the scalar formulas the kernels replaced -------------------------------------------
// The old code (std::exp, a division per element, three exps per element for the slope), run in
// double as it was and in long double (64-bit significand: a near-exact value to compare with).

template <class R>
struct Reference {
  std::vector<R> z, y, p;
  R z_lse = 0, y_max = 0;
};

template <class R>
R reference_tempered_lse(const std::vector<R>& y, R y_max, R T) {
  const R shift = y_max / T;
  R sum = 0;
  for (R v : y) sum += std::exp(v / T - shift);
  return shift + std::log(sum);
}

template <class R>
Reference<R> reference(const torch::Tensor& clean, const torch::Tensor& noisy) {
  Reference<R> r;
  auto values = [](const torch::Tensor& t) {
    const torch::Tensor c = t.to(torch::kDouble).contiguous();
    return std::vector<R>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  r.z = values(clean), r.y = values(noisy);
  r.y_max = *std::max_element(r.y.begin(), r.y.end());
  r.z_lse = reference_tempered_lse<R>(r.z, *std::max_element(r.z.begin(), r.z.end()), 1);
  for (R v : r.z) r.p.push_back(std::exp(v - r.z_lse));
  return r;
}

template <class R>
R reference_kl(const Reference<R>& r, R T) {
  const R gap = reference_tempered_lse(r.y, r.y_max, T) - r.z_lse;
  R sum = 0;
  for (size_t i = 0; i < r.z.size(); ++i) sum += r.p[i] * ((r.z[i] - r.y[i] / T) + gap);
  return sum;
}

template <class R>
std::pair<R, R> reference_shift_and_variance(const Reference<R>& r, R T) {
  const R lse = reference_tempered_lse(r.y, r.y_max, T);
  R mean_q = 0, mean_p = 0;
  for (size_t i = 0; i < r.y.size(); ++i) {
    mean_q += std::exp(r.y[i] / T - lse) * r.y[i];
    mean_p += r.p[i] * r.y[i];
  }
  R var_q = 0;
  for (R v : r.y) var_q += std::exp(v / T - lse) * (v - mean_q) * (v - mean_q);
  return {mean_q - mean_p, var_q};
}

// |got - want| <= tolerance * scale, scale |want| unless given.
void expect_close(double got, long double want, double tolerance, const std::string& what, long double scale = 0) {
  if (scale == 0) scale = std::fabs(want);
  EXPECT_LE(std::fabs(got - want), tolerance * scale) << what << ": " << got << " vs " << static_cast<double>(want);
}

// The statistics of one pair at T against a reference in R, each within `tolerance` (relative; the
// slope E_q[y] - E_p[y], which crosses 0 at the optimum, on the scale |slope| + std_q(y)).
template <class R>
void expect_statistics(const stats::TemperatureObjective& objective, size_t k, const Reference<R>& r, R T,
                       double tolerance, const std::string& what) {
  expect_close(objective.kl(k, static_cast<double>(T)), reference_kl(r, T), tolerance, what + " kl");
  const auto [shift, var_q] = objective.slope_and_curvature(k, static_cast<double>(T));
  const auto [want_shift, want_var] = reference_shift_and_variance(r, T);
  expect_close(shift, want_shift, tolerance, what + " shift", std::fabs(want_shift) + std::sqrt(want_var));
  expect_close(var_q, want_var, tolerance, what + " var_q");
  const R lse = reference_tempered_lse(r.y, r.y_max, T);
  expect_close(objective.p_token(k, 7, static_cast<double>(T)), std::exp(r.y[7] / T - lse), tolerance, what + " p_token");
}

// The old double code is itself off by up to ~3e-13 (its lse at T = 0.3, against long double); the
// kernels are within 2e-13 of the long-double values (the KL, a difference of O(|z|) terms, is the
// least accurate; the rest are within ~5e-14).
TEST(StatsKernelsReference, StatisticsMatchTheScalarFormulasOnAQwen2WideVocabulary) {
  stats::SyntheticSpec spec;
  spec.vocab = 151936;
  spec.logit_std = 2.5;
  spec.noise_std = 0.5;
  spec.draws = 2;
  spec.seed = 31;
  const auto pairs = stats::gaussian_logit_pairs(spec);
  stats::TemperatureObjective objective;
  for (const auto& pair : pairs) objective.add(pair.clean, pair.noisy);
  for (size_t k = 0; k < pairs.size(); ++k) {
    const auto old = reference<double>(pairs[k].clean, pairs[k].noisy);
    const auto exact = reference<long double>(pairs[k].clean, pairs[k].noisy);
    for (double T : {0.3, 0.8, 1.0, 1.17, 1.48, 4.0, 40.0}) {
      const std::string what = "pair " + std::to_string(k) + " T " + std::to_string(T);
      expect_statistics<double>(objective, k, old, T, 1e-12, what + " (old double code)");
      expect_statistics<long double>(objective, k, exact, T, 2e-13, what + " (long double)");
    }
    const stats::LogitNoise& m = objective.noise()[k];
    const auto [realized_shift, noisy_var_q] = reference_shift_and_variance<long double>(exact, 1);
    expect_close(m.realized_shift, realized_shift, 5e-14, "realized_shift", std::fabs(realized_shift) + std::sqrt(noisy_var_q));
    expect_close(m.noisy_var_q, noisy_var_q, 5e-14, "noisy_var_q");
    long double sum_p2 = 0;
    for (long double v : exact.p) sum_p2 += v * v;
    expect_close(m.sum_p2, sum_p2, 5e-14, "sum_p2");
  }
}

}  // namespace
}  // namespace tstar
