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

#include "tstar/safetensors_header.h"  // TensorInfo, ParsedHeader, parse_safetensors

namespace tstar {

// A memory-mapped (read-only) safetensors file. Always owned by a shared_ptr (see open()).
// The file must not be truncated or rewritten in place while mapped (the kernel would raise SIGBUS
// on access); write_safetensors replaces files by rename, which leaves existing mappings intact.
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  // Zero-copy view of the mapped bytes. The mapping is read-only: writing through the view
  // (any in-place op) faults. The view holds a reference to this file, so the mapping stays
  // valid as long as the view (or anything sharing its storage) lives.
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
