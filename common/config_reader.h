// ConfigReader walks one YAML map and reads typed values out of it, turning
// every problem into a one-line error that names the key and what was wrong.
//
// Usage (see config.cc):
//   ConfigReader r(root, "");
//   r.Optional("threads", &options.threads);
//   ConfigReader log = r.Section("log");
//   log.OneOf("format", {"text", "json"}, &options.log.format);
//   absl::Status s = r.Finish();   // first error, including unknown keys
//
// The first error wins: later reads after an error are no-ops, so callers
// need not check after every read. Not thread-safe; cheap to copy.
#ifndef DSM_COMMON_CONFIG_READER_H_
#define DSM_COMMON_CONFIG_READER_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"

namespace dsm {

class ConfigReader {
 public:
  // `path` is the dotted key of `node` ("" for the document root). A null or
  // absent node reads as an empty map.
  ConfigReader(const YAML::Node& node, std::string path);

  // Reads `key` into *out if present; leaves *out (its default) otherwise.
  void Optional(const char* key, bool* out);
  void Optional(const char* key, int* out);
  void Optional(const char* key, int64_t* out);
  void Optional(const char* key, double* out);
  void Optional(const char* key, std::string* out);
  void Optional(const char* key, std::vector<std::string>* out);
  // Like Optional, but a missing key is an error.
  template <typename T>
  void Required(const char* key, T* out) {
    if (!Has(key)) {
      Fail("missing required key \"" + Join(key) + "\"");
      return;
    }
    Optional(key, out);
  }
  // A string that must be one of `allowed`.
  void OneOf(const char* key, const std::vector<std::string>& allowed, std::string* out);

  // The sub-map at `key` (an empty map if absent). Unknown keys inside it are
  // reported by this reader's Finish().
  ConfigReader Section(const char* key);
  // The names of the entries of the sub-map at `key` (for maps keyed by name).
  std::vector<std::string> SectionKeys(const char* key);

  bool Has(const char* key) const;
  // The dotted path of this reader's map ("" for the root).
  const std::string& path() const { return frame_->path; }
  // The dotted name of `key` inside this reader ("log.level").
  std::string Join(const char* key) const;

  // Records an error (only the first one is kept).
  void Fail(std::string message);
  // The first error, or the first key that no read asked for, or OK.
  absl::Status Finish();

 private:
  struct Frame {
    YAML::Node node;
    std::string path;
    std::set<std::string> used;
    std::vector<std::pair<std::string, std::shared_ptr<Frame>>> sections;
  };
  ConfigReader(std::shared_ptr<Frame> frame, std::shared_ptr<std::string> error);
  // Marks `key` used and fetches it; false when absent or after an error.
  bool Enter(const char* key, YAML::Node* value);
  // The first key written twice in a map, or else the first key nothing read, as an error; ""
  // when there is none.
  static std::string FirstUnknownKey(const Frame& frame);

  std::shared_ptr<Frame> frame_;
  std::shared_ptr<std::string> error_;  // shared by every reader of one document
};

// One-line description of a YAML value for error messages: `"two"`, `a map`,
// `a list`, `null`.
std::string DescribeYaml(const YAML::Node& node);

// `value` in double quotes, with quotes, backslashes and control characters
// escaped so that an error message stays on one line.
std::string QuoteValue(const std::string& value);

}  // namespace dsm

#endif  // DSM_COMMON_CONFIG_READER_H_
