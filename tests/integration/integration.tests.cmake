dsm_add_test(grpc_server_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/grpc_server_test.cc
  DEPS dsm_common LABELS integration)
dsm_add_test(cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cli_test.cc DEPS dsm_common LABELS integration)
add_dependencies(cli_test dsm)
# `dsm eval`: test-time scaling on a model dsm initialises, adapters written by the test.
if(TARGET dsm_eval)
  dsm_add_test(eval_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/eval_cli_test.cc
    DEPS dsm_learner dsm_model dsm_tasks nlohmann_json::nlohmann_json LABELS integration TORCH)
  add_dependencies(eval_cli_test dsm)
endif()
