# services/coordinator: run state (SQLite), lease queue, JSONL import. No model, no gRPC server.
foreach(t state_db_test lease_queue_test run_store_test coordinator_crash_test jsonl_import_test rewards_test
    warmup_phase_test coordinator_options_test auto_label_evaluation_test generation_window_test pass_order_test
    warmup_targets_test)
  dsm_add_test(${t} SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}.cc DEPS dsm_coordinator LABELS unit TIMEOUT 120)
endforeach()
