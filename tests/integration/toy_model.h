// Test helper: the toy policy model (64-token vocabulary, a few layers) that
// the learner process tests train, made once per build tree by
// tests/fixtures/models/make_toy_model.py. Tests running in parallel may ask
// at once: each writes into its own folder and renames it into place.
#ifndef DSM_TESTS_INTEGRATION_TOY_MODEL_H_
#define DSM_TESTS_INTEGRATION_TOY_MODEL_H_

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm_test {

inline std::string MakeToyModel() {
  const std::string dir = std::string(std::getenv("DSM_BINARY_DIR")) + "/fixtures/toy_policy";
  if (std::ifstream(dir + "/model.safetensors")) return dir;
  const std::string script = std::string(std::getenv("DSM_SOURCE_DIR")) + "/tests/fixtures/models/make_toy_model.py";
  absl::StatusOr<std::string> python = dsm::model_test::FindTorchPython();
  if (!python.ok()) {
    ADD_FAILURE() << python.status();
    return dir;
  }
  const std::string tmp = absl::StrCat(dir, ".tmp-", getpid());
  if (std::system(absl::StrCat("'", *python, "' '", script, "' '", tmp, "'").c_str()) != 0) {
    ADD_FAILURE() << "could not run " << script;
    return dir;
  }
  if (std::rename(tmp.c_str(), dir.c_str()) != 0) {
    std::system(absl::StrCat("rm -rf '", tmp, "'").c_str());  // another test made it first
  }
  return dir;
}

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_TOY_MODEL_H_
