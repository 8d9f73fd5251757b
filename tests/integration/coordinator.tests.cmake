# The Coordinator service over real gRPC with scripted workers (no model).
if(TARGET dsm_coordinator)
  dsm_add_test(coordinator_service_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/coordinator_service_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 120)
endif()
