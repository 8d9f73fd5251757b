// The `dsm` binary from outside: exit codes and one-line errors.
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/grpc_server.h"
#include "tests/integration/dsm_process.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

using Result = dsm_test::DsmResult;
using dsm_test::RunDsm;

int Lines(const std::string& text) { return dsm_test::CountLines(text); }

std::string WriteConfig(const std::string& name, const std::string& yaml) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << yaml;
  return path;
}

TEST(Cli, HelpListsEverySubcommand) {
  const Result r = RunDsm("--help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* command : {"run", "config", "health"}) EXPECT_THAT(r.out, HasSubstr(command));
}

TEST(Cli, UnknownFlagIsExitTwoWithOneLine) {
  const Result r = RunDsm("config check --frobnicate x.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--frobnicate"));
}

TEST(Cli, UnknownSubcommandIsExitTwo) {
  const Result r = RunDsm("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
}

TEST(Cli, NoSubcommandIsExitTwo) {
  const Result r = RunDsm("");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
}

TEST(Cli, BadConfigIsExitTwoNamingTheKey) {
  const std::string path = WriteConfig("bad.yaml", "run: {name: x}\nruntime: {threads: 0}\n");
  const Result r = RunDsm("config check " + path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "dsm: " + path + ": runtime.threads: 0 is out of range [1, 256]\n");
}

TEST(Cli, RunWithBadConfigIsExitTwo) {
  const std::string path = WriteConfig("bad_run.yaml", "run: {name: x}\nlog: {format: xml}\n");
  const Result r = RunDsm("run " + path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "dsm: " + path + ": log.format: \"xml\" is not one of text, json\n");
}

TEST(Cli, GoodConfigChecksAndShows) {
  const std::string path = std::string(std::getenv("DSM_SOURCE_DIR")) + "/configs/tiny.yaml";
  Result r = RunDsm("config check " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunDsm("config show " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("threads: 1"));
  EXPECT_THAT(r.out, HasSubstr("max_message_bytes: 16777216"));
}

TEST(Cli, HealthOfALiveServerIsServing) {
  GrpcServer server(GrpcServerOptions{});
  ASSERT_TRUE(server.Start().ok());
  const Result r = RunDsm("health " + server.address());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  server.SetServing(false);
  const Result down = RunDsm("health " + server.address());
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_EQ(down.out, "NOT_SERVING\n");
}

TEST(Cli, HealthOfNothingFailsWithOneLine) {
  GrpcServer server(GrpcServerOptions{});
  ASSERT_TRUE(server.Start().ok());
  const std::string address = server.address();
  server.Drain();
  const Result r = RunDsm("health " + address + " --timeout 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(address));
}

}  // namespace
}  // namespace dsm
