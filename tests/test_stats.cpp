#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "tstar/error.h"
#include "tstar/stats.h"
#include "tstar/synthetic_logits.h"

namespace ts = tstar::stats;

namespace {

ts::SyntheticSpec gaussian_spec(int64_t vocab, double logit_std, double noise_std, int draws, uint64_t seed) {
  ts::SyntheticSpec spec;
  spec.vocab = vocab;
  spec.logit_std = logit_std;
  spec.noise_std = noise_std;
  spec.draws = draws;
  spec.seed = seed;
  return spec;
}

torch::Tensor seeded_normal(int64_t size, uint64_t seed, double std = 1.0) {
  return ts::gaussian_logit_pairs(gaussian_spec(size, std, 0.0, 1, seed))[0].clean;
}

// KL(softmax(z) || softmax(y/T)) straight from the definition, for small well-scaled vectors.
double naive_kl(const std::vector<double>& z, const std::vector<double>& y, double T) {
  double zsum = 0, ysum = 0;
  for (double v : z) zsum += std::exp(v);
  for (double v : y) ysum += std::exp(v / T);
  double kl = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    const double p = std::exp(z[i]) / zsum, q = std::exp(y[i] / T) / ysum;
    kl += p * std::log(p / q);
  }
  return kl;
}

torch::Tensor as_tensor(const std::vector<double>& v) {
  return torch::tensor(v, torch::kDouble);
}

const ts::PredictorError& prediction(const ts::TemperatureReport& report, const std::string& key) {
  for (const auto& p : report.predictions)
    if (p.key == key) return p;
  throw std::runtime_error("no predictor " + key);
}

}  // namespace

// ---- KL and p_correct ----------------------------------------------------------------------------

TEST(StatsKl, ZeroForIdenticalLogitsAtTemperatureOne) {
  torch::Tensor clean = seeded_normal(1000, 3, 2.0).to(torch::kFloat);
  EXPECT_EQ(ts::kl_clean_to_tempered(clean, clean, 1.0), 0.0);
  EXPECT_GT(ts::kl_clean_to_tempered(clean, clean, 1.3), 0.0);
  EXPECT_GT(ts::kl_clean_to_tempered(clean, clean, 0.8), 0.0);
  torch::Tensor noisy = clean + 0.1 * seeded_normal(1000, 4).to(torch::kFloat);
  EXPECT_GT(ts::kl_clean_to_tempered(clean, noisy, 1.0), 0.0);
}

TEST(StatsKl, MatchesNaiveComputationOnSmallVectors) {
  const std::vector<double> z = {0.3, -1.2, 2.5, 0.0, 1.1};
  const std::vector<double> y = {0.1, -0.7, 2.9, -0.4, 1.6};
  for (double T : {0.6, 1.0, 1.37, 2.5}) {
    EXPECT_NEAR(ts::kl_clean_to_tempered(as_tensor(z), as_tensor(y), T), naive_kl(z, y, T), 1e-14) << T;
  }
}

TEST(StatsKl, PCorrectIsTheCleanArgmaxProbabilityUnderTheTemperedNoisyDistribution) {
  const std::vector<double> z = {0.3, -1.2, 2.5, 0.0, 1.1};  // clean argmax: index 2
  const std::vector<double> y = {0.1, -0.7, 2.0, -0.4, 2.6};
  const double T = 1.25;
  double sum = 0;
  for (double v : y) sum += std::exp(v / T);
  EXPECT_NEAR(ts::p_correct(as_tensor(z), as_tensor(y), T), std::exp(2.0 / T) / sum, 1e-15);
}

TEST(StatsKl, StableForLogitsOfOrder1e4) {
  torch::Tensor clean = seeded_normal(5000, 5, 3.0);
  torch::Tensor noisy = clean + seeded_normal(5000, 6, 0.5);
  for (double T : {0.7, 1.0, 1.4}) {
    const double base = ts::kl_clean_to_tempered(clean, noisy, T);
    // softmax is shift invariant: adding 1e4 to every logit must not change KL or p_correct.
    const double shifted = ts::kl_clean_to_tempered(clean + 1e4, noisy + 1e4, T);
    EXPECT_NEAR(shifted, base, 1e-9 * std::max(1.0, base)) << T;
    EXPECT_NEAR(ts::p_correct(clean + 1e4, noisy + 1e4, T), ts::p_correct(clean, noisy, T), 1e-9);
  }
  // Logits spread over +-1e4: a naive exp overflows; the stable form stays finite and >= 0.
  const double wide = ts::kl_clean_to_tempered(clean * 3000.0, noisy * 3000.0, 1.0);
  EXPECT_TRUE(std::isfinite(wide));
  EXPECT_GE(wide, 0.0);
}

