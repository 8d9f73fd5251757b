if(TARGET dsm_services)
  dsm_add_test(grpo_toy_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/grpo_toy_test.cc
    DEPS dsm_services LABELS e2e TORCH TIMEOUT 300)
  add_dependencies(grpo_toy_test dsm)
endif()
if(TARGET dsm_services AND TARGET dsm_coordinator)
  dsm_add_test(worker_kill_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_kill_test.cc
    DEPS dsm_services dsm_coordinator LABELS e2e TORCH TIMEOUT 300)
  add_dependencies(worker_kill_test dsm)
endif()
if(TARGET dsm_services AND TARGET dsm_coordinator)
  dsm_add_test(dsm_run_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/dsm_run_test.cc
    DEPS dsm_coordinator nlohmann_json::nlohmann_json LABELS e2e TIMEOUT 900)
  add_dependencies(dsm_run_test dsm)
endif()
if(TARGET dsm_services AND TARGET dsm_coordinator)
  # README command 1's run, about 15 minutes: labelled slow, not part of `.ci/run`.
  dsm_add_test(tiny_run_directions_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tiny_run_directions_test.cc
    DEPS dsm_coordinator nlohmann_json::nlohmann_json LABELS "e2e;slow" TIMEOUT 1800)
  add_dependencies(tiny_run_directions_test dsm)
endif()
