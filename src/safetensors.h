// Strict safetensors reader/writer.
// Format: 8-byte little-endian header length N, N bytes of JSON header
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}), then the data region.
// Every field is validated: N against the file size, offsets inside the data region, no overlap,
// end - begin == numel * dtype size. Files are memory-mapped read-only.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tstar {

struct TensorInfo {
  std::string name;
  torch::ScalarType dtype;     // kFloat, kHalf, kBFloat16 (plus kLong/kInt for golden files)
  std::vector<int64_t> shape;
  uint64_t begin = 0;          // offsets relative to the start of the data region
  uint64_t end = 0;
};

// Parses and validates a complete safetensors image held in memory (used by the fuzzer and by
// SafetensorsFile). `origin` names the file in error messages. Throws tstar::Error.
struct ParsedHeader {
  std::vector<TensorInfo> tensors;             // sorted by data offset
  std::map<std::string, std::string> metadata; // "__metadata__"
  uint64_t data_start = 0;                     // 8 + header length
};
ParsedHeader parse_safetensors(const uint8_t* bytes, uint64_t size, const std::string& origin);

class SafetensorsFile {
 public:
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  // Zero-copy, read-only view of the mapped bytes; valid while this object lives.
  torch::Tensor view(const TensorInfo& info) const;
  // Owned copy of a tensor (throws naming the file when absent).
  torch::Tensor load(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  ParsedHeader header_;
};

// A checkpoint directory: model.safetensors, or shards listed by model.safetensors.index.json.
class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& dir);
  struct Entry {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  const std::map<std::string, Entry>& tensors() const { return entries_; }
  const Entry* find(const std::string& name) const;
  std::vector<std::filesystem::path> files() const;

 private:
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, Entry> entries_;
};

// Writes tensors (contiguous CPU copies are made) atomically: temporary file + rename.
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace tstar