TEST(StatsKl, RejectsBadInputs) {
  torch::Tensor a = torch::zeros({4});
  EXPECT_THROW(ts::kl_clean_to_tempered(a, torch::zeros({5}), 1.0), tstar::Error);
  EXPECT_THROW(ts::kl_clean_to_tempered(a, a, 0.0), tstar::Error);
  EXPECT_THROW(ts::measure(a, torch::full({4}, NAN)), tstar::Error);
  EXPECT_THROW(ts::measure(torch::zeros({2, 2}), torch::zeros({2, 2})), tstar::Error);
  EXPECT_THROW(ts::measure(torch::zeros({4}, torch::kLong), a), tstar::Error);
}

// ---- measure -------------------------------------------------------------------------------------

TEST(StatsMeasure, VariancesFollowTheNotebooksUnbiasedTorchVar) {
  torch::Tensor clean = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble);
  torch::Tensor noisy = clean + torch::tensor({0.5, -0.5, 0.5, -0.5}, torch::kDouble);
  const ts::LogitNoise m = ts::measure(clean, noisy);
  EXPECT_NEAR(m.tau2, 5.0 / 3.0, 1e-15);
  EXPECT_NEAR(m.sigma2, 1.0 / 3.0, 1e-15);
  EXPECT_NEAR(m.alpha, 0.2, 1e-15);
  EXPECT_NEAR(m.tau2, clean.var().item<double>(), 1e-15);  // torch default: unbiased
  EXPECT_EQ(m.vocab, 4);
  EXPECT_EQ(m.clean_argmax, 3);
  EXPECT_EQ(m.noisy_argmax, 2);  // noisy = {1.5, 1.5, 3.5, 3.5}: first maximum
  EXPECT_FALSE(m.top1_match);
}

TEST(StatsMeasure, ProbabilityWeightedMomentsMatchDirectComputation) {
  torch::Tensor clean = seeded_normal(300, 7, 2.0);
  torch::Tensor p = torch::softmax(clean, 0);
  const double mean = (p * clean).sum().item<double>();
  const ts::LogitNoise m = ts::measure(clean.to(torch::kBFloat16), clean.to(torch::kBFloat16));
  torch::Tensor clean_bf16 = clean.to(torch::kBFloat16).to(torch::kDouble);  // what measure saw
  torch::Tensor pb = torch::softmax(clean_bf16, 0);
  const double mean_b = (pb * clean_bf16).sum().item<double>();
  EXPECT_NEAR(m.var_p, (pb * (clean_bf16 - mean_b).pow(2)).sum().item<double>(), 1e-12);
  EXPECT_NEAR(m.sum_p2, (pb * pb).sum().item<double>(), 1e-14);
  EXPECT_NEAR(m.max_p, pb.max().item<double>(), 1e-15);
  EXPECT_EQ(m.sigma2, 0.0);
  EXPECT_TRUE(m.top1_match);
  EXPECT_GT(mean, 0.0);  // the tilted mean of Gaussian logits is positive
}

TEST(StatsMeasure, RowsOfABatchMatchSingleVectors) {
  torch::Tensor clean = torch::stack({seeded_normal(50, 8), seeded_normal(50, 9)});
  torch::Tensor noisy = clean + 0.3 * torch::stack({seeded_normal(50, 10), seeded_normal(50, 11)});
  const auto rows = ts::measure_rows(clean, noisy);
  ASSERT_EQ(rows.size(), 2u);
  for (int64_t r = 0; r < 2; ++r) EXPECT_EQ(rows[r].alpha, ts::measure(clean[r], noisy[r]).alpha);
}

