#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_io.h"

namespace dsm {

// Read-only mapping of a whole file; unmapped when the last owner goes away.
class MappedFile {
 public:
  static absl::StatusOr<std::shared_ptr<MappedFile>> Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": fstat: ", std::strerror(e)));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
    }
    auto file = std::shared_ptr<MappedFile>(new MappedFile());
    file->size_ = static_cast<uint64_t>(st.st_size);
    if (file->size_ > 0) {
      void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int e = errno;
        ::close(fd);
        return absl::InternalError(absl::StrCat(path, ": mmap: ", std::strerror(e)));
      }
      file->data_ = static_cast<uint8_t*>(p);
    }
    ::close(fd);
    return file;
  }

  ~MappedFile() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

namespace {

// Same bound as the reference implementation: a header over 100 MB is corrupt.
constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

struct DtypeName {
  const char* name;
  torch::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F64", torch::kDouble}, {"F32", torch::kFloat}, {"F16", torch::kHalf},
    {"BF16", torch::kBFloat16}, {"I64", torch::kLong}, {"I32", torch::kInt},
    {"I16", torch::kShort}, {"I8", torch::kChar}, {"U8", torch::kByte},
    {"BOOL", torch::kBool},
};

std::string Dirname(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Parses one header entry into `info`; `what` names it in errors.
absl::Status ParseTensorEntry(const std::string& what, const nlohmann::json& entry,
                              uint64_t data_size, SafetensorsTensorInfo* info) {
  if (!entry.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not an object"));
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": missing string \"dtype\""));
  }
  absl::StatusOr<torch::ScalarType> dtype = SafetensorsDtypeFromName(dtype_it->get<std::string>());
  if (!dtype.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", dtype.status().message()));
  info->dtype = *dtype;
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": missing array \"shape\""));
  }
  uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : *shape_it) {
    if (!d.is_number_unsigned()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": shape entries must be non-negative integers, got ", d.dump()));
    }
    uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
    info->shape.push_back(static_cast<int64_t>(v));
    if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / v) overflow = true;
    numel *= v;
  }
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": \"data_offsets\" must be [begin, end] non-negative integers"));
  }
  info->begin = (*offsets_it)[0].get<uint64_t>();
  info->end = (*offsets_it)[1].get<uint64_t>();
  if (info->begin > info->end) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": data_offsets [", info->begin, ", ",
                                                   info->end, "] end before begin"));
  }
  if (info->end > data_size) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": data_offsets [", info->begin, ", ",
                                                   info->end, "] beyond the data section (",
                                                   data_size, " bytes)"));
  }
  uint64_t elem = c10::elementSize(info->dtype);
  if (overflow || (numel != 0 && numel > std::numeric_limits<uint64_t>::max() / elem)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": shape too large"));
  }
  if (numel * elem != info->end - info->begin) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", dtype_it->get<std::string>(), " shape ", shape_it->dump(), " needs ",
        numel * elem, " bytes but data_offsets span ", info->end - info->begin));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<torch::ScalarType> SafetensorsDtypeFromName(const std::string& name) {
  for (const DtypeName& d : kDtypes) {
    if (name == d.name) return d.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported dtype \"", name, "\""));
}

