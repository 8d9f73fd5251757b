if(TARGET dsm_services)
  dsm_add_test(lease_client_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/lease_client_test.cc
    DEPS dsm_services LABELS integration TORCH TIMEOUT 120)
endif()
