// Process-wide logging on spdlog: human-readable text or one JSON object per
// line (for log shippers). Call InitLogging() once, early in main().
#ifndef DSM_COMMON_LOGGING_H_
#define DSM_COMMON_LOGGING_H_

#include <memory>
#include <string>

#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include "absl/status/status.h"
#include "common/config.h"

namespace dsm {

// Installs the default logger (stderr) with `options.level` and
// `options.format`. `service` names the process in every record
// ("coordinator", "worker", ...). Safe to call again to reconfigure.
absl::Status InitLogging(const LogOptions& options, const std::string& service);

// A formatter that writes one JSON object per record:
// {"ts":"2026-11-29T07:35:15.123Z","level":"info","service":"worker","msg":"..."}
// Exposed for tests.
std::unique_ptr<spdlog::formatter> MakeJsonFormatter(const std::string& service);

// Escapes `text` for use inside a JSON string (quotes, backslash, control
// characters as \uXXXX; UTF-8 passes through).
std::string JsonEscape(const std::string& text);

}  // namespace dsm

#endif  // DSM_COMMON_LOGGING_H_
