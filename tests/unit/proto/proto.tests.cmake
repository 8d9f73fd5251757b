# Wire API tests: every message round-trips, every file registers its message
# types and every service its rpcs, stubs and gMock mocks exist, and every
# proto element is documented.
dsm_add_test(proto_roundtrip_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/proto_roundtrip_test.cc
  DEPS dsm_proto
  LABELS unit)

# The docs lint reads a descriptor set with source info (comments), made by
# protoc here; Debian ships no libprotoc headers to parse .proto files in C++.
file(GLOB dsm_proto_doc_files CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/proto/dsm/v1/*.proto
  ${PROJECT_SOURCE_DIR}/proto/grpc/health/v1/*.proto)
set(dsm_proto_descriptor_set ${CMAKE_CURRENT_BINARY_DIR}/dsm_proto_with_docs.pb)
add_custom_command(
  OUTPUT ${dsm_proto_descriptor_set}
  COMMAND ${DSM_PROTOC}
    --proto_path=${PROJECT_SOURCE_DIR}/proto
    --include_imports --include_source_info
    --descriptor_set_out=${dsm_proto_descriptor_set}
    ${dsm_proto_doc_files}
  DEPENDS ${dsm_proto_doc_files}
  COMMENT "protoc descriptor set with comments for proto_docs_test")

dsm_add_test(proto_docs_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/proto_docs_test.cc ${dsm_proto_descriptor_set}
  DEPS protobuf::libprotobuf
  LABELS unit)
target_compile_definitions(proto_docs_test PRIVATE
  DSM_PROTO_DESCRIPTOR_SET="${dsm_proto_descriptor_set}")