TEST(StatsMeasure, PredictorsAreTheSixFormulas) {
  ts::LogitNoise m;
  m.alpha = 0.21, m.sigma2 = 0.3, m.tau2 = 0.3 / 0.21, m.var_p = 1.5, m.sum_p2 = 0.25, m.centered_p2 = 0.05;
  m.realized_shift = 0.06, m.noisy_var_q = 1.2;
  const auto list = ts::predictors();
  ASSERT_EQ(list.size(), 6u);
  EXPECT_NEAR(list[0].predict(m), 1.1, 1e-15);
  EXPECT_NEAR(list[1].predict(m), 1.21, 1e-15);
  EXPECT_NEAR(list[2].predict(m), 1.2, 1e-15);
  EXPECT_NEAR(list[3].predict(m), 1.15, 1e-15);
  EXPECT_NEAR(list[4].predict(m), 1.14, 1e-15);
  EXPECT_NEAR(list[5].predict(m), 1.05, 1e-15);
}

// Pooling is the ratio of sums, as the mean KL pools pairs, not the mean of per-pair predictions.
TEST(StatsMeasure, PooledPredictorIsARatioOfSums) {
  ts::LogitNoise a, b;
  a.sigma2 = 0.1, a.var_p = 1.0;
  b.sigma2 = 0.1, b.var_p = 0.01;  // a peaked pair: its own ratio is 10
  const ts::Predictor& p = ts::predictors()[2];  // 1+sigma^2/Var_p
  EXPECT_NEAR(p.pooled({a, b}), 1.0 + 0.2 / 1.01, 1e-15);
  EXPECT_GT((p.predict(a) + p.predict(b)) / 2, 5.0);  // what averaging per-pair values gave
  EXPECT_THROW(p.pooled({}), tstar::Error);
}

TEST(StatsMeasure, ThirdOrderAndRealizedTermsMatchDirectComputation) {
  const std::vector<double> z = {0.3, -1.2, 2.0, 0.5}, y = {0.1, -1.0, 2.3, 0.4};
  const auto m = ts::measure(as_tensor(z), as_tensor(y));
  auto softmax = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += std::exp(x);
    std::vector<double> out;
    for (double x : v) out.push_back(std::exp(x) / sum);
    return out;
  };
  const auto p = softmax(z), q = softmax(y);
  double mean_p = 0, mean_q = 0, mean_p_y = 0;
  for (size_t i = 0; i < z.size(); ++i) mean_p += p[i] * z[i], mean_q += q[i] * y[i], mean_p_y += p[i] * y[i];
  double centered = 0, var_q = 0;
  for (size_t i = 0; i < z.size(); ++i) centered += p[i] * p[i] * (z[i] - mean_p), var_q += q[i] * (y[i] - mean_q) * (y[i] - mean_q);
  EXPECT_NEAR(m.centered_p2, centered, 1e-14);
  EXPECT_NEAR(m.realized_shift, mean_q - mean_p_y, 1e-14);
  EXPECT_NEAR(m.noisy_var_q, var_q, 1e-14);
}

TEST(StatsObjective, MeanIsTheAverageOfPerPairValues) {
  const auto pairs = ts::gaussian_logit_pairs(gaussian_spec(300, 2.0, 0.5, 3, 13));
  ts::TemperatureObjective objective;
  for (const auto& pair : pairs) objective.add(pair.clean.to(torch::kFloat), pair.noisy.to(torch::kFloat));
  ASSERT_EQ(objective.size(), 3u);
  const double T = 1.2;
  double kl = 0, pc = 0;
  for (const auto& pair : pairs) {
    kl += ts::kl_clean_to_tempered(pair.clean.to(torch::kFloat), pair.noisy.to(torch::kFloat), T) / 3.0;
    pc += ts::p_correct(pair.clean.to(torch::kFloat), pair.noisy.to(torch::kFloat), T) / 3.0;
  }
  EXPECT_NEAR(objective.mean_kl(T), kl, 1e-15);
  EXPECT_NEAR(objective.mean_p_correct(T), pc, 1e-15);
  EXPECT_THROW(objective.kl(3, T), tstar::Error);
  EXPECT_THROW(ts::TemperatureObjective().mean_kl(T), tstar::Error);
}

