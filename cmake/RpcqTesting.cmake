# One helper registers a test: executable, links, warnings, add_test, timeout,
# labels and the environment integration tests use to find the project.
#   rpcq_add_test(name SOURCES a.c ... [LIBS ...] [LABELS unit|integration|concurrency ...] [TIMEOUT s])
function(rpcq_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA Threads::Threads)
  rpcq_target_warnings(${name})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    TIMEOUT ${T_TIMEOUT}
    LABELS "${T_LABELS}"
    ENVIRONMENT "RPCQ_SOURCE_DIR=${CMAKE_SOURCE_DIR};RPCQ_SHARED_DIR=${CMAKE_SOURCE_DIR}/../shared;RPCQD=$<TARGET_FILE:rpcqd>;RPCQ_CLI=$<TARGET_FILE:rpcq_cli>;PROVIDER_SIM=$<TARGET_FILE:provider-sim>;CMOCKA_MESSAGE_OUTPUT=stdout")
endfunction()

#   rpcq_add_fuzz(name SOURCES ... [LIBS ...]): a libFuzzer target (RPCQ_FUZZ=ON, clang).
# With RPCQ_FUZZ every target is built with coverage instrumentation
# (-fsanitize=fuzzer-no-link, RpcqWarnings.cmake), so the fuzzer sees the
# branches of the library code it drives, not only of the target. The
# checked-in corpus tests/fuzz/corpus/<name>/ is replayed as a CTest test
# (<name>_corpus, seconds); `cmake --build . --target fuzzers` builds them all.
if(RPCQ_FUZZ)
  add_custom_target(fuzzers)
endif()
function(rpcq_add_fuzz name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS" ${ARGN})
  if(NOT RPCQ_FUZZ)
    return()
  endif()
  add_executable(${name} ${F_SOURCES})
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  rpcq_target_warnings(${name})
  add_dependencies(fuzzers ${name})
  set(corpus ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${name})
  if(IS_DIRECTORY ${corpus})
    add_test(NAME ${name}_corpus COMMAND ${name} -runs=0 ${corpus})
    set_tests_properties(${name}_corpus PROPERTIES TIMEOUT 60 LABELS "unit;fuzz")
  endif()
endfunction()
