#include "services/cli/app.h"

#include <iostream>

#include "common/shutdown_signal.h"

namespace dsm::cli {

int UsageError(const std::string& message) {
  std::cerr << "dsm: " << message << "\n";
  return kExitUsage;
}

int Main(int argc, char** argv) {
  // Before any thread exists, so that only the shutdown waiter sees them.
  BlockShutdownSignals();

  CLI::App app{
      "dsm trains language models to write mathematical proofs and to check them\n"
      "(DeepSeekMath-V2's method) as a distributed actor/learner service.\n"};
  app.name("dsm");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("dsm ") + DSM_VERSION);
  Action action;
  AddServiceCommands(app, &action);
  AddModelCommands(app, &action);
  AddServeCommand(app, &action);
  AddImportCommand(app, &action);
  AddInitModelCommand(app, &action);
  AddRunCommand(app, &action);
  AddSetupCommands(app, &action);
  AddEvalCommand(app, &action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string message = e.what();
    for (char& c : message) {
      if (c == '\n') c = ' ';
    }
    return UsageError(message + " (see dsm --help)");
  }
  if (!action) return UsageError("no command given (see dsm --help)");
  return action();
}

}  // namespace dsm::cli
