# Compiler settings shared by every dsm target.

find_program(DSM_CCACHE ccache)
if(DSM_CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${DSM_CCACHE}")
  message(STATUS "dsm: using ccache (${DSM_CCACHE})")
endif()

# Warnings are errors for our own code only (dsm_add_library / dsm_add_executable),
# never for generated protobuf code or third-party headers.
set(DSM_WARNINGS -Wall -Wextra -Werror)

if(DSM_SANITIZE)
  message(STATUS "dsm: building with ASan + UBSan")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
add_compile_definitions(DSM_VERSION="${PROJECT_VERSION}")

# Every translation unit is compiled with -pthread (gRPC and Abseil add it to
# their users anyway): one set of flags lets every target reuse the
# precompiled <torch/torch.h> (GCC rejects a PCH built without _REENTRANT).
set(THREADS_PREFER_PTHREAD_FLAG ON)
add_compile_options(-pthread)
