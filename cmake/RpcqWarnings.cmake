# Warnings and sanitizers for every target of the project (not for dependencies).
set(RPCQ_WARNINGS
  -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition
  -Wpointer-arith -Wundef -Wformat=2 -Wshadow -Wno-unused-parameter)
if(RPCQ_WERROR)
  list(APPEND RPCQ_WARNINGS -Werror)
endif()

# D_GNU_SOURCE-free POSIX: we ask for what we use.
add_compile_definitions(_POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)

if(RPCQ_SANITIZE)
  string(REPLACE "," ";" _sans "${RPCQ_SANITIZE}")
  foreach(_s IN LISTS _sans)
    if(NOT _s MATCHES "^(address|undefined|thread)$")
      message(FATAL_ERROR "RPCQ_SANITIZE: unknown sanitizer '${_s}'")
    endif()
  endforeach()
  add_compile_options(-fsanitize=${RPCQ_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${RPCQ_SANITIZE})
endif()

# Fuzzing builds instrument everything for coverage; only the fuzz targets
# link libFuzzer's main (RpcqTesting.cmake).
if(RPCQ_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "RPCQ_FUZZ needs clang (CC=clang-14)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
  add_link_options(-fsanitize=fuzzer-no-link)
endif()

# rpcq_target_warnings(target): our warning set, on our own sources only.
function(rpcq_target_warnings target)
  target_compile_options(${target} PRIVATE ${RPCQ_WARNINGS})
endfunction()
