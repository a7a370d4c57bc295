# cmake -P script behind the packaging tests: builds tests/consumer against
# portico in MODE (install | add_subdirectory | fetchcontent) and runs it.
# Inputs: MODE, SOURCE_DIR (portico's), BUILD_DIR (portico's), WORK_DIR,
# CXX_COMPILER, GENERATOR.
cmake_minimum_required(VERSION 3.21)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(consumer_args -S "${SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build"
    -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)

if(MODE STREQUAL "install")
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
  run(${CMAKE_COMMAND} ${consumer_args} -DPORTICO_CONSUME=find_package
      "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
elseif(MODE STREQUAL "add_subdirectory")
  run(${CMAKE_COMMAND} ${consumer_args} -DPORTICO_CONSUME=add_subdirectory
      "-DPORTICO_SOURCE_DIR=${SOURCE_DIR}")
elseif(MODE STREQUAL "fetchcontent")
  # What a project would publish: the library's sources, no tests or benches.
  run(${CMAKE_COMMAND} -E chdir "${SOURCE_DIR}" ${CMAKE_COMMAND} -E tar czf
      "${WORK_DIR}/portico.tar.gz" CMakeLists.txt LICENSE cmake include src)
  run(${CMAKE_COMMAND} ${consumer_args} -DPORTICO_CONSUME=fetchcontent
      "-DPORTICO_ARCHIVE=${WORK_DIR}/portico.tar.gz")
else()
  message(FATAL_ERROR "unknown MODE='${MODE}'")
endif()

run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" --parallel 2)
run("${WORK_DIR}/build/router_consumer")
run("${WORK_DIR}/build/core_consumer")
run("${WORK_DIR}/build/server_consumer")
run("${WORK_DIR}/build/gateway_consumer")
message(STATUS "consumer (${MODE}) built and ran")
