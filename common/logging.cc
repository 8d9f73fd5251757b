#include "common/logging.h"

#include <chrono>
#include <ctime>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dsm {
namespace {

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string service) : service_(std::move(service)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
    const std::time_t t = seconds.count();
    std::tm utc{};
    gmtime_r(&t, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    const std::string line = absl::StrFormat(
        "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\",\"service\":\"%s\",\"thread\":%d,\"msg\":\"%s\"}\n",
        stamp, static_cast<int>(millis.count()), std::string(level.data(), level.size()),
        JsonEscape(service_), static_cast<int>(msg.thread_id),
        JsonEscape(std::string(msg.payload.data(), msg.payload.size())));
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(service_);
  }

 private:
  std::string service_;
};

}  // namespace

std::string JsonEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += ch;
        }
    }
  }
  return out;
}

std::unique_ptr<spdlog::formatter> MakeJsonFormatter(const std::string& service) {
  return std::make_unique<JsonFormatter>(service);
}

absl::Status InitLogging(const LogOptions& options, const std::string& service) {
  spdlog::level::level_enum level;
  if (options.level == "trace") {
    level = spdlog::level::trace;
  } else if (options.level == "debug") {
    level = spdlog::level::debug;
  } else if (options.level == "info") {
    level = spdlog::level::info;
  } else if (options.level == "warn") {
    level = spdlog::level::warn;
  } else if (options.level == "error") {
    level = spdlog::level::err;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("log.level: unknown level \"", options.level, "\""));
  }
  auto logger = std::make_shared<spdlog::logger>(
      service, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (options.format == "json") {
    logger->set_formatter(MakeJsonFormatter(service));
  } else if (options.format == "text") {
    logger->set_pattern(absl::StrCat("%Y-%m-%d %H:%M:%S.%e %^%L%$ ", service, "] %v"));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("log.format: unknown format \"", options.format, "\""));
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace dsm
