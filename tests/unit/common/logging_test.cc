#include "common/logging.h"

#include <string>

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

namespace dsm {
namespace {

TEST(Logging, JsonEscapesQuotesBackslashAndControls) {
  EXPECT_EQ(JsonEscape("a\"b\\c\nd\x01"), "a\\\"b\\\\c\\nd\\u0001");
  EXPECT_EQ(JsonEscape("é ok"), "é ok");
}

TEST(Logging, JsonFormatterWritesOneObjectPerLine) {
  auto formatter = MakeJsonFormatter("worker");
  spdlog::details::log_msg msg("dsm", spdlog::level::warn, "lease \"7\" expired\nre-issued");
  spdlog::memory_buf_t buf;
  formatter->format(msg, buf);
  const std::string line(buf.data(), buf.size());
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  EXPECT_NE(line.find("\"level\":\"warning\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"service\":\"worker\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"msg\":\"lease \\\"7\\\" expired\\nre-issued\""), std::string::npos) << line;
  EXPECT_EQ(line.rfind("{\"ts\":\"", 0), 0u) << line;
}

TEST(Logging, RejectsUnknownLevel) {
  LogOptions options;
  options.level = "loud";
  EXPECT_EQ(InitLogging(options, "x").message(), "log.level: unknown level \"loud\"");
  options.level = "warn";
  EXPECT_TRUE(InitLogging(options, "x").ok());
}

}  // namespace
}  // namespace dsm
