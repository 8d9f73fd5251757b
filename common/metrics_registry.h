// Metrics registry with Prometheus text exposition (format 0.0.4).
//
// prometheus-cpp is not packaged in Debian 12, so this is dsm's own small
// registry: counters, gauges and histograms, each a family with a fixed set of
// label names declared once at registration (DESIGN.md §7, STYLE.md item 6).
//
//   MetricsRegistry& r = DefaultRegistry();
//   CounterFamily* rpcs = r.AddCounter("dsm_rpcs_total", "RPCs handled.",
//                                      {"method", "code"}).value();
//   Counter& ok = rpcs->WithLabels({"Generate", "OK"});  // look up once...
//   ok.Increment();                                       // ...then hot path
//
// Errors: registration problems (a bad name, a conflicting re-registration)
// come back as absl::Status; these are usually programmer errors, and callers
// that register fixed names at start-up may simply `.value()` the result.
// Misusing a family that was registered successfully (the wrong number of
// label values, Default() on a labelled family) is a programmer error that
// cannot be reported sensibly on the hot path: it logs and aborts.
//
// Naming rules enforced at registration, so that every exposition passes
// `promtool check metrics` (its lint included):
//   - metric names match [a-z_][a-z0-9_]* (lower-case snake_case; dsm forbids
//     the ':' Prometheus reserves for recording rules);
//   - counters end in "_total" and nothing else does;
//   - no name ends in "_bucket", "_count" or "_sum" (histogram sample names);
//   - no name contains a type word ("_counter", "_gauge", "_histogram",
//     "_summary" as a whole '_'-separated word), an abbreviated unit ("_ms",
//     "_s", "_kb", ...) or a non-base unit ("milliseconds", "kilobytes",
//     "minutes", ...): use seconds and bytes;
//   - help text is non-empty;
//   - label names match [a-z_][a-z0-9_]*, do not start with "__", are not
//     "le" or "quantile", and are distinct within a family.
// By convention dsm metric names also start with "dsm_" (not enforced, so that
// standard names such as process metrics stay possible).
//
// Thread safety: everything here is thread-safe. Counter/Gauge/Histogram
// updates are lock-free atomics; WithLabels() takes a per-family mutex, so
// hot paths should keep the returned reference instead of looking it up on
// every event. Exposition() may run concurrently with updates; each value it
// prints is read atomically, a histogram's _count always equals its
// le="+Inf" bucket, but its _sum may lag by in-flight observations.
//
// Lifetime: families and children are owned by their registry and never
// removed; references stay valid for the registry's life.

#ifndef DSM_COMMON_METRICS_REGISTRY_H_
#define DSM_COMMON_METRICS_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace dsm {

enum class MetricType { kCounter, kGauge, kHistogram };

namespace metrics_internal {
// atomic<double> has no fetch_add before C++20: a relaxed CAS loop instead.
inline void AtomicAdd(std::atomic<double>& target, double amount) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + amount, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
  }
}
}  // namespace metrics_internal

// A monotonically increasing value. Thread-safe, lock-free.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `amount`. A negative or NaN amount is a caller bug: it is ignored
  // and logged (once per counter) so that the counter stays monotonic.
  void Increment(double amount = 1.0) {
    if (!(amount >= 0.0)) {
      RejectIncrement(amount);
      return;
    }
    metrics_internal::AtomicAdd(value_, amount);
  }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  void RejectIncrement(double amount);

  std::atomic<double> value_{0.0};
  std::atomic<bool> warned_{false};
};

// A value that can go up and down. Thread-safe, lock-free.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Increment(double amount = 1.0) { metrics_internal::AtomicAdd(value_, amount); }
  void Decrement(double amount = 1.0) { Increment(-amount); }
  // Sets the gauge to the current wall-clock time in Unix seconds.
  void SetToCurrentTime();
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A point-in-time copy of a histogram, for tests and exposition.
struct HistogramSnapshot {
  std::vector<double> upper_bounds;         // finite bounds, ascending; +Inf implied
  std::vector<uint64_t> cumulative_counts;  // size upper_bounds.size() + 1; last is +Inf
  double sum = 0.0;
  uint64_t count = 0;  // equals cumulative_counts.back()
};

