#include "tstar/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <tuple>

#include "tstar/error.h"
#include "tstar/stats_kernels.h"

namespace tstar::stats {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// A [V] floating tensor as doubles on the host; `name` says which argument was wrong.
std::vector<double> to_doubles(const torch::Tensor& t, const std::string& name) {
  if (!t.defined()) throw Error("stats: tensor '" + name + "' is undefined");
  if (t.dim() != 1)
    throw Error("stats: tensor '" + name + "' must be 1-D [V], got " + std::to_string(t.dim()) + "-D");
  if (!t.is_floating_point()) throw Error("stats: tensor '" + name + "' must have a floating dtype");
  torch::Tensor host = t.detach().to(torch::kCPU).to(torch::kDouble).contiguous();
  const double* data = host.data_ptr<double>();
  std::vector<double> out(data, data + host.numel());
  for (double v : out)
    if (!std::isfinite(v)) throw Error("stats: tensor '" + name + "' holds a non-finite value");
  return out;
}

void check_same_vocab(const std::vector<double>& clean, const std::vector<double>& noisy) {
  if (clean.size() != noisy.size())
    throw Error("stats: 'clean' has " + std::to_string(clean.size()) + " logits but 'noisy' has " +
                std::to_string(noisy.size()));
  if (clean.size() < 2) throw Error("stats: need at least 2 logits, got " + std::to_string(clean.size()));
}

void check_temperature(double T) {
  if (!(T > 0) || !std::isfinite(T)) throw Error("stats: temperature must be finite and > 0, got " + std::to_string(T));
}

double mean_of(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

// Two-pass sum of squared deviations (stable for large means such as logits ~1e4).
double squared_deviations(const std::vector<double>& v) {
  const double mean = mean_of(v);
  double sum = 0;
  for (double x : v) sum += (x - mean) * (x - mean);
  return sum;
}

double unbiased_variance(const std::vector<double>& v) {
  return squared_deviations(v) / static_cast<double>(v.size() - 1);
}

int64_t first_argmax(const std::vector<double>& v) {
  return std::max_element(v.begin(), v.end()) - v.begin();
}

// The vocabulary loops' kernel path: the best this CPU runs, capped by TSTAR_CPU_ISA; every path
// gives the same bits (stats_kernels.h).
stats_kernels::KernelPath kernel_path() { return noise_kernels::selected_path(); }

// log sum_i exp(y_i / T), computed as exp(y_i b - max(y) b) with b = 1/T so that no exp overflows; at
// T = 1 it is log_sum_exp(y).
double tempered_log_sum_exp(const std::vector<double>& y, double y_max, double T) {
  const double b = 1.0 / T, shift = y_max * b;
  return shift + std::log(stats_kernels::exp_sum(kernel_path(), y.data(), static_cast<int64_t>(y.size()), b, shift));
}

double log_sum_exp(const std::vector<double>& v) {
  return tempered_log_sum_exp(v, *std::max_element(v.begin(), v.end()), 1.0);
}

// softmax(z) given lse = log_sum_exp(z).
std::vector<double> softmax(const std::vector<double>& z, double lse) {
  std::vector<double> p(z.size());
  stats_kernels::exp_shifted(kernel_path(), z.data(), static_cast<int64_t>(z.size()), lse, p.data());
  return p;
}

double weighted_mean(const std::vector<double>& p, const std::vector<double>& y) {
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) sum += p[i] * y[i];
  return sum;
}

// The slope's moments are taken about center = E_p[y] (near the optimum E_q[y] - E_p[y] is small, so
// the variance M2/S - (M1/S)^2 loses little to cancellation). clean_offset is E_p[y] - center from
// the same kernel as the tempered side, with the weights exp(z - max z): when y == z and T == 1 the
// two are the same bits, so the slope there is exactly 0 (scale 0 gives best T = 1 exactly).
struct SlopeBase {
  double center = 0;
  double clean_offset = 0;
};

SlopeBase slope_base(const std::vector<double>& z, const std::vector<double>& p, const std::vector<double>& y) {
  SlopeBase base;
  base.center = weighted_mean(p, y);
  const double z_max = *std::max_element(z.begin(), z.end());
  const stats_kernels::TiltedMoments m = stats_kernels::tilted_moments(
      kernel_path(), z.data(), y.data(), static_cast<int64_t>(y.size()), 1.0, z_max, base.center);
  base.clean_offset = m.first / m.sum;
  return base;
}

// E_q[y] - center and Var_q(y) with q = softmax(y / T), from one exp per element.
std::pair<double, double> tempered_moments(const std::vector<double>& y, double y_max, double T, double center) {
  const double b = 1.0 / T;
  const stats_kernels::TiltedMoments m = stats_kernels::tilted_moments(
      kernel_path(), y.data(), y.data(), static_cast<int64_t>(y.size()), b, y_max * b, center);
  const double offset = m.first / m.sum;
  return {offset, m.second / m.sum - offset * offset};
}

// E_q[y] - E_p[y] and Var_q(y) with q = softmax(y / T): minus the slope and the curvature of
// KL(p || q) in 1/T (docs/design.md). Far from the optimum E_q[y] can be far from E_p[y], and then
// M2/S - (M1/S)^2 cancels: when the offset's square exceeds the variance, the moments are taken
// again about E_q[y] (a second exp pass, only there).
std::pair<double, double> shift_and_variance(const SlopeBase& base, const std::vector<double>& y, double y_max,
                                             double T) {
  auto [offset, var] = tempered_moments(y, y_max, T, base.center);
  if (offset * offset > var) {
    const double recentered = base.center + offset;
    std::tie(offset, var) = tempered_moments(y, y_max, T, recentered);
    offset += recentered - base.center;
  }
  return {offset - base.clean_offset, std::max(0.0, var)};
}

// The pair's statistics given softmax(clean) (p) and the slope's base, as TemperatureObjective::add
// computes them anyway.
LogitNoise measure_vectors(const std::vector<double>& clean, const std::vector<double>& noisy,
                           const std::vector<double>& p, const SlopeBase& base) {
  LogitNoise m;
  m.vocab = static_cast<int64_t>(clean.size());
  m.tau2 = unbiased_variance(clean);
  std::vector<double> diff(clean.size());
  for (size_t i = 0; i < clean.size(); ++i) diff[i] = noisy[i] - clean[i];
  m.sigma2 = unbiased_variance(diff);
  m.alpha = m.tau2 > 0 ? m.sigma2 / m.tau2 : 0.0;

  double mean_p = 0;
  for (size_t i = 0; i < clean.size(); ++i) {
    mean_p += p[i] * clean[i];
    m.sum_p2 += p[i] * p[i];
    m.max_p = std::max(m.max_p, p[i]);
  }
  for (size_t i = 0; i < clean.size(); ++i) {
    const double centered = clean[i] - mean_p;
    m.var_p += p[i] * centered * centered;
    m.centered_p2 += p[i] * p[i] * centered;
  }
  // The realized sample at T = 1.
  std::tie(m.realized_shift, m.noisy_var_q) =
      shift_and_variance(base, noisy, *std::max_element(noisy.begin(), noisy.end()), 1.0);
  m.clean_argmax = first_argmax(clean);
  m.noisy_argmax = first_argmax(noisy);
  m.top1_match = m.clean_argmax == m.noisy_argmax;
  return m;
}

// Linear-interpolated quantile of sorted values (numpy's default method).
double sorted_quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(pos));
  if (below + 1 >= sorted.size()) return sorted.back();
  const double frac = pos - static_cast<double>(below);
  return sorted[below] + frac * (sorted[below + 1] - sorted[below]);
}

