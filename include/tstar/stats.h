// Statistics of noisy next-token distributions: logit-noise measures, the competing predictors of
// the best sampling temperature, the KL objective that defines "best", a Brent minimiser, intervals
// across seeds and the notebook's trend / schedule fits. Everything is computed in double with
// sequential loops, so results are bit-identical whatever the thread count.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace tstar::stats {

// ---- One (clean, noisy) pair of logit vectors -------------------------------------------------

// Noise measures of one pair. Variances over the vocabulary are unbiased (divide by V-1) because
// the notebook uses torch's Tensor.var(), whose default is unbiased; alpha does not depend on it.
struct LogitNoise {
  int64_t vocab = 0;
  double tau2 = 0;     // var(clean logits)
  double sigma2 = 0;   // var(noisy - clean logits)
  double alpha = 0;    // sigma2 / tau2 (0 when tau2 == 0, as in the notebook)
  double var_p = 0;    // sum_i p_i (z_i - E_p z)^2 with p = softmax(clean)
  double sum_p2 = 0;   // sum_i p_i^2
  double centered_p2 = 0;  // sum_i p_i^2 (z_i - E_p z): the third-order term of the small-noise optimum
  double max_p = 0;    // max_i p_i
  // The realized sample at T = 1, q = softmax(noisy), y = noisy: E_q[y] - E_p[y] is minus the slope
  // of KL(p || softmax(y/T)) in 1/T, Var_q(y) its curvature (docs/design.md, "Theory").
  double realized_shift = 0;  // E_q[y] - E_p[y]
  double noisy_var_q = 0;     // Var_q(y)
  int64_t clean_argmax = 0;
  int64_t noisy_argmax = 0;
  bool top1_match = false;
};

// `clean` and `noisy`: [V] tensors of any floating dtype and device. Throws tstar::Error on a shape
// mismatch, V < 2 or a non-finite value.
LogitNoise measure(const torch::Tensor& clean, const torch::Tensor& noisy);
// Row by row on [N, V] batches.
std::vector<LogitNoise> measure_rows(const torch::Tensor& clean, const torch::Tensor& noisy);

// KL(softmax(clean) || softmax(noisy / T)), log-sum-exp in double. Exactly 0 when clean == noisy
// and T == 1; rounding can leave values of order 1e-16 * |logits| below 0 (not clamped).
double kl_clean_to_tempered(const torch::Tensor& clean, const torch::Tensor& noisy, double T);
// Probability of the clean argmax token under softmax(noisy / T).
double p_correct(const torch::Tensor& clean, const torch::Tensor& noisy, double T);

// ---- Predictors of the best temperature ---------------------------------------------------------

// Every predictor is T = 1 + r (or sqrt(1 + r)) with r = numerator / denominator of one pair's
// measures. Over many pairs it is pooled as the mean KL pools them: r = sum numerator / sum
// denominator (a ratio of sums, not a mean of ratios; docs/design.md).
struct Predictor {
  const char* key;      // identifier for counters and JSON keys
  const char* formula;  // human-readable
  double (*numerator)(const LogitNoise&);
  double (*denominator)(const LogitNoise&);
  bool square_root = false;  // T = sqrt(1 + r) instead of 1 + r

  double from_ratio(double r) const;
  double predict(const LogitNoise& m) const { return from_ratio(numerator(m) / denominator(m)); }
  double pooled(const std::vector<LogitNoise>& pairs) const;
};
// sqrt(1+alpha) (the notebook), 1+alpha, 1+sigma2/var_p, 1+sigma2*(1-sum_p2)/var_p, the small-noise
// optimum to third order for i.i.d. logit noise 1+sigma2*(1-sum_p2-centered_p2)/var_p, and the
// realized-sample Newton step 1+realized_shift/noisy_var_q.
std::vector<Predictor> predictors();

// ---- The averaged KL objective ------------------------------------------------------------------

// The result of a search for the best temperature.
struct TempSearch {
  double T = 0;           // argmin of the objective
  double objective = 0;   // its value there
  bool at_boundary = false;
  double lo = 0, hi = 0;  // the bounds searched
  int evaluations = 0;
  double resolution = 0;  // how well T is known: the last step (Newton) or tol (Brent)
};

// Many (clean, noisy) pairs with what KL(T) needs precomputed: evaluating the mean KL at a new T
// costs one exp per vocabulary entry per pair.
class TemperatureObjective {
 public:
  void add(const torch::Tensor& clean, const torch::Tensor& noisy);
  size_t size() const { return pairs_.size(); }
  const std::vector<LogitNoise>& noise() const { return noise_; }

