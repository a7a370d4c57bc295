# Runs one portico-route fixture and compares its output byte for byte.
#   -DPROGRAM=<portico-route> -DDIR=<tests/cli> -DARGS=<a;b> -DEXIT=<status>
#   [-DSTDOUT=<file>] [-DSTDERR=<file>] [-DSTDIN=<file>] [-DSTDOUT_REGEX=<regex>]
# Files are relative to DIR, which is also the working directory, so messages
# that name a file name it the same way on every machine.
cmake_minimum_required(VERSION 3.21)

set(input_args)
if(STDIN)
  set(input_args INPUT_FILE "${DIR}/${STDIN}")
endif()
string(REPLACE "," ";" arg_list "${ARGS}")
execute_process(COMMAND "${PROGRAM}" ${arg_list}
  WORKING_DIRECTORY "${DIR}"
  ${input_args}
  RESULT_VARIABLE status
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
set(failed FALSE)
if(NOT status STREQUAL EXIT)
  message(SEND_ERROR "exit status ${status}, expected ${EXIT}\nstderr:\n${err}")
  set(failed TRUE)
endif()
function(compare_stream label expected_file actual)
  file(READ "${DIR}/${expected_file}" expected)
  if(NOT actual STREQUAL expected)
    message(SEND_ERROR "${label} differs from ${expected_file}\n--- expected\n${expected}--- actual\n${actual}---")
    set(failed TRUE PARENT_SCOPE)
  endif()
endfunction()
if(STDOUT)
  compare_stream(stdout "${STDOUT}" "${out}")
endif()
if(STDERR)
  compare_stream(stderr "${STDERR}" "${err}")
endif()
if(failed)
  message(FATAL_ERROR "portico-route ${ARGS}: mismatch")
endif()
if(STDOUT_REGEX AND NOT out MATCHES "${STDOUT_REGEX}")
  message(FATAL_ERROR "stdout does not match ${STDOUT_REGEX}:\n${out}")
endif()
