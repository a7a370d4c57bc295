# One place that says how every portico target is built.
#
#   portico_target_defaults(<target>)   C++20, warnings, sanitizers
#   portico_add_library(<name> HEADERS ... SOURCES ... [DEPS ...] [PRIVATE_DEPS ...])
#       declares portico_<name> with alias and export name portico::<name>
#   portico_add_test(<name> SOURCES ... [LIBS ...] [LABELS ...] [NO_GTEST_MAIN])
#       declares a GoogleTest executable and registers its cases with CTest
#
# Flags go on targets, never on CMAKE_CXX_FLAGS, so a host that embeds portico
# keeps its own.

include_guard(GLOBAL)

set_property(GLOBAL PROPERTY PORTICO_EXPORTED_TARGETS "")

function(portico_target_defaults target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
        -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference>)
    # GCC 12 at -O3 reports -Wrestrict inside libstdc++'s std::string
    # concatenation that cannot happen (GCC bug 105329, fixed in GCC 13).
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
      target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>)
    endif()
    if(PORTICO_WERROR)
      target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
    endif()
  endif()
  if(PORTICO_FUZZ)
    # Instrument every portico target for coverage, not only the fuzz
    # executables, or libFuzzer cannot see inside the library it explores.
    target_compile_options(${target} PRIVATE
      -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
  if(PORTICO_SANITIZE)
    target_compile_options(${target} PRIVATE
      -fsanitize=${PORTICO_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${PORTICO_SANITIZE})
  endif()
endfunction()

function(portico_add_library name)
  cmake_parse_arguments(ARG "" "" "HEADERS;SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target portico_${name})
  add_library(${target} ${ARG_SOURCES} ${ARG_HEADERS})
  add_library(portico::${name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES
    EXPORT_NAME ${name}
    OUTPUT_NAME portico_${name}
    POSITION_INDEPENDENT_CODE ON
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
  target_include_directories(${target} PUBLIC
    "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>"
    "$<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>"
    "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  if(ARG_DEPS)
    target_link_libraries(${target} PUBLIC ${ARG_DEPS})
  endif()
  if(ARG_PRIVATE_DEPS)
    target_link_libraries(${target} PRIVATE ${ARG_PRIVATE_DEPS})
  endif()
  portico_target_defaults(${target})
  set_property(GLOBAL APPEND PROPERTY PORTICO_EXPORTED_TARGETS ${target})
endfunction()

function(portico_add_test name)
  cmake_parse_arguments(ARG "NO_GTEST_MAIN" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  portico_target_defaults(${name})
  if(ARG_NO_GTEST_MAIN)
    target_link_libraries(${name} PRIVATE GTest::gtest ${ARG_LIBS})
  else()
    target_link_libraries(${name} PRIVATE GTest::gtest_main ${ARG_LIBS})
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  # Cases are listed when the tests run, not at build time, so a sanitizer
  # build that cannot run on the build host still configures.
  set(props TIMEOUT ${ARG_TIMEOUT})
  if(ARG_LABELS)
    # gtest_discover_tests flattens a list-valued property (CMake 3.25), so
    # several labels become one, joined with '+': "integration+concurrent".
    # ctest -L takes a regular expression, so -L concurrent still selects it.
    string(REPLACE ";" "+" labels "${ARG_LABELS}")
    list(APPEND props LABELS "${labels}")
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST PROPERTIES ${props})
endfunction()
