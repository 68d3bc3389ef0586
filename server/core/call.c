/*
 * The call context and the running of one call (call_internal.h). A call's
 * memory is its arena: the decoded envelope, the input message, the handler's
 * output, the status message. Its database connection is acquired lazily and
 * always released before the reply is packed.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rpcq/alloc.h>

#include "call.h"
#include "call_internal.h"
#include "db/db.h"
#include "db/pool.h"
#include "envelope.h"
#include "log.h"

#define MAX_TRAILERS 16

struct call {
	server *srv;
	arena *arena;
	const Rpcq__Request *req;
	const dispatch_entry *entry;
	void *service_state;
	char request_id[64];
	nng_time deadline;
	dbconn *db;
	char *message;
	rpcq_status status; /* of the reply */
	const char *trailers[2 * MAX_TRAILERS + 1];
	int ntrailers;
};

const char *call_method(const call *c)
{
	return c->entry ? c->entry->full_name : c->req->method;
}

const char *call_request_id(const call *c)
{
	return c->request_id;
}

const char *call_metadata(const call *c, const char *key)
{
	for (size_t i = 0; i < c->req->n_metadata; i++) {
		if (strcmp(c->req->metadata[i]->key, key) == 0)
			return c->req->metadata[i]->value;
	}
	return NULL;
}

nng_time call_deadline(const call *c)
{
	return c->deadline;
}

int call_expired(const call *c)
{
	return nng_clock() >= c->deadline;
}

arena *call_arena(call *c)
{
	return c->arena;
}

ProtobufCAllocator *call_allocator(call *c)
{
	return arena_allocator(c->arena);
}

rpcq_status call_db(call *c, dbconn **out)
{
	if (c->db == NULL) {
		rpcq_error err;
		rpcq_status st = pool_acquire(server_pool(c->srv), c->deadline, &c->db, &err);
		if (st != RPCQ_OK)
			return call_fail_err(c, st, &err);
		dbconn_set_deadline(c->db, c->deadline);
	}
	*out = c->db;
	return RPCQ_OK;
}

rpcq_status call_query(call *c, const db_stmt *stmt, const char *const *values, int result_format, PGresult **out)
{
	dbconn *db = NULL;
	rpcq_status st = call_db(c, &db);
	if (st != RPCQ_OK)
		return st;
	rpcq_error err;
	st = db_exec_params(db, stmt, values, NULL, NULL, result_format, out, &err);
	if (st != RPCQ_OK)
		return call_fail_err(c, st, &err);
	return RPCQ_OK;
}

rpcq_status call_fail(call *c, rpcq_status status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	c->message = arena_vprintf(c->arena, fmt, ap);
	va_end(ap);
	return status;
}

rpcq_status call_fail_err(call *c, rpcq_status status, const rpcq_error *err)
{
	return call_fail(c, status, "%s", err->message);
}

void call_set_trailer(call *c, const char *key, const char *value)
{
	if (c->ntrailers >= MAX_TRAILERS)
		return;
	const char *k = arena_strdup(c->arena, key);
	const char *v = arena_strdup(c->arena, value);
	if (k == NULL || v == NULL)
		return;
	c->trailers[2 * c->ntrailers] = k;
	c->trailers[2 * c->ntrailers + 1] = v;
	c->ntrailers++;
	c->trailers[2 * c->ntrailers] = NULL;
}

server *call_server(call *c)
{
	return c->srv;
}

void *call_service_state(call *c)
{
	return c->service_state;
}

