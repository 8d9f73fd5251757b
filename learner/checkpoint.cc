#include "learner/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "model/safetensors.h"

namespace dsm {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr char kPrefix[] = "step-";
constexpr char kTempPrefix[] = ".tmp-";
constexpr char kManifest[] = ".complete";
constexpr char kAdapterDir[] = "adapter";
constexpr char kOptimizerFile[] = "optimizer.safetensors";
constexpr char kStateFile[] = "trainer_state.json";
constexpr int kFormat = 1;
// Every file a checkpoint must have, relative to its folder.
const char* const kFiles[] = {"adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                              kOptimizerFile, kStateFile};

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

absl::StatusOr<std::string> Unhex(const std::string& hex) {
  if (hex.size() % 2 != 0) return absl::DataLossError("odd-length hex string");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int v = 0;
    for (int k = 0; k < 2; ++k) {
      const char c = hex[2 * i + k];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return absl::DataLossError("bad hex digit");
      v = v * 16 + d;
    }
    out[i] = static_cast<char>(v);
  }
  return out;
}

// Size and FNV-1a 64 of a file.
absl::StatusOr<std::pair<uint64_t, uint64_t>> HashFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  uint64_t hash = 1469598103934665603ull;
  uint64_t size = 0;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    for (std::streamsize i = 0; i < n; ++i) hash = (hash ^ static_cast<unsigned char>(buf[i])) * 1099511628211ull;
    size += static_cast<uint64_t>(n);
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return std::make_pair(size, hash);
}

std::string StateToJson(const TrainerState& state) {
  Json j;
  j["format"] = kFormat;
  j["step"] = state.step;
  j["adapter_version"] = state.adapter_version;
  j["seed"] = state.seed;
  j["world_size"] = state.world_size;
  j["rng_state_hex"] = Hex(state.rng_state);
  // Readable when it is text; hex when it is not valid UTF-8.
  try {
    Json probe = state.data_cursor;
    (void)probe.dump();
    j["data_cursor"] = state.data_cursor;
  } catch (const Json::exception&) {
    j["data_cursor_hex"] = Hex(state.data_cursor);
  }
  return j.dump(2) + "\n";
}

absl::StatusOr<TrainerState> StateFromJson(const std::string& text, const std::string& path) {
  TrainerState state;
  try {
    Json j = Json::parse(text);
    if (j.at("format").get<int>() != kFormat) {
      return absl::DataLossError(absl::StrCat(path, ": unknown format ", j.at("format").dump()));
    }
    state.step = j.at("step").get<int64_t>();
    state.adapter_version = j.at("adapter_version").get<int64_t>();
    state.seed = j.at("seed").get<uint64_t>();
    state.world_size = j.at("world_size").get<int>();
    auto rng = Unhex(j.at("rng_state_hex").get<std::string>());
    if (!rng.ok()) return absl::DataLossError(absl::StrCat(path, ": rng_state_hex: ", rng.status().message()));
    state.rng_state = *std::move(rng);
    if (j.contains("data_cursor_hex")) {
      auto cursor = Unhex(j.at("data_cursor_hex").get<std::string>());
      if (!cursor.ok()) {
        return absl::DataLossError(absl::StrCat(path, ": data_cursor_hex: ", cursor.status().message()));
      }
      state.data_cursor = *std::move(cursor);
    } else {
      state.data_cursor = j.at("data_cursor").get<std::string>();
    }
  } catch (const Json::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": ", e.what()));
  }
  return state;
}

// Step of a "step-<digits>" folder name, or -1.
int64_t StepOfName(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const std::string digits = name.substr(sizeof(kPrefix) - 1);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return -1;
  }
  int64_t step = 0;
  if (!absl::SimpleAtoi(digits, &step)) return -1;
  return step;
}

