#include "services/learner/published_version.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dsm {
namespace {

constexpr char kFileName[] = "published_version";

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return Errno("open", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync", path);
}

}  // namespace

absl::StatusOr<uint64_t> ReadPublishedVersion(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kFileName);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return uint64_t{0};
  std::ifstream in(path);
  if (!in) return absl::DataLossError(absl::StrCat(path, ": cannot be read"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("open", tmp);
    const std::string text = absl::StrCat(version, "\n");
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const bool synced = written && ::fsync(fd) == 0;
    ::close(fd);
    if (!written) return Errno("write", tmp);
    if (!synced) return Errno("fsync", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("rename", tmp);
  return FsyncPath(dir, O_RDONLY | O_DIRECTORY);
}

}  // namespace dsm
