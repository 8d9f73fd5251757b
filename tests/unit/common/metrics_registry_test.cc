#include "common/metrics_registry.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dsm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(MetricsRegistry, EmptyRegistryExposesNothing) {
  MetricsRegistry registry;
  EXPECT_EQ(registry.Exposition(), "");
}

TEST(MetricsRegistry, CounterExpositionEscapesHelpAndLabelValues) {
  MetricsRegistry registry;
  CounterFamily* requests =
      registry
          .AddCounter("dsm_requests_total", "Requests handled.\nSecond \"line\" with \\ backslash.",
                      {"method", "path"})
          .value();
  Counter& odd = requests->WithLabels({"GET", "/a\"b\\c\nd"});
  odd.Increment();
  odd.Increment(2.5);
  requests->WithLabels({"POST", "/x"}).Increment(7);

  EXPECT_EQ(registry.Exposition(),
            "# HELP dsm_requests_total Requests handled.\\nSecond \"line\" with \\\\ backslash.\n"
            "# TYPE dsm_requests_total counter\n"
            "dsm_requests_total{method=\"GET\",path=\"/a\\\"b\\\\c\\nd\"} 3.5\n"
            "dsm_requests_total{method=\"POST\",path=\"/x\"} 7\n");
}

TEST(MetricsRegistry, GaugeExpositionFormatsSpecialValues) {
  MetricsRegistry registry;
  GaugeFamily* depth = registry.AddGauge("dsm_queue_depth", "Items queued.").value();
  GaugeFamily* values = registry.AddGauge("dsm_values", "Odd values.", {"kind"}).value();
  values->WithLabels({"pos_inf"}).Set(kInf);
  values->WithLabels({"neg_inf"}).Set(-kInf);
  values->WithLabels({"nan"}).Set(std::numeric_limits<double>::quiet_NaN());
  values->WithLabels({"big"}).Set(123456789012.0);
  values->WithLabels({"tiny"}).Set(1e-7);
  values->WithLabels({"neg"}).Set(-2.5);
  depth->Default().Set(3);
  depth->Default().Increment(2);
  depth->Default().Decrement();

  EXPECT_EQ(registry.Exposition(),
            "# HELP dsm_queue_depth Items queued.\n"
            "# TYPE dsm_queue_depth gauge\n"
            "dsm_queue_depth 4\n"
            "# HELP dsm_values Odd values.\n"
            "# TYPE dsm_values gauge\n"
            "dsm_values{kind=\"big\"} 123456789012\n"
            "dsm_values{kind=\"nan\"} NaN\n"
            "dsm_values{kind=\"neg\"} -2.5\n"
            "dsm_values{kind=\"neg_inf\"} -Inf\n"
            "dsm_values{kind=\"pos_inf\"} +Inf\n"
            "dsm_values{kind=\"tiny\"} 1e-07\n");
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry registry;
  HistogramFamily* latency =
      registry.AddHistogram("dsm_rpc_latency_seconds", "RPC latency.", {"method"}, {0.25, 0.5, 1})
          .value();
  Histogram& get = latency->WithLabels({"get"});
  get.Observe(0.125);
  get.Observe(0.25);  // bounds are inclusive
  get.Observe(0.375);
  get.Observe(2);
  latency->WithLabels({"put"});  // created, never observed

  EXPECT_EQ(registry.Exposition(),
            "# HELP dsm_rpc_latency_seconds RPC latency.\n"
            "# TYPE dsm_rpc_latency_seconds histogram\n"
            "dsm_rpc_latency_seconds_bucket{method=\"get\",le=\"0.25\"} 2\n"
            "dsm_rpc_latency_seconds_bucket{method=\"get\",le=\"0.5\"} 3\n"
            "dsm_rpc_latency_seconds_bucket{method=\"get\",le=\"1\"} 3\n"
            "dsm_rpc_latency_seconds_bucket{method=\"get\",le=\"+Inf\"} 4\n"
            "dsm_rpc_latency_seconds_sum{method=\"get\"} 2.75\n"
            "dsm_rpc_latency_seconds_count{method=\"get\"} 4\n"
            "dsm_rpc_latency_seconds_bucket{method=\"put\",le=\"0.25\"} 0\n"
            "dsm_rpc_latency_seconds_bucket{method=\"put\",le=\"0.5\"} 0\n"
            "dsm_rpc_latency_seconds_bucket{method=\"put\",le=\"1\"} 0\n"
            "dsm_rpc_latency_seconds_bucket{method=\"put\",le=\"+Inf\"} 0\n"
            "dsm_rpc_latency_seconds_sum{method=\"put\"} 0\n"
            "dsm_rpc_latency_seconds_count{method=\"put\"} 0\n");
}