// Counts observations into buckets with fixed upper bounds (inclusive, as
// Prometheus' `le`), plus a sum. Thread-safe, lock-free.
class Histogram {
 public:
  // `upper_bounds` must already be validated (finite, strictly ascending).
  explicit Histogram(std::vector<double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Records one observation. NaN counts in the +Inf bucket (and makes the sum
  // NaN), as in the Go client.
  void Observe(double value);
  HistogramSnapshot Snapshot() const;

 private:
  const std::vector<double> upper_bounds_;
  // Per-bucket (non-cumulative) counts; the last one is the +Inf bucket.
  const std::unique_ptr<std::atomic<uint64_t>[]> bucket_counts_;
  std::atomic<double> sum_{0.0};
};

// Bucket helpers. Both abort on arguments that are programmer errors
// (count < 1, non-positive start or factor <= 1 for exponential, width <= 0).
// ExponentialBuckets(0.001, 2, 4) == {0.001, 0.002, 0.004, 0.008}.
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// LinearBuckets(1, 0.5, 3) == {1, 1.5, 2}.
std::vector<double> LinearBuckets(double start, double width, int count);

// Common to every family; the exposition code talks to families through it.
class MetricFamilyBase {
 public:
  virtual ~MetricFamilyBase() = default;
  MetricFamilyBase(const MetricFamilyBase&) = delete;
  MetricFamilyBase& operator=(const MetricFamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends this family's HELP, TYPE and sample lines to `out`. A labelled
  // family with no children yet writes nothing.
  virtual void AppendExposition(std::string* out) const = 0;

 protected:
  MetricFamilyBase(std::string name, std::string help, MetricType type,
                   std::vector<std::string> label_names);

 private:
  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
};

// One metric family: a name, help text, and a child metric per distinct tuple
// of label values. T is Counter, Gauge or Histogram. Owned by a registry.
template <typename T>
class MetricFamily final : public MetricFamilyBase {
 public:
  // Returns the child for `label_values` (one per declared label name, in
  // declaration order), creating it on first use. The reference stays valid
  // for the registry's life. Takes a mutex: call it once and keep the result.
  // Aborts if the number of values differs from the number of label names.
  // Values that are not valid UTF-8 have the bad bytes replaced by U+FFFD.
  T& WithLabels(absl::Span<const absl::string_view> label_values);

  // The single child of a family declared without labels (created at
  // registration, so it is exposed as 0 from the start). Lock-free. Aborts if
  // the family has labels.
  T& Default();

  void AppendExposition(std::string* out) const override;

  // Histogram families only: the finite bucket upper bounds.
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

 private:
  friend class MetricsRegistry;
  MetricFamily(std::string name, std::string help, MetricType type,
               std::vector<std::string> label_names, std::vector<double> upper_bounds);
  std::unique_ptr<T> NewChild() const;

  const std::vector<double> upper_bounds_;
  T* default_child_ = nullptr;  // set at construction iff there are no labels
  mutable absl::Mutex mu_;
  // Ordered by label values, so exposition is deterministic.
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
};

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

extern template class MetricFamily<Counter>;
extern template class MetricFamily<Gauge>;
extern template class MetricFamily<Histogram>;

// Owns metric families and renders them as Prometheus text. Thread-safe.
// Use DefaultRegistry() in services; make a local MetricsRegistry in tests.
class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registers a family, or returns the existing one when a family with this
  // name, type and label names (and bucket bounds, for histograms) already
  // exists; the first help text is kept. Errors:
  //   InvalidArgument: a name, label name, help or bucket list breaks the
  //     rules in the file comment; the message names the offending part.
  //   AlreadyExists: the name is registered with another type, other label
  //     names or other buckets.
  // Returned pointers are never null and live as long as the registry.
  absl::StatusOr<CounterFamily*> AddCounter(absl::string_view name, absl::string_view help,
                                            std::vector<std::string> label_names = {});
  absl::StatusOr<GaugeFamily*> AddGauge(absl::string_view name, absl::string_view help,
                                        std::vector<std::string> label_names = {});
  // `upper_bounds`: finite, strictly ascending; a trailing +Inf is accepted
  // and dropped (the +Inf bucket is always present). May be empty.
  absl::StatusOr<HistogramFamily*> AddHistogram(absl::string_view name, absl::string_view help,
                                                std::vector<std::string> label_names,
                                                std::vector<double> upper_bounds);

  // The whole registry in Prometheus text format 0.0.4: families sorted by
  // name, children sorted by label values, newline-terminated.
  std::string Exposition() const;

 private:
  template <typename T>
  absl::StatusOr<MetricFamily<T>*> Add(absl::string_view name, absl::string_view help,
                                       MetricType type, std::vector<std::string> label_names,
                                       std::vector<double> upper_bounds);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<MetricFamilyBase>, std::less<>> families_
      ABSL_GUARDED_BY(mu_);
};

// The process-wide registry that services expose on /metrics. Never destroyed.
MetricsRegistry& DefaultRegistry();

// Registers and sets the standard process metrics:
//   dsm_process_start_time_seconds  gauge: Unix time the process started
//   dsm_build_info{version}         gauge: always 1
// Idempotent for the same version; call it from each service's start code.
absl::Status RegisterProcessMetrics(MetricsRegistry& registry, absl::string_view version);

// Formatting helpers, exposed for tests and other text writers.
// A double as Prometheus parses it: "+Inf", "-Inf", "NaN", integers without
// exponent or fraction (up to 2^53), otherwise the shortest round-trip form.
std::string FormatMetricValue(double value);

}  // namespace dsm

#endif  // DSM_COMMON_METRICS_REGISTRY_H_