  double kl(size_t pair, double T) const;
  double p_correct(size_t pair, double T) const;
  double mean_kl(double T) const;         // the quantity the notebook minimises
  double mean_p_correct(double T) const;
  // Probability of `token` under softmax(noisy / T), and whether it is the noisy / clean argmax.
  double p_token(size_t pair, int64_t token, double T) const;
  bool noisy_argmax_is(size_t pair, int64_t token) const;
  bool clean_argmax_is(size_t pair, int64_t token) const;
  // E_q[y] - E_p[y] and Var_q(y) of one pair at T: the mean KL's slope and curvature in 1/T.
  std::pair<double, double> slope_and_curvature(size_t pair, double T) const;

  // The minimiser of the mean KL over `pairs` (all when empty) in [lo, hi]: the root of its slope in
  // b = 1/T, E_q[y] - E_p[y] averaged (increasing: the mean KL is convex in b), by Newton steps
  // with Var_q(y) as the derivative, safeguarded by bisection. Resolved to ~1e-12 in T; T = 1 is
  // kept when its KL is no larger (exactly so at scale 0).
  TempSearch best_temperature(double lo, double hi, const std::vector<size_t>& pairs = {}) const;

 private:
  struct Pair {
    std::vector<double> clean;      // z, [V]
    std::vector<double> clean_p;    // softmax(z), [V]
    std::vector<double> noisy;      // y, [V]
    double clean_lse = 0;           // logsumexp(z)
    double clean_p_sum = 0;         // sum softmax(z) (1 up to rounding)
    double noisy_max = 0;           // max(y), for a stable logsumexp(y / T)
    double slope_center = 0;        // E_p[y], p = softmax(z): the slope's moments are taken about it
    double clean_offset = 0;        // E_p[y] - slope_center, from the kernel the tempered side uses
    int64_t clean_argmax = 0;
  };
  static double noisy_lse(const Pair& pair, double T);
  // E_q[y] - E_p[y] and Var_q(y) of one pair, q = softmax(y / T).
  std::pair<double, double> slope_terms(const Pair& pair, double T) const;
  void check_pair(size_t pair, double T) const;
  std::vector<Pair> pairs_;
  std::vector<LogitNoise> noise_;
};

// ---- 1-D minimisation ---------------------------------------------------------------------------

struct Minimum {
  double x = 0;
  double value = 0;
  bool at_boundary = false;  // the minimum over [lo, hi] is (within tol of) lo or hi
  int evaluations = 0;
};
// Brent's method (golden section + parabolic interpolation) on [lo, hi] for a unimodal f; the
// result is within tol of the minimiser. If f(lo) or f(hi) is no larger than the interior
// result, that end is returned and at_boundary is set.
Minimum minimize_brent(const std::function<double(double)>& f, double lo, double hi, double tol);

// Default bounds [0.5, 3.0]: wide enough for the optimum below 1 seen on peaked distributions and
// for strong noise, and well inside where exp(y/T) stays representable after the max shift.
// The mean KL is convex in 1/T (a log-sum-exp plus a linear term), hence unimodal in T.
TempSearch best_temperature(const std::function<double(double)>& objective, double lo = 0.5,
                            double hi = 3.0, double tol = 1e-4);

// lo, lo+step, ..., hi with each point computed from its integer index (no accumulated drift).
std::vector<double> grid(double lo, double hi, double step);
// The notebook's temperature grid, np.arange(0.8, 1.5, 0.02): 35 points 0.80 ... 1.48.
std::vector<double> notebook_temperature_grid();

struct GridScan {
  std::vector<double> points;
  std::vector<double> values;
  size_t best_index = 0;    // first index of the smallest value (np.argmin / idxmin)
  bool at_boundary = false;  // best is the first or last grid point
};
GridScan scan_grid(const std::function<double(double)>& objective, const std::vector<double>& points);

// ---- Comparing predictors with the measured optimum --------------------------------------------

struct PredictorError {
  std::string key;
  std::string formula;
  double value = 0;  // pooled over pairs as the mean KL pools them (Predictor::pooled)
  double error = 0;  // value - measured best T
  // The per-pair view: each pair's own prediction against its own optimum.
  std::vector<double> pair_values;
  double pair_mean_error = 0;  // bias
  double pair_rms_error = 0;
};
struct TemperatureReport {
  TempSearch best;
  std::vector<double> pair_best_T;  // each pair's own optimum
  double mean_alpha = 0;
  double kl_at_1 = 0;
  double kl_at_best = 0;
  double p_correct_at_1 = 0;
  double p_correct_at_best = 0;
  std::vector<PredictorError> predictions;
};
TemperatureReport report_temperature(const TemperatureObjective& objective, double lo = 0.5,
                                     double hi = 3.0);

