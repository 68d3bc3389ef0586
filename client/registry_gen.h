/* The tables rpcq-stubgen generates (registry.c in the build tree). */
#ifndef RPCQ_REGISTRY_GEN_H
#define RPCQ_REGISTRY_GEN_H

#include <rpcq/registry.h>

extern const rpcq_method_info rpcq_gen_methods[];
extern const size_t rpcq_gen_method_count;
/* NULL-terminated. */
extern const ProtobufCMessageDescriptor *const rpcq_gen_messages[];

#endif
