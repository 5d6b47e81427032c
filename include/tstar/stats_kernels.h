// The vocabulary-wide loops of the statistics (stats.cpp): sums of exp over [V] doubles. Each has a
// portable path (SSE2), an AVX2 path and an AVX-512 path (noise_kernels.h's KernelPath, chosen by the
// same selected_path() and TSTAR_CPU_ISA cap), and every path computes the same bits: the same exp
// (below: IEEE multiplies, adds, a table and bit operations, no fused multiply-add, so no path needs
// FMA hardware), the same operations in the same order, and every sum kept in kLanes lanes (element i
// in lane i % kLanes) added up in one fixed order at the end.
#pragma once

#include <cstdint>

#include "tstar/noise_kernels.h"

namespace tstar::stats_kernels {

using noise_kernels::KernelPath;

inline constexpr int kLanes = 8;

// e^x within 1 ulp (subnormal results included): 0 from about -745.13 down (and for -inf), +inf from
// about 709.79 up, NaN kept. Every path's exp is this one.
double exp(double x);

// sum_i exp(y_i * b - shift): the tempered log-sum-exp's sum (b = 1/T, shift = max(y) * b).
double exp_sum(KernelPath path, const double* y, int64_t n, double b, double shift);

// exp_sum() and, in the same pass, sum_i p_i (z_i - y_i * b): the two sums of KL(softmax(z) ||
// softmax(y * b)).
struct ExpSumAndGap {
  double exp_sum = 0;
  double gap = 0;
};
ExpSumAndGap exp_sum_and_gap(KernelPath path, const double* y, const double* z, const double* p, int64_t n,
                             double b, double shift);

// With e_i = exp(x_i * b - shift) and d_i = y_i - center: sum e_i, sum e_i d_i and sum e_i d_i^2, the
// unnormalised moments of y about `center` under softmax(x * b), from one exp per element (x = y for
// the tempered noisy distribution, x = z, b = 1 for the clean one).
struct TiltedMoments {
  double sum = 0;
  double first = 0;
  double second = 0;
};
TiltedMoments tilted_moments(KernelPath path, const double* x, const double* y, int64_t n, double b, double shift,
                             double center);

// out_i = exp(x_i - shift) (softmax numerators; shift 0 gives exp itself).
void exp_shifted(KernelPath path, const double* x, int64_t n, double shift, double* out);

}  // namespace tstar::stats_kernels
