# tasks/: the built-in chain domain (generator, checker, analyses, tokenizer, JSONL export).
if(TARGET dsm_tasks)
  foreach(t chain_domain chain_checker chain_tokenizer chain_grader)
    dsm_add_test(${t}_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}_test.cc DEPS dsm_tasks LABELS unit)
  endforeach()
  # Analyses are checked with the scoring services' own parser.
  if(TARGET dsm_scoring)
    dsm_add_test(chain_analysis_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/chain_analysis_test.cc
      DEPS dsm_tasks dsm_scoring LABELS unit)
  endif()
  # The warm-up's examples, with the built-in tiny prompt templates (LibTorch library).
  if(TARGET dsm_chain_warmup)
    dsm_add_test(chain_warmup_examples_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/chain_warmup_examples_test.cc
      DEPS dsm_chain_warmup dsm_scoring LABELS unit TORCH)
    dsm_add_test(chain_warmup_plan_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/chain_warmup_plan_test.cc
      DEPS dsm_chain_warmup LABELS unit TORCH)
    dsm_add_test(chain_warmup_eval_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/chain_warmup_eval_test.cc
      DEPS dsm_chain_warmup LABELS unit TORCH)
  endif()
  # The export is read back with the coordinator's JSONL reader.
  if(TARGET dsm_coordinator)
    dsm_add_test(jsonl_export_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/jsonl_export_test.cc
      DEPS dsm_tasks dsm_coordinator LABELS unit)
  endif()
  # The written tokenizer.json loads in model/tokenizer.h and round-trips the domain's texts.
  if(TARGET dsm_model)
    dsm_add_test(chain_tokenizer_model_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/chain_tokenizer_model_test.cc
      DEPS dsm_tasks dsm_model LABELS unit TORCH)
  endif()
endif()