// Uniform index in [0, n) without modulo bias; portable, unlike std::uniform_int_distribution.
size_t uniform_index(std::mt19937_64& rng, size_t n) {
  const uint64_t bound = static_cast<uint64_t>(n);
  const uint64_t reject_below = (0 - bound) % bound;  // 2^64 mod n
  uint64_t r = rng();
  while (r < reject_below) r = rng();
  return static_cast<size_t>(r % bound);
}

// Continued fraction of the regularized incomplete beta function (modified Lentz's method).
double incomplete_beta_fraction(double a, double b, double x) {
  const double tiny = 1e-300;
  auto guard = [tiny](double v) { return std::abs(v) < tiny ? tiny : v; };
  double c = 1.0;
  double d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
  double h = d;
  for (int m = 1; m <= 1000; ++m) {
    const double two_m = 2.0 * m;
    const double even = m * (b - m) * x / ((a + two_m - 1.0) * (a + two_m));
    d = 1.0 / guard(1.0 + even * d);
    c = guard(1.0 + even / c);
    h *= d * c;
    const double odd = -(a + m) * (a + b + m) * x / ((a + two_m) * (a + two_m + 1.0));
    d = 1.0 / guard(1.0 + odd * d);
    c = guard(1.0 + odd / c);
    const double delta = d * c;
    h *= delta;
    if (std::abs(delta - 1.0) < 1e-16) break;
  }
  return h;
}

// I_x(a, b), the regularized incomplete beta function.
double regularized_incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0.0;
  if (x >= 1) return 1.0;
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) +
                           b * std::log1p(-x);
  // The fraction converges fast only below the mean of the beta distribution; use symmetry above.
  if (x < (a + 1.0) / (a + b + 2.0)) return std::exp(log_front) * incomplete_beta_fraction(a, b, x) / a;
  return 1.0 - std::exp(log_front) * incomplete_beta_fraction(b, a, 1.0 - x) / b;
}

}  // namespace

// ---- One pair ----------------------------------------------------------------------------------

