// The CPU noise kernels path by path: every vector path this CPU runs (AVX2, AVX-512), forced with
// generate_with / apply_bf16_with / apply_f32_with, gives the portable path's bits, and dispatch
// never picks a path the CPU lacks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "tstar/noise_kernels.h"

namespace tstar {
namespace {

using noise_kernels::KernelPath;

// The vector paths this CPU runs (none on a CPU without AVX2: the tests then skip).
std::vector<KernelPath> vector_paths() {
  std::vector<KernelPath> paths;
  for (KernelPath path : {KernelPath::kAvx2, KernelPath::kAvx512}) {
    if (noise_kernels::cpu_runs(path)) paths.push_back(path);
  }
  return paths;
}

std::vector<float> generated(KernelPath path, philox::Kind kind, uint64_t seed, uint64_t first, int64_t count) {
  std::vector<float> out(count);
  noise_kernels::generate_with(path, kind, seed, first, count, out.data());
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Starts (multiples of 4) that are not multiples of a vector path's 8 or 16 blocks, one whose lead
// crosses a b >> 16 boundary (2^18 elements), and one far along the stream; counts that leave a
// lead, a tail, a partial block or no whole vector step at all.
TEST(NoiseKernels, EveryPathGeneratesThePortableBits) {
  const std::vector<KernelPath> paths = vector_paths();
  if (paths.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  for (auto kind : {philox::Kind::kGaussian, philox::Kind::kUniform, philox::Kind::kLaplace}) {
    for (uint64_t seed : {0ull, 99ull, 0xDEADBEEFCAFEF00Dull, 0xFFFFFFFFFFFFFFFFull}) {
      for (uint64_t first : {0ull, 4ull, 28ull, 60ull, (1ull << 18) - 4, 262136ull, (1ull << 34) + 12}) {
        for (int64_t count : {0, 1, 3, 7, 31, 33, 63, 65, 129, 70001}) {
          const std::vector<float> portable = generated(KernelPath::kPortable, kind, seed, first, count);
          for (KernelPath path : paths) {
            EXPECT_TRUE(same_bits(generated(path, kind, seed, first, count), portable))
                << noise_kernels::path_name(path) << " kind " << static_cast<int>(kind) << " seed " << seed
                << " first " << first << " count " << count;
          }
        }
      }
    }
  }
}

// Clean bf16 weights around 1, with the special values the rounding must carry through: NaN (stays
// 0x7FC0), infinities (inf + noise, and inf - inf = NaN in multiplicative mode), zeros, a subnormal.
std::vector<uint16_t> clean_weights(int64_t count) {
  std::vector<float> z(count);
  noise_kernels::generate_with(KernelPath::kPortable, philox::Kind::kGaussian, 7, 0, count, z.data());
  std::vector<uint16_t> clean(count);
  for (int64_t i = 0; i < count; ++i) clean[i] = noise_kernels::float_to_bf16(z[i]);
  const uint16_t specials[] = {0x7FC0, 0x7F80, 0xFF80, 0x0000, 0x8000, 0x0001};
  for (int64_t k = 0; k < 6 && 3 * k < count; ++k) clean[3 * k] = specials[k];
  return clean;
}

struct Applied {
  std::vector<uint16_t> live;
  noise_kernels::ApplyStats stats;
};

// The pass over elements [offset, offset + count): an odd offset leaves every vector load unaligned.
Applied applied(KernelPath path, const std::vector<uint16_t>& clean, const std::vector<float>& z, int64_t offset,
                int64_t count, float mult, noise_kernels::Mode mode) {
  Applied result;
  result.live.assign(count, 0xFFFF);
  result.stats = noise_kernels::apply_bf16_with(path, clean.data() + offset, result.live.data(), z.data() + offset,
                                                count, mult, mode);
  return result;
}

// Live bytes, changed count and sum of squares (compared as bits: the 16-lane reduction order is
// part of the contract) equal the portable path's, for counts below, at and around 8 and 16.
TEST(NoiseKernels, EveryPathAppliesBf16WithThePortableBitsAndStats) {
  const std::vector<KernelPath> paths = vector_paths();
  if (paths.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t size = 10007 + 1;
  const std::vector<uint16_t> clean = clean_weights(size);
  std::vector<float> z(size);
  noise_kernels::generate_with(KernelPath::kPortable, philox::Kind::kGaussian, 5, 0, size, z.data());
  for (auto mode : {noise_kernels::Mode::kAdditive, noise_kernels::Mode::kMultiplicative}) {
    for (float mult : {0.01f, 1.0f, std::numeric_limits<float>::max()}) {
      for (int64_t offset : {0, 1}) {
        for (int64_t count : {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 10007}) {
          const Applied portable = applied(KernelPath::kPortable, clean, z, offset, count, mult, mode);
          for (KernelPath path : paths) {
            const Applied fast = applied(path, clean, z, offset, count, mult, mode);
            const auto where = ::testing::Message() << noise_kernels::path_name(path) << " mode "
                                                    << static_cast<int>(mode) << " mult " << mult << " offset "
                                                    << offset << " count " << count;
            EXPECT_EQ(fast.live, portable.live) << where;
            EXPECT_EQ(fast.stats.changed, portable.stats.changed) << where;
            EXPECT_EQ(0, std::memcmp(&fast.stats.sum_sq, &portable.stats.sum_sq, sizeof(double)))
                << where << ": " << fast.stats.sum_sq << " vs " << portable.stats.sum_sq;
          }
        }
      }
    }
  }
}

// Clean fp32 weights around 1 with NaN, infinities, signed zeros and the smallest subnormal.
std::vector<float> clean_f32_weights(int64_t count) {
  std::vector<float> clean(count);
  noise_kernels::generate_with(KernelPath::kPortable, philox::Kind::kGaussian, 11, 0, count, clean.data());
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 0.0f, -0.0f,
                            std::numeric_limits<float>::denorm_min()};
  for (int64_t k = 0; k < 6 && 3 * k < count; ++k) clean[3 * k] = specials[k];
  return clean;
}

// The fp32 pass as the bf16 one above: live bits, changed count and the sum of squares as bits.
TEST(NoiseKernels, EveryPathAppliesF32WithThePortableBitsAndStats) {
  const std::vector<KernelPath> paths = vector_paths();
  if (paths.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t size = 10007 + 1;
  const std::vector<float> clean = clean_f32_weights(size);
  std::vector<float> z(size);
  noise_kernels::generate_with(KernelPath::kPortable, philox::Kind::kGaussian, 5, 0, size, z.data());
  auto run = [&](KernelPath path, int64_t offset, int64_t count, float mult, noise_kernels::Mode mode,
                 std::vector<float>& live) {
    live.assign(count, -1.0f);
    return noise_kernels::apply_f32_with(path, clean.data() + offset, live.data(), z.data() + offset, count, mult,
                                         mode);
  };
  for (auto mode : {noise_kernels::Mode::kAdditive, noise_kernels::Mode::kMultiplicative}) {
    for (float mult : {0.0f, 1e-3f, 1.0f, std::numeric_limits<float>::max()}) {
      for (int64_t offset : {0, 1}) {
        for (int64_t count : {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 10007}) {
          std::vector<float> portable_live, fast_live;
          const auto portable = run(KernelPath::kPortable, offset, count, mult, mode, portable_live);
          for (KernelPath path : paths) {
            const auto fast = run(path, offset, count, mult, mode, fast_live);
            const auto where = ::testing::Message() << noise_kernels::path_name(path) << " mode "
                                                    << static_cast<int>(mode) << " mult " << mult << " offset "
                                                    << offset << " count " << count;
            EXPECT_TRUE(same_bits(fast_live, portable_live)) << where;
            EXPECT_EQ(fast.changed, portable.changed) << where;
            EXPECT_EQ(0, std::memcmp(&fast.sum_sq, &portable.sum_sq, sizeof(double)))
                << where << ": " << fast.sum_sq << " vs " << portable.sum_sq;
          }
        }
      }
    }
  }
}

// Without TSTAR_CPU_ISA the dispatch takes the best path the CPU runs; with it, at most the cap,
// and never one the CPU lacks.
TEST(NoiseKernels, SelectedPathIsTheBestTheCpuRuns) {
  const KernelPath selected = noise_kernels::selected_path();
  EXPECT_TRUE(noise_kernels::cpu_runs(selected)) << noise_kernels::path_name(selected);
  KernelPath best = KernelPath::kPortable;
  for (KernelPath path : vector_paths()) best = path;
  if (std::getenv(noise_kernels::kIsaVariable) == nullptr) {
    EXPECT_EQ(noise_kernels::path_name(selected), noise_kernels::path_name(best));
  } else {
    EXPECT_LE(selected, best);
  }
  if (noise_kernels::cpu_runs(KernelPath::kAvx512)) {
    EXPECT_TRUE(noise_kernels::cpu_runs(KernelPath::kAvx2)) << "an AVX-512 CPU should run the AVX2 path too";
  }
}

}  // namespace
}  // namespace tstar