TEST(MetricsRegistry, UnlabelledHistogramAndTrailingInfBound) {
  MetricsRegistry registry;
  HistogramFamily* sizes =
      registry.AddHistogram("dsm_batch_size", "Batch sizes.", {}, {1, 2, kInf}).value();
  EXPECT_THAT(sizes->upper_bounds(), ElementsAre(1, 2));
  sizes->Default().Observe(2);
  sizes->Default().Observe(std::numeric_limits<double>::quiet_NaN());  // goes to +Inf

  const HistogramSnapshot snapshot = sizes->Default().Snapshot();
  EXPECT_THAT(snapshot.cumulative_counts, ElementsAre(0, 1, 2));
  EXPECT_EQ(snapshot.count, 2u);
  EXPECT_TRUE(std::isnan(snapshot.sum));
  EXPECT_EQ(registry.Exposition(),
            "# HELP dsm_batch_size Batch sizes.\n"
            "# TYPE dsm_batch_size histogram\n"
            "dsm_batch_size_bucket{le=\"1\"} 0\n"
            "dsm_batch_size_bucket{le=\"2\"} 1\n"
            "dsm_batch_size_bucket{le=\"+Inf\"} 2\n"
            "dsm_batch_size_sum NaN\n"
            "dsm_batch_size_count 2\n");
}

TEST(MetricsRegistry, FamiliesAreSortedByNameAndLabelledEmptyFamiliesAreOmitted) {
  MetricsRegistry registry;
  ASSERT_TRUE(registry.AddGauge("dsm_zeta", "Z.").ok());
  ASSERT_TRUE(registry.AddCounter("dsm_alpha_total", "A.").ok());
  ASSERT_TRUE(registry.AddCounter("dsm_middle_total", "M.", {"shard"}).ok());  // no children
  EXPECT_EQ(registry.Exposition(),
            "# HELP dsm_alpha_total A.\n"
            "# TYPE dsm_alpha_total counter\n"
            "dsm_alpha_total 0\n"
            "# HELP dsm_zeta Z.\n"
            "# TYPE dsm_zeta gauge\n"
            "dsm_zeta 0\n");
}

TEST(MetricsRegistry, InvalidUtf8LabelValuesAreReplaced) {
  MetricsRegistry registry;
  GaugeFamily* g = registry.AddGauge("dsm_names", "Names.", {"name"}).value();
  g->WithLabels({"ok\xc3\xa9"}).Set(1);                       // valid é
  g->WithLabels({absl::string_view("a\xff\xc3", 3)}).Set(2);  // stray and truncated bytes
  EXPECT_THAT(registry.Exposition(),
              HasSubstr("dsm_names{name=\"a\xef\xbf\xbd\xef\xbf\xbd\"} 2\n"));
  EXPECT_THAT(registry.Exposition(), HasSubstr("dsm_names{name=\"ok\xc3\xa9\"} 1\n"));
}

TEST(MetricsRegistry, WithLabelsReturnsTheSameChildEveryTime) {
  MetricsRegistry registry;
  CounterFamily* c = registry.AddCounter("dsm_events_total", "Events.", {"kind"}).value();
  Counter* first = &c->WithLabels({"a"});
  for (int i = 0; i < 1000; ++i) c->WithLabels({absl::StrCat("k", i)});  // grow the map
  EXPECT_EQ(&c->WithLabels({"a"}), first);
  std::string dynamic = "a";
  EXPECT_EQ(&c->WithLabels({dynamic}), first);
}

