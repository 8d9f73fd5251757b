// The newest adapter version a learner role has published, kept on disk
// beside the role's checkpoints (<checkpoint_dir>/<role>/published_version).
//
// Checkpoints are written every N steps but versions are published every
// step, so a learner killed between two checkpoints resumes at a version
// below what samplers already hold. Samplers ignore versions they have seen,
// so the resumed learner must publish above the newest version it ever
// published: it reads this file and counts on from there. The file is
// replaced atomically (write, fsync, rename) on every publication.
//
// Thread safety: the functions are independent; one writer per folder.
#ifndef DSM_SERVICES_LEARNER_PUBLISHED_VERSION_H_
#define DSM_SERVICES_LEARNER_PUBLISHED_VERSION_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dsm {

// The version recorded in `dir`, 0 when there is none (missing file or
// folder). An unreadable or malformed file is DataLoss naming the file.
absl::StatusOr<uint64_t> ReadPublishedVersion(const std::string& dir);

// Records `version` in `dir` (created if missing), atomically.
absl::Status WritePublishedVersion(const std::string& dir, uint64_t version);

}  // namespace dsm

#endif  // DSM_SERVICES_LEARNER_PUBLISHED_VERSION_H_
