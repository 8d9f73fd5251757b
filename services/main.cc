// dsm: one binary, one subcommand per job. See `dsm --help`.
#include <malloc.h>

#include "services/cli/app.h"

int main(int argc, char** argv) {
  // Training and sampling allocate and free the same large buffers every step; glibc's defaults
  // hand them back to the kernel each time (mmap/munmap, page faults: ~20% of a tiny model's step).
  // Keep them in the heap instead.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
  return dsm::cli::Main(argc, argv);
}
