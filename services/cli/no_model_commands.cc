// Builds without LibTorch (-DDSM_WITH_TORCH=OFF) have no model commands.
#include "services/cli/app.h"

namespace dsm::cli {

void AddModelCommands(CLI::App&, Action*) {}
void AddServeCommand(CLI::App&, Action*) {}
void AddInitModelCommand(CLI::App&, Action*) {}
void AddRunCommand(CLI::App&, Action*) {}
void AddSetupCommands(CLI::App&, Action*) {}
void AddEvalCommand(CLI::App&, Action*) {}

}  // namespace dsm::cli
