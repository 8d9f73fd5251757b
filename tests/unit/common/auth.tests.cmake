# The security rule, the bearer token and its server-side check.
dsm_add_test(auth_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/auth_test.cc DEPS dsm_common LABELS unit)
