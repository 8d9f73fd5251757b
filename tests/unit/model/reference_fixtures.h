// Test helper: the tiny reference models made by
// tests/fixtures/models/make_reference.py (PyTorch + numpy only).
//
// The folder is $DSM_BINARY_DIR/fixtures/models/<hash of the script>, made on
// first use by running the script into a temp folder and renaming it, so test
// binaries running in parallel never see a half-written folder and an edited
// script regenerates. A missing python3-torch is a test FAILURE with a clear
// message, never a silent skip. Set DSM_PYTHON to choose the interpreter.
#ifndef DSM_TESTS_UNIT_MODEL_REFERENCE_FIXTURES_H_
#define DSM_TESTS_UNIT_MODEL_REFERENCE_FIXTURES_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/safetensors.h"

namespace dsm::model_test {

// A Python interpreter with PyTorch and numpy: $DSM_PYTHON, python3, or
// /usr/bin/python3 (Debian's, where python3-torch installs).
inline absl::StatusOr<std::string> FindTorchPython() {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("DSM_PYTHON")) candidates.push_back(p);
  candidates.push_back("python3");
  candidates.push_back("/usr/bin/python3");
  for (const std::string& c : candidates) {
    if (std::system(("'" + c + "' -c 'import torch, numpy' >/dev/null 2>&1").c_str()) == 0) return c;
  }
  return absl::FailedPreconditionError(
      "no python3 with PyTorch and numpy found (tried $DSM_PYTHON, python3, /usr/bin/python3): "
      "install Debian's python3-torch python3-numpy");
}

inline absl::StatusOr<std::string> MakeReferenceFixtures() {
  const char* src = std::getenv("DSM_SOURCE_DIR");
  const char* bin = std::getenv("DSM_BINARY_DIR");
  if (src == nullptr || bin == nullptr) {
    return absl::FailedPreconditionError("DSM_SOURCE_DIR / DSM_BINARY_DIR are not set (run the test through ctest)");
  }
  const std::string script = std::string(src) + "/tests/fixtures/models/make_reference.py";
  std::ifstream in(script);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", script));
  std::stringstream text;
  text << in.rdbuf();
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : text.str()) hash = (hash ^ ch) * 1099511628211ull;
  namespace fs = std::filesystem;
  const std::string dir = absl::StrFormat("%s/fixtures/models/%016x", bin, hash);
  if (fs::exists(dir + "/.complete")) return dir;

  absl::StatusOr<std::string> python = FindTorchPython();
  if (!python.ok()) return python.status();
  const std::string tmp = absl::StrCat(dir, ".tmp.", ::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  const std::string cmd = absl::StrCat("'", *python, "' '", script, "' '", tmp, "' > '", tmp, ".log' 2>&1");
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream log(tmp + ".log");
    std::stringstream log_text;
    log_text << log.rdbuf();
    return absl::InternalError(absl::StrCat("make_reference.py failed:\n", cmd, "\n", log_text.str()));
  }
  fs::remove(tmp + ".log", ec);
  std::ofstream(tmp + "/.complete") << "ok\n";
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp, ec);  // another test binary finished first
  if (!fs::exists(dir + "/.complete")) return absl::InternalError(absl::StrCat("could not create ", dir));
  return dir;
}

// The fixtures folder; fails the calling test (fatally) when unavailable.
inline std::string ReferenceDir() {
  static const absl::StatusOr<std::string>* dir = new absl::StatusOr<std::string>(MakeReferenceFixtures());
  if (!dir->ok()) {
    ADD_FAILURE() << "reference fixtures: " << dir->status();
    return "";
  }
  return **dir;
}

// A tensor of <model>/expected.safetensors ("ids", "logits", "logits_<adapter>").
inline torch::Tensor Expected(const std::string& model_dir, const std::string& name) {
  auto file = SafetensorsFile::Open(model_dir + "/expected.safetensors");
  if (!file.ok()) {
    ADD_FAILURE() << file.status();
    return {};
  }
  auto t = (*file)->Load(name);
  if (!t.ok()) {
    ADD_FAILURE() << t.status();
    return {};
  }
  return *t;
}

inline double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace dsm::model_test

#define DSM_REFERENCE_DIR_OR_RETURN(var)  \
  const std::string var = ::dsm::model_test::ReferenceDir(); \
  ASSERT_FALSE(var.empty())

#endif  // DSM_TESTS_UNIT_MODEL_REFERENCE_FIXTURES_H_
