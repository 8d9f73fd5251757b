// Text for the run report's HTML and SVG: escaping and number formatting.
// Pure functions, thread-safe.
#ifndef DSM_SERVICES_REPORT_HTML_TEXT_H_
#define DSM_SERVICES_REPORT_HTML_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace dsm {

// `text` safe inside an element or a quoted attribute: & < > " ' escaped.
std::string HtmlEscape(absl::string_view text);

// A value for people to read: 4 significant digits ("0.5123", "1.235e+06"),
// whole numbers below 1e15 in full ("18432"); "n/a" for NaN and infinities.
std::string FormatNumber(double value);

// A duration for people to read: "42.0 s", "3 min 07 s", "2 h 05 min";
// "n/a" when negative or not finite.
std::string FormatDuration(double seconds);

// A coordinate for SVG: fixed, two decimals. The caller passes finite values.
std::string Coord(double value);

}  // namespace dsm

#endif  // DSM_SERVICES_REPORT_HTML_TEXT_H_
