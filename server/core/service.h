/*
 * How a service plugs into rpcqd: its protoc-c service descriptor, one handler
 * per method (by name, checked against the descriptor at start-up: a method
 * without a handler, or a handler without a method, stops the server), and
 * optional start/stop hooks for state shared by its handlers.
 *
 * A handler runs on a worker thread. It reads `in` (already unpacked as the
 * method's input type, in the call arena), builds the output message in the
 * call arena and stores it in *out, and returns RPCQ_OK; or returns a failure
 * via call_fail(). It never sees the envelope.
 */
#ifndef RPCQ_SERVICE_H
#define RPCQ_SERVICE_H

#include "call.h"

typedef rpcq_status (*handler_fn)(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

typedef struct method_def {
	const char *name; /* "Compute", as in the .proto */
	handler_fn handler;
} method_def;

typedef struct service_def {
	const ProtobufCServiceDescriptor *descriptor;
	const method_def *methods; /* terminated by {NULL, NULL} */
	/* Optional, NULL-terminated: methods the `read` scope covers although
	 * their .proto cannot say NO_SIDE_EFFECTS (vesting's Upload, a chunked
	 * upload that only feeds a Compute). A method the .proto marks
	 * NO_SIDE_EFFECTS is a read anyway. */
	const char *const *reads;
	/* Optional, NULL-terminated: methods that answer from this process's
	 * memory and never block (no database, no waiting on anything but a
	 * short lock): rpcqd's own callers may run them on the thread they are
	 * on instead of a worker's (the gateway's /search runs Search so, one
	 * bounded page, saving the hand-over). */
	const char *const *from_memory;
	/* Optional: creates the service's shared state (*state) before serving. */
	rpcq_status (*start)(server *srv, void **state, rpcq_error *err);
	/* Optional: frees it after the last call has finished. */
	void (*stop)(void *state);
} service_def;

/* Typed handler glue: HANDLER(fn, InType, OutType) defines a handler_fn named
 * fn##_handler that casts and calls
 *   rpcq_status fn(call *c, const InType *in, OutType **out). */
#define RPCQ_HANDLER(fn, InType, OutType)                                                            \
	static rpcq_status fn##_handler(call *c, const ProtobufCMessage *in, ProtobufCMessage **out) \
	{                                                                                            \
		return fn(c, (const InType *)in, (OutType **)out);                                   \
	}

/* The server-wide things a service may use (from its start hook or handlers). */
typedef struct publisher publisher;
pool *server_pool(server *srv);
const struct rpcq_config *server_config(server *srv);
publisher *server_publisher(server *srv);

/* Around a handler's wait for other calls' handlers (not for the database
 * or the network, which any worker may do): IssueVouchers waiting for the
 * batch that carries its issue. Meanwhile another thread may run a call in
 * this worker's stead, so waiting calls do not use up --workers. */
void server_wait_begin(server *srv);
void server_wait_end(server *srv);

#endif
