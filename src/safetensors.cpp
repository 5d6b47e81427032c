// Memory-mapped safetensors files, sharded checkpoints and the atomic writer.
#include "tstar/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <set>
#include <utility>

#include "tstar/error.h"
#include "json_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; so must the host be");

namespace tstar {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSingleFileName = "model.safetensors";
constexpr const char* kIndexFileName = "model.safetensors.index.json";

std::string errno_text() { return std::strerror(errno); }

// Closes a POSIX descriptor on every path out of a function.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

void require_regular_file(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) throw Error(fmt::format("{}: no such file", path.string()));
  if (fs::is_directory(status)) throw Error(fmt::format("{}: is a directory, expected a .safetensors file", path.string()));
  if (!fs::is_regular_file(status)) throw Error(fmt::format("{}: not a regular file", path.string()));
}

}  // namespace

// ---------------------------------------------------------------- SafetensorsFile

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const fs::path& path) {
  require_regular_file(path);
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Error(fmt::format("{}: cannot open: {}", path.string(), errno_text()));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error(fmt::format("{}: cannot stat: {}", path.string(), errno_text()));

  // Owned by the shared_ptr from here on, so the destructor unmaps if parsing throws.
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<uint64_t>(st.st_size);
  static const uint8_t kNoBytes[1] = {0};  // mmap refuses length 0; the parser then rejects the size
  if (file->size_ > 0) {
    void* map = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (map == MAP_FAILED) throw Error(fmt::format("{}: cannot mmap: {}", path.string(), errno_text()));
    file->map_ = static_cast<const uint8_t*>(map);
  }
  file->header_ = parse_safetensors(file->map_ ? file->map_ : kNoBytes, file->size_, path.string());
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto& tensors = header_.tensors;
  const auto it = std::find_if(tensors.begin(), tensors.end(), [&](const TensorInfo& t) { return t.name == name; });
  return it == tensors.end() ? nullptr : &*it;
}

torch::Tensor SafetensorsFile::view(const TensorInfo& info) const {
  // `info` must come from this file's header: its offsets were validated against this mapping.
  TSTAR_CHECK(info.begin <= info.end && info.end <= size_ - header_.data_start);
  void* data = const_cast<uint8_t*>(map_ + header_.data_start + info.begin);
  // The deleter owns a reference to the file: the mapping outlives every view of it.
  auto keep_alive = shared_from_this();
  return torch::from_blob(data, info.shape, [keep_alive](void*) {}, torch::TensorOptions().dtype(info.dtype));
}

torch::Tensor SafetensorsFile::load(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (!info) throw Error(fmt::format("{}: no tensor named '{}'", path_.string(), name));
  return view(*info).clone();
}

// ---------------------------------------------------------------- Checkpoint

