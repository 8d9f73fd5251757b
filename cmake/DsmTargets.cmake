# Helpers that give every dsm target the same settings.

# dsm_add_library(NAME SOURCES ... [DEPS ...] [TORCH])
#   One static library per folder. TORCH links LibTorch and reuses the shared
#   precompiled <torch/torch.h> header (see dsm_torch_pch below).
function(dsm_add_library name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${DSM_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  if(ARG_TORCH)
    dsm_use_torch(${name})
  endif()
endfunction()

# dsm_add_executable(NAME SOURCES ... [DEPS ...] [TORCH])
function(dsm_add_executable name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${DSM_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  if(ARG_TORCH)
    dsm_use_torch(${name})
  endif()
endfunction()

# One precompiled <torch/torch.h>, built once and reused by every target that
# includes LibTorch: on two cores this saves minutes per clean build.
function(dsm_use_torch target)
  if(NOT DSM_WITH_TORCH)
    message(FATAL_ERROR "${target} needs LibTorch but DSM_WITH_TORCH is OFF")
  endif()
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  if(NOT TARGET dsm_torch_pch)
    file(WRITE ${PROJECT_BINARY_DIR}/dsm_torch_pch.cc "// precompiled-header carrier\n")
    add_library(dsm_torch_pch STATIC ${PROJECT_BINARY_DIR}/dsm_torch_pch.cc)
    target_link_libraries(dsm_torch_pch PUBLIC ${TORCH_LIBRARIES})
    target_precompile_headers(dsm_torch_pch PUBLIC <torch/torch.h>)
  endif()
  target_precompile_headers(${target} REUSE_FROM dsm_torch_pch)
endfunction()

# dsm_add_test(NAME SOURCES ... [DEPS ...] LABELS unit|integration|e2e|slow ... [TORCH] [TIMEOUT s])
#   Registers a GoogleTest binary with CTest under the given labels.
function(dsm_add_test name)
  cmake_parse_arguments(ARG "TORCH" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT ARG_LABELS)
    message(FATAL_ERROR "dsm_add_test(${name}): LABELS is required")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${DSM_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest GTest::gtest_main)
  if(ARG_TORCH)
    dsm_use_torch(${name})
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    LABELS "${ARG_LABELS}"
    TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "DSM_SOURCE_DIR=${PROJECT_SOURCE_DIR};DSM_BINARY_DIR=${PROJECT_BINARY_DIR}")
endfunction()
