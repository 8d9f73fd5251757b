# The Coordinator service over real gRPC with scripted workers (no model).
if(TARGET dsm_coordinator)
  dsm_add_test(coordinator_service_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/coordinator_service_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 120)
endif()
# `dsm serve coordinator` killed with SIGKILL and restarted on its state.db.
if(TARGET dsm_coordinator AND TARGET dsm_services)
  dsm_add_test(coordinator_restart_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/coordinator_restart_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 120)
  add_dependencies(coordinator_restart_test dsm)
endif()
