// y = x W^T (+ b) for a few bf16 rows (a decode step, a short batch): fp32 accumulation and one
// rounding to bf16, what a bf16 GEMM computes up to summation order. oneDNN 2.6 (Debian's libtorch
// 1.13) reaches ~6 GB/s of weights on one such row, half of what fp32 BLAS streams; these kernels read
// each weight once for all rows, at the memory's pace.
#pragma once

#include <cstdint>
#include <optional>

#include "tstar/compute_profile.h"

namespace tstar::bf16_gemv {

inline constexpr int64_t kMaxRows = 4;  // more rows are a GEMM's work: oneDNN's blocking wins there

// The kernels, by instruction set: kAvx512Bf16 multiplies bf16 pairs (vdpbf16ps), kAvx512 and kAvx2
// widen to fp32 and use FMA (16 or 8 lanes); kPortable is scalar, for tests. The vector kernels sum
// in different orders, so their results may differ in the last bit of bf16 (all are within a bf16
// GEMM's rounding of the exact products).
enum class Kernel { kPortable, kAvx2, kAvx512, kAvx512Bf16 };
bool cpu_runs(Kernel kernel);
const char* kernel_name(Kernel kernel);
// The fastest vector kernel this CPU runs within TSTAR_CPU_ISA's cap (noise_kernels.h), or kPortable
// where none (the caller then keeps its GEMM).
Kernel best_kernel();
// The kernel decode-sized bf16 products take where bf16 products otherwise take `path`: best_kernel()
// on the onednn path (oneDNN 2.6 streams one row's weights at half the memory's pace) and, in the
// native profile, on the fp32_gemm path (a CPU without AVX-512, where decode would otherwise read
// fp32 copies of the weights: twice the bytes); none elsewhere (the reference profile keeps its
// pinned fp32 BLAS). The model's products and the provenance's "bf16_gemv" both ask here.
std::optional<Kernel> kernel_for(Bf16Matmul path, bool native_profile);

// x [rows, k], w [n, k], bias [n] or nullptr, y [rows, n]: contiguous bf16 bits, 1 <= rows <= kMaxRows.
// Splits the n outputs over libtorch's threads; every output is computed alone, so the result does not
// depend on the thread count.
void compute(Kernel kernel, const uint16_t* x, int64_t rows, const uint16_t* w, int64_t n, int64_t k,
             const uint16_t* bias, uint16_t* y);

}  // namespace tstar::bf16_gemv
