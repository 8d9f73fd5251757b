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
# The coordinator's client of the scoring services, against fake replicas.
if(TARGET dsm_coordinator)
  dsm_add_test(scoring_client_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/scoring_client_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 60)
endif()
# The coordinator's feed of training groups, against a fake learner.
if(TARGET dsm_coordinator)
  dsm_add_test(group_feeder_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/group_feeder_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 60)
endif()
# `dsm import` against `dsm serve coordinator`.
if(TARGET dsm_coordinator)
  dsm_add_test(import_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/import_cli_test.cc
    DEPS dsm_common LABELS integration TIMEOUT 60)
  add_dependencies(import_cli_test dsm)
endif()
# Pipeline phase 1 / 3 against fake scoring services.
if(TARGET dsm_coordinator)
  dsm_add_test(verifier_phase_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/verifier_phase_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 60)
endif()
# Pipeline phase 4 against a scripted worker session and fake scoring services.
if(TARGET dsm_coordinator)
  dsm_add_test(generator_phase_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/generator_phase_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 60)
endif()
# Pipeline phase 5 against a scripted worker session and fake scoring services.
if(TARGET dsm_coordinator)
  dsm_add_test(auto_label_phase_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/auto_label_phase_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 60)
endif()
# The pipeline runner over one iteration against mock peers.
if(TARGET dsm_coordinator)
  dsm_add_test(pipeline_runner_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/pipeline_runner_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 60)
endif()
# The coordinator runs the pipeline when its run starts, over real gRPC to fake peers.
if(TARGET dsm_coordinator)
  dsm_add_test(coordinator_pipeline_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/coordinator_pipeline_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 90)
endif()
# Verifier evaluation against a fake verifier and a scripted grader.
if(TARGET dsm_coordinator)
  dsm_add_test(verifier_evaluation_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/verifier_evaluation_test.cc
    DEPS dsm_coordinator LABELS integration TIMEOUT 60)
endif()
