dsm_add_test(config_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/config_test.cc DEPS dsm_common LABELS unit)
dsm_add_test(status_conversion_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/status_conversion_test.cc
  DEPS dsm_common LABELS unit)
dsm_add_test(logging_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/logging_test.cc DEPS dsm_common LABELS unit)
dsm_add_test(file_io_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/file_io_test.cc DEPS dsm_file_io LABELS unit)
dsm_add_test(crc32c_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/crc32c_test.cc DEPS dsm_common LABELS unit)
dsm_add_test(concurrent_calls_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/concurrent_calls_test.cc DEPS dsm_common
  LABELS unit)
