/*
 * The call context a handler gets: method, request id, metadata, deadline, a
 * request-scoped arena, and a database connection on demand. Everything a
 * handler allocates for its reply comes from the arena and is freed when the
 * reply has been sent. A call context belongs to the one worker thread running
 * the handler; none of these functions may be used from another thread.
 */
#ifndef RPCQ_CALL_H
#define RPCQ_CALL_H

#include <protobuf-c/protobuf-c.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/status.h>

#include "arena.h"
#include "db/pool.h"

typedef struct call call;
typedef struct server server;

/* "/rpcq.vesting.VestingService/Compute" */
const char *call_method(const call *c);

/* The x-request-id metadata, or one the server made up. Never NULL. */
const char *call_request_id(const call *c);

/* A metadata value sent by the caller, or NULL. */
const char *call_metadata(const call *c, const char *key);

/* The caller's metadata pairs, in the order sent: i < call_metadata_count. */
size_t call_metadata_count(const call *c);
void call_metadata_at(const call *c, size_t i, const char **key, const char **value);

/* Absolute deadline (nng_clock() ms). Handlers doing long work check
 * call_expired() between steps. */
nng_time call_deadline(const call *c);
int call_expired(const call *c);

arena *call_arena(call *c);
ProtobufCAllocator *call_allocator(call *c);

/* The database connection of this call, acquired from the pool on first use
 * (waiting at most until the deadline) and released when the call ends, even
 * if the handler returns early. Repeated calls return the same connection.
 * The connection's statements are bounded by the call's deadline. */
rpcq_status call_db(call *c, dbconn **out) RPCQ_NODISCARD;

/* The common case of a handler's database work: one statement on the call's
 * connection (acquired as call_db does). values: nparams text values (NULL =
 * SQL NULL); result_format 0 text, 1 binary. On OK *out holds the result,
 * which the caller frees with PQclear; otherwise the call's status message is
 * set (as call_fail) and the status returned. Blocks, bounded by the deadline. */
struct db_stmt;
rpcq_status call_query(call *c, const struct db_stmt *stmt, const char *const *values, int result_format,
		       PGresult **out) RPCQ_NODISCARD;

/* Sets the status message of the reply and returns status, so a handler ends
 * with: return call_fail(c, RPCQ_INVALID_ARGUMENT, "line %lu: ...", line); */
rpcq_status call_fail(call *c, rpcq_status status, const char *fmt, ...) RPCQ_PRINTF(3, 4);

/* Adopts an rpcq_error message: call_fail(c, status, "%s", err->message). */
rpcq_status call_fail_err(call *c, rpcq_status status, const rpcq_error *err);

/* Adds a trailer to the reply (copied into the arena). */
void call_set_trailer(call *c, const char *key, const char *value);

/* A caller inside rpcqd may take a method's repeated results one at a time
 * instead of in the output message: each as a message that is valid only
 * during the callback (it may point into the handler's own data, read
 * under its lock), so nothing is copied. The gateway's /search writes each
 * event's JSON this way. A handler that can emit asks for the emitter and,
 * when there is one, calls it for every result and leaves them out of its
 * output (which keeps the rest, a next page's token). Nonzero from the
 * emitter: out of memory, stop. NULL: no emitter, build the output. */
typedef int (*call_emit_fn)(void *arg, const ProtobufCMessage *item);
call_emit_fn call_emitter(call *c, void **arg);

/* The server and the state of the service being called (from its start hook). */
server *call_server(call *c);
void *call_service_state(call *c);

#endif