TEST(StatsObjective, BrentAgreesWithTheNotebookGridOnAKlObjective) {
  const ts::TemperatureObjective objective = ts::synthetic_objective(gaussian_spec(2000, 1.5, 0.45, 50, 14));
  auto mean_kl = [&](double T) { return objective.mean_kl(T); };
  const ts::TempSearch search = ts::best_temperature(mean_kl);
  const ts::GridScan scan = ts::scan_grid(mean_kl, ts::notebook_temperature_grid());
  EXPECT_NEAR(search.T, scan.points[scan.best_index], 0.01 + 1e-4);  // half a grid step
  EXPECT_LE(search.objective, scan.values[scan.best_index]);
}

// ---- Minimisation and grids ------------------------------------------------------------------------

TEST(StatsBrent, FindsTheMinimumOfKnownFunctionsWithinTolerance) {
  for (double tol : {1e-4, 1e-8}) {
    const ts::Minimum q = ts::minimize_brent([](double x) { return (x - 1.3) * (x - 1.3) + 2.0; }, 0.5, 3.0, tol);
    EXPECT_NEAR(q.x, 1.3, tol);
    EXPECT_NEAR(q.value, 2.0, 1e-12);
    EXPECT_FALSE(q.at_boundary);
    const ts::Minimum k = ts::minimize_brent([](double x) { return std::pow(std::abs(x - 0.77), 1.5); }, 0.5, 3.0, tol);
    EXPECT_NEAR(k.x, 0.77, tol);
    EXPECT_FALSE(k.at_boundary);
  }
}

TEST(StatsBrent, ReportsAMinimumOnTheBoundary) {
  const ts::TempSearch rising = ts::best_temperature([](double T) { return T * T; });
  EXPECT_EQ(rising.T, 0.5);
  EXPECT_TRUE(rising.at_boundary);
  EXPECT_EQ(rising.lo, 0.5);
  EXPECT_EQ(rising.hi, 3.0);
  const ts::TempSearch falling = ts::best_temperature([](double T) { return -T; }, 0.5, 3.0);
  EXPECT_EQ(falling.T, 3.0);
  EXPECT_TRUE(falling.at_boundary);
}

TEST(StatsGrid, NotebookGridHas35PointsFrom080To148) {
  const std::vector<double> g = ts::notebook_temperature_grid();
  ASSERT_EQ(g.size(), 35u);
  EXPECT_NEAR(g.front(), 0.80, 1e-15);
  EXPECT_NEAR(g.back(), 1.48, 1e-14);
  for (size_t k = 0; k < g.size(); ++k) EXPECT_NEAR(g[k], 0.80 + 0.02 * static_cast<double>(k), 1e-14);
  EXPECT_THROW(ts::grid(0.8, 1.49, 0.02), tstar::Error);
}

TEST(StatsGrid, ScanFindsTheFirstSmallestValue) {
  const auto scan = ts::scan_grid([](double T) { return std::abs(T - 1.1); }, ts::notebook_temperature_grid());
  EXPECT_NEAR(scan.points[scan.best_index], 1.10, 1e-14);
  EXPECT_FALSE(scan.at_boundary);
  const auto edge = ts::scan_grid([](double T) { return T; }, ts::notebook_temperature_grid());
  EXPECT_EQ(edge.best_index, 0u);
  EXPECT_TRUE(edge.at_boundary);
}

// ---- Intervals and spread --------------------------------------------------------------------------

TEST(StatsIntervals, StudentTQuantilesMatchTables) {
  EXPECT_NEAR(ts::student_t_quantile(0.975, 7), 2.364624, 1e-6);
  EXPECT_NEAR(ts::student_t_quantile(0.975, 1), 12.706205, 1e-6);
  EXPECT_NEAR(ts::student_t_quantile(0.975, 2), 4.302653, 1e-6);
  EXPECT_NEAR(ts::student_t_quantile(0.975, 30), 2.042272, 1e-6);
  EXPECT_NEAR(ts::student_t_quantile(0.95, 10), 1.812461, 1e-6);
  EXPECT_NEAR(ts::student_t_quantile(0.995, 4), 4.604095, 1e-6);
  EXPECT_NEAR(ts::student_t_quantile(0.975, 1e7), 1.959964, 1e-6);
  EXPECT_NEAR(ts::student_t_quantile(0.025, 7), -2.364624, 1e-6);
  EXPECT_NEAR(ts::student_t_cdf(0.0, 5), 0.5, 1e-15);
}

