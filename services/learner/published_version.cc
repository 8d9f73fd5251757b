#include "services/learner/published_version.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"

namespace dsm {
namespace {

constexpr char kFileName[] = "published_version";

}  // namespace

absl::StatusOr<uint64_t> ReadPublishedVersion(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kFileName);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return uint64_t{0};
  absl::StatusOr<std::string> read = ReadFileToString(path);
  if (!read.ok()) return absl::DataLossError(absl::StrCat(path, ": cannot be read"));
  const std::string& text = *read;
  uint64_t version = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &version)) {
    return absl::DataLossError(absl::StrCat(path, ": not a version number: \"", text.substr(0, 32), "\""));
  }
  return version;
}

absl::Status WritePublishedVersion(const std::string& dir, uint64_t version) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  const std::string path = absl::StrCat(dir, "/", kFileName);
  if (absl::Status s = WriteFileAtomically(path, absl::StrCat(version, "\n")); !s.ok()) return s;
  return SyncDirectory(dir);
}

}  // namespace dsm
