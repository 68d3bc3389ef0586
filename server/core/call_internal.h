/*
 * Running one call: the work phase of a received request, on a worker
 * thread. call_run is the one path into handlers, whatever the transport:
 * it finds the method, checks drain and deadline, decodes the input, runs
 * the handler, releases its database connection, logs and counts the
 * outcome. The transports do what is theirs around it: call_execute
 * decodes and packs the rpcq/1 envelope for nng; the HTTP gateway maps
 * headers and bodies (server/gateway/rpc.c).
 */
#ifndef RPCQ_CALL_INTERNAL_H
#define RPCQ_CALL_INTERNAL_H

#include <stdint.h>

#include <nng/nng.h>

#include "arena.h"
#include "rpcq/rpc.pb-c.h"
#include "server.h"

/* Decodes a call's input when its payload is not protobuf wire format (the
 * gateway's JSON): on OK *out is a message of type desc in ar; otherwise
 * *message (in ar or static) says what is wrong, naming the field. */
typedef rpcq_status (*call_decode_fn)(void *arg, const ProtobufCMessageDescriptor *desc, arena *ar,
				      ProtobufCMessage **out, const char **message);

/* On whose behalf rpcqd calls itself: the gateway's own routes pass their
 * HTTP caller's Authorization header and address, so the call is checked
 * as the caller's. NULL origin: rpcqd's own work, which needs no key. */
typedef struct call_origin {
	const char *authorization; /* NULL: none sent */
	const char *peer;	   /* "203.0.113.7:51234", for the audit line */
	int uncharged;		   /* checked but not counted against the key's rate (a granted stream's Replays) */
} call_origin;

typedef struct call_request {
	const Rpcq__Request *req; /* method, payload, deadline_ms, metadata; outlives the call */
	/* The caller, for access control and the audit line: a key comes from
	 * origin (when given) or else from the "authorization" metadata. */
	const call_origin *origin;
	int in_process;	       /* rpcqd's own call: no key checked */
	nng_pipe pipe;	       /* nng: the caller's connection (id 0: none) */
	nng_time received;     /* nng_clock() when it arrived */
	uint64_t received_ns;  /* call_clock_ns() when it arrived, for the latency histogram */
	call_decode_fn decode; /* NULL: req->payload is protobuf */
	void *decode_arg;
	call_emit_fn emit; /* NULL: results in the output (call_emitter) */
	void *emit_arg;
} call_request;

typedef struct call_result {
	rpcq_status status;
	const char *message;		/* "" on OK; never NULL */
	const ProtobufCMessage *output; /* on OK, in the arena */
	const char *const *trailers;	/* NULL-terminated key/value pairs, or NULL */
	int unknown_method;		/* UNIMPLEMENTED because no such method is served */
	uint64_t retry_after_ms;	/* RESOURCE_EXHAUSTED by a rate limit: when to retry */
	nng_time deadline;		/* the call's, on nng_clock() */
	char request_id[64];
} call_result;

/* Runs the call rq in arena ar (reset by the caller after the reply is
 * written) and fills *res, which lives in ar. Never fails: every outcome is
 * a status. Blocks (the handler). */
void call_run(server *srv, arena *ar, const call_request *rq, call_result *res);

/* call_run for a caller inside rpcqd (the gateway's own routes, the
 * followers of the log): method with an input message already built
 * (NULL: the method's empty input), a deadline of deadline_ms from
 * received, on behalf of from (NULL: rpcqd's own). The same dispatch,
 * access control, drain, deadline, logging and counters as any call. */
void call_run_message(server *srv, arena *ar, const char *method, uint32_t deadline_ms, nng_time received,
		      uint64_t received_ns, ProtobufCMessage *in, const call_origin *from, call_result *res);

/* The same, with the method's repeated results given to emit one at a time
 * (call_emitter in call.h) instead of in res->output. */
void call_run_emitting(server *srv, arena *ar, const char *method, uint32_t deadline_ms, nng_time received,
		       uint64_t received_ns, ProtobufCMessage *in, const call_origin *from, call_emit_fn emit,
		       void *emit_arg, call_result *res);

/* Access control for a call of method on behalf of from, as call_run does
 * it, audit line included: OK, or the refusal's status with its message in
 * msg (n bytes) and, for a rate limit, when to retry. charge: take a token
 * of the key's rate limit (0 for a check ahead of calls that will be
 * charged, or of a stream already granted). For routes that must answer
 * before any call runs (the gateway's /streams, an upload before its body
 * is read). Any thread; no I/O. */
rpcq_status call_authorize(server *srv, const char *method, const call_origin *from, int charge, char *msg, size_t n,
			   uint64_t *retry_after_ms);

/* The nng transport around call_run: decodes the envelope in data (received
 * on pipe), runs the call and packs the Response. Returns the reply message (NULL only when out
 * of memory, in which case the caller drops the call) and fills *res. */
nng_msg *call_execute(server *srv, arena *ar, const void *data, size_t len, nng_pipe pipe, nng_time received,
		      uint64_t received_ns, call_result *res);

/* An address as the audit lines show it: "127.0.0.1:5000", "[::1]:5000",
 * "ipc", "inproc" or "-". */
void call_format_sockaddr(const nng_sockaddr *sa, char *buf, size_t n);

/* CLOCK_MONOTONIC in nanoseconds (vDSO: no system call). */
uint64_t call_clock_ns(void);

#endif
