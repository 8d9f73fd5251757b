if(TARGET dsm_model)
  dsm_add_test(model_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/model_cli_test.cc
    DEPS dsm_model LABELS integration TORCH)
  add_dependencies(model_cli_test dsm)
endif()
if(TARGET dsm_services)
  dsm_add_test(adapter_streaming_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/adapter_streaming_test.cc
    DEPS dsm_services LABELS integration TORCH)
endif()
if(TARGET dsm_services)
  dsm_add_test(adapter_registry_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/adapter_registry_test.cc
    DEPS dsm_services LABELS integration TORCH)
endif()
if(TARGET dsm_services)
  dsm_add_test(worker_process_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_process_test.cc
    DEPS dsm_services LABELS integration TORCH)
  add_dependencies(worker_process_test dsm)
endif()
if(TARGET dsm_services)
  dsm_add_test(generation_service_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/generation_service_test.cc
    DEPS dsm_services LABELS integration TORCH TIMEOUT 60)
endif()
