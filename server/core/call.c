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
#include <time.h>
#include <unistd.h>

#include <rpcq/alloc.h>

#include "auth.h"
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
	call_emit_fn emit;
	void *emit_arg;
};

const char *call_method(const call *c)
{
	return c->entry ? c->entry->full_name : c->req->method;
}

const char *call_request_id(const call *c)
{
	return c->request_id;
}

/* The caller's API key is access control's, not the handler's: handlers
 * (Echo's echo_metadata among them) never see it. */
static int hidden(const Rpcq__Request__MetadataEntry *m)
{
	return strcmp(m->key, "authorization") == 0;
}

static const char *metadata_value(const Rpcq__Request *req, const char *key)
{
	for (size_t i = 0; i < req->n_metadata; i++) {
		if (strcmp(req->metadata[i]->key, key) == 0)
			return req->metadata[i]->value;
	}
	return NULL;
}

const char *call_metadata(const call *c, const char *key)
{
	return strcmp(key, "authorization") == 0 ? NULL : metadata_value(c->req, key);
}

size_t call_metadata_count(const call *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->req->n_metadata; i++)
		n += !hidden(c->req->metadata[i]);
	return n;
}

void call_metadata_at(const call *c, size_t i, const char **key, const char **value)
{
	size_t j = 0;
	for (;; j++) {
		if (hidden(c->req->metadata[j]))
			continue;
		if (i-- == 0)
			break;
	}
	*key = c->req->metadata[j]->key;
	*value = c->req->metadata[j]->value;
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

uint64_t call_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Ends the call with status st: its message (the handler's, or the code's
 * description), the log line, the counters. */
static void finish(call *c, rpcq_status st, const call_request *rq, call_result *res)
{
	const char *msg = st == RPCQ_OK ? "" : (c->message ? c->message : rpcq_status_describe(st));
	c->status = st;
	if (st == RPCQ_OK)
		log_debug("%s OK", call_method(c));
	else if (st == RPCQ_INTERNAL)
		log_error("%s %s: %s", call_method(c), rpcq_status_name(st), msg);
	else
		log_info("%s %s: %s", call_method(c), rpcq_status_name(st), msg);
	res->status = st;
	res->message = msg;
	/* The call (and its trailer list) lives on call_run's stack; the
	 * result outlives it, in the arena. */
	res->trailers = NULL;
	if (c->ntrailers) {
		const char **t = arena_alloc(c->arena, (size_t)(2 * c->ntrailers + 1) * sizeof(*t));
		if (t != NULL) {
			memcpy(t, c->trailers, (size_t)(2 * c->ntrailers + 1) * sizeof(*t));
			res->trailers = t;
		}
	}
	res->deadline = c->deadline;
	memcpy(res->request_id, c->request_id, sizeof(res->request_id));
	server_count_call(c->srv, c->entry, st, call_clock_ns() - rq->received_ns);
}

/* Ends the call with a failure of its own making (not the handler's). */
static void refuse(call *c, rpcq_status st, const call_request *rq, call_result *res, const char *fmt, ...)
	RPCQ_PRINTF(5, 6);
static void refuse(call *c, rpcq_status st, const call_request *rq, call_result *res, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	c->message = arena_vprintf(c->arena, fmt, ap);
	va_end(ap);
	finish(c, st, rq, res);
}

void call_format_sockaddr(const nng_sockaddr *sa, char *buf, size_t n)
{
	snprintf(buf, n, "-");
	if (sa->s_family == NNG_AF_INET) {
		const uint8_t *a = (const uint8_t *)&sa->s_in.sa_addr;
		const uint8_t *p = (const uint8_t *)&sa->s_in.sa_port;
		snprintf(buf, n, "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3], (unsigned)(p[0] << 8 | p[1]));
	} else if (sa->s_family == NNG_AF_INET6) {
		const uint8_t *a = sa->s_in6.sa_addr;
		const uint8_t *p = (const uint8_t *)&sa->s_in6.sa_port;
		int k = snprintf(buf, n, "[");
		for (int i = 0; i < 16 && k > 0 && (size_t)k < n; i += 2)
			k += snprintf(buf + k, n - (size_t)k, "%s%x", i ? ":" : "", (unsigned)(a[i] << 8 | a[i + 1]));
		if (k > 0 && (size_t)k < n)
			snprintf(buf + k, n - (size_t)k, "]:%u", (unsigned)(p[0] << 8 | p[1]));
	} else if (sa->s_family == NNG_AF_IPC) {
		snprintf(buf, n, "ipc");
	} else if (sa->s_family == NNG_AF_INPROC) {
		snprintf(buf, n, "inproc");
	}
}

/* The caller's address for the audit line. */
static void format_peer(const call_request *rq, char *buf, size_t n)
{
	nng_sockaddr sa;
	if (rq->origin && rq->origin->peer)
		snprintf(buf, n, "%s", rq->origin->peer);
	else if (nng_pipe_id(rq->pipe) > 0 && nng_pipe_get_addr(rq->pipe, NNG_OPT_REMADDR, &sa) == 0)
		call_format_sockaddr(&sa, buf, n);
	else
		snprintf(buf, n, "-");
}

/* Access control (auth.h) and its audit line. */
static rpcq_status authorize(server *srv, const char *method, const dispatch_entry *e, const call_request *rq,
			     int charge, char *msg, size_t n, uint64_t *retry_after_ms)
{
	const char *authorization = rq->origin ? rq->origin->authorization : metadata_value(rq->req, "authorization");
	auth_verdict v;
	auth_check(server_auth(srv), method, e, authorization, charge, &v);
	*retry_after_ms = v.retry_after_ms;
	if (v.status == RPCQ_OK)
		return RPCQ_OK;
	if (!v.quiet) {
		char peer[80];
		format_peer(rq, peer, sizeof(peer));
		char folded[64] = "";
		if (v.folded)
			snprintf(folded, sizeof(folded), "; %llu more refused since the last line",
				 (unsigned long long)v.folded);
		log_warn("auth: refused %s %s: %s (key %s%s, peer %s%s)", method, rpcq_status_name(v.status), v.reason,
			 v.prefix[0] ? "rpcq_" : "none", v.prefix, peer, folded);
	}
	snprintf(msg, n, "%s", v.message);
	return v.status;
}

rpcq_status call_authorize(server *srv, const char *method, const call_origin *from, int charge, char *msg, size_t n,
			   uint64_t *retry_after_ms)
{
	Rpcq__Request req = RPCQ__REQUEST__INIT;
	call_request rq = {.req = &req, .origin = from};
	return authorize(srv, method, dispatch_find(server_dispatch(srv), method), &rq, charge, msg, n, retry_after_ms);
}

/* Access control before anything of the method runs. 0: go on; -1:
 * refused, *res filled. */
static int check_access(call *c, const call_request *rq, const char *name, call_result *res)
{
	if (rq->in_process)
		return 0;
	char msg[200];
	uint64_t retry_after_ms = 0;
	int charge = rq->origin == NULL || !rq->origin->uncharged;
	rpcq_status st = authorize(c->srv, name, c->entry, rq, charge, msg, sizeof(msg), &retry_after_ms);
	if (st == RPCQ_OK)
		return 0;
	if (retry_after_ms) {
		char ms[24];
		snprintf(ms, sizeof(ms), "%llu", (unsigned long long)retry_after_ms);
		call_set_trailer(c, "retry-after-ms", ms);
	}
	refuse(c, st, rq, res, "%s", msg);
	res->retry_after_ms = retry_after_ms;
	return -1;
}

void call_run(server *srv, arena *ar, const call_request *rq, call_result *res)
{
	const rpcq_config *cfg = server_config(srv);
	const Rpcq__Request *req = rq->req;
	call c = {.srv = srv,
		  .arena = ar,
		  .req = req,
		  .status = RPCQ_INTERNAL,
		  .emit = rq->emit,
		  .emit_arg = rq->emit_arg};
	memset(res, 0, sizeof(*res));
	set_request_id(&c);
	log_set_request_id(c.request_id);
	nng_time budget = req->deadline_ms ? req->deadline_ms : (nng_time)cfg->default_deadline_ms;
	c.deadline = rq->received + budget;

	char name[512];
	if (envelope_method_name(req->method, name, sizeof(name)) != 0) {
		res->unknown_method = 1;
		refuse(&c, RPCQ_UNIMPLEMENTED, rq, res, "method \"%.200s\" is not of the form /package.Service/Method",
		       req->method);
		goto out;
	}
	c.entry = dispatch_find(server_dispatch(srv), name);
	if (check_access(&c, rq, name, res) != 0)
		goto out;
	if (c.entry == NULL) {
		res->unknown_method = 1;
		refuse(&c, RPCQ_UNIMPLEMENTED, rq, res, "unknown method %.200s", name);
		goto out;
	}
	if (!server_accepts(srv, rq->received)) {
		refuse(&c, RPCQ_UNAVAILABLE, rq, res, "server is shutting down; retry on another server");
		goto out;
	}
	if (nng_clock() >= c.deadline) {
		refuse(&c, RPCQ_DEADLINE_EXCEEDED, rq, res, "deadline of %llu ms expired before the call started",
		       (unsigned long long)budget);
		goto out;
	}
	const ProtobufCMessageDescriptor *in_desc = c.entry->method->input;
	ProtobufCMessage *in = NULL;
	if (rq->decode) {
		const char *why = NULL;
		rpcq_status st = rq->decode(rq->decode_arg, in_desc, ar, &in, &why);
		if (st != RPCQ_OK) {
			refuse(&c, st, rq, res, "%s", why ? why : rpcq_status_describe(st));
			goto out;
		}
	} else {
		in = protobuf_c_message_unpack(in_desc, arena_allocator(ar), req->payload.len, req->payload.data);
		if (in == NULL) {
			refuse(&c, RPCQ_INVALID_ARGUMENT, rq, res, "payload does not decode as %s", in_desc->name);
			goto out;
		}
	}
	c.service_state = server_service_state(srv, c.entry->service_index);
	ProtobufCMessage *result = NULL;
	rpcq_status st = c.entry->handler(&c, in, &result);
	if (c.db) {
		pool_release(server_pool(srv), c.db);
		c.db = NULL;
	}
	if (st != RPCQ_OK) {
		finish(&c, st, rq, res);
		goto out;
	}
	if (result == NULL || result->descriptor != c.entry->method->output) {
		refuse(&c, RPCQ_INTERNAL, rq, res, "handler of %s returned no %s", name, c.entry->method->output->name);
		goto out;
	}
	size_t size = protobuf_c_message_get_packed_size(result);
	if ((long)size > cfg->max_message_bytes - 1024) {
		refuse(&c, RPCQ_RESOURCE_EXHAUSTED, rq, res,
		       "reply of %zu bytes exceeds the message size limit of %ld bytes; ask for a smaller page", size,
		       cfg->max_message_bytes);
		goto out;
	}
	res->output = result;
	finish(&c, RPCQ_OK, rq, res);
out:
	log_set_request_id(NULL);
}

static rpcq_status given_input(void *arg, const ProtobufCMessageDescriptor *desc, arena *ar, ProtobufCMessage **out,
			       const char **message)
{
	(void)ar;
	if (((ProtobufCMessage *)arg)->descriptor != desc) {
		*message = "an in-process caller passed the wrong input type";
		return RPCQ_INTERNAL;
	}
	*out = arg;
	return RPCQ_OK;
}

call_emit_fn call_emitter(call *c, void **arg)
{
	*arg = c->emit_arg;
	return c->emit;
}

void call_run_message(server *srv, arena *ar, const char *method, uint32_t deadline_ms, nng_time received,
		      uint64_t received_ns, ProtobufCMessage *in, const call_origin *from, call_result *res)
{
	call_run_emitting(srv, ar, method, deadline_ms, received, received_ns, in, from, NULL, NULL, res);
}

void call_run_emitting(server *srv, arena *ar, const char *method, uint32_t deadline_ms, nng_time received,
		       uint64_t received_ns, ProtobufCMessage *in, const call_origin *from, call_emit_fn emit,
		       void *emit_arg, call_result *res)
{
	Rpcq__Request req = RPCQ__REQUEST__INIT;
	req.method = (char *)method;
	req.deadline_ms = deadline_ms;
	call_request rq = {.req = &req,
			   .received = received,
			   .received_ns = received_ns,
			   .origin = from,
			   .in_process = from == NULL,
			   .emit = emit,
			   .emit_arg = emit_arg};
	if (in != NULL) {
		rq.decode = given_input;
		rq.decode_arg = in;
	}
	call_run(srv, ar, &rq, res);
}

nng_msg *call_execute(server *srv, arena *ar, const void *data, size_t len, nng_pipe pipe, nng_time received,
		      uint64_t received_ns, call_result *res)
{
	const rpcq_config *cfg = server_config(srv);
	rpcq_error err;
	Rpcq__Request *req = NULL;
	nng_msg *out = NULL;
	memset(res, 0, sizeof(*res));
	if ((long)len > cfg->max_message_bytes) {
		res->status = RPCQ_RESOURCE_EXHAUSTED;
		res->message = arena_printf(ar, "request of %zu bytes exceeds the message size limit of %ld bytes", len,
					    cfg->max_message_bytes);
	} else if (envelope_parse_request(ar, data, len, &req, &err) != RPCQ_OK) {
		res->status = RPCQ_INVALID_ARGUMENT;
		res->message = arena_strdup(ar, err.message);
	}
	if (req == NULL) {
		/* Not a call we can name: logged and counted as one to an unknown method. */
		snprintf(res->request_id, sizeof(res->request_id), "-");
		res->deadline = received + (nng_time)cfg->default_deadline_ms;
		if (res->message == NULL)
			res->message = rpcq_status_describe(res->status);
		log_info("(undecodable request) %s: %s", rpcq_status_name(res->status), res->message);
		server_count_call(srv, NULL, res->status, call_clock_ns() - received_ns);
	} else {
		call_request rq = {.req = req, .received = received, .received_ns = received_ns, .pipe = pipe};
		call_run(srv, ar, &rq, res);
	}

	const void *payload = NULL;
	size_t size = 0;
	if (res->status == RPCQ_OK) {
		size = protobuf_c_message_get_packed_size(res->output);
		uint8_t *packed = arena_alloc(ar, size);
		if (packed == NULL) {
			res->status = RPCQ_RESOURCE_EXHAUSTED;
			res->message = "out of memory for the reply";
			size = 0;
		} else {
			protobuf_c_message_pack(res->output, packed);
			payload = packed;
		}
	}
	if (envelope_pack_response(&out, res->status, res->message, payload, size, res->trailers, &err) != RPCQ_OK) {
		log_error("cannot pack a reply: %s", err.message);
		return NULL;
	}
	return out;
}
