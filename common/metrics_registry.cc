#include "common/metrics_registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace dsm {
namespace {

// Wall-clock time at static initialisation of this library: close enough to
// the process start for dsm_process_start_time_seconds.
const absl::Time kProcessStartTime = absl::Now();

// Programmer errors: log, also write straight to stderr (the logger may not be
// set up yet, or may go to a file), and abort.
[[noreturn]] void Die(absl::string_view message) {
  const std::string text(message);
  spdlog::critical("metrics: {}", text);
  spdlog::default_logger()->flush();
  std::fprintf(stderr, "dsm metrics fatal: %s\n", text.c_str());
  std::abort();
}

absl::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Replaces every byte that is not part of a well-formed UTF-8 sequence
// (RFC 3629: no overlongs, surrogates or code points above U+10FFFF) with
// U+FFFD, since Prometheus rejects a whole scrape over one bad label value.
std::string SanitizeUtf8(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      const unsigned char b = s[i + k];
      ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    }
    if (ok) {
      absl::StrAppend(&out, in.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

bool IsLowerSnakeIdentifier(absl::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool letter = (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

// True if `name` contains "_word_" or ends in "_word", as promtool's lint checks.
bool HasWord(absl::string_view name, absl::string_view word) {
  const std::string w = absl::StrCat("_", word);
  return absl::StrContains(name, absl::StrCat(w, "_")) || absl::EndsWith(name, w);
}

absl::Status ValidateMetricName(absl::string_view name, MetricType type) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("metric name \"", name, "\": ", why));
  };
  if (!IsLowerSnakeIdentifier(name)) {
    return bad("must match [a-z_][a-z0-9_]* (lower-case snake_case; dsm forbids ':')");
  }
  const bool total = absl::EndsWith(name, "_total");
  if (type == MetricType::kCounter && !total) return bad("counter names must end in \"_total\"");
  if (type != MetricType::kCounter && total) {
    return bad(absl::StrCat("only counters may end in \"_total\", this is a ", TypeName(type)));
  }
  for (absl::string_view suffix : {"_bucket", "_count", "_sum"}) {
    if (absl::EndsWith(name, suffix)) {
      return bad(absl::StrCat("must not end in \"", suffix, "\" (reserved for histogram samples)"));
    }
  }
  for (absl::string_view word : {"counter", "gauge", "histogram", "summary"}) {
    if (HasWord(name, word)) {
      return bad(absl::StrCat("must not contain the type word \"", word, "\""));
    }
  }
  for (absl::string_view abbrev :
       {"s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d"}) {
    if (HasWord(name, abbrev)) {
      return bad(absl::StrCat("must not contain the abbreviated unit \"", abbrev,
                              "\" (spell out base units: seconds, bytes)"));
    }
  }
  // Non-base units, alone or with an SI/IEC prefix; promtool wants base units.
  static constexpr std::pair<absl::string_view, absl::string_view> kUnits[] = {
      {"amperes", ""},        {"bytes", ""},
      {"celsius", ""},        {"grams", ""},
      {"joules", ""},         {"kelvin", ""},
      {"meters", ""},         {"metres", ""},
      {"seconds", ""},        {"volts", ""},
      {"minutes", "seconds"}, {"hours", "seconds"},
      {"days", "seconds"},    {"weeks", "seconds"},
      {"kelvins", "kelvin"},  {"fahrenheit", "celsius"},
      {"rankine", "celsius"}, {"inches", "meters"},
      {"yards", "meters"},    {"miles", "meters"},
      {"bits", "bytes"},      {"calories", "joules"},
      {"pounds", "grams"},    {"ounces", "grams"}};
  static constexpr absl::string_view kPrefixes[] = {
      "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo",
      "kibi", "mega", "mibi",  "giga",  "gibi",  "tera", "tebi", "peta",  "pebi"};
  for (absl::string_view part : absl::StrSplit(name, '_')) {
    for (const auto& [unit, base] : kUnits) {
      if (part == unit && !base.empty()) {
        return bad(absl::StrCat("use the base unit \"", base, "\" instead of \"", unit, "\""));
      }
      for (absl::string_view prefix : kPrefixes) {
        if (part.size() == prefix.size() + unit.size() && absl::StartsWith(part, prefix) &&
            absl::EndsWith(part, unit)) {
          return bad(absl::StrCat("use the base unit \"", base.empty() ? unit : base,
                                  "\" instead of \"", part, "\""));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelNames(absl::string_view metric, const std::vector<std::string>& labels) {
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& label = labels[i];
    const auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric \"", metric, "\": label name \"", label, "\": ", why));
    };
    if (!IsLowerSnakeIdentifier(label)) return bad("must match [a-z_][a-z0-9_]*");
    if (absl::StartsWith(label, "__")) return bad("names starting with \"__\" are reserved");
    if (label == "le" || label == "quantile") {
      return bad("reserved for histogram buckets and summary quantiles");
    }
    for (size_t j = 0; j < i; ++j) {
      if (labels[j] == label) return bad("declared twice");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBuckets(absl::string_view metric, std::vector<double>& bounds) {
  if (!bounds.empty() && bounds.back() == std::numeric_limits<double>::infinity()) {
    bounds.pop_back();
  }
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat("histogram \"", metric, "\": bucket bound ", i,
                                                     " is ", FormatMetricValue(bounds[i]),
                                                     "; bounds must be finite (+Inf is implied)"));
    }
    if (i > 0 && !(bounds[i] > bounds[i - 1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "histogram \"", metric, "\": bucket bounds must be strictly ascending, but bound ", i,
          " (", FormatMetricValue(bounds[i]), ") follows ", FormatMetricValue(bounds[i - 1])));
    }
  }
  return absl::OkStatus();
}

void AppendEscaped(std::string* out, absl::string_view s, bool escape_quotes) {
  for (const char c : s) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '"':
        if (escape_quotes) {
          out->append("\\\"");
        } else {
          out->push_back(c);
        }
        break;
      default:
        out->push_back(c);
    }
  }
}

// Appends `name{l1="v1",...,extra="value"} value\n`.
void AppendSample(std::string* out, absl::string_view name, const std::vector<std::string>& labels,
                  const std::vector<std::string>& values, absl::string_view extra_label,
                  absl::string_view extra_value, double value) {
  out->append(name.data(), name.size());
  if (!labels.empty() || !extra_label.empty()) {
    out->push_back('{');
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) out->push_back(',');
      absl::StrAppend(out, labels[i], "=\"");
      AppendEscaped(out, values[i], /*escape_quotes=*/true);
      out->push_back('"');
    }
    if (!extra_label.empty()) {
      if (!labels.empty()) out->push_back(',');
      absl::StrAppend(out, extra_label, "=\"", extra_value, "\"");
    }
    out->push_back('}');
  }
  absl::StrAppend(out, " ", FormatMetricValue(value), "\n");
}

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53
  if (value == std::trunc(value) && std::fabs(value) <= kMaxExactInteger) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value);  // shortest round-trip
  return std::string(buf, result.ptr);
}