TEST(MetricsRegistry, SameRegistrationReturnsExistingFamily) {
  MetricsRegistry registry;
  CounterFamily* a = registry.AddCounter("dsm_x_total", "X.", {"k"}).value();
  CounterFamily* b = registry.AddCounter("dsm_x_total", "Other help is fine.", {"k"}).value();
  EXPECT_EQ(a, b);
  EXPECT_EQ(b->help(), "X.");
  HistogramFamily* h1 = registry.AddHistogram("dsm_hist_seconds", "H.", {}, {1, 2}).value();
  HistogramFamily* h2 = registry.AddHistogram("dsm_hist_seconds", "H.", {}, {1, 2, kInf}).value();
  EXPECT_EQ(h1, h2);
}

TEST(MetricsRegistry, ConflictingRegistrationIsAlreadyExists) {
  MetricsRegistry registry;
  ASSERT_TRUE(registry.AddGauge("dsm_thing", "T.", {"a"}).ok());
  ASSERT_TRUE(registry.AddHistogram("dsm_hist_seconds", "H.", {}, {1, 2}).ok());

  absl::Status s = registry.AddHistogram("dsm_thing", "T.", {"a"}, {1}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("already registered as a gauge, not a histogram"));

  s = registry.AddGauge("dsm_thing", "T.", {"b"}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("labels {a}, not {b}"));

  s = registry.AddGauge("dsm_thing", "T.", {}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);

  s = registry.AddHistogram("dsm_hist_seconds", "H.", {}, {1, 3}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("bucket"));
}

struct BadName {
  MetricType type;
  std::string name;
  std::string expected_message;
};

absl::Status AddOfType(MetricsRegistry& registry, MetricType type, const std::string& name) {
  switch (type) {
    case MetricType::kCounter:
      return registry.AddCounter(name, "Help.").status();
    case MetricType::kGauge:
      return registry.AddGauge(name, "Help.").status();
    case MetricType::kHistogram:
      return registry.AddHistogram(name, "Help.", {}, {1}).status();
  }
  return absl::InternalError("unreachable");
}

TEST(MetricsRegistry, RejectsBadMetricNames) {
  const std::vector<BadName> cases = {
      {MetricType::kGauge, "", "must match"},
      {MetricType::kGauge, "1dsm", "must match"},
      {MetricType::kGauge, "dsm-x", "must match"},
      {MetricType::kGauge, "dsm:x", "forbids ':'"},
      {MetricType::kGauge, "dsmQueue", "must match"},
      {MetricType::kGauge, "dsm_queue\n", "must match"},
      {MetricType::kCounter, "dsm_requests", "counter names must end in \"_total\""},
      {MetricType::kGauge, "dsm_requests_total", "only counters may end in \"_total\""},
      {MetricType::kHistogram, "dsm_latency_total", "only counters may end in \"_total\""},
      {MetricType::kGauge, "dsm_latency_bucket", "reserved for histogram samples"},
      {MetricType::kGauge, "dsm_items_count", "reserved for histogram samples"},
      {MetricType::kHistogram, "dsm_items_sum", "reserved for histogram samples"},
      {MetricType::kGauge, "dsm_queue_gauge", "type word \"gauge\""},
      {MetricType::kCounter, "dsm_counter_requests_total", "type word \"counter\""},
      {MetricType::kHistogram, "dsm_latency_ms", "abbreviated unit \"ms\""},
      {MetricType::kGauge, "dsm_free_mb", "abbreviated unit \"mb\""},
      {MetricType::kHistogram, "dsm_latency_milliseconds", "instead of \"milliseconds\""},
      {MetricType::kGauge, "dsm_uptime_hours", "\"seconds\" instead of \"hours\""},
      {MetricType::kCounter, "dsm_sent_kilobytes_total", "\"bytes\" instead of \"kilobytes\""},
  };
  for (const BadName& c : cases) {
    MetricsRegistry registry;
    const absl::Status s = AddOfType(registry, c.type, c.name);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(s.message(), HasSubstr(c.expected_message)) << c.name;
  }
}

