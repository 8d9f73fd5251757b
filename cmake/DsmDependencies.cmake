# Every dependency comes from Debian 12 packages (see scripts/setup.sh).

find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
# Debian nlohmann-json3-dev: tokenizer.json / config.json, JSONL imports.
find_package(nlohmann_json 3 CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
if(DSM_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()

if(DSM_WITH_TORCH)
  # Debian's LibTorch (CPU) or a CUDA LibTorch from a PyTorch install:
  #   cmake -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  find_package(Torch REQUIRED)
endif()

find_program(DSM_PROTOC protoc REQUIRED)
find_program(DSM_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
