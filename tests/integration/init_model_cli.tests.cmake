# `dsm init-model`: the built-in default model written by the dsm binary.
if(TARGET dsm_model AND TARGET dsm_tasks AND TARGET dsm_cli)
  dsm_add_test(init_model_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/init_model_cli_test.cc
    DEPS dsm_model LABELS integration TORCH)
  add_dependencies(init_model_cli_test dsm)
endif()
