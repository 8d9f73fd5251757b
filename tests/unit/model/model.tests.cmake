# model/: safetensors, config, Llama-family forward + KV cache, LoRA, `dsm logits`.
# The reference models come from tests/fixtures/models/make_reference.py
# (python3-torch + numpy), generated on first use under $DSM_BINARY_DIR/fixtures.
foreach(t safetensors model_config llama_model lora logits_cli mixed_precision)
  dsm_add_test(${t}_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}_test.cc DEPS dsm_model LABELS unit TORCH)
endforeach()
# model_init: a fresh model folder from the chain domain's tokenizer (tasks/).
if(TARGET dsm_tasks)
  dsm_add_test(model_init_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/model_init_test.cc
    DEPS dsm_model dsm_tasks LABELS unit TORCH)
endif()
