# learner/ training core: micro-batch packing, checkpoints, data parallel (Gloo on
# loopback, two ranks as two threads), the trainer (resume bit-identity).
# The tiny models come from tests/fixtures/models/make_reference.py.
foreach(t micro_batcher checkpoint data_parallel trainer)
  dsm_add_test(${t}_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}_test.cc DEPS dsm_learner LABELS unit TORCH TIMEOUT 120)
endforeach()
