# Provides portico::llhttp.
#
# Uses an installed llhttp when there is one (its CMake package, or a library
# and header found the plain way); otherwise builds a static library from the
# C sources that Debian's node-llhttp package ships in /usr/share/llhttp.
# PORTICO_LLHTTP_SOURCE_DIR / PORTICO_LLHTTP_INCLUDE_DIR point elsewhere.

include_guard(GLOBAL)

set(PORTICO_LLHTTP_SOURCE_DIR "/usr/share/llhttp" CACHE PATH
    "Directory with llhttp's api.c, http.c and llhttp.c")
set(PORTICO_LLHTTP_INCLUDE_DIR "/usr/share/include/llhttp" CACHE PATH
    "Directory with llhttp.h, used with PORTICO_LLHTTP_SOURCE_DIR")

find_package(llhttp CONFIG QUIET)
if(TARGET llhttp::llhttp_static OR TARGET llhttp::llhttp_shared OR TARGET llhttp::llhttp)
  add_library(portico_llhttp INTERFACE)
  foreach(candidate llhttp::llhttp llhttp::llhttp_static llhttp::llhttp_shared)
    if(TARGET ${candidate})
      target_link_libraries(portico_llhttp INTERFACE ${candidate})
      break()
    endif()
  endforeach()
  set(PORTICO_LLHTTP_ORIGIN "llhttp CMake package")
  set(PORTICO_LLHTTP_FROM_PACKAGE ON)
else()
  find_path(PORTICO_LLHTTP_SYSTEM_HEADER llhttp.h NO_CACHE)
  find_library(PORTICO_LLHTTP_SYSTEM_LIBRARY llhttp NO_CACHE)
  if(PORTICO_LLHTTP_SYSTEM_HEADER AND PORTICO_LLHTTP_SYSTEM_LIBRARY)
    add_library(portico_llhttp INTERFACE)
    target_include_directories(portico_llhttp INTERFACE ${PORTICO_LLHTTP_SYSTEM_HEADER})
    target_link_libraries(portico_llhttp INTERFACE ${PORTICO_LLHTTP_SYSTEM_LIBRARY})
    set(PORTICO_LLHTTP_ORIGIN "${PORTICO_LLHTTP_SYSTEM_LIBRARY}")
  elseif(EXISTS "${PORTICO_LLHTTP_SOURCE_DIR}/llhttp.c"
         AND EXISTS "${PORTICO_LLHTTP_INCLUDE_DIR}/llhttp.h")
    add_library(portico_llhttp STATIC
      "${PORTICO_LLHTTP_SOURCE_DIR}/api.c"
      "${PORTICO_LLHTTP_SOURCE_DIR}/http.c"
      "${PORTICO_LLHTTP_SOURCE_DIR}/llhttp.c")
    target_include_directories(portico_llhttp PUBLIC
      "$<BUILD_INTERFACE:${PORTICO_LLHTTP_INCLUDE_DIR}>"
      "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/portico/llhttp>")
    set_target_properties(portico_llhttp PROPERTIES
      C_STANDARD 99 POSITION_INDEPENDENT_CODE ON OUTPUT_NAME portico_llhttp)
    set(PORTICO_LLHTTP_ORIGIN "built from ${PORTICO_LLHTTP_SOURCE_DIR}")
    # Installed beside portico (portico::server links it statically).
    if(PORTICO_INSTALL)
      install(FILES "${PORTICO_LLHTTP_INCLUDE_DIR}/llhttp.h"
              DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/portico/llhttp)
    endif()
  else()
    message(FATAL_ERROR
      "portico: llhttp not found. Install Debian's node-llhttp package "
      "(apt-get install node-llhttp) or set PORTICO_LLHTTP_SOURCE_DIR and "
      "PORTICO_LLHTTP_INCLUDE_DIR to a directory holding llhttp's C sources and header.")
  endif()
endif()
set_target_properties(portico_llhttp PROPERTIES EXPORT_NAME llhttp)
set_property(GLOBAL APPEND PROPERTY PORTICO_EXPORTED_TARGETS portico_llhttp)
if(NOT PORTICO_LLHTTP_FROM_PACKAGE)
  set(PORTICO_LLHTTP_FROM_PACKAGE OFF)
endif()
add_library(portico::llhttp ALIAS portico_llhttp)
message(STATUS "portico: llhttp: ${PORTICO_LLHTTP_ORIGIN}")