// ---------------------------------------------------------------------------
// Counter, Gauge, Histogram

void Counter::RejectIncrement(double amount) {
  if (!warned_.exchange(true, std::memory_order_relaxed)) {
    spdlog::warn("metrics: Counter::Increment({}) ignored: counters only go up (logged once)",
                 amount);
  }
}

void Gauge::SetToCurrentTime() { Set(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch())); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      bucket_counts_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) bucket_counts_[i].store(0);
}

void Histogram::Observe(double value) {
  // First bound >= value; NaN compares false everywhere, so send it to +Inf.
  const size_t bucket = std::isnan(value)
                            ? upper_bounds_.size()
                            : static_cast<size_t>(std::lower_bound(upper_bounds_.begin(),
                                                                   upper_bounds_.end(), value) -
                                                  upper_bounds_.begin());
  bucket_counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  metrics_internal::AtomicAdd(sum_, value);
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  snapshot.cumulative_counts.resize(upper_bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += bucket_counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative_counts[i] = running;
  }
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  if (count < 1 || !(start > 0) || !(factor > 1)) {
    Die(absl::StrCat("ExponentialBuckets(", start, ", ", factor, ", ", count,
                     "): need start > 0, factor > 1, count >= 1"));
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  if (count < 1 || !(width > 0) || !std::isfinite(start)) {
    Die(absl::StrCat("LinearBuckets(", start, ", ", width, ", ", count,
                     "): need finite start, width > 0, count >= 1"));
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  // start + i*width rather than repeated addition, so errors don't accumulate.
  for (int i = 0; i < count; ++i) bounds.push_back(start + i * width);
  return bounds;
}

// ---------------------------------------------------------------------------
// Families

MetricFamilyBase::MetricFamilyBase(std::string name, std::string help, MetricType type,
                                   std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {}

template <typename T>
MetricFamily<T>::MetricFamily(std::string family_name, std::string help_text, MetricType type,
                              std::vector<std::string> labels, std::vector<double> bounds)
    : MetricFamilyBase(std::move(family_name), std::move(help_text), type, std::move(labels)),
      upper_bounds_(std::move(bounds)) {
  if (label_names().empty()) {
    absl::MutexLock lock(&mu_);
    auto& child = children_[std::vector<std::string>()];
    child = NewChild();
    default_child_ = child.get();
  }
}

template <typename T>
std::unique_ptr<T> MetricFamily<T>::NewChild() const {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<Histogram>(upper_bounds_);
  } else {
    return std::make_unique<T>();
  }
}

template <typename T>
T& MetricFamily<T>::WithLabels(absl::Span<const absl::string_view> label_values) {
  if (label_values.size() != label_names().size()) {
    Die(absl::StrCat("metric \"", name(), "\" has ", label_names().size(), " label(s) {",
                     absl::StrJoin(label_names(), ","), "} but WithLabels got ",
                     label_values.size(), " value(s)"));
  }
  std::vector<std::string> key;
  key.reserve(label_values.size());
  for (absl::string_view value : label_values) key.push_back(SanitizeUtf8(value));
  absl::MutexLock lock(&mu_);
  auto& child = children_[std::move(key)];
  if (child == nullptr) child = NewChild();
  return *child;
}

template <typename T>
T& MetricFamily<T>::Default() {
  if (default_child_ == nullptr) {
    Die(absl::StrCat("metric \"", name(), "\" has labels {", absl::StrJoin(label_names(), ","),
                     "}: use WithLabels(), not Default()"));
  }
  return *default_child_;
}

template <typename T>
void MetricFamily<T>::AppendExposition(std::string* out) const {
  absl::MutexLock lock(&mu_);
  if (children_.empty()) return;
  absl::StrAppend(out, "# HELP ", name(), " ");
  AppendEscaped(out, help(), /*escape_quotes=*/false);
  absl::StrAppend(out, "\n# TYPE ", name(), " ", TypeName(type()), "\n");
  for (const auto& [values, child] : children_) {
    if constexpr (std::is_same_v<T, Histogram>) {
      const HistogramSnapshot snap = child->Snapshot();
      const std::string bucket_name = absl::StrCat(name(), "_bucket");
      for (size_t i = 0; i < snap.cumulative_counts.size(); ++i) {
        const std::string le = i < snap.upper_bounds.size()
                                   ? FormatMetricValue(snap.upper_bounds[i])
                                   : std::string("+Inf");
        AppendSample(out, bucket_name, label_names(), values, "le", le,
                     static_cast<double>(snap.cumulative_counts[i]));
      }
      AppendSample(out, absl::StrCat(name(), "_sum"), label_names(), values, "", "", snap.sum);
      AppendSample(out, absl::StrCat(name(), "_count"), label_names(), values, "", "",
                   static_cast<double>(snap.count));
    } else {
      AppendSample(out, name(), label_names(), values, "", "", child->Value());
    }
  }
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

// ---------------------------------------------------------------------------
// Registry

template <typename T>
absl::StatusOr<MetricFamily<T>*> MetricsRegistry::Add(absl::string_view name,
                                                      absl::string_view help, MetricType type,
                                                      std::vector<std::string> label_names,
                                                      std::vector<double> upper_bounds) {
  if (absl::Status s = ValidateMetricName(name, type); !s.ok()) return s;
  if (help.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("metric \"", name, "\": help text is empty"));
  }
  if (absl::Status s = ValidateLabelNames(name, label_names); !s.ok()) return s;
  if (type == MetricType::kHistogram) {
    if (absl::Status s = ValidateBuckets(name, upper_bounds); !s.ok()) return s;
  }

  absl::MutexLock lock(&mu_);
  if (auto it = families_.find(name); it != families_.end()) {
    MetricFamilyBase* existing = it->second.get();
    if (existing->type() != type) {
      return absl::AlreadyExistsError(
          absl::StrCat("metric \"", name, "\" is already registered as a ",
                       TypeName(existing->type()), ", not a ", TypeName(type)));
    }
    if (existing->label_names() != label_names) {
      return absl::AlreadyExistsError(
          absl::StrCat("metric \"", name, "\" is already registered with labels {",
                       absl::StrJoin(existing->label_names(), ","), "}, not {",
                       absl::StrJoin(label_names, ","), "}"));
    }
    auto* typed = static_cast<MetricFamily<T>*>(existing);
    if (typed->upper_bounds() != upper_bounds) {
      return absl::AlreadyExistsError(
          absl::StrCat("histogram \"", name, "\" is already registered with other bucket bounds"));
    }
    return typed;
  }
  auto family = std::unique_ptr<MetricFamily<T>>(
      new MetricFamily<T>(std::string(name), SanitizeUtf8(help), type, std::move(label_names),
                          std::move(upper_bounds)));
  MetricFamily<T>* result = family.get();
  families_.emplace(std::string(name), std::move(family));
  return result;
}

absl::StatusOr<CounterFamily*> MetricsRegistry::AddCounter(absl::string_view name,
                                                           absl::string_view help,
                                                           std::vector<std::string> label_names) {
  return Add<Counter>(name, help, MetricType::kCounter, std::move(label_names), {});
}

absl::StatusOr<GaugeFamily*> MetricsRegistry::AddGauge(absl::string_view name,
                                                       absl::string_view help,
                                                       std::vector<std::string> label_names) {
  return Add<Gauge>(name, help, MetricType::kGauge, std::move(label_names), {});
}

absl::StatusOr<HistogramFamily*> MetricsRegistry::AddHistogram(absl::string_view name,
                                                               absl::string_view help,
                                                               std::vector<std::string> label_names,
                                                               std::vector<double> upper_bounds) {
  return Add<Histogram>(name, help, MetricType::kHistogram, std::move(label_names),
                        std::move(upper_bounds));
}

std::string MetricsRegistry::Exposition() const {
  // Families are never removed, so the pointers outlive the lock; rendering
  // without it keeps registration unblocked during a scrape.
  std::vector<const MetricFamilyBase*> families;
  {
    absl::MutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& [name, family] : families_) families.push_back(family.get());
  }
  std::string out;
  for (const MetricFamilyBase* family : families) family->AppendExposition(&out);
  return out;
}

MetricsRegistry& DefaultRegistry() {
  static MetricsRegistry* const registry = new MetricsRegistry();
  return *registry;
}

absl::Status RegisterProcessMetrics(MetricsRegistry& registry, absl::string_view version) {
  absl::StatusOr<GaugeFamily*> start = registry.AddGauge(
      "dsm_process_start_time_seconds", "Start time of the process since the Unix epoch.");
  if (!start.ok()) return start.status();
  (*start)->Default().Set(absl::ToDoubleSeconds(kProcessStartTime - absl::UnixEpoch()));

  absl::StatusOr<GaugeFamily*> build = registry.AddGauge(
      "dsm_build_info", "Always 1; the labels describe the dsm build.", {"version"});
  if (!build.ok()) return build.status();
  (*build)->WithLabels({version}).Set(1);
  return absl::OkStatus();
}

}  // namespace dsm
