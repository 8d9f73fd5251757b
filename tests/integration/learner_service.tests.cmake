# The Learner gRPC service over real gRPC in-process: SubmitGroups credits and
# acks, dropping rules, training + WatchAdapters publication, GetState,
# InitAdapter, Checkpoint.
if(TARGET dsm_services)
  dsm_add_test(learner_service_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/learner_service_test.cc
    DEPS dsm_services LABELS integration TORCH TIMEOUT 120)
endif()
# `dsm serve learner` killed with SIGKILL and restarted: bit-identical resume,
# versions above the killed learner's, a worker that reconnects by itself.
if(TARGET dsm_services)
  dsm_add_test(learner_restart_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/learner_restart_test.cc
    DEPS dsm_services LABELS integration TORCH TIMEOUT 300)
  add_dependencies(learner_restart_test dsm)
endif()