TEST(StatsIntervals, TIntervalOfAKnownSample) {
  const ts::Interval ci = ts::t_interval({1, 2, 3, 4, 5});
  const double half = 2.776445 * std::sqrt(2.5) / std::sqrt(5.0);  // t_{0.975,4} s / sqrt(n)
  EXPECT_NEAR(ci.mean, 3.0, 1e-15);
  EXPECT_NEAR(ci.lo, 3.0 - half, 1e-5);
  EXPECT_NEAR(ci.hi, 3.0 + half, 1e-5);
  EXPECT_EQ(ci.n, 5u);
  EXPECT_TRUE(std::isnan(ts::t_interval({1.0}).lo));
}

TEST(StatsIntervals, BootstrapIsReproducibleAndCloseToTheTIntervalForLargerSamples) {
  const torch::Tensor draws = seeded_normal(60, 12);
  const std::vector<double> values(draws.data_ptr<double>(), draws.data_ptr<double>() + 60);
  const ts::Interval a = ts::bootstrap_interval(values);
  const ts::Interval b = ts::bootstrap_interval(values);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_NE(ts::bootstrap_interval(values, 0.95, 10000, 99).lo, a.lo);
  const ts::Interval t = ts::t_interval(values);
  EXPECT_LT(a.lo, a.mean);
  EXPECT_GT(a.hi, a.mean);
  EXPECT_NEAR(a.hi - a.lo, t.hi - t.lo, 0.15 * (t.hi - t.lo));
}

TEST(StatsIntervals, SpreadUsesPopulationStd) {
  const ts::Spread s = ts::spread({1, 2, 3, 4});
  EXPECT_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.std, std::sqrt(1.25), 1e-15);
  EXPECT_EQ(s.min, 1.0);
  EXPECT_EQ(s.max, 4.0);
  EXPECT_THROW(ts::spread({}), tstar::Error);
}

// ---- Trends ----------------------------------------------------------------------------------------

TEST(StatsTrend, LeastSquaresSlope) {
  std::vector<double> rising, falling, flat;
  for (int t = 0; t < 15; ++t) {
    rising.push_back(0.05 + 0.002 * t + (t % 2 ? 1e-4 : -1e-4));
    falling.push_back(0.05 - 0.003 * t);
    flat.push_back(0.05 + 0.0005 * t);
  }
  const ts::LinearFit up = ts::fit_line(rising);
  EXPECT_NEAR(up.slope, 0.002, 5e-5);
  const ts::LinearFit down = ts::fit_line(falling);
  EXPECT_NEAR(down.slope, -0.003, 1e-15);
  EXPECT_NEAR(down.intercept, 0.05, 1e-15);
  EXPECT_NEAR(ts::fit_line(flat).slope, 0.0005, 1e-15);
  EXPECT_THROW(ts::fit_line({1.0}), tstar::Error);
}

TEST(StatsTrend, ScheduleFitRecoversAKnownBeta) {
  std::vector<double> temperatures;
  for (int t = 0; t < 15; ++t) temperatures.push_back(1.2 / std::sqrt(1.0 + 0.05 * t));
  const ts::ScheduleFit fit = ts::fit_schedule(temperatures);
  EXPECT_NEAR(fit.beta, 0.05, 1e-6);
  EXPECT_NEAR(fit.T_max, 1.2, 1e-6);
  EXPECT_LT(fit.rms_error, 1e-6);
  EXPECT_FALSE(fit.at_boundary);

  std::vector<double> rising;
  for (int t = 0; t < 15; ++t) rising.push_back(1.0 + 0.01 * t);
  const ts::ScheduleFit flat = ts::fit_schedule(rising);
  EXPECT_EQ(flat.beta, 0.0);
  EXPECT_TRUE(flat.at_boundary);
}

// ---- Known truth: i.i.d. Gaussian noise on Gaussian logits (docs/design.md, Theory) -----------------------

TEST(StatsSynthetic, PairsAreDeterministicPerSeed) {
  ts::SyntheticSpec spec = gaussian_spec(100, 1.0, 0.3, 3, 1);
  const auto a = ts::gaussian_logit_pairs(spec);
  const auto b = ts::gaussian_logit_pairs(spec);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].clean, b[i].clean));
    EXPECT_TRUE(torch::equal(a[i].noisy, b[i].noisy));
  }
  spec.seed = 2;
  EXPECT_FALSE(torch::equal(ts::gaussian_logit_pairs(spec)[0].clean, a[0].clean));
}