LogitNoise measure(const torch::Tensor& clean, const torch::Tensor& noisy) {
  const std::vector<double> z = to_doubles(clean, "clean");
  const std::vector<double> y = to_doubles(noisy, "noisy");
  check_same_vocab(z, y);
  const std::vector<double> p = softmax(z, log_sum_exp(z));
  return measure_vectors(z, y, p, slope_base(z, p, y));
}

std::vector<LogitNoise> measure_rows(const torch::Tensor& clean, const torch::Tensor& noisy) {
  if (clean.dim() != 2 || !clean.sizes().equals(noisy.sizes()))
    throw Error("stats: measure_rows needs 'clean' and 'noisy' of the same shape [N, V]");
  std::vector<LogitNoise> out;
  for (int64_t row = 0; row < clean.size(0); ++row) out.push_back(measure(clean[row], noisy[row]));
  return out;
}

double kl_clean_to_tempered(const torch::Tensor& clean, const torch::Tensor& noisy, double T) {
  TemperatureObjective one;
  one.add(clean, noisy);
  return one.kl(0, T);
}

double p_correct(const torch::Tensor& clean, const torch::Tensor& noisy, double T) {
  TemperatureObjective one;
  one.add(clean, noisy);
  return one.p_correct(0, T);
}

// ---- Predictors --------------------------------------------------------------------------------

double Predictor::from_ratio(double r) const { return square_root ? std::sqrt(1.0 + r) : 1.0 + r; }

double Predictor::pooled(const std::vector<LogitNoise>& pairs) const {
  if (pairs.empty()) throw Error(std::string("stats: pooled ") + key + " of no pairs");
  double num = 0, den = 0;
  for (const LogitNoise& m : pairs) {
    num += numerator(m);
    den += denominator(m);
  }
  return from_ratio(num / den);
}

std::vector<Predictor> predictors() {
  auto sigma2 = [](const LogitNoise& m) { return m.sigma2; };
  auto tau2 = [](const LogitNoise& m) { return m.tau2; };
  auto var_p = [](const LogitNoise& m) { return m.var_p; };
  return {
      {"sqrt_1p_alpha", "sqrt(1+alpha)", sigma2, tau2, true},
      {"1p_alpha", "1+alpha", sigma2, tau2},
      {"1p_sigma2_over_var_p", "1+sigma^2/Var_p(z)", sigma2, var_p},
      {"1p_sigma2_1m_sum_p2_over_var_p", "1+sigma^2(1-sum p^2)/Var_p(z)",
       [](const LogitNoise& m) { return m.sigma2 * (1.0 - m.sum_p2); }, var_p},
      {"third_order_iid", "1+sigma^2(1-sum p^2-sum p^2(z-E_p z))/Var_p(z)",
       [](const LogitNoise& m) { return m.sigma2 * (1.0 - m.sum_p2 - m.centered_p2); }, var_p},
      {"realized_newton", "1+(E_q y-E_p y)/Var_q(y), q=softmax(noisy)",
       [](const LogitNoise& m) { return m.realized_shift; }, [](const LogitNoise& m) { return m.noisy_var_q; }},
  };
}

// ---- The averaged KL objective -----------------------------------------------------------------

void TemperatureObjective::add(const torch::Tensor& clean, const torch::Tensor& noisy) {
  Pair pair;
  pair.clean = to_doubles(clean, "clean");
  pair.noisy = to_doubles(noisy, "noisy");
  check_same_vocab(pair.clean, pair.noisy);
  pair.clean_lse = log_sum_exp(pair.clean);
  pair.clean_p = softmax(pair.clean, pair.clean_lse);
  for (double p : pair.clean_p) pair.clean_p_sum += p;
  pair.noisy_max = *std::max_element(pair.noisy.begin(), pair.noisy.end());
  const SlopeBase base = slope_base(pair.clean, pair.clean_p, pair.noisy);
  pair.slope_center = base.center;
  pair.clean_offset = base.clean_offset;
  pair.clean_argmax = first_argmax(pair.clean);
  noise_.push_back(measure_vectors(pair.clean, pair.noisy, pair.clean_p, base));
  pairs_.push_back(std::move(pair));
}

double TemperatureObjective::noisy_lse(const Pair& pair, double T) {
  return tempered_log_sum_exp(pair.noisy, pair.noisy_max, T);
}

void TemperatureObjective::check_pair(size_t pair, double T) const {
  if (pair >= pairs_.size())
    throw Error("stats: pair " + std::to_string(pair) + " of " + std::to_string(pairs_.size()));
  check_temperature(T);
}

