// dsm: one binary, one subcommand per job. See `dsm --help`.
#include "common/malloc_tuning.h"
#include "services/cli/app.h"

int main(int argc, char** argv) {
  dsm::RetainFreedMemory();
  return dsm::cli::Main(argc, argv);
}
