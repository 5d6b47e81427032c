#include "onednn_matmul.h"

#include <fmt/format.h>

#include "tstar/error.h"

#ifdef TSTAR_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace tstar::onednn_matmul {

#ifdef TSTAR_HAVE_ONEDNN

struct PackedWeight::Layout {
  dnnl::memory::desc desc;
};

namespace {

using dnnl::memory;

// A CPU engine and stream per calling thread: a stream is not to be shared between threads, and
// creating them costs microseconds (the primitives themselves come from oneDNN's process-wide cache).
struct Runtime {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};
Runtime& runtime() {
  thread_local Runtime r;
  return r;
}

memory::desc bf16_matrix(int64_t rows, int64_t cols, memory::format_tag tag) {
  return memory::desc({rows, cols}, memory::data_type::bf16, tag);
}

// The matmul of `rows` rows of x by a weight [n, k] in `weight` layout (plain `ba`: the [k, n] matrix
// oneDNN multiplies by, stored as torch's [n, k]; or a packed layout).
dnnl::matmul::primitive_desc product(int64_t rows, int64_t k, int64_t n, const memory::desc& weight, bool bias) {
  const auto src = bf16_matrix(rows, k, memory::format_tag::ab);
  const auto dst = bf16_matrix(rows, n, memory::format_tag::ab);
  auto desc = bias ? dnnl::matmul::desc(src, weight, bf16_matrix(1, n, memory::format_tag::ab), dst)
                   : dnnl::matmul::desc(src, weight, dst);
  return dnnl::matmul::primitive_desc(desc, runtime().engine);
}

// The rows a weight's layout is chosen for: oneDNN's brgemm blocks the weight by its own shape, not
// by the number of rows (linear() checks the layout a product asks for is the one held).
constexpr int64_t kLayoutRows = 32;

std::string probe_kernel() {
  try {
    const auto pd = product(kLayoutRows, 64, 64, bf16_matrix(64, 64, memory::format_tag::any), false);
    const std::string name = pd.impl_info_str();
    return name.rfind("brg", 0) == 0 ? name : "";
  } catch (const dnnl::error&) {
    return "";  // no bf16 matmul on this CPU
  }
}

}  // namespace

const std::string& kernel_name() {
  static const std::string name = probe_kernel();
  return name;
}

bool available() { return !kernel_name().empty(); }

PackedWeight::PackedWeight(const torch::Tensor& weight) {
  if (!available()) throw Error("oneDNN's bf16 matmul is not available in this build or on this CPU");
  TSTAR_CHECK(weight.dim() == 2 && weight.scalar_type() == torch::kBFloat16 && weight.is_contiguous());
  const int64_t n = weight.size(0), k = weight.size(1);
  const auto pd = product(kLayoutRows, k, n, bf16_matrix(k, n, memory::format_tag::any), false);
  layout_ = std::make_shared<const Layout>(Layout{pd.weights_desc()});
  storage_ = torch::empty({static_cast<int64_t>(layout_->desc.get_size())}, torch::kUInt8);
  memory plain(bf16_matrix(k, n, memory::format_tag::ba), runtime().engine, weight.data_ptr());
  memory packed(layout_->desc, runtime().engine, storage_.data_ptr());
  dnnl::reorder(plain, packed).execute(runtime().stream, plain, packed);
  runtime().stream.wait();
}

int64_t PackedWeight::bytes() const { return storage_.numel(); }

bool takes(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (!available() || (torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad()))) return false;
  if (!x.is_cpu() || x.scalar_type() != torch::kBFloat16 || x.dim() < 1 || x.numel() == 0) return false;
  if (!weight.is_cpu() || weight.scalar_type() != torch::kBFloat16 || weight.dim() != 2 || !weight.is_contiguous() ||
      weight.size(1) != x.size(-1)) {
    return false;
  }
  return !bias.defined() || (bias.is_cpu() && bias.scalar_type() == torch::kBFloat16 && bias.dim() == 1 &&
                             bias.size(0) == weight.size(0));
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     const PackedWeight* packed) {
  TSTAR_CHECK(takes(x, weight, bias));
  const int64_t n = weight.size(0), k = weight.size(1), rows = x.numel() / k;
  const auto input = x.contiguous();
  const auto b = bias.defined() ? bias.contiguous() : bias;
  auto sizes = x.sizes().vec();
  sizes.back() = n;
  auto y = torch::empty(sizes, x.options());
  Runtime& rt = runtime();
  auto weight_desc = packed ? packed->layout().desc : bf16_matrix(k, n, memory::format_tag::ba);
  auto pd = product(rows, k, n, weight_desc, b.defined());
  // A product whose kernel would read another layout than the one packed: the plain weight instead.
  if (packed && pd.weights_desc() != packed->layout().desc) return linear(x, weight, bias, nullptr);
  memory src(bf16_matrix(rows, k, memory::format_tag::ab), rt.engine, input.data_ptr());
  memory weights(weight_desc, rt.engine, packed ? packed->data() : weight.data_ptr());
  memory dst(bf16_matrix(rows, n, memory::format_tag::ab), rt.engine, y.data_ptr());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
  if (b.defined()) args.emplace(DNNL_ARG_BIAS, memory(bf16_matrix(1, n, memory::format_tag::ab), rt.engine, b.data_ptr()));
  dnnl::matmul(pd).execute(rt.stream, args);
  rt.stream.wait();
  return y;
}

#else  // a build without oneDNN's headers, or with a libtorch that carries its own oneDNN

struct PackedWeight::Layout {};

const std::string& kernel_name() {
  static const std::string none;
  return none;
}
bool available() { return false; }
PackedWeight::PackedWeight(const torch::Tensor&) {
  throw Error("oneDNN's bf16 matmul is not available in this build or on this CPU");
}
int64_t PackedWeight::bytes() const { return 0; }
bool takes(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) { return false; }
torch::Tensor linear(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const PackedWeight*) {
  TSTAR_CHECK(false);
  return {};
}

#endif

const PackedWeight* PackedWeights::for_product(size_t slot, const torch::Tensor& weight, int64_t budget_bytes) {
  if (entries_.size() <= slot) entries_.resize(slot + 1);
  Entry& entry = entries_[slot];
  if (!entry.source.is_same(weight) || entry.version != weight._version()) {
    if (entry.packed) bytes_ -= entry.packed->bytes();
    entry = Entry{weight, weight._version(), 0, nullptr};
  }
  if (++entry.uses <= kUnpackedUses) return nullptr;
  if (!entry.packed) {
    const int64_t bytes = weight.numel() * static_cast<int64_t>(sizeof(uint16_t));
    if (bytes_ + bytes > budget_bytes) return nullptr;
    entry.packed = std::make_shared<const PackedWeight>(weight);
    bytes_ += entry.packed->bytes();
  }
  return entry.packed.get();
}

}  // namespace tstar::onednn_matmul