TEST(MetricsRegistry, AcceptsConventionalNames) {
  MetricsRegistry registry;
  EXPECT_TRUE(registry.AddCounter("dsm_sent_bytes_total", "H.").ok());
  EXPECT_TRUE(registry.AddHistogram("dsm_step_duration_seconds", "H.", {}, {1}).ok());
  EXPECT_TRUE(registry.AddGauge("_dsm_private", "H.").ok());
  EXPECT_TRUE(registry.AddGauge("dsm_gpu0_memory_bytes", "H.").ok());
  EXPECT_TRUE(registry.AddGauge("dsm_accounts", "H.").ok());  // "counts" != "_count" suffix
}

TEST(MetricsRegistry, RejectsBadLabelNamesHelpAndBuckets) {
  MetricsRegistry registry;
  const auto code = [](const auto& status_or) { return status_or.status().code(); };
  const auto message = [](const auto& status_or) {
    return std::string(status_or.status().message());
  };
  EXPECT_EQ(code(registry.AddGauge("dsm_a", "H.", {"__reserved"})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(registry.AddGauge("dsm_a", "H.", {"Bad"})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(registry.AddGauge("dsm_a", "H.", {"a-b"})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(registry.AddGauge("dsm_a", "H.", {""})), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(message(registry.AddGauge("dsm_a", "H.", {"x", "x"})), HasSubstr("declared twice"));
  EXPECT_THAT(message(registry.AddHistogram("dsm_hist", "H.", {"le"}, {1})),
              HasSubstr("label name \"le\": reserved"));
  EXPECT_THAT(message(registry.AddGauge("dsm_a", "")), HasSubstr("help text is empty"));
  EXPECT_THAT(message(registry.AddHistogram("dsm_hist", "H.", {}, {1, 1})),
              HasSubstr("strictly ascending"));
  EXPECT_THAT(message(registry.AddHistogram("dsm_hist", "H.", {}, {2, 1})),
              HasSubstr("strictly ascending"));
  EXPECT_THAT(message(registry.AddHistogram("dsm_hist", "H.", {}, {-kInf, 1})),
              HasSubstr("must be finite"));
  EXPECT_THAT(message(registry.AddHistogram("dsm_hist", "H.", {},
                                            {1, std::numeric_limits<double>::quiet_NaN()})),
              HasSubstr("must be finite"));
  // Nothing was registered by the failed calls.
  EXPECT_EQ(registry.Exposition(), "");
}

TEST(MetricsRegistry, CounterIgnoresNegativeAndNanIncrements) {
  MetricsRegistry registry;
  Counter& c = registry.AddCounter("dsm_c_total", "C.").value()->Default();
  c.Increment(2);
  c.Increment(-1);
  c.Increment(std::numeric_limits<double>::quiet_NaN());
  c.Increment(0);
  EXPECT_EQ(c.Value(), 2);
}

TEST(MetricsRegistry, GaugeSetToCurrentTime) {
  MetricsRegistry registry;
  Gauge& g = registry.AddGauge("dsm_last_seen_seconds", "T.").value()->Default();
  const double before = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  g.SetToCurrentTime();
  const double after = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_GE(g.Value(), before);
  EXPECT_LE(g.Value(), after);
}

TEST(MetricsRegistry, BucketHelpers) {
  EXPECT_THAT(ExponentialBuckets(0.001, 2, 4), ElementsAre(0.001, 0.002, 0.004, 0.008));
  EXPECT_THAT(LinearBuckets(1, 0.5, 3), ElementsAre(1, 1.5, 2));
  EXPECT_THAT(LinearBuckets(0, 0.1, 4), ElementsAre(0, 0.1, 0.2, 0.30000000000000004));
}

TEST(MetricsRegistryDeathTest, MisuseOfARegisteredFamilyAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry registry;
  CounterFamily* labelled = registry.AddCounter("dsm_l_total", "L.", {"a", "b"}).value();
  EXPECT_DEATH(labelled->WithLabels({"only_one"}), "has 2 label\\(s\\) \\{a,b\\}");
  EXPECT_DEATH(labelled->Default(), "use WithLabels");
  EXPECT_DEATH(ExponentialBuckets(0, 2, 3), "ExponentialBuckets");
  EXPECT_DEATH(LinearBuckets(0, 1, 0), "LinearBuckets");
}

TEST(FormatMetricValue, IntegersWithoutExponentOthersShortestRoundTrip) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(-0.0), "0");
  EXPECT_EQ(FormatMetricValue(1), "1");
  EXPECT_EQ(FormatMetricValue(-42), "-42");
  EXPECT_EQ(FormatMetricValue(1e15), "1000000000000000");
  EXPECT_EQ(FormatMetricValue(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(FormatMetricValue(1e20), "1e+20");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(FormatMetricValue(2.5e-9), "2.5e-09");
  EXPECT_EQ(FormatMetricValue(kInf), "+Inf");
  EXPECT_EQ(FormatMetricValue(-kInf), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::quiet_NaN()), "NaN");

  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-300, 300);
  for (int i = 0; i < 10000; ++i) {
    const double v = std::pow(10.0, exponent(rng)) * (i % 2 ? 1 : -1);
    const std::string text = FormatMetricValue(v);
    EXPECT_EQ(std::strtod(text.c_str(), nullptr), v) << text;
  }
}

TEST(MetricsRegistry, ConcurrentUpdatesAreExact) {
  MetricsRegistry registry;
  CounterFamily* counter = registry.AddCounter("dsm_ops_total", "Ops.", {"worker"}).value();
  Counter& shared = registry.AddCounter("dsm_shared_total", "Shared.").value()->Default();
  Gauge& gauge = registry.AddGauge("dsm_level", "Level.").value()->Default();
  Histogram& hist =
      registry.AddHistogram("dsm_value", "Values.", {}, LinearBuckets(0, 1, 4)).value()->Default();

  constexpr int kThreads = 8;
  constexpr int kIterations = 50000;
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    while (!done.load()) EXPECT_FALSE(registry.Exposition().empty());
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter& mine = counter->WithLabels({absl::StrCat("w", t % 4)});  // 2 threads per child
      for (int i = 0; i < kIterations; ++i) {
        shared.Increment();
        mine.Increment(0.5);
        gauge.Increment();
        gauge.Decrement(2);
        hist.Observe(i % 5);  // 0..4: the last lands in +Inf
        if (i % 1000 == 0) counter->WithLabels({absl::StrCat("late", i % 7)});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  done = true;
  scraper.join();

  EXPECT_EQ(shared.Value(), kThreads * kIterations);
  for (int w = 0; w < 4; ++w) {
    EXPECT_EQ(counter->WithLabels({absl::StrCat("w", w)}).Value(), 2 * kIterations * 0.5);
  }
  EXPECT_EQ(gauge.Value(), -kThreads * kIterations);
  const HistogramSnapshot snapshot = hist.Snapshot();
  const uint64_t per_value = kThreads * kIterations / 5;
  EXPECT_THAT(snapshot.cumulative_counts,
              ElementsAre(per_value, 2 * per_value, 3 * per_value, 4 * per_value, 5 * per_value));
  EXPECT_EQ(snapshot.sum, static_cast<double>(per_value) * (0 + 1 + 2 + 3 + 4));
}

TEST(MetricsRegistry, DefaultRegistryIsASingleton) {
  EXPECT_EQ(&DefaultRegistry(), &DefaultRegistry());
}

TEST(MetricsRegistry, ProcessMetrics) {
  MetricsRegistry registry;
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  ASSERT_TRUE(RegisterProcessMetrics(registry, "1.2.3").ok());
  ASSERT_TRUE(RegisterProcessMetrics(registry, "1.2.3").ok());  // idempotent
  const std::string text = registry.Exposition();
  EXPECT_THAT(text,
              HasSubstr("# TYPE dsm_build_info gauge\ndsm_build_info{version=\"1.2.3\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE dsm_process_start_time_seconds gauge\n"));
  const double start =
      registry.AddGauge("dsm_process_start_time_seconds", "x").value()->Default().Value();
  EXPECT_LE(start, now);
  EXPECT_GT(start, now - 3600);
}

}  // namespace
}  // namespace dsm