// Logit std 1.5 and noise std 0.45 give alpha = 0.09 (sqrt(1+alpha) = 1.044, 1+alpha = 1.090),
// the setting of the Monte Carlo check in docs/design.md (Theory). With 1000 draws of V = 2000 the optimum varies by
// about 0.0015 between seeds (measured over 8 seeds: best T 1.089-1.093, 1+sigma^2/Var_p 0.0026-0.0052
// above it). At this logit std Var_p is close to tau^2, so 1+alpha is about as close; the test
// checks the claims the issue makes, not a ranking of those two.
TEST(StatsSynthetic, BestTemperatureAgreesWithOnePlusSigma2OverVarPAtModerateNoise) {
  const ts::TemperatureReport report =
      ts::report_temperature(ts::synthetic_objective(gaussian_spec(2000, 1.5, 0.45, 1000, 2024)));
  EXPECT_FALSE(report.best.at_boundary);
  EXPECT_NEAR(report.mean_alpha, 0.09, 0.005);
  const double best = report.best.T;
  const double var_p_error = std::abs(prediction(report, "1p_sigma2_over_var_p").error);
  const double notebook_error = std::abs(prediction(report, "sqrt_1p_alpha").error);
  EXPECT_LT(var_p_error, 0.01) << "best T " << best;
  EXPECT_GT(notebook_error, var_p_error) << "best T " << best;
  EXPECT_GT(notebook_error, 0.01) << "best T " << best;
  EXPECT_LT(report.kl_at_best, report.kl_at_1);
}

// The Monte Carlo ranking is not universal: at logit std 2.0 (same alpha) Var_p falls below tau^2
// and 1+sigma^2/Var_p overshoots the optimum by more than 1+alpha undershoots it (measured on four
// seeds with 1000 draws: Var_p predictor +0.0095..+0.0149, 1+alpha -0.0072..-0.0026).
TEST(StatsSynthetic, OnePlusAlphaIsCloserThanTheVarPPredictorAtLogitStd2) {
  const ts::TemperatureReport report =
      ts::report_temperature(ts::synthetic_objective(gaussian_spec(2000, 2.0, 0.6, 1000, 2024)));
  const double var_p_error = prediction(report, "1p_sigma2_over_var_p").error;
  const double alpha_error = prediction(report, "1p_alpha").error;
  EXPECT_GT(var_p_error, 0.0);
  EXPECT_LT(alpha_error, 0.0);
  EXPECT_LT(std::abs(alpha_error), std::abs(var_p_error)) << "best T " << report.best.T;
}

// With max p > 0.9 the optimum sharpens (T < 1); the four older predictors are >= 1 by construction,
// so all of them miss by more than 0.01. The mean KL is dominated by a few draws, so it takes a few
// hundred to be stable (measured: 60 draws gave best T 0.89-0.998 across seeds, 400 draws 0.90-0.95).
TEST(StatsSynthetic, PeakedDistributionsHaveTheirOptimumBelowOne) {
  ts::SyntheticSpec spec = gaussian_spec(2000, 8.0, 1.0, 400, 7);
  spec.min_max_p = 0.9;
  const ts::TemperatureObjective objective = ts::synthetic_objective(spec);
  for (const auto& m : objective.noise()) ASSERT_GT(m.max_p, 0.9);
  const ts::TemperatureReport report = ts::report_temperature(objective);
  EXPECT_LT(report.best.T, 1.0);
  EXPECT_FALSE(report.best.at_boundary);
  for (const char* key : {"sqrt_1p_alpha", "1p_alpha", "1p_sigma2_over_var_p", "1p_sigma2_1m_sum_p2_over_var_p"}) {
    EXPECT_GT(prediction(report, key).error, 0.01) << key;
  }
}

// ---- The small-noise theory (docs/design.md, "Theory") ----------------------------------------------

