// The `dsm` command line: builds the CLI11 app from every command group,
// parses, and runs the chosen subcommand.
//
// Exit codes: 0 success; 1 the command ran and failed; 2 bad flags, bad config
// or bad input (one line on stderr naming what was wrong).
#ifndef DSM_SERVICES_CLI_APP_H_
#define DSM_SERVICES_CLI_APP_H_

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace dsm::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// A subcommand stores its action here; Main() runs the one CLI11 selected.
using Action = std::function<int()>;

// Each command group adds its subcommands to `app`; `*action` is set by the
// callback of whichever subcommand the user chose.
void AddServiceCommands(CLI::App& app, Action* action);
void AddModelCommands(CLI::App& app, Action* action);
void AddServeCommand(CLI::App& app, Action* action);
void AddImportCommand(CLI::App& app, Action* action);
void AddInitModelCommand(CLI::App& app, Action* action);
void AddRunCommand(CLI::App& app, Action* action);
void AddSetupCommands(CLI::App& app, Action* action);
void AddEvalCommand(CLI::App& app, Action* action);

int Main(int argc, char** argv);

// Prints "dsm: <message>" on stderr and returns kExitUsage.
int UsageError(const std::string& message);

}  // namespace dsm::cli

#endif  // DSM_SERVICES_CLI_APP_H_
