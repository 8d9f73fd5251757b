// LogCapture: while alive, spdlog's default logger writes "<level> <message>" lines into a
// string (at every level, debug included) instead of where it wrote before.
#ifndef DSM_TESTS_INTEGRATION_LOG_CAPTURE_H_
#define DSM_TESTS_INTEGRATION_LOG_CAPTURE_H_

#include <memory>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

namespace dsm_test {

class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    sink->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() const { return stream_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream stream_;
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_LOG_CAPTURE_H_
