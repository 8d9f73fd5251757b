# common/metrics_registry + common/metrics_http_server.
dsm_add_test(metrics_registry_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_registry_test.cc
  DEPS dsm_common
  LABELS unit)

dsm_add_test(metrics_http_server_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_http_server_test.cc
  DEPS dsm_common
  LABELS unit)

# Needs /usr/bin/promtool (Debian package "prometheus", installed by
# scripts/setup.sh); fails, rather than skips, without it.
dsm_add_test(metrics_promtool_check_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/promtool_check_test.cc
  DEPS dsm_common
  LABELS unit)