// KL = sum_i p_i [log p_i - log q_i] = sum_i p_i (z_i - y_i/T) + (lse(y/T) - lse(z)) sum_i p_i, both
// sums from one pass with the exps of lse(y/T). Written this way it is exactly 0 when y == z and
// T == 1 (lse(y) is then log_sum_exp(z) bit for bit), and no exp of an unshifted logit appears.
double TemperatureObjective::kl(size_t pair_index, double T) const {
  check_pair(pair_index, T);
  const Pair& pair = pairs_[pair_index];
  const double b = 1.0 / T, shift = pair.noisy_max * b;
  const stats_kernels::ExpSumAndGap sums =
      stats_kernels::exp_sum_and_gap(kernel_path(), pair.noisy.data(), pair.clean.data(), pair.clean_p.data(),
                                     static_cast<int64_t>(pair.noisy.size()), b, shift);
  const double lse_gap = (shift + std::log(sums.exp_sum)) - pair.clean_lse;
  return sums.gap + lse_gap * pair.clean_p_sum;
}

double TemperatureObjective::p_correct(size_t pair_index, double T) const {
  check_pair(pair_index, T);
  const Pair& pair = pairs_[pair_index];
  return stats_kernels::exp(pair.noisy[pair.clean_argmax] / T - noisy_lse(pair, T));
}

double TemperatureObjective::mean_kl(double T) const {
  if (pairs_.empty()) throw Error("stats: mean KL of an empty TemperatureObjective");
  double sum = 0;
  for (size_t i = 0; i < pairs_.size(); ++i) sum += kl(i, T);
  return sum / static_cast<double>(pairs_.size());
}

double TemperatureObjective::mean_p_correct(double T) const {
  if (pairs_.empty()) throw Error("stats: mean p_correct of an empty TemperatureObjective");
  double sum = 0;
  for (size_t i = 0; i < pairs_.size(); ++i) sum += p_correct(i, T);
  return sum / static_cast<double>(pairs_.size());
}

double TemperatureObjective::p_token(size_t pair_index, int64_t token, double T) const {
  check_pair(pair_index, T);
  const Pair& pair = pairs_[pair_index];
  if (token < 0 || token >= static_cast<int64_t>(pair.noisy.size()))
    throw Error("stats: token " + std::to_string(token) + " outside the vocabulary");
  return stats_kernels::exp(pair.noisy[static_cast<size_t>(token)] / T - noisy_lse(pair, T));
}

bool TemperatureObjective::noisy_argmax_is(size_t pair, int64_t token) const {
  check_pair(pair, 1.0);
  return noise_[pair].noisy_argmax == token;
}

bool TemperatureObjective::clean_argmax_is(size_t pair, int64_t token) const {
  check_pair(pair, 1.0);
  return noise_[pair].clean_argmax == token;
}

std::pair<double, double> TemperatureObjective::slope_and_curvature(size_t pair, double T) const {
  check_pair(pair, T);
  return slope_terms(pairs_[pair], T);
}

std::pair<double, double> TemperatureObjective::slope_terms(const Pair& pair, double T) const {
  return shift_and_variance({pair.slope_center, pair.clean_offset}, pair.noisy, pair.noisy_max, T);
}

// d/db mean KL(b) = mean (E_q[y] - E_p[y]), d^2/db^2 = mean Var_q(y) >= 0, b = 1/T. Newton from b = 1
// converges in a few steps; a step leaving the bracket [b(hi), b(lo)] (kept with the slope's signs)
// is replaced by bisection.
TempSearch TemperatureObjective::best_temperature(double lo, double hi, const std::vector<size_t>& chosen) const {
  if (!(lo > 0 && lo < 1 && hi > 1 && std::isfinite(hi)))
    throw Error("stats: temperature search needs 0 < lo < 1 < hi, got [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "]");
  std::vector<size_t> pairs = chosen;
  if (pairs.empty())
    for (size_t i = 0; i < pairs_.size(); ++i) pairs.push_back(i);
  for (size_t i : pairs)
    if (i >= pairs_.size()) throw Error("stats: pair " + std::to_string(i) + " of " + std::to_string(pairs_.size()));
  if (pairs.empty()) throw Error("stats: best temperature of an empty TemperatureObjective");
  TempSearch out;
  out.lo = lo, out.hi = hi;
  auto slope = [&](double b) {
    ++out.evaluations;
    double g = 0, h = 0;
    for (size_t i : pairs) {
      const auto [shift, var_q] = slope_terms(pairs_[i], 1.0 / b);
      g += shift;
      h += var_q;
    }
    return std::pair<double, double>{g, h};
  };
  auto mean_kl_of = [&](double T) {
    double sum = 0;
    for (size_t i : pairs) sum += kl(i, T);
    return sum / static_cast<double>(pairs.size());
  };
  double b_lo = 1.0 / hi, b_hi = 1.0 / lo;  // slope(b_lo) < 0 < slope(b_hi) when the optimum is inside
  double b = 1.0;
  auto [g, h] = slope(b);
  double step = 0;
  for (int iter = 0; iter < 200 && g != 0; ++iter) {
    (g < 0 ? b_lo : b_hi) = b;
    double next = h > 0 ? b - g / h : 0.5 * (b_lo + b_hi);
    if (!(next > b_lo && next < b_hi)) next = 0.5 * (b_lo + b_hi);
    step = next - b;
    b = next;
    std::tie(g, h) = slope(b);
    if (std::abs(step) <= 4 * std::numeric_limits<double>::epsilon() * b) break;
    if (b_hi - b_lo <= 4 * std::numeric_limits<double>::epsilon() * b) break;
  }
  out.T = 1.0 / b;
  out.resolution = std::abs(1.0 / (b - step) - out.T);
  out.objective = mean_kl_of(out.T);
  const double at_one = mean_kl_of(1.0);
  if (at_one <= out.objective) {
    out.resolution = std::max(out.resolution, std::abs(out.T - 1.0));
    out.T = 1.0, out.objective = at_one;
  }
  // The root was never bracketed on one side: the minimum over [lo, hi] is on that bound.
  const double tiny = 1e-12;
  if (out.T >= hi * (1 - tiny)) out.T = hi, out.objective = mean_kl_of(hi), out.at_boundary = true;
  if (out.T <= lo * (1 + tiny)) out.T = lo, out.objective = mean_kl_of(lo), out.at_boundary = true;
  return out;
}

