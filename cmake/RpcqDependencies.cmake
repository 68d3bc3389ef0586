# Every dependency as an imported target: find_package first, pkg-config where
# the package ships no CMake config (protobuf-c, cmocka 1.1.5, jansson, expat, curl).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(nng 1.5 CONFIG REQUIRED)
find_package(PostgreSQL REQUIRED)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c>=1.4)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
if(RPCQ_TESTS)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

find_program(PROTOC_C protoc-c REQUIRED)
find_program(PROTOC protoc REQUIRED)
find_file(RPCQ_DESCRIPTOR_PROTO google/protobuf/descriptor.proto
  PATHS /usr/include /usr/local/include REQUIRED)
get_filename_component(RPCQ_PROTOBUF_INCLUDE "${RPCQ_DESCRIPTOR_PROTO}" DIRECTORY)
get_filename_component(RPCQ_PROTOBUF_INCLUDE "${RPCQ_PROTOBUF_INCLUDE}/../.." ABSOLUTE)
