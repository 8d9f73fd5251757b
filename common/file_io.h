// Whole-file reads and crash-safe writes, shared by the model loader, the learner's
// checkpoints, the run report and the CLI. Plain POSIX + absl (its own library,
// dsm_file_io, so model/ uses it without gRPC).
#ifndef DSM_COMMON_FILE_IO_H_
#define DSM_COMMON_FILE_IO_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dsm {

// The whole file. NotFound "<path>: cannot open"; DataLoss "<path>: read error".
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes all `size` bytes to `fd`, through short writes and EINTR; errors name `what`.
absl::Status WriteAllToFd(int fd, const std::string& what, const char* data, size_t size);

// Writes `path` so that a reader sees the old file or the whole new one, never a part: `fill`
// writes a temp file beside it (<path>.tmp.<pid>, passed as `tmp` for error messages), which is
// fsynced and renamed over `path`. On any failure the temp file is removed and `path` untouched;
// the status code follows errno (a missing folder is NotFound, no permission PermissionDenied).
using FileFiller = std::function<absl::Status(int fd, const std::string& tmp)>;
absl::Status WriteFileAtomicallyWith(const std::string& path, const FileFiller& fill);

// WriteFileAtomicallyWith for contents already in memory.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// fsyncs a folder, so that renames and new files in it survive a crash.
absl::Status SyncDirectory(const std::string& dir);

}  // namespace dsm

#endif  // DSM_COMMON_FILE_IO_H_
