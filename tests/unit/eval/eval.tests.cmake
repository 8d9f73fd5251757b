# services/eval: test-time scaling (sequential refinement, best-of-n) over a scripted backend.
if(TARGET dsm_eval)
  dsm_add_test(proof_search_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/proof_search_test.cc
    DEPS dsm_eval LABELS unit TORCH)
endif()
