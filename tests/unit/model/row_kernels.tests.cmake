# The sampler's row kernels: per-row float32 CPU matrix products, norms and cached attention
# that agree with LibTorch's and give a row the same bits whatever batch it is in.
dsm_add_test(row_kernels_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/row_kernels_test.cc DEPS dsm_model LABELS unit TORCH)
