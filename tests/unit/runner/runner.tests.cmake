# services/runner: `dsm run`'s child supervision, progress lines and run summary (no LibTorch).
dsm_add_test(service_supervisor_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/service_supervisor_test.cc
             DEPS dsm_runner LABELS unit)
dsm_add_test(run_summary_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/run_summary_test.cc DEPS dsm_runner LABELS unit)
dsm_add_test(progress_line_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/progress_line_test.cc DEPS dsm_runner LABELS unit)
