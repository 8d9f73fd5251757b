# learner/: the GRPO loss (checked against tests/fixtures/learner/grpo_reference.py,
# which needs python3-torch + numpy and reuses tests/fixtures/models/make_reference.py)
# and per-token log-probs.
foreach(t grpo_loss token_logprobs)
  dsm_add_test(${t}_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}_test.cc DEPS dsm_learner LABELS unit TORCH)
endforeach()