// ---- Across seeds and prompts ------------------------------------------------------------------

// The report's scalars keyed as tstar's benchmark counters: alpha, best_T, best_T_at_boundary,
// best_T_resolution, kl_T1, kl_best, kl_reduction (1 - kl_best / kl_T1), p_correct_T1, p_correct_best,
// and for every predictor T_<key> / err_<key> (pooled) and pair_bias_<key> / pair_rms_<key>.
std::map<std::string, double> report_counters(const TemperatureReport& report);

struct Interval {
  double mean = 0;
  double lo = 0;  // NaN when fewer than 2 values
  double hi = 0;
  size_t n = 0;
};
// Student-t interval of the mean at `level` (two-sided), with the sample std (N-1).
Interval t_interval(const std::vector<double>& values, double level = 0.95);
// Percentile bootstrap of the mean: `resamples` resamples drawn with std::mt19937_64(seed);
// quantiles by linear interpolation between order statistics (numpy's default).
Interval bootstrap_interval(const std::vector<double>& values, double level = 0.95,
                            int resamples = 10000, uint64_t seed = 20240607);
// `resamples` index lists of size n drawn with replacement from [0, n) by std::mt19937_64(seed):
// the resampling behind the bootstrap intervals, bit-reproducible on every platform.
std::vector<std::vector<size_t>> bootstrap_resamples(size_t n, int resamples, uint64_t seed);

// A cluster bootstrap of the pooled statistics over a seeds x prompts grid of pairs (pair index
// s * prompts + p in `objective`): each resample draws seeds and prompts with replacement, and its
// pairs are every (drawn seed, drawn prompt). The resample's optimum is one Newton step in 1/T from
// the full sample's (exact to second order: the resampled slopes sum to nearly 0 there), its KL at
// that optimum the second-order expansion around it. Percentile 95% intervals.
struct ClusterBootstrap {
  int resamples = 0;
  uint64_t seed = 0;
  Interval best_T, alpha, kl_reduction;
  std::vector<Interval> predictor_error;  // in predictors() order: pooled prediction - best T
};
ClusterBootstrap cluster_bootstrap(const TemperatureObjective& objective, size_t seeds, size_t prompts,
                                   const TempSearch& best, int resamples = 1000, uint64_t seed = 20261130);

// Inverse CDF of Student's t with df degrees of freedom (exact: bisection on the CDF written with
// the regularized incomplete beta function), p in (0, 1).
double student_t_quantile(double p, double df);
double student_t_cdf(double t, double df);

struct Spread {
  double mean = 0;
  double std = 0;  // population std (ddof 0), as the notebook's np.std
  double min = 0;
  double max = 0;
  size_t n = 0;
};
Spread spread(const std::vector<double>& values);

// ---- Trends over generation steps --------------------------------------------------------------

struct LinearFit {
  double slope = 0;
  double intercept = 0;
};
// Least squares y = slope * x + intercept with x = 0, 1, ..., n-1 (np.polyfit(steps, y, 1)).
LinearFit fit_line(const std::vector<double>& y);
LinearFit fit_line(const std::vector<double>& x, const std::vector<double>& y);

// Least-squares fit of T(t) = T_max / sqrt(1 + beta t), t = 0, 1, ..., n-1, to per-step best T.
// T_max and beta are fitted jointly: for a fixed beta the best T_max is linear least squares
// (closed form), and the remaining 1-D error in beta is minimised by Brent over [0, beta_max].
// beta < 0 is not searched; a rising T(t) ends at beta = 0 with at_boundary set.
struct ScheduleFit {
  double T_max = 0;
  double beta = 0;
  double rms_error = 0;
  bool at_boundary = false;
};
ScheduleFit fit_schedule(const std::vector<double>& best_T, double beta_max = 10.0);

// F-test of the schedule (2 parameters) against a constant T (1 parameter) on the same n points:
// F = (RSS_constant - RSS_schedule) / (RSS_schedule / (n - 2)), p from F(1, n - 2) = t^2.
struct NestedFTest {
  double F = 0;
  double p = 1;
};
NestedFTest schedule_vs_constant(const std::vector<double>& best_T, const ScheduleFit& fit);

}  // namespace tstar::stats