// ---- 1-D minimisation --------------------------------------------------------------------------

// Brent (1973): keep the bracket [a, b], the best point x and the two previous best w, v; try the
// parabola through x, w, v and fall back to a golden-section step whenever the parabola's step is
// not inside the bracket or not at most half the step before last (which guarantees progress).
Minimum minimize_brent(const std::function<double(double)>& f, double lo, double hi, double tol) {
  if (!(lo < hi) || !(tol > 0)) throw Error("stats: minimize_brent needs lo < hi and tol > 0");
  const double golden = 0.5 * (3.0 - std::sqrt(5.0));
  const double relative = std::sqrt(std::numeric_limits<double>::epsilon());
  Minimum result;
  auto eval = [&](double at) {
    ++result.evaluations;
    const double value = f(at);
    if (std::isnan(value)) throw Error("stats: objective is NaN at " + std::to_string(at));
    return value;
  };
  double a = lo, b = hi;
  double x = a + golden * (b - a), w = x, v = x;
  double fx = eval(x), fw = fx, fv = fx;
  double step = 0, step_before = 0;
  for (int iter = 0; iter < 1000; ++iter) {
    const double mid = 0.5 * (a + b);
    const double tol1 = relative * std::abs(x) + tol / 3.0;
    const double tol2 = 2.0 * tol1;
    if (std::abs(x - mid) <= tol2 - 0.5 * (b - a)) break;
    bool parabolic = false;
    if (std::abs(step_before) > tol1) {
      const double r = (x - w) * (fx - fv);
      double q = (x - v) * (fx - fw);
      double p = (x - v) * q - (x - w) * r;
      q = 2.0 * (q - r);
      if (q > 0) p = -p;
      q = std::abs(q);
      if (std::abs(p) < std::abs(0.5 * q * step_before) && p > q * (a - x) && p < q * (b - x)) {
        step_before = step;
        step = p / q;
        const double u = x + step;
        if (u - a < tol2 || b - u < tol2) step = mid > x ? tol1 : -tol1;  // don't probe the ends
        parabolic = true;
      }
    }
    if (!parabolic) {
      step_before = (x >= mid ? a : b) - x;
      step = golden * step_before;
    }
    const double u = x + (std::abs(step) >= tol1 ? step : (step > 0 ? tol1 : -tol1));
    const double fu = eval(u);
    if (fu <= fx) {
      (u >= x ? a : b) = x;
      v = w, fv = fw, w = x, fw = fx, x = u, fx = fu;
    } else {
      (u < x ? a : b) = u;
      if (fu <= fw || w == x) {
        v = w, fv = fw, w = u, fw = fu;
      } else if (fu <= fv || v == x || v == w) {
        v = u, fv = fu;
      }
    }
  }
  // The interior search never evaluates the ends; a minimum on an end shows up as x within tol of it.
  const double f_lo = eval(lo), f_hi = eval(hi);
  result.x = x;
  result.value = fx;
  if (f_lo <= fx && f_lo <= f_hi) {
    result.x = lo, result.value = f_lo;
  } else if (f_hi <= fx) {
    result.x = hi, result.value = f_hi;
  }
  result.at_boundary = result.x - lo <= tol || hi - result.x <= tol;
  return result;
}

TempSearch best_temperature(const std::function<double(double)>& objective, double lo, double hi,
                            double tol) {
  if (!(lo > 0)) throw Error("stats: temperature search needs lo > 0, got " + std::to_string(lo));
  const Minimum m = minimize_brent(objective, lo, hi, tol);
  TempSearch out;
  out.T = m.x;
  out.objective = m.value;
  out.at_boundary = m.at_boundary;
  out.lo = lo;
  out.hi = hi;
  out.evaluations = m.evaluations;
  out.resolution = tol;
  return out;
}