namespace {

struct ShardIndex {
  fs::path path;
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
};

ShardIndex read_shard_index(const fs::path& path) {
  const nlohmann::json index = read_json_file(path);
  const std::string origin = path.string();
  if (!index.is_object()) throw Error(fmt::format("{}: index is not a JSON object", origin));
  if (index.contains("metadata") && !index["metadata"].is_object() && !index["metadata"].is_null()) {
    throw Error(fmt::format("{}: 'metadata' must be a JSON object", origin));
  }
  if (!index.contains("weight_map")) throw Error(fmt::format("{}: missing key 'weight_map'", origin));
  const auto& weight_map = index["weight_map"];
  if (!weight_map.is_object()) throw Error(fmt::format("{}: 'weight_map' must be a JSON object", origin));
  ShardIndex parsed{path, {}};
  for (const auto& item : weight_map.items()) {
    if (!item.value().is_string()) {
      throw Error(fmt::format("{}: weight_map entry for tensor '{}' must be a file name string", origin, item.key()));
    }
    const std::string shard = item.value().get<std::string>();
    // Shards live in the checkpoint directory itself; a path would let the index reach elsewhere.
    if (shard.empty() || fs::path(shard).filename() != fs::path(shard) || shard == "." || shard == "..") {
      throw Error(fmt::format("{}: weight_map names '{}' for tensor '{}', which is not a plain file name", origin,
                              shard, item.key()));
    }
    parsed.weight_map.emplace(item.key(), shard);
  }
  return parsed;
}

struct OpenedShards {
  std::vector<std::shared_ptr<const SafetensorsFile>> files;
  std::map<std::string, Checkpoint::Entry> entries;
};

OpenedShards open_shards(const ShardIndex& index) {
  OpenedShards opened;
  const std::string origin = index.path.string();
  const fs::path dir = index.path.parent_path();
  std::map<std::string, const SafetensorsFile*> shard_by_name;
  for (const auto& [tensor, shard] : index.weight_map) {
    if (shard_by_name.count(shard)) continue;
    if (!fs::exists(dir / shard)) {
      throw Error(fmt::format("{}: shard '{}' (listed for tensor '{}') does not exist in {}", origin, shard, tensor,
                              dir.string()));
    }
    opened.files.push_back(SafetensorsFile::open(dir / shard));
    shard_by_name.emplace(shard, opened.files.back().get());
  }
  // Every tensor stored in a shard must be listed, and listed for that shard only.
  std::map<std::string, const SafetensorsFile*> holder;
  for (const auto& file : opened.files) {
    for (const auto& info : file->tensors()) {
      const auto [it, inserted] = holder.emplace(info.name, file.get());
      if (!inserted) {
        throw Error(fmt::format("{}: tensor '{}' is stored in both shard {} and shard {}", origin, info.name,
                                it->second->path().filename().string(), file->path().filename().string()));
      }
      if (!index.weight_map.count(info.name)) {
        throw Error(fmt::format("{}: shard {} holds tensor '{}', which the weight_map does not list", origin,
                                file->path().filename().string(), info.name));
      }
    }
  }
  for (const auto& [tensor, shard] : index.weight_map) {
    const SafetensorsFile* file = shard_by_name.at(shard);
    const TensorInfo* info = file->find(tensor);
    if (!info) {
      throw Error(fmt::format("{}: weight_map puts tensor '{}' in shard '{}', which does not contain it", origin,
                              tensor, shard));
    }
    opened.entries.emplace(tensor, Checkpoint::Entry{file, info});
  }
  return opened;
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& dir) {
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (!fs::exists(status)) throw Error(fmt::format("checkpoint directory {} does not exist", dir.string()));
  if (!fs::is_directory(status)) throw Error(fmt::format("checkpoint path {} is not a directory", dir.string()));

  // Same preference as transformers: the single file first, then the sharded index.
  Checkpoint checkpoint;
  if (fs::exists(dir / kSingleFileName)) {
    checkpoint.files_.push_back(SafetensorsFile::open(dir / kSingleFileName));
    for (const auto& info : checkpoint.files_[0]->tensors()) {
      checkpoint.entries_.emplace(info.name, Entry{checkpoint.files_[0].get(), &info});
    }
    return checkpoint;
  }
  if (!fs::exists(dir / kIndexFileName)) {
    throw Error(fmt::format("checkpoint directory {} holds neither {} nor {}", dir.string(), kSingleFileName,
                            kIndexFileName));
  }
  OpenedShards shards = open_shards(read_shard_index(dir / kIndexFileName));
  checkpoint.files_ = std::move(shards.files);
  checkpoint.entries_ = std::move(shards.entries);
  return checkpoint;
}

const Checkpoint::Entry* Checkpoint::find(const std::string& name) const {
  const auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<fs::path> Checkpoint::files() const {
  std::vector<fs::path> paths;
  for (const auto& file : files_) paths.push_back(file->path());
  return paths;
}

// ---------------------------------------------------------------- writer

namespace {

struct PendingTensor {
  std::string name;
  torch::Tensor data;  // contiguous CPU
  std::string dtype;
  uint64_t item_size = 0;
};

std::vector<PendingTensor> prepare_tensors(const fs::path& path,
                                           const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::vector<PendingTensor> pending;
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw Error(fmt::format("{}: '__metadata__' is not a valid tensor name", path.string()));
    if (!names.insert(name).second) throw Error(fmt::format("{}: tensor '{}' given twice", path.string(), name));
    const std::string dtype = safetensors_dtype_name(tensor.scalar_type());
    if (dtype.empty()) {
      throw Error(fmt::format("{}: tensor '{}' has dtype {}, which safetensors writing here does not support",
                              path.string(), name, c10::toString(tensor.scalar_type())));
    }
    pending.push_back({name, tensor.to(torch::kCPU).contiguous(), dtype, safetensors_dtype_size(tensor.scalar_type())});
  }
  // The reference writer's order: widest dtype first, then by name, so that every tensor starts
  // at a multiple of its element size (the data region itself starts 8-byte aligned).
  std::stable_sort(pending.begin(), pending.end(), [](const PendingTensor& a, const PendingTensor& b) {
    return a.item_size != b.item_size ? a.item_size > b.item_size : a.name < b.name;
  });
  return pending;
}

std::string build_header(const std::vector<PendingTensor>& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(t.data.numel()) * t.item_size;
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.data.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data region 8-byte aligned
  return text;
}

void write_all(int fd, const void* data, size_t size, const fs::path& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(fmt::format("{}: write failed: {}", path.string(), errno_text()));
    p += n;
    size -= static_cast<size_t>(n);
  }
}

// A fresh temporary file next to `path` (same file system, so rename is atomic).
std::pair<int, fs::path> create_temporary(const fs::path& path) {
  std::random_device entropy;
  for (int attempt = 0; attempt < 16; ++attempt) {
    fs::path candidate = path;
    candidate += fmt::format(".tmp-{}-{:08x}", ::getpid(), entropy());
    const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return {fd, candidate};
    if (errno != EEXIST) throw Error(fmt::format("{}: cannot create {}: {}", path.string(), candidate.string(), errno_text()));
  }
  throw Error(fmt::format("{}: cannot find a free temporary file name", path.string()));
}

}  // namespace

void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::vector<PendingTensor> pending = prepare_tensors(path, tensors);
  const std::string header = build_header(pending, metadata);

  auto [raw_fd, temporary] = create_temporary(path);
  FileDescriptor fd(raw_fd);
  try {
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
    write_all(fd.get(), length, sizeof length, temporary);
    write_all(fd.get(), header.data(), header.size(), temporary);
    for (const auto& t : pending) {
      write_all(fd.get(), t.data.data_ptr(), static_cast<size_t>(t.data.numel()) * t.item_size, temporary);
    }
    if (::fsync(fd.get()) != 0) throw Error(fmt::format("{}: fsync failed: {}", temporary.string(), errno_text()));
    if (::close(fd.release()) != 0) throw Error(fmt::format("{}: close failed: {}", temporary.string(), errno_text()));
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
      throw Error(fmt::format("{}: cannot rename {} into place: {}", path.string(), temporary.string(), errno_text()));
    }
  } catch (...) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
}

}  // namespace tstar
