dsm_add_test(grpc_server_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/grpc_server_test.cc
  DEPS dsm_common LABELS integration)
dsm_add_test(cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cli_test.cc DEPS dsm_common LABELS integration)
add_dependencies(cli_test dsm)