// The optimum of E_e[KL(p || softmax((z + e)/T))] for two tokens z = (0, gap) and i.i.d. noise
// e ~ N(0, s^2): only e2 - e1 ~ N(0, 2 s^2) matters, so the expectation is a 1-D Gaussian integral
// (trapezoid over +-12 std, exact to rounding for this smooth integrand), minimised by Brent.
double two_token_optimum(double gap, double s) {
  const int nodes = 4001;
  const double width = 12.0, h = 2 * width / (nodes - 1), scale = std::sqrt(2.0) * s;
  auto expected_kl = [&](double T) {
    double sum = 0;
    for (int k = 0; k < nodes; ++k) {
      const double u = -width + k * h;
      const double weight = std::exp(-0.5 * u * u) * h / std::sqrt(2 * M_PI);
      sum += weight * naive_kl({0.0, gap}, {0.0, gap + scale * u}, T);
    }
    return sum;
  };
  return ts::minimize_brent(expected_kl, 0.9, 1.1, 1e-11).x;
}

// (T*-1)/s^2 of the i.i.d. predictors for clean logits z with per-token noise variance s^2.
double predicted_coefficient(const std::vector<double>& z, const char* key) {
  ts::LogitNoise m = ts::measure(as_tensor(z), as_tensor(z));
  m.sigma2 = 1.0;  // the coefficient of s^2
  for (const auto& p : ts::predictors())
    if (std::string(p.key) == key) return p.predict(m) - 1.0;
  throw std::runtime_error(key);
}

TEST(StatsTheory, TwoTokenQuadratureMatchesTheThirdOrderPredictor) {
  const double s = 0.05;
  struct Case { double gap, exact; } cases[] = {{1.0, 1.547}, {3.0, -0.079}};
  for (const auto& c : cases) {
    const double exact = (two_token_optimum(c.gap, s) - 1.0) / (s * s);
    EXPECT_NEAR(exact, c.exact, 0.005) << "quadrature, gap " << c.gap;
    const double third = predicted_coefficient({0.0, c.gap}, "third_order_iid");
    EXPECT_NEAR(third, exact, 0.01) << "gap " << c.gap;
    // The second-order form misses by far more: +0.222 instead of -0.079 at gap 3, 2.0 at gap 1.
    const double second = predicted_coefficient({0.0, c.gap}, "1p_sigma2_1m_sum_p2_over_var_p");
    EXPECT_GT(second - exact, 0.2) << "gap " << c.gap;
  }
}

// A peaked regime with small noise, where the theory applies: the measured optimum is below 1, the
// third-order i.i.d. predictor lands within 0.01 of it (and the realized-sample Newton step within
// 0.001), and the older four all predict above it by more than 0.01 (measured: +0.020 to +0.37).
TEST(StatsTheory, PeakedRegimeOnlyTheThirdOrderPredictorsFindTheOptimumBelowOne) {
  ts::SyntheticSpec spec = gaussian_spec(2000, 8.0, 0.5, 400, 7);
  spec.min_max_p = 0.9;
  const ts::TemperatureReport report = ts::report_temperature(ts::synthetic_objective(spec));
  EXPECT_LT(report.best.T, 0.99);
  EXPECT_LT(std::abs(prediction(report, "third_order_iid").error), 0.01);
  EXPECT_LT(std::abs(prediction(report, "realized_newton").error), 0.001);
  for (const char* key : {"sqrt_1p_alpha", "1p_alpha", "1p_sigma2_over_var_p", "1p_sigma2_1m_sum_p2_over_var_p"}) {
    EXPECT_GT(prediction(report, key).error, 0.01) << key << " should predict above the optimum";
  }
}

// Pooled predictors follow the pooled optimum even where per-pair ratios explode: at logit std 8
// averaging 1+sigma^2/Var_p over pairs gave 3.80 against a best T of 1.136. Noise std 1 is not small
// noise, so no predictor is exact here (measured: pooled Var_p +0.62, realized Newton step +0.016).
TEST(StatsTheory, PooledPredictionsStayNearThePooledOptimumAtLogitStd8) {
  const ts::TemperatureReport report =
      ts::report_temperature(ts::synthetic_objective(gaussian_spec(2000, 8.0, 1.0, 1000, 2024)));
  const auto& var_p = prediction(report, "1p_sigma2_over_var_p");
  double mean_of_pairs = 0;
  for (double v : var_p.pair_values) mean_of_pairs += v / var_p.pair_values.size();
  EXPECT_GT(mean_of_pairs - report.best.T, 2.0);                         // the old aggregation
  EXPECT_LT(std::abs(var_p.error), 0.25 * (mean_of_pairs - report.best.T));  // pooled
  EXPECT_LT(std::abs(prediction(report, "realized_newton").error), 0.02);
}

