# Code generated from proto/: protoc-c output for every .proto, a descriptor
# set, and from it (by tools/stubgen) the typed client stubs and the registry
# of services. Everything lands in ${RPCQ_GEN_DIR}; nothing generated is in git.
set(RPCQ_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(GLOB RPCQ_PROTOS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/proto/rpcq/*.proto)
file(MAKE_DIRECTORY ${RPCQ_GEN_DIR}/rpcq ${RPCQ_GEN_DIR}/google/protobuf)

set(RPCQ_PROTO_SOURCES "")
set(RPCQ_PROTO_HEADERS "")
foreach(proto IN LISTS RPCQ_PROTOS)
  get_filename_component(base ${proto} NAME_WE)
  set(c ${RPCQ_GEN_DIR}/rpcq/${base}.pb-c.c)
  set(h ${RPCQ_GEN_DIR}/rpcq/${base}.pb-c.h)
  add_custom_command(OUTPUT ${c} ${h}
    COMMAND ${PROTOC_C} --c_out=${RPCQ_GEN_DIR} -I${CMAKE_SOURCE_DIR}/proto
            -I${RPCQ_PROTOBUF_INCLUDE} ${proto}
    DEPENDS ${proto}
    COMMENT "protoc-c ${base}.proto" VERBATIM)
  list(APPEND RPCQ_PROTO_SOURCES ${c})
  list(APPEND RPCQ_PROTO_HEADERS ${h})
endforeach()

# descriptor.proto for the generator, which reads the descriptor set.
set(RPCQ_DESCRIPTOR_C ${RPCQ_GEN_DIR}/google/protobuf/descriptor.pb-c.c)
add_custom_command(OUTPUT ${RPCQ_DESCRIPTOR_C} ${RPCQ_GEN_DIR}/google/protobuf/descriptor.pb-c.h
  COMMAND ${PROTOC_C} --c_out=${RPCQ_GEN_DIR} -I${RPCQ_PROTOBUF_INCLUDE} ${RPCQ_DESCRIPTOR_PROTO}
  DEPENDS ${RPCQ_DESCRIPTOR_PROTO} COMMENT "protoc-c descriptor.proto" VERBATIM)

set(RPCQ_DESCRIPTOR_SET ${RPCQ_GEN_DIR}/rpcq/rpcq.desc)
add_custom_command(OUTPUT ${RPCQ_DESCRIPTOR_SET}
  COMMAND ${PROTOC} --descriptor_set_out=${RPCQ_DESCRIPTOR_SET}
          -I${CMAKE_SOURCE_DIR}/proto -I${RPCQ_PROTOBUF_INCLUDE} ${RPCQ_PROTOS}
  DEPENDS ${RPCQ_PROTOS} COMMENT "protoc descriptor set" VERBATIM)

add_executable(rpcq-stubgen ${CMAKE_SOURCE_DIR}/tools/stubgen.c ${RPCQ_DESCRIPTOR_C})
target_include_directories(rpcq-stubgen PRIVATE ${RPCQ_GEN_DIR})
target_link_libraries(rpcq-stubgen PRIVATE PkgConfig::PROTOBUFC)
rpcq_target_warnings(rpcq-stubgen)

set(RPCQ_STUBS_H ${RPCQ_GEN_DIR}/rpcq/stubs.h)
set(RPCQ_STUBS_C ${RPCQ_GEN_DIR}/rpcq/stubs.c)
set(RPCQ_REGISTRY_C ${RPCQ_GEN_DIR}/rpcq/registry.c)
add_custom_command(OUTPUT ${RPCQ_STUBS_H} ${RPCQ_STUBS_C} ${RPCQ_REGISTRY_C}
  COMMAND rpcq-stubgen ${RPCQ_DESCRIPTOR_SET} ${RPCQ_GEN_DIR}/rpcq
  DEPENDS rpcq-stubgen ${RPCQ_DESCRIPTOR_SET}
  COMMENT "rpcq-stubgen: typed stubs and service registry" VERBATIM)

# The protoc-c output compiled once, used by librpcq (shared and static) and rpcqd.
add_library(rpcq_proto OBJECT ${RPCQ_PROTO_SOURCES})
target_include_directories(rpcq_proto PUBLIC $<BUILD_INTERFACE:${RPCQ_GEN_DIR}>)
target_link_libraries(rpcq_proto PUBLIC PkgConfig::PROTOBUFC)

# Targets in other directories cannot depend on these outputs directly (the
# Makefile generator would not know how to build them): they depend on this.
add_custom_target(rpcq_generated DEPENDS ${RPCQ_STUBS_H} ${RPCQ_STUBS_C} ${RPCQ_REGISTRY_C}
  ${RPCQ_PROTO_SOURCES} ${RPCQ_PROTO_HEADERS})
add_dependencies(rpcq_proto rpcq_generated)
# Message descriptors and pack/unpack functions are part of librpcq's API
# (callers build the stubs' messages), so they keep default visibility.
set_target_properties(rpcq_proto PROPERTIES C_VISIBILITY_PRESET default)
