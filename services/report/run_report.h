// The run report: runs/<name>/report.html, written by `dsm run` at the end of
// a run. One self-contained HTML page (no external resources, no server, no
// script needed to show it): a header (run, state, wall time), the paper's
// claims measured on this run, one SVG line chart per training metric with the
// phases as labelled bands, before/after evaluation charts per phase, the
// phases, summary.json's numbers and the configuration. Pure functions over
// the data below, thread-safe.
#ifndef DSM_SERVICES_REPORT_RUN_REPORT_H_
#define DSM_SERVICES_REPORT_RUN_REPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dsm {

struct ReportPoint {
  double x = 0;  // seconds since the run started
  double y = 0;
};

// One metric of one phase (e.g. "reward_mean", "kl", "loss").
struct ReportSeries {
  std::string metric;
  std::string phase;
  uint32_t iteration = 0;
  std::vector<ReportPoint> points;
};

struct ReportPhaseSpan {
  std::string phase;
  uint32_t iteration = 0;
  double start_seconds = 0;
  double end_seconds = 0;
};

// An evaluation against the exact checker, taken before or after a phase.
struct ReportEvaluation {
  std::string phase;
  uint32_t iteration = 0;
  std::string point;  // "before" | "after"
  std::map<std::string, double> metrics;
  uint32_t items = 0;
  double at_seconds = 0;
};

// One of the paper's claims measured on this run, e.g. "verifier agreement
// rises in phase 1".
struct ReportClaim {
  std::string name;
  std::string description;
  double before = 0;
  double after = 0;
  bool held = false;
};

struct RunReportData {
  std::string run_name;
  std::string state;
  std::string started_at;  // RFC 3339
  double wall_seconds = 0;
  std::string config_yaml;
  std::vector<ReportPhaseSpan> phases;
  std::vector<ReportSeries> series;
  std::vector<ReportEvaluation> evaluations;
  std::map<std::string, double> summary;  // summary.json's numbers
  std::vector<ReportClaim> claims;
};

// The page. All text from `data` is escaped; non-finite values are left out of
// the charts and shown as "n/a" in tables. When the page's one inline script
// (legend highlighting) has run, <html> carries data-report-ready="1".
std::string RenderRunReportHtml(const RunReportData& data);

// Writes the page to `path` atomically (a temporary file beside it, then a
// rename). The parent folder must exist. Errors name `path`.
absl::Status WriteRunReport(const RunReportData& data, const std::string& path);

}  // namespace dsm

#endif  // DSM_SERVICES_REPORT_RUN_REPORT_H_