// ---- Resolution of the best temperature -----------------------------------------------------------

TEST(StatsResolution, NoNoiseGivesExactlyOne) {
  const auto pairs = ts::gaussian_logit_pairs(gaussian_spec(500, 3.0, 0.0, 4, 5));
  ts::TemperatureObjective objective;
  for (const auto& pair : pairs) objective.add(pair.clean.to(torch::kFloat), pair.clean.to(torch::kFloat));
  const ts::TempSearch best = objective.best_temperature(0.5, 3.0);
  EXPECT_EQ(best.T, 1.0);
  EXPECT_EQ(best.resolution, 0.0);
  EXPECT_EQ(best.objective, 0.0);
}

// The optimum to 1e-9 or better: it agrees with a Brent search run to 1e-11, and the mean KL's
// slope changes sign across it. Brent at the old tolerance (1e-4) was off by more than the effect.
TEST(StatsResolution, BestTemperatureIsResolvedFarBelowTheEffect) {
  const ts::TemperatureObjective objective = ts::synthetic_objective(gaussian_spec(2000, 3.0, 0.02, 20, 31));
  const ts::TempSearch best = objective.best_temperature(0.5, 3.0);
  EXPECT_LT(best.resolution, 1e-9);
  auto mean_kl = [&](double T) { return objective.mean_kl(T); };
  const double brent = ts::minimize_brent(mean_kl, 0.5, 3.0, 1e-11).x;
  EXPECT_NEAR(best.T, brent, 1e-7);
  EXPECT_GT(std::abs(best.T - 1.0), 1e-5);  // the effect itself
  EXPECT_LE(best.objective, objective.mean_kl(best.T * (1 + 1e-6)));
  EXPECT_LE(best.objective, objective.mean_kl(best.T * (1 - 1e-6)));
  EXPECT_LE(best.objective, objective.mean_kl(1.0));
}

TEST(StatsResolution, BoundsAndSubsets) {
  const ts::TemperatureObjective objective = ts::synthetic_objective(gaussian_spec(300, 1.0, 2.0, 3, 9));
  const ts::TempSearch capped = objective.best_temperature(0.5, 1.05);
  EXPECT_TRUE(capped.at_boundary);
  EXPECT_EQ(capped.T, 1.05);
  const ts::TempSearch first = objective.best_temperature(0.5, 3.0, {0});
  auto kl0 = [&](double T) { return objective.kl(0, T); };
  EXPECT_NEAR(first.T, ts::minimize_brent(kl0, 0.5, 3.0, 1e-11).x, 1e-7);
  EXPECT_THROW(objective.best_temperature(0.5, 3.0, {3}), tstar::Error);
  EXPECT_THROW(objective.best_temperature(1.2, 3.0), tstar::Error);
}

TEST(StatsTrend, ScheduleAgainstConstantFTest) {
  std::vector<double> decaying, flat(10, 1.02);
  for (int t = 0; t < 10; ++t) decaying.push_back(1.1 / std::sqrt(1.0 + 0.3 * t) + (t % 2 ? 1e-4 : -1e-4));
  const auto fit = ts::fit_schedule(decaying);
  const auto test = ts::schedule_vs_constant(decaying, fit);
  EXPECT_GT(test.F, 100.0);
  EXPECT_LT(test.p, 1e-6);
  const auto none = ts::schedule_vs_constant(flat, ts::fit_schedule(flat));
  EXPECT_EQ(none.p, 1.0);
  EXPECT_THROW(ts::schedule_vs_constant({1.0, 1.0}, fit), tstar::Error);
}

TEST(StatsIntervals, BootstrapResamplesAreReproducibleAndInRange) {
  const auto a = ts::bootstrap_resamples(7, 50, 3), b = ts::bootstrap_resamples(7, 50, 3);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, ts::bootstrap_resamples(7, 50, 4));
  for (const auto& draw : a) {
    ASSERT_EQ(draw.size(), 7u);
    for (size_t i : draw) EXPECT_LT(i, 7u);
  }
}
