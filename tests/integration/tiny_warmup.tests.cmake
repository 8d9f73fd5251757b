# Phase-0 warm-up of the built-in tiny model (tasks/chain_warmup.h): a model dsm initialises
# itself learns the chain domain's three formats, graded by the exact checker on held-out
# problems. The recipe's full run is a second CTest test of the same binary, labelled slow.
if(TARGET dsm_chain_warmup)
  dsm_add_test(tiny_warmup_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tiny_warmup_test.cc
    DEPS dsm_chain_warmup dsm_model dsm_tasks LABELS integration TORCH TIMEOUT 900)
  # Phase 0's own proofs sampled side by side on its replicas (tasks/chain_sampling.h).
  dsm_add_test(chain_sampling_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/chain_sampling_test.cc
    DEPS dsm_chain_warmup dsm_model dsm_tasks LABELS integration TORCH)
  add_test(NAME tiny_warmup_recipe_test COMMAND tiny_warmup_test --gtest_filter=TinyWarmup.Recipe*)
  set_tests_properties(tiny_warmup_recipe_test PROPERTIES LABELS "integration;slow" TIMEOUT 1200
    ENVIRONMENT "DSM_SOURCE_DIR=${PROJECT_SOURCE_DIR};DSM_BINARY_DIR=${PROJECT_BINARY_DIR};DSM_WARMUP_RECIPE=1")
endif()
