// bf16 products through oneDNN's matmul primitive, called directly. Debian's libtorch 1.13 sends a
// bf16 linear to the same library and kernel through ideep, and gets the same bits (the test checks
// it), but each call pays ideep's overhead, and oneDNN copies the weight into its kernel's blocked
// layout at every product: ~30% of a 32-row product of Qwen2.5-0.5B's MLP on one core. A weight used
// again and again (a benchmark's forwards, many prompt batches between two injections) can keep
// that layout (PackedWeight), refreshed when the weight changes (PackedWeights).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tstar::onednn_matmul {

// Whether bf16 products can go to oneDNN directly: this build links the oneDNN that its libtorch
// links (Debian's; a PyPI libtorch carries its own, and the option is off there), and oneDNN runs a
// bf16 matmul on this CPU with its brgemm kernel (AVX-512 with bf16 dot products, or AMX).
bool available();
// The kernel oneDNN reports for a bf16 product here ("brg:avx512_core_bf16"), "" where not available().
const std::string& kernel_name();

// A bf16 weight [n, k] reordered into the blocked layout oneDNN's kernel reads.
class PackedWeight {
 public:
  explicit PackedWeight(const torch::Tensor& weight);  // throws tstar::Error where not available()
  int64_t bytes() const;
  struct Layout;  // the oneDNN memory descriptor (onednn_matmul.cpp)
  const Layout& layout() const { return *layout_; }
  void* data() const { return storage_.data_ptr(); }

 private:
  std::shared_ptr<const Layout> layout_;
  torch::Tensor storage_;  // uint8, the layout's bytes
};

// Whether linear() takes these operands: available(), no autograd, all on the CPU, x [..., k] bf16,
// weight [n, k] bf16 contiguous, bias [n] bf16 or undefined.
bool takes(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);
// y = x W^T (+ b) [..., n]: fp32 accumulation, one rounding to bf16 (the bias added before it), what
// torch::linear computes here bit for bit. `packed`, when given, is `weight` packed.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     const PackedWeight* packed = nullptr);

// Packed copies of a model's weights, by slot. A copy costs about three unpacked products' layout
// copying (a pass over the weight), so a weight is packed at its kUnpackedUses + 1-th product since it
// last changed: never more than twice the best choice's cost, and nothing where an injection is
// followed by a single forward (the experiments' usual case). A copy is refreshed when the weight's
// version counter moves (in-place writes; the noise engine moves it too). Not thread-safe: a Model
// is used from one thread at a time.
class PackedWeights {
 public:
  static constexpr int kUnpackedUses = 3;
  // The packed form of `weight` (held in `slot`) for this product, or nullptr: not yet, or a new copy
  // would take the copies past `budget_bytes`.
  const PackedWeight* for_product(size_t slot, const torch::Tensor& weight, int64_t budget_bytes);
  int64_t bytes() const { return bytes_; }

 private:
  struct Entry {
    torch::Tensor source;  // the weight counted (a replaced parameter is a different tensor)
    int64_t version = -1;  // its version counter then
    int uses = 0;          // products at that version
    std::shared_ptr<const PackedWeight> packed;
  };
  std::vector<Entry> entries_;
  int64_t bytes_ = 0;
};

}  // namespace tstar::onednn_matmul
