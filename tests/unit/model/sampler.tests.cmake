# The batched sampler (continuous batching, per-sequence seeds, stops, adapters).
dsm_add_test(sampler_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/sampler_test.cc DEPS dsm_model LABELS unit TORCH)