std::vector<double> grid(double lo, double hi, double step) {
  if (!(step > 0) || !(hi >= lo)) throw Error("stats: grid needs step > 0 and hi >= lo");
  const double intervals = (hi - lo) / step;
  const long long count = std::llround(intervals);
  if (std::abs(intervals - static_cast<double>(count)) > 1e-6)
    throw Error("stats: grid: (hi - lo) is not a whole number of steps");
  std::vector<double> points;
  for (long long k = 0; k <= count; ++k) points.push_back(lo + static_cast<double>(k) * step);
  return points;
}

std::vector<double> notebook_temperature_grid() { return grid(0.80, 1.48, 0.02); }

GridScan scan_grid(const std::function<double(double)>& objective, const std::vector<double>& points) {
  if (points.empty()) throw Error("stats: scan_grid of an empty grid");
  GridScan scan;
  scan.points = points;
  for (double T : points) scan.values.push_back(objective(T));
  scan.best_index = std::min_element(scan.values.begin(), scan.values.end()) - scan.values.begin();
  scan.at_boundary = scan.best_index == 0 || scan.best_index + 1 == points.size();
  return scan;
}

// ---- Comparing predictors ----------------------------------------------------------------------

TemperatureReport report_temperature(const TemperatureObjective& objective, double lo, double hi) {
  if (objective.size() == 0) throw Error("stats: report_temperature of an empty TemperatureObjective");
  TemperatureReport report;
  report.best = objective.best_temperature(lo, hi);
  report.kl_at_1 = objective.mean_kl(1.0);
  report.kl_at_best = report.best.objective;
  report.p_correct_at_1 = objective.mean_p_correct(1.0);
  report.p_correct_at_best = objective.mean_p_correct(report.best.T);
  std::vector<double> alphas;
  for (const LogitNoise& m : objective.noise()) alphas.push_back(m.alpha);
  report.mean_alpha = mean_of(alphas);
  for (size_t i = 0; i < objective.size(); ++i) report.pair_best_T.push_back(objective.best_temperature(lo, hi, {i}).T);
  for (const Predictor& predictor : predictors()) {
    PredictorError out{predictor.key, predictor.formula, predictor.pooled(objective.noise()), 0, {}, 0, 0};
    out.error = out.value - report.best.T;
    double sum = 0, sum_sq = 0;
    for (size_t i = 0; i < objective.size(); ++i) {
      out.pair_values.push_back(predictor.predict(objective.noise()[i]));
      const double e = out.pair_values.back() - report.pair_best_T[i];
      sum += e;
      sum_sq += e * e;
    }
    out.pair_mean_error = sum / static_cast<double>(objective.size());
    out.pair_rms_error = std::sqrt(sum_sq / static_cast<double>(objective.size()));
    report.predictions.push_back(std::move(out));
  }
  return report;
}

// ---- Across seeds and prompts ------------------------------------------------------------------

double student_t_cdf(double t, double df) {
  if (!(df > 0)) throw Error("stats: Student t needs df > 0");
  const double tail = 0.5 * regularized_incomplete_beta(0.5 * df, 0.5, df / (df + t * t));
  return t >= 0 ? 1.0 - tail : tail;
}

double student_t_quantile(double p, double df) {
  if (!(p > 0 && p < 1)) throw Error("stats: Student t quantile needs 0 < p < 1");
  if (p < 0.5) return -student_t_quantile(1.0 - p, df);
  double lo = 0.0, hi = 1.0;
  while (student_t_cdf(hi, df) < p) {
    lo = hi;
    hi *= 2.0;
    if (hi > 1e300) throw Error("stats: Student t quantile out of range");
  }
  // The CDF is monotone, so bisection converges to full double precision.
  for (int iter = 0; iter < 2000 && hi - lo > 1e-15 * hi; ++iter) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, df) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

Interval t_interval(const std::vector<double>& values, double level) {
  if (values.empty()) throw Error("stats: t_interval of no values");
  if (!(level > 0 && level < 1)) throw Error("stats: interval level must be in (0, 1)");
  Interval out{mean_of(values), kNaN, kNaN, values.size()};
  if (values.size() < 2) return out;
  const double n = static_cast<double>(values.size());
  const double sample_std = std::sqrt(squared_deviations(values) / (n - 1.0));
  const double half = student_t_quantile(0.5 * (1.0 + level), n - 1.0) * sample_std / std::sqrt(n);
  out.lo = out.mean - half;
  out.hi = out.mean + half;
  return out;
}

