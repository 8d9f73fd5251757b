// dsm: one binary, one subcommand per job. See `dsm --help`.
#include "services/cli/app.h"

int main(int argc, char** argv) { return dsm::cli::Main(argc, argv); }
