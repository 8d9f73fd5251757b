# TLS and the bearer token on a real server hosting every service (issue 7,
# acceptance 5). Needs the `openssl` command for its test certificates.
dsm_add_test(grpc_security_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/grpc_security_test.cc
  DEPS dsm_common LABELS integration TIMEOUT 120)