Interval bootstrap_interval(const std::vector<double>& values, double level, int resamples,
                            uint64_t seed) {
  if (values.empty()) throw Error("stats: bootstrap_interval of no values");
  if (!(level > 0 && level < 1) || resamples < 2)
    throw Error("stats: bootstrap needs a level in (0, 1) and at least 2 resamples");
  Interval out{mean_of(values), kNaN, kNaN, values.size()};
  if (values.size() < 2) return out;
  std::mt19937_64 rng(seed);
  std::vector<double> means;
  means.reserve(resamples);
  for (int r = 0; r < resamples; ++r) {
    double sum = 0;
    for (size_t i = 0; i < values.size(); ++i) sum += values[uniform_index(rng, values.size())];
    means.push_back(sum / static_cast<double>(values.size()));
  }
  std::sort(means.begin(), means.end());
  out.lo = sorted_quantile(means, 0.5 * (1.0 - level));
  out.hi = sorted_quantile(means, 0.5 * (1.0 + level));
  return out;
}

std::vector<std::vector<size_t>> bootstrap_resamples(size_t n, int resamples, uint64_t seed) {
  if (n == 0 || resamples < 1) throw Error("stats: bootstrap_resamples needs n >= 1 and resamples >= 1");
  std::mt19937_64 rng(seed);
  std::vector<std::vector<size_t>> out(static_cast<size_t>(resamples), std::vector<size_t>(n));
  for (auto& draw : out)
    for (auto& index : draw) index = uniform_index(rng, n);
  return out;
}

namespace {
Interval percentile_interval(std::vector<double> values, double mean) {
  std::sort(values.begin(), values.end());
  return {mean, sorted_quantile(values, 0.025), sorted_quantile(values, 0.975), values.size()};
}
}  // namespace

ClusterBootstrap cluster_bootstrap(const TemperatureObjective& objective, size_t seeds, size_t prompts,
                                   const TempSearch& best, int resamples, uint64_t seed) {
  if (seeds * prompts != objective.size() || seeds == 0)
    throw Error("stats: cluster_bootstrap needs seeds x prompts pairs, got " + std::to_string(objective.size()));
  const size_t n = objective.size();
  const double b_best = 1.0 / best.T;
  std::vector<double> g(n), h(n), kl_best(n), kl_one(n), alpha(n);
  for (size_t k = 0; k < n; ++k) {
    std::tie(g[k], h[k]) = objective.slope_and_curvature(k, best.T);
    kl_best[k] = objective.kl(k, best.T);
    kl_one[k] = objective.kl(k, 1.0);
    alpha[k] = objective.noise()[k].alpha;
  }
  const auto list = predictors();
  std::mt19937_64 rng(seed);
  std::vector<double> T_draws, alpha_draws, reduction_draws;
  std::vector<std::vector<double>> error_draws(list.size());
  for (int r = 0; r < resamples; ++r) {
    std::vector<size_t> drawn_seeds(seeds), drawn_prompts(prompts);
    for (auto& d : drawn_seeds) d = uniform_index(rng, seeds);
    for (auto& d : drawn_prompts) d = uniform_index(rng, prompts);
    double sum_g = 0, sum_h = 0, sum_alpha = 0, sum_one = 0;
    std::vector<double> num(list.size(), 0.0), den(list.size(), 0.0);
    for (size_t s_index : drawn_seeds) {
      for (size_t p_index : drawn_prompts) {
        const size_t k = s_index * prompts + p_index;
        sum_g += g[k], sum_h += h[k], sum_alpha += alpha[k], sum_one += kl_one[k];
        for (size_t i = 0; i < list.size(); ++i) {
          num[i] += list[i].numerator(objective.noise()[k]);
          den[i] += list[i].denominator(objective.noise()[k]);
        }
      }
    }
    const double step = sum_h > 0 ? -sum_g / sum_h : 0.0;
    const double T = std::min(best.hi, std::max(best.lo, 1.0 / (b_best + step)));
    const double delta = 1.0 / T - b_best;
    double sum_kl = 0;
    for (size_t s_index : drawn_seeds)
      for (size_t p_index : drawn_prompts) {
        const size_t k = s_index * prompts + p_index;
        sum_kl += kl_best[k] + g[k] * delta + 0.5 * h[k] * delta * delta;
      }
    T_draws.push_back(T);
    alpha_draws.push_back(sum_alpha / static_cast<double>(seeds * prompts));
    reduction_draws.push_back(sum_one > 0 ? 1.0 - sum_kl / sum_one : 0.0);
    for (size_t i = 0; i < list.size(); ++i) error_draws[i].push_back(list[i].from_ratio(num[i] / den[i]) - T);
  }
  ClusterBootstrap out;
  out.resamples = resamples;
  out.seed = seed;
  out.best_T = percentile_interval(T_draws, best.T);
  out.alpha = percentile_interval(alpha_draws, mean_of(alpha));
  double full_one = 0;
  for (double v : kl_one) full_one += v;
  out.kl_reduction = percentile_interval(reduction_draws, full_one > 0 ? 1.0 - best.objective * n / full_one : 0.0);
  for (size_t i = 0; i < list.size(); ++i) {
    out.predictor_error.push_back(percentile_interval(error_draws[i], list[i].pooled(objective.noise()) - best.T));
  }
  return out;
}