absl::Status VerifyManifest(const std::string& path) {
  const std::string manifest_path = path + "/" + kManifest;
  if (!fs::exists(manifest_path)) return absl::NotFoundError(absl::StrCat(path, ": no ", kManifest, " (incomplete)"));
  auto text = ReadFileToString(manifest_path);
  if (!text.ok()) return text.status();
  Json manifest;
  try {
    manifest = Json::parse(*text);
    const Json& files = manifest.at("files");
    for (const char* required : kFiles) {
      if (!files.contains(required)) {
        return absl::DataLossError(absl::StrCat(manifest_path, ": does not list ", required));
      }
    }
    for (const auto& [name, entry] : files.items()) {
      auto actual = HashFile(path + "/" + name);
      if (!actual.ok()) return absl::DataLossError(actual.status().message());
      const uint64_t size = entry.at("bytes").get<uint64_t>();
      const std::string hash = entry.at("fnv1a64").get<std::string>();
      if (actual->first != size) {
        return absl::DataLossError(absl::StrCat(path, "/", name, ": ", actual->first, " bytes, manifest says ", size));
      }
      if (absl::StrFormat("%016x", actual->second) != hash) {
        return absl::DataLossError(absl::StrCat(path, "/", name, ": checksum mismatch"));
      }
    }
  } catch (const Json::exception& e) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string CheckpointFolderName(int64_t step) { return absl::StrFormat("%s%08d", kPrefix, step); }

absl::StatusOr<std::string> WriteCheckpoint(const std::string& root, const LoraAdapter& adapter,
                                            const OptimizerTensors& optimizer, const TrainerState& state) {
  if (state.step < 0) return absl::InvalidArgumentError(absl::StrCat("step ", state.step, " is negative"));
  const std::string name = CheckpointFolderName(state.step);
  const std::string final_path = root + "/" + name;
  const std::string tmp = absl::StrCat(root, "/", kTempPrefix, name, ".", ::getpid());
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return absl::InternalError(absl::StrCat(root, ": ", ec.message()));
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat(tmp, ": ", ec.message()));

  absl::Status s = adapter.Save(tmp + "/" + kAdapterDir);
  if (s.ok()) s = WriteSafetensors(tmp + "/" + kOptimizerFile, optimizer, {{"format", "dsm-adamw"}});
  if (s.ok()) s = WriteFileAtomically(tmp + "/" + kStateFile, StateToJson(state));
  Json manifest;
  manifest["files"] = Json::object();
  for (const char* file : kFiles) {
    if (!s.ok()) break;
    auto hashed = HashFile(tmp + "/" + file);
    if (!hashed.ok()) {
      s = hashed.status();
      break;
    }
    manifest["files"][file] = {{"bytes", hashed->first}, {"fnv1a64", absl::StrFormat("%016x", hashed->second)}};
  }
  if (s.ok()) s = SyncDirectory(tmp + "/" + kAdapterDir);
  if (s.ok()) s = WriteFileAtomically(tmp + "/" + kManifest, manifest.dump(2) + "\n");
  if (s.ok()) s = SyncDirectory(tmp);
  if (!s.ok()) {
    fs::remove_all(tmp, ec);
    return absl::Status(s.code(), absl::StrCat("writing checkpoint ", final_path, ": ", s.message()));
  }
  // Replace an existing folder of the same step (a run resumed from an older
  // checkpoint reaches it again): move it aside, move the new one in.
  std::string old;
  if (fs::exists(final_path)) {
    old = absl::StrCat(root, "/", kTempPrefix, "old-", name, ".", ::getpid());
    fs::remove_all(old, ec);
    fs::rename(final_path, old, ec);
    if (ec) return absl::InternalError(absl::StrCat("moving aside ", final_path, ": ", ec.message()));
  }
  fs::rename(tmp, final_path, ec);
  if (ec) return absl::InternalError(absl::StrCat("renaming ", tmp, " to ", final_path, ": ", ec.message()));
  if (s = SyncDirectory(root); !s.ok()) return s;
  if (!old.empty()) fs::remove_all(old, ec);
  return final_path;
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path, const ModelConfig& model) {
  if (absl::Status s = VerifyManifest(path); !s.ok()) return s;
  Checkpoint out;
  out.path = path;
  auto state_text = ReadFileToString(path + "/" + kStateFile);
  if (!state_text.ok()) return absl::DataLossError(state_text.status().message());
  auto state = StateFromJson(*state_text, path + "/" + kStateFile);
  if (!state.ok()) return state.status();
  out.state = *std::move(state);
  if (StepOfName(fs::path(path).filename().string()) != out.state.step) {
    return absl::DataLossError(absl::StrCat(path, ": trainer_state.json says step ", out.state.step));
  }
  auto adapter = LoraAdapter::Load(path + "/" + kAdapterDir, model);
  if (!adapter.ok()) {
    return absl::Status(adapter.status().code() == absl::StatusCode::kInvalidArgument
                            ? absl::StatusCode::kInvalidArgument
                            : absl::StatusCode::kDataLoss,
                        absl::StrCat(path, ": adapter: ", adapter.status().message()));
  }
  out.adapter = *std::move(adapter);
  auto file = SafetensorsFile::Open(path + "/" + kOptimizerFile);
  if (!file.ok()) return absl::DataLossError(absl::StrCat(path, ": ", file.status().message()));
  for (const std::string& name : (*file)->Names()) {
    auto t = (*file)->Load(name);
    if (!t.ok()) return absl::DataLossError(absl::StrCat(path, ": ", t.status().message()));
    out.optimizer[name] = *std::move(t);
  }
  return out;
}

std::vector<std::pair<int64_t, std::string>> ListCheckpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory(ec)) continue;
    const int64_t step = StepOfName(entry.path().filename().string());
    if (step >= 0) out.emplace_back(step, entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::optional<Checkpoint>> LatestValidCheckpoint(const std::string& root, const ModelConfig& model,
                                                                std::vector<std::string>* skipped) {
  auto list = ListCheckpoints(root);
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    auto checkpoint = ReadCheckpoint(it->second, model);
    if (checkpoint.ok()) return std::optional<Checkpoint>(*std::move(checkpoint));
    // An adapter of another architecture is a configuration error, not damage.
    if (checkpoint.status().code() == absl::StatusCode::kInvalidArgument) return checkpoint.status();
    if (skipped != nullptr) skipped->push_back(std::string(checkpoint.status().message()));
  }
  return std::optional<Checkpoint>();
}

absl::Status PruneCheckpoints(const std::string& root, int keep) {
  if (keep <= 0) return absl::OkStatus();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return absl::OkStatus();
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    // Leftovers of a writer that crashed (one writer per root: none is running now).
    if (name.rfind(kTempPrefix, 0) == 0 && name.find(kPrefix) != std::string::npos) {
      fs::remove_all(entry.path(), ec);
    }
  }
  auto list = ListCheckpoints(root);
  int complete = 0;
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    if (complete >= keep) {
      fs::remove_all(it->second, ec);
      if (ec) return absl::InternalError(absl::StrCat("removing ", it->second, ": ", ec.message()));
    } else if (fs::exists(it->second + "/" + kManifest)) {
      ++complete;
    }
  }
  return absl::OkStatus();
}

}  // namespace dsm
