# The run report in a real browser: headless Chromium (Debian `chromium`,
# installed by scripts/setup.sh) must run the page's script without errors and
# paint a page that is not blank. Skips when /usr/bin/chromium is missing.
find_package(ZLIB REQUIRED)
dsm_add_test(report_render_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/report_render_test.cc
  DEPS dsm_report ZLIB::ZLIB absl::statusor absl::time LABELS integration browser TIMEOUT 180)