absl::StatusOr<std::string> SafetensorsDtypeName(torch::ScalarType dtype) {
  for (const DtypeName& d : kDtypes) {
    if (dtype == d.dtype) return std::string(d.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", c10::toString(dtype), " cannot be stored in safetensors"));
}

// ------------------------------------------------------------- SafetensorsFile

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  absl::StatusOr<std::shared_ptr<MappedFile>> mapping = MappedFile::Open(path);
  if (!mapping.ok()) return mapping.status();
  const uint64_t file_size = (*mapping)->size();
  auto bad = [&path](const std::string& msg) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": invalid safetensors: ", msg));
  };
  if (file_size < 8) return bad(absl::StrCat("file is ", file_size, " bytes, shorter than the 8-byte header length"));
  uint64_t header_len = 0;
  const uint8_t* p = (*mapping)->data();
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | p[i];
  if (header_len > kMaxHeaderBytes) {
    return bad(absl::StrCat("header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes));
  }
  if (header_len > file_size - 8) {
    return bad(absl::StrCat("header length ", header_len, " exceeds the file size ", file_size));
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(p + 8),
                                   reinterpret_cast<const char*>(p + 8 + header_len));
  } catch (const nlohmann::json::exception& e) {
    return bad(absl::StrCat("header is not JSON: ", e.what()));
  }
  if (!header.is_object()) return bad("header is not a JSON object");

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->data_start_ = 8 + header_len;
  const uint64_t data_size = file_size - file->data_start_;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) return bad("__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) {
          return bad(absl::StrCat("__metadata__ value of \"", m.key(), "\" is not a string"));
        }
        file->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SafetensorsTensorInfo info;
    info.name = it.key();
    absl::Status s = ParseTensorEntry(absl::StrCat("tensor \"", it.key(), "\""), it.value(),
                                      data_size, &info);
    if (!s.ok()) return bad(std::string(s.message()));
    file->infos_.emplace(info.name, std::move(info));
  }
  // No two tensors may share bytes.
  std::vector<const SafetensorsTensorInfo*> by_offset;
  for (const auto& [name, info] : file->infos_) {
    if (info.end > info.begin) by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      return bad(absl::StrCat("tensors \"", by_offset[i - 1]->name, "\" [", by_offset[i - 1]->begin,
                              ", ", by_offset[i - 1]->end, ") and \"", by_offset[i]->name, "\" [",
                              by_offset[i]->begin, ", ", by_offset[i]->end, ") overlap"));
    }
  }
  file->mapping_ = std::move(*mapping);
  return file;
}

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> names;
  names.reserve(infos_.size());
  for (const auto& [name, info] : infos_) names.push_back(name);
  return names;
}

const SafetensorsTensorInfo* SafetensorsFile::Find(const std::string& name) const {
  auto it = infos_.find(name);
  return it == infos_.end() ? nullptr : &it->second;
}

absl::StatusOr<torch::Tensor> SafetensorsFile::View(const std::string& name) const {
  const SafetensorsTensorInfo* info = Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor \"", name, "\""));
  }
  auto options = torch::TensorOptions().dtype(info->dtype).device(torch::kCPU);
  if (info->end == info->begin) return torch::empty(info->shape, options);
  uint8_t* data = mapping_->data() + data_start_ + info->begin;
  try {
    if (reinterpret_cast<uintptr_t>(data) % c10::elementSize(info->dtype) != 0) {
      torch::Tensor t = torch::empty(info->shape, options);
      std::memcpy(t.data_ptr(), data, info->end - info->begin);
      return t;
    }
    std::shared_ptr<MappedFile> keep = mapping_;
    return torch::from_blob(data, info->shape, [keep](void*) {}, options);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(path_, ": viewing \"", name, "\": ", e.what_without_backtrace()));
  }
}

absl::StatusOr<torch::Tensor> SafetensorsFile::Load(const std::string& name, torch::ScalarType dtype,
                                                    torch::Device device) const {
  absl::StatusOr<torch::Tensor> view = View(name);
  if (!view.ok()) return view.status();
  try {
    return view->to(torch::TensorOptions().dtype(dtype).device(device), /*non_blocking=*/false,
                    /*copy=*/true)
        .contiguous();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(path_, ": loading \"", name, "\": ", e.what_without_backtrace()));
  }
}

absl::StatusOr<torch::Tensor> SafetensorsFile::Load(const std::string& name) const {
  const SafetensorsTensorInfo* info = Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor \"", name, "\""));
  }
  return Load(name, info->dtype);
}

// ------------------------------------------------------- SafetensorsCheckpoint

absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::Open(
    const std::string& path) {
  std::string file = path;
  if (IsDirectory(path)) {
    std::string index = path + "/model.safetensors.index.json";
    std::string single = path + "/model.safetensors";
    if (IsFile(index)) {
      file = index;
    } else if (IsFile(single)) {
      file = single;
    } else {
      return absl::NotFoundError(absl::StrCat(
          path, ": neither model.safetensors.index.json nor model.safetensors found"));
    }
  }
  std::unique_ptr<SafetensorsCheckpoint> ckpt(new SafetensorsCheckpoint());
  if (!EndsWith(file, ".json")) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(file);
    if (!f.ok()) return f.status();
    for (const std::string& name : (*f)->Names()) ckpt->owner_[name] = f->get();
    ckpt->files_.push_back(std::move(*f));
    return ckpt;
  }

  std::ifstream in(file);
  if (!in) return absl::NotFoundError(absl::StrCat(file, ": cannot open"));
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": not JSON: ", e.what()));
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": missing object \"weight_map\""));
  }
  const std::string dir = Dirname(file);
  std::map<std::string, const SafetensorsFile*> shard_by_name;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": weight_map[\"", it.key(), "\"] is not a file name"));
    }
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": weight_map[\"", it.key(), "\"] = \"", shard, "\" is not a plain file name"));
    }
    auto found = shard_by_name.find(shard);
    if (found == shard_by_name.end()) {
      absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(dir + "/" + shard);
      if (!f.ok()) return f.status();
      found = shard_by_name.emplace(shard, f->get()).first;
      ckpt->files_.push_back(std::move(*f));
    }
    if (!found->second->Contains(it.key())) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": \"", it.key(), "\" is mapped to ",
                                                     shard, " which does not contain it"));
    }
    ckpt->owner_[it.key()] = found->second;
  }
  return ckpt;
}

std::vector<std::string> SafetensorsCheckpoint::Names() const {
  std::vector<std::string> names;
  names.reserve(owner_.size());
  for (const auto& [name, f] : owner_) names.push_back(name);
  return names;
}

const SafetensorsTensorInfo* SafetensorsCheckpoint::Find(const std::string& name) const {
  auto it = owner_.find(name);
  return it == owner_.end() ? nullptr : it->second->Find(name);
}

const std::map<std::string, std::string>& SafetensorsCheckpoint::metadata() const {
  static const std::map<std::string, std::string> kEmpty;
  return files_.empty() ? kEmpty : files_.front()->metadata();
}

absl::StatusOr<torch::Tensor> SafetensorsCheckpoint::Load(const std::string& name,
                                                          torch::ScalarType dtype,
                                                          torch::Device device) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) return absl::NotFoundError(absl::StrCat("no tensor \"", name, "\" in the checkpoint"));
  return it->second->Load(name, dtype, device);
}

// -------------------------------------------------------------------- writing

absl::Status WriteSafetensors(const std::string& path,
                              const std::map<std::string, torch::Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  struct Entry {
    const std::string* name;
    torch::Tensor cpu;
    std::string dtype_name;
  };
  std::vector<Entry> entries;
  entries.reserve(tensors.size());
  try {
    for (const auto& [name, t] : tensors) {
      if (name.empty() || name == "__metadata__") {
        return absl::InvalidArgumentError(absl::StrCat(path, ": invalid tensor name \"", name, "\""));
      }
      if (!t.defined()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", name, "\" is undefined"));
      }
      absl::StatusOr<std::string> dtype_name = SafetensorsDtypeName(t.scalar_type());
      if (!dtype_name.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tensor \"", name, "\": ", dtype_name.status().message()));
      }
      entries.push_back({&name, t.detach().to(torch::kCPU).contiguous(), *dtype_name});
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(path, ": copying tensors to CPU: ", e.what_without_backtrace()));
  }
  // Larger elements first, then by name, so every tensor starts aligned to its
  // element size (what the reference writer does too).
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.cpu.element_size() > b.cpu.element_size();
  });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const Entry& e : entries) {
    const uint64_t bytes = static_cast<uint64_t>(e.cpu.numel()) * e.cpu.element_size();
    header[*e.name] = {{"dtype", e.dtype_name},
                       {"shape", e.cpu.sizes().vec()},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  return WriteFileAtomicallyWith(path, [&](int fd, const std::string& tmp) -> absl::Status {
    char len[8];
    uint64_t n = header_text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    absl::Status s = WriteAllToFd(fd, tmp, len, sizeof(len));
    if (s.ok()) s = WriteAllToFd(fd, tmp, header_text.data(), header_text.size());
    for (const Entry& e : entries) {
      if (!s.ok()) break;
      const size_t bytes = static_cast<size_t>(e.cpu.numel()) * e.cpu.element_size();
      s = WriteAllToFd(fd, tmp, static_cast<const char*>(e.cpu.data_ptr()), bytes);
    }
    return s;
  });
}

}  // namespace dsm
