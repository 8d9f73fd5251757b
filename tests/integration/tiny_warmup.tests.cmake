# Phase-0 warm-up of the built-in tiny model: a model dsm initialises itself learns the chain
# domain by SFT, graded by the exact checker on held-out problems (tiny_warmup_test.cc says
# how to run the experiments behind the numbers in the issue-6 note).
if(TARGET dsm_learner AND TARGET dsm_tasks)
  dsm_add_test(tiny_warmup_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tiny_warmup_test.cc
    DEPS dsm_learner dsm_model dsm_tasks LABELS integration TORCH TIMEOUT 600)
endif()