Spread spread(const std::vector<double>& values) {
  if (values.empty()) throw Error("stats: spread of no values");
  Spread s;
  s.n = values.size();
  s.mean = mean_of(values);
  s.std = std::sqrt(squared_deviations(values) / static_cast<double>(values.size()));
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  return s;
}

// ---- Trends --------------------------------------------------------------------------------------

LinearFit fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2) throw Error("stats: fit_line needs >= 2 (x, y) points");
  const double mx = mean_of(x), my = mean_of(y);
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
  }
  if (!(sxx > 0)) throw Error("stats: fit_line needs at least two distinct x values");
  LinearFit fit;
  fit.slope = sxy / sxx;
  fit.intercept = my - fit.slope * mx;
  return fit;
}

LinearFit fit_line(const std::vector<double>& y) {
  std::vector<double> steps(y.size());
  for (size_t i = 0; i < y.size(); ++i) steps[i] = static_cast<double>(i);
  return fit_line(steps, y);
}

ScheduleFit fit_schedule(const std::vector<double>& best_T, double beta_max) {
  if (best_T.size() < 2) throw Error("stats: fit_schedule needs at least 2 steps");
  if (!(beta_max > 0)) throw Error("stats: fit_schedule needs beta_max > 0");
  // For a fixed beta, T_max minimising sum (T_t - T_max g_t)^2 is sum T_t g_t / sum g_t^2.
  auto t_max_for = [&](double beta) {
    double num = 0, den = 0;
    for (size_t t = 0; t < best_T.size(); ++t) {
      const double g = 1.0 / std::sqrt(1.0 + beta * static_cast<double>(t));
      num += best_T[t] * g;
      den += g * g;
    }
    return num / den;
  };
  auto squared_error = [&](double beta) {
    const double t_max = t_max_for(beta);
    double sum = 0;
    for (size_t t = 0; t < best_T.size(); ++t) {
      const double r = best_T[t] - t_max / std::sqrt(1.0 + beta * static_cast<double>(t));
      sum += r * r;
    }
    return sum;
  };
  const Minimum m = minimize_brent(squared_error, 0.0, beta_max, 1e-8);
  ScheduleFit fit;
  fit.beta = m.x;
  fit.T_max = t_max_for(m.x);
  fit.rms_error = std::sqrt(m.value / static_cast<double>(best_T.size()));
  fit.at_boundary = m.at_boundary;
  return fit;
}

NestedFTest schedule_vs_constant(const std::vector<double>& best_T, const ScheduleFit& fit) {
  const size_t n = best_T.size();
  if (n < 3) throw Error("stats: schedule_vs_constant needs at least 3 steps");
  const double mean = mean_of(best_T);
  double rss_constant = 0;
  for (double T : best_T) rss_constant += (T - mean) * (T - mean);
  const double rss_schedule = fit.rms_error * fit.rms_error * static_cast<double>(n);
  NestedFTest out;
  if (!(rss_schedule > 0)) {
    out.F = rss_constant > 0 ? std::numeric_limits<double>::infinity() : 0.0;
    out.p = rss_constant > 0 ? 0.0 : 1.0;
    return out;
  }
  const double df = static_cast<double>(n - 2);
  out.F = std::max(0.0, (rss_constant - rss_schedule) / (rss_schedule / df));
  out.p = 2.0 * (1.0 - student_t_cdf(std::sqrt(out.F), df));
  return out;
}

std::map<std::string, double> report_counters(const TemperatureReport& report) {
  std::map<std::string, double> counters = {
      {"alpha", report.mean_alpha},
      {"best_T", report.best.T},
      {"best_T_at_boundary", report.best.at_boundary ? 1.0 : 0.0},
      {"best_T_resolution", report.best.resolution},
      {"kl_T1", report.kl_at_1},
      {"kl_best", report.kl_at_best},
      {"kl_reduction", report.kl_at_1 > 0 ? 1.0 - report.kl_at_best / report.kl_at_1 : 0.0},
      {"p_correct_T1", report.p_correct_at_1},
      {"p_correct_best", report.p_correct_at_best}};
  for (const auto& prediction : report.predictions) {
    counters["T_" + prediction.key] = prediction.value;
    counters["err_" + prediction.key] = prediction.error;
    counters["pair_bias_" + prediction.key] = prediction.pair_mean_error;
    counters["pair_rms_" + prediction.key] = prediction.pair_rms_error;
  }
  return counters;
}

}  // namespace tstar::stats