/* Appends v in hex to p; returns the end. */
static char *put_hex(char *p, unsigned long v)
{
	char tmp[2 * sizeof(v)];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* A request id: the caller's x-request-id (truncated, printable) or a fresh
 * one, "<pid>-<counter>" in hex. On the path of every call, so no snprintf
 * and no getpid system call. */
static void set_request_id(call *c)
{
	static atomic_ulong counter;
	static atomic_ulong pid;
	const char *given = call_metadata(c, "x-request-id");
	if (given && *given) {
		size_t i = 0;
		for (; given[i] && i < sizeof(c->request_id) - 1; i++)
			c->request_id[i] = (given[i] > ' ' && given[i] < 127) ? given[i] : '_';
		c->request_id[i] = '\0';
		return;
	}
	unsigned long me = atomic_load_explicit(&pid, memory_order_relaxed);
	if (me == 0) {
		me = (unsigned long)getpid();
		atomic_store_explicit(&pid, me, memory_order_relaxed);
	}
	char *p = put_hex(c->request_id, me);
	*p++ = '-';
	p = put_hex(p, atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1);
	*p = '\0';
}

/* The reply for status st with the call's message (or the code's description). */
static nng_msg *reply(call *c, rpcq_status st, const void *payload, size_t len)
{
	const char *msg = st == RPCQ_OK ? "" : (c->message ? c->message : rpcq_status_describe(st));
	nng_msg *out = NULL;
	c->status = st;
	rpcq_error err;
	if (envelope_pack_response(&out, st, msg, payload, len, c->ntrailers ? c->trailers : NULL, &err) != RPCQ_OK) {
		log_error("cannot pack a reply: %s", err.message);
		return NULL;
	}
	if (st == RPCQ_OK)
		log_debug("%s OK", call_method(c));
	else if (st == RPCQ_INTERNAL)
		log_error("%s %s: %s", call_method(c), rpcq_status_name(st), msg);
	else
		log_info("%s %s: %s", call_method(c), rpcq_status_name(st), msg);
	return out;
}

nng_msg *call_execute(server *srv, arena *ar, const void *data, size_t len, nng_time received,
		      void *const *service_states, call_outcome *outcome)
{
	const rpcq_config *cfg = server_config(srv);
	call c = {.srv = srv,
		  .arena = ar,
		  .status = RPCQ_INTERNAL,
		  .deadline = received + (nng_time)cfg->default_deadline_ms};
	static const Rpcq__Request empty = RPCQ__REQUEST__INIT;
	c.req = &empty;
	rpcq_error err;
	Rpcq__Request *req;
	nng_msg *out;
	if ((long)len > cfg->max_message_bytes) {
		snprintf(c.request_id, sizeof(c.request_id), "-");
		c.message = arena_printf(ar, "request of %zu bytes exceeds the message size limit of %ld bytes", len,
					 cfg->max_message_bytes);
		out = reply(&c, RPCQ_RESOURCE_EXHAUSTED, NULL, 0);
		goto done;
	}
	if (envelope_parse_request(ar, data, len, &req, &err) != RPCQ_OK) {
		snprintf(c.request_id, sizeof(c.request_id), "-");
		c.message = arena_strdup(ar, err.message);
		out = reply(&c, RPCQ_INVALID_ARGUMENT, NULL, 0);
		goto done;
	}
	c.req = req;
	set_request_id(&c);
	log_set_request_id(c.request_id);
	nng_time budget = req->deadline_ms ? req->deadline_ms : (nng_time)cfg->default_deadline_ms;
	c.deadline = received + budget;

	char name[512];
	if (envelope_method_name(req->method, name, sizeof(name)) != 0) {
		call_fail(&c, RPCQ_INVALID_ARGUMENT, "method \"%.200s\" is not of the form /package.Service/Method",
			  req->method);
		out = reply(&c, RPCQ_INVALID_ARGUMENT, NULL, 0);
		goto done;
	}
	c.entry = dispatch_find(server_dispatch(srv), name);
	if (c.entry == NULL) {
		call_fail(&c, RPCQ_UNIMPLEMENTED, "unknown method %.200s", name);
		out = reply(&c, RPCQ_UNIMPLEMENTED, NULL, 0);
		goto done;
	}
	if (!server_accepts(srv, received)) {
		call_fail(&c, RPCQ_UNAVAILABLE, "server is shutting down; retry on another server");
		out = reply(&c, RPCQ_UNAVAILABLE, NULL, 0);
		goto done;
	}
	nng_time now = nng_clock();
	if (now >= c.deadline) {
		call_fail(&c, RPCQ_DEADLINE_EXCEEDED, "deadline of %llu ms expired before the call started",
			  (unsigned long long)budget);
		out = reply(&c, RPCQ_DEADLINE_EXCEEDED, NULL, 0);
		goto done;
	}
	const ProtobufCMessageDescriptor *in_desc = c.entry->method->input;
	ProtobufCMessage *in =
		protobuf_c_message_unpack(in_desc, arena_allocator(ar), req->payload.len, req->payload.data);
	if (in == NULL) {
		call_fail(&c, RPCQ_INVALID_ARGUMENT, "payload does not decode as %s", in_desc->name);
		out = reply(&c, RPCQ_INVALID_ARGUMENT, NULL, 0);
		goto done;
	}
	c.service_state = service_states[c.entry->service_index];
	ProtobufCMessage *result = NULL;
	rpcq_status st = c.entry->handler(&c, in, &result);
	if (c.db) {
		pool_release(server_pool(srv), c.db);
		c.db = NULL;
	}
	if (st != RPCQ_OK) {
		out = reply(&c, st, NULL, 0);
		goto done;
	}
	if (result == NULL || result->descriptor != c.entry->method->output) {
		call_fail(&c, RPCQ_INTERNAL, "handler of %s returned no %s", name, c.entry->method->output->name);
		out = reply(&c, RPCQ_INTERNAL, NULL, 0);
		goto done;
	}
	size_t size = protobuf_c_message_get_packed_size(result);
	if ((long)size > cfg->max_message_bytes - 1024) {
		call_fail(&c, RPCQ_RESOURCE_EXHAUSTED,
			  "reply of %zu bytes exceeds the message size limit of %ld bytes; ask for a smaller page",
			  size, cfg->max_message_bytes);
		out = reply(&c, RPCQ_RESOURCE_EXHAUSTED, NULL, 0);
		goto done;
	}
	uint8_t *packed = arena_alloc(ar, size);
	if (packed == NULL) {
		call_fail(&c, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte reply", size);
		out = reply(&c, RPCQ_RESOURCE_EXHAUSTED, NULL, 0);
		goto done;
	}
	protobuf_c_message_pack(result, packed);
	out = reply(&c, RPCQ_OK, packed, size);
done:
	log_set_request_id(NULL);
	outcome->status = c.status;
	outcome->deadline = c.deadline;
	memcpy(outcome->request_id, c.request_id, sizeof(outcome->request_id));
	return out;
}
