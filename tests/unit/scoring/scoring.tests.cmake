# services/scoring: score parsing, aggregation, prompt templates (text only, no LibTorch).
if(TARGET dsm_scoring)
  dsm_add_test(score_parser_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/score_parser_test.cc
    DEPS dsm_scoring LABELS unit)
  dsm_add_test(aggregation_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/aggregation_test.cc
    DEPS dsm_scoring LABELS unit)
  dsm_add_test(prompt_template_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/prompt_template_test.cc
    DEPS dsm_scoring LABELS unit)
  dsm_add_test(wire_finish_reason_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/wire_finish_reason_test.cc
    DEPS dsm_scoring LABELS unit)
endif()
