# The three ways a host project brings portico in, each proven by building
# and running tests/consumer. Only meaningful when install rules exist and
# portico is not built with sanitizers (the consumer is a plain build).
if(PORTICO_INSTALL AND NOT PORTICO_SANITIZE AND NOT PORTICO_FUZZ)
  foreach(mode install add_subdirectory fetchcontent)
    add_test(NAME packaging.${mode}
      COMMAND ${CMAKE_COMMAND}
        -DMODE=${mode}
        -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
        -DBUILD_DIR=${PROJECT_BINARY_DIR}
        -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/consumer-${mode}
        -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
        -DGENERATOR=${CMAKE_GENERATOR}
        -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run_consumer.cmake)
    set_tests_properties(packaging.${mode} PROPERTIES LABELS packaging TIMEOUT 600)
  endforeach()
  # Installing reads the build tree, so they must not overlap each other's work dirs.
  set_tests_properties(packaging.install packaging.add_subdirectory packaging.fetchcontent
                       PROPERTIES RUN_SERIAL TRUE)
endif()
