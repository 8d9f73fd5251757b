# The adapter wire format: the in-place chunk parser and serialiser against
# protobuf's own, and the assembler fed from pieces.
if(TARGET dsm_services)
  dsm_add_test(adapter_chunk_wire_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/adapter_chunk_wire_test.cc
    DEPS dsm_services LABELS unit TORCH)
endif()
