# Every dependency as an imported target: find_package first, pkg-config where
# the package ships no CMake config (protobuf-c, cmocka 1.1.5, jansson, expat, curl).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(nng 1.5 CONFIG REQUIRED)
find_package(PostgreSQL REQUIRED)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c>=1.4)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
# The events service: the provider's XML (expat), its HTTP fetch (libcurl),
# the events' public ids (UUIDv5 from libuuid).
pkg_check_modules(EXPAT REQUIRED IMPORTED_TARGET expat)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(UUID REQUIRED IMPORTED_TARGET uuid)
# Access control: SHA-256 of API keys and constant-time compares (nettle).
pkg_check_modules(NETTLE REQUIRED IMPORTED_TARGET nettle)
if(RPCQ_TESTS)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

find_program(PROTOC_C protoc-c REQUIRED)
find_program(PROTOC protoc REQUIRED)
find_file(RPCQ_DESCRIPTOR_PROTO google/protobuf/descriptor.proto
  PATHS /usr/include /usr/local/include REQUIRED)
get_filename_component(RPCQ_PROTOBUF_INCLUDE "${RPCQ_DESCRIPTOR_PROTO}" DIRECTORY)
get_filename_component(RPCQ_PROTOBUF_INCLUDE "${RPCQ_PROTOBUF_INCLUDE}/../.." ABSOLUTE)

# libharu (Debian's libhpdf-dev) draws the bills' PDF slips; it ships neither
# a CMake config nor a pkg-config file either.
find_path(HPDF_INCLUDE_DIR hpdf.h REQUIRED)
find_library(HPDF_LIBRARY hpdf REQUIRED)
add_library(hpdf::hpdf UNKNOWN IMPORTED)
set_target_properties(hpdf::hpdf PROPERTIES
  IMPORTED_LOCATION "${HPDF_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${HPDF_INCLUDE_DIR}")

# http-parser (nodejs/http-parser, Debian's libhttp-parser-dev) frames the HTTP/1.1
# requests of the gateway; it ships neither a CMake config nor a pkg-config file.
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
add_library(http_parser::http_parser UNKNOWN IMPORTED)
set_target_properties(http_parser::http_parser PROPERTIES
  IMPORTED_LOCATION "${HTTP_PARSER_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${HTTP_PARSER_INCLUDE_DIR}")
