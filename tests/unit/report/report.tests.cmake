# services/report: the run report page (HTML + SVG, no LibTorch).
dsm_add_test(run_report_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/run_report_test.cc DEPS dsm_report LABELS unit)
