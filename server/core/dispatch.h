/*
 * The dispatch table: full method name -> handler, built once at start-up
 * from the service_defs (their protoc-c descriptors and handler lists) and
 * read-only afterwards, so lookups need no lock.
 */
#ifndef RPCQ_DISPATCH_H
#define RPCQ_DISPATCH_H

#include <protobuf-c/protobuf-c.h>

#include <rpcq/error.h>

#include "service.h"

typedef struct dispatch_entry {
	char *full_name; /* "/rpcq.Health/Check" */
	const ProtobufCMethodDescriptor *method;
	const service_def *service;
	size_t service_index; /* in the list given to dispatch_create */
	handler_fn handler;
	size_t index;	 /* in dispatch_entries(), for per-method counters */
	int read;	 /* changes nothing stored: NO_SIDE_EFFECTS, or service_def.reads */
	int from_memory; /* service_def.from_memory: may run on its caller's thread */
} dispatch_entry;

typedef struct dispatch dispatch;

/* Builds the table from a NULL-terminated list of services. INTERNAL (with a
 * message naming it) when a method has no handler or a handler no method. */
rpcq_status dispatch_create(dispatch **out, const service_def *const *services, rpcq_error *err) RPCQ_NODISCARD;
void dispatch_destroy(dispatch *d);

/* The entry for a full method name, or NULL. Thread-safe. */
const dispatch_entry *dispatch_find(const dispatch *d, const char *full_name);

/* Every entry, sorted by name. */
const dispatch_entry *dispatch_entries(const dispatch *d, size_t *count);

#endif
