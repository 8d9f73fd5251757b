# The scoring services (services/verifier): a scripted engine behind real gRPC
# servers, and one round trip through the real tiny model.
if(TARGET dsm_services)
  dsm_add_test(scoring_service_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/scoring_service_test.cc
    DEPS dsm_services LABELS integration TORCH)
  dsm_add_test(scoring_process_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/scoring_process_test.cc
    DEPS dsm_services nlohmann_json::nlohmann_json LABELS integration TORCH)
endif()
