/*
 * The services and methods compiled into librpcq, generated from proto/ by
 * tools/stubgen: lookups by name for the CLI, JSON transcoding and stream
 * message decoding. Static data; thread-safe.
 */
#ifndef RPCQ_REGISTRY_H
#define RPCQ_REGISTRY_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include <rpcq/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rpcq_method_info {
	const char *full_name; /* "/rpcq.Health/Check" */
	const ProtobufCServiceDescriptor *service;
	unsigned index; /* in service->methods */
	const ProtobufCMessageDescriptor *input;
	const ProtobufCMessageDescriptor *output;
	int idempotent;	     /* idempotency_level is NO_SIDE_EFFECTS or IDEMPOTENT */
	int no_side_effects; /* idempotency_level is NO_SIDE_EFFECTS */
} rpcq_method_info;

/* Every method of every service, in .proto order; *count gets the number. */
RPCQ_API const rpcq_method_info *rpcq_methods(size_t *count);

/* A method by "/pkg.Service/Method" or "pkg.Service/Method", or NULL. */
RPCQ_API const rpcq_method_info *rpcq_method_find(const char *name);

/* A message type by full name ("rpcq.vesting.LedgerAppended"), or NULL. */
RPCQ_API const ProtobufCMessageDescriptor *rpcq_message_find(const char *full_name);

#ifdef __cplusplus
}
#endif
#endif
