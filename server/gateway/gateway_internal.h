/*
 * Inside the gateway: one HTTP connection (conn.c), the routes that answer
 * its requests (gateway.c, rpc.c, sse.c).
 *
 * A connection is a small state machine driven by nng callbacks and, while
 * a request is being worked on, by one job on the worker pool:
 *
 *     reading --(request framed)--> busy --(reply written)--> reading
 *     reading --(GET /streams/...)--> streaming --(client gone)--> closed
 *     any --(error, timeout, Connection: close, stop)--> closed
 *
 * Locking: c->lock guards the connection's state and its output buffer;
 * gw->lock guards the list of connections and of streams. Order: gw->lock,
 * then c->lock. A connection is freed when it is closed and nothing holds
 * a reference (an nng operation, a job, a timer): conn_release.
 */
#ifndef RPCQ_GATEWAY_INTERNAL_H
#define RPCQ_GATEWAY_INTERNAL_H

#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include "gateway.h"
#include "call_internal.h"
#include "http_parse.h"
#include "metrics.h"
#include "rpcq/stream.pb-c.h"
#include "server.h"

#define GW_RXBUF 16384
#define GW_MAX_HEAD_BYTES 16384
/* A stream whose client reads slower than messages come stops buffering
 * here and catches up from the log once its socket has drained. */
#define GW_STREAM_BUFFER_BYTES (1024 * 1024)

typedef struct conn conn;

/* CONN_UPLOAD: a request whose body is streamed to its route (upload.c)
 * as it arrives, the reading paused while the route works on a piece.
 * CONN_LINGER: a reply that closes the connection is written; what the
 * client still sends (a body the reply refused) is read and dropped until
 * it closes, for at most GW_LINGER_MS and GW_LINGER_BYTES, so that the
 * kernel does not reset the connection, and lose the reply, on data left
 * unread. */
enum conn_state { CONN_READING, CONN_BUSY, CONN_STREAMING, CONN_UPLOAD, CONN_LINGER, CONN_CLOSED };
#define GW_LINGER_MS 2000
#define GW_LINGER_BYTES (64 * 1024 * 1024)

typedef struct upload upload;
typedef struct gw_search gw_search;

/* One Server-Sent Events subscription (sse.c), inside its connection. */
typedef struct sse_state {
	char topic[208];
	uint64_t cursor;   /* last seq written to the client */
	uint64_t known;	   /* highest seq known to exist */
	int live_start;	   /* cursor unknown yet: start after the topic's last seq */
	int catching_up;   /* a Replay job is queued or running */
	int retry_pending; /* waiting on the retry timer after a failed Replay */
	conn *next;	   /* in gw->streams */
	int listed;
	nng_time last_write; /* for the heartbeat */
	/* The client's Authorization (its request is gone once streaming):
	 * Replays run with it, and the timer checks it again every tick, so a
	 * revoked key's stream ends within a second. */
	char authorization[128];
	int ending;	  /* an error event is on its way; close once written */
	int head_pending; /* the 200 is not written yet (a live start waits for its first Replay) */
	nng_time started; /* when the stream began, for SSE_START_PATIENCE_MS */
} sse_state;

struct conn {
	gateway *gw;
	nng_stream *stream;
	char peer[64];		 /* the client's address, for audit lines */
	uint64_t retry_after_ms; /* of the call answered next: a 429's Retry-After */
	nng_mtx *lock;
	int refs;
	enum conn_state state;
	int close_after;       /* close once the output is written */
	int reject;	       /* over the connection cap: answer 503 and close */
	int linger;	       /* the reply may leave part of the body unread: CONN_LINGER after it */
	nng_time linger_until; /* CONN_LINGER: close by then */
	size_t lingered;       /* CONN_LINGER: bytes dropped */

	nng_aio *rx, *tx, *timer;
	char rxbuf[GW_RXBUF];
	size_t rx_off, rx_len;
	http_reader reader;
	int started;		   /* some bytes of the current request arrived */
	nng_time request_deadline; /* read timeout of the current request */
	int continue_sent;

	/* Output: out is filled while tx sends sending. */
	char *out, *sending;
	size_t out_len, out_cap, sending_len, sending_cap, sent;
	int tx_busy;

	/* The request being worked on (state busy). */
	const http_request *req;
	nng_time received; /* when it was framed: deadlines and latency count from here */
	uint64_t received_ns;
	int head_only;	/* HEAD: headers without the body */
	char cors[400]; /* CORS header lines of the reply to an allowed other origin (gw_origin_check) */
	metrics_route route;
	server_job job;
	int job_queued;

	sse_state sse;
	upload *up;	   /* a streamed body's route state (upload.c), freed with the connection */
	gw_search *search; /* /search's (search.c), made on first use, freed with the connection */
	arena *arena;	   /* for calls run on the connection's thread, made on first use */
	int body_paused;   /* CONN_UPLOAD: the route holds a piece; no reading until it resumes */
	conn *next, *prev; /* in gw->conns */
};

typedef struct gw_listener {
	gateway *gw;
	nng_stream_listener *l;
	nng_aio *aio; /* accept */
	char *url;    /* as bound: "http://127.0.0.1:7480" */
} gw_listener;

struct gateway {
	server *srv;
	const rpcq_config *cfg;
	metrics *metrics;
	nng_mtx *lock;
	nng_cv *cv; /* the last connection was freed */
	gw_listener lst[CONFIG_MAX_URLS];
	int nlisteners;
	nng_tls_config *tls;
	conn *conns;
	unsigned nconns;
	conn *streams; /* connections in the streaming state */
	unsigned nstreams;
	int closing;
	int draining;
	int listening; /* registered with the publisher */
};

/* --- conn.c --- */

/* A new connection on stream (taken over, freed with the connection). */
void conn_start(gateway *gw, nng_stream *stream, int reject);

/* Adds a reference (for a job or timer); c->lock held. */
void conn_hold(conn *c);
/* Drops one; frees a closed connection that nothing holds. c->lock held;
 * it is released (the connection may be gone afterwards). */
void conn_release_unlock(conn *c);

/* Answers the current request: status line, Content-Type (NULL: none),
 * Content-Length, extra header lines (each ending in \r\n; may be NULL) and
 * the body (copied). Counted in /metrics under c->route. After the reply is
 * written the connection reads the next request, or closes when the
 * request asked for it or c->close_after is set. Any thread; takes c->lock. */
void conn_respond(conn *c, int status, const char *content_type, const char *headers, const void *body, size_t len);

/* The same with c->lock held. */
void conn_respond_locked(conn *c, int status, const char *content_type, const char *headers, const void *body,
			 size_t len);
void conn_respond_error_locked(conn *c, int status, const char *code, const char *message);
/* conn_respond with Connect's error body {"code": ..., "message": ...}. */
void conn_respond_error(conn *c, int status, const char *code, const char *message);

/* Output for a streaming connection: appends bytes and sends them when the
 * socket is free. c->lock held. Returns -1 (nothing appended) when the
 * connection is closed, out of memory, or unless force when the buffer
 * would pass GW_STREAM_BUFFER_BYTES. */
int conn_write_locked(conn *c, const void *data, size_t len, int force);

/* Arms the receive (a streaming connection reads only to see its client
 * go). c->lock held. */
void conn_read_locked(conn *c);
/* Output is empty and nothing is being sent. c->lock held. */
int conn_idle_locked(const conn *c);

/* Closes the connection (idempotent); c->lock held. */
void conn_close_locked(conn *c);

/* Queues c->job on the worker pool with run; answers 503 when the workers
 * have stopped. c->lock not held. */
void conn_submit(conn *c, void (*run)(server_job *, arena *));

/* conn_submit with c->lock held. */
void conn_submit_locked(conn *c, void (*run)(server_job *, arena *));

/* CONN_UPLOAD: feeds the body read so far to the reader (and so to the
 * route's sink), reads more when it is used up, and hands a full piece
 * (upload_paused_locked, when the sink set c->body_paused), the end of the
 * body (upload_body_done_locked) or an error to the route. c->lock held. */
void conn_body_locked(conn *c);

/* The connection of a job (c->job). */
conn *conn_of_job(server_job *job);

/* The HTTP caller of c as a call's origin: its Authorization header and
 * address. Valid while c->req is. */
call_origin gw_origin(const conn *c);

/* call_run_message on behalf of c's caller (gw_origin), noting a rate
 * limit's retry time for the 429's Retry-After. On a worker. */
void gw_call(conn *c, arena *ar, const char *method, uint32_t deadline_ms, nng_time received, uint64_t received_ns,
	     ProtobufCMessage *in, call_result *res);
/* Answers a call's reply as JSON (200), or its error in Connect's shape
 * with the gRPC-mapped HTTP status. */
void gw_respond_json(conn *c, const call_result *res);
/* The same, the method's repeated results given to emit (call_emitter). */
void gw_call_emitting(conn *c, arena *ar, const char *method, uint32_t deadline_ms, nng_time received,
		      uint64_t received_ns, ProtobufCMessage *in, call_emit_fn emit, void *emit_arg, call_result *res);

/* Appends s to buf as the inside of a JSON string (quotes not included). */
size_t gw_json_escape(char *buf, size_t cap, const char *s);

/* --- gateway.c --- */

/* Routes a framed request (c->req) of a connection now busy. nng thread. */
void gateway_route(conn *c);

/* Checks the request's Origin (cors.h) and keeps in c->cors the header
 * lines of its reply (conn.c adds them). 0, or -1 with the refusal in why
 * (len bytes), for a 403. c->lock not needed: the request is the caller's. */
int gw_origin_check(conn *c, char *why, size_t len);

/* The Connect error code of a status ("invalid_argument") and its HTTP code. */
const char *gateway_connect_code(rpcq_status st);
int gateway_http_status(rpcq_status st);

/* --- rpc.c --- */
void rpc_route(conn *c);

/* --- search.c: GET /search of the events service --- */
void search_route(conn *c);
void search_free(gw_search *s);

/* --- upload.c: POST /billing/imports, POST and GET /billing/imports/<id> --- */
/* http_limits.stream_body: the requests whose body is streamed. */
int upload_streams(const char *method, const char *path);
/* The <id> of "/billing/imports/<id>" (not empty, no further '/'), or NULL
 * when path is not an import's. */
const char *upload_import_of_path(const char *path);
/* The head of a streamed request is in (c->req, state CONN_UPLOAD). nng
 * thread, c->lock not held. */
void upload_begin(conn *c);
/* Reading paused with a piece of body held (c->lock held). */
void upload_paused_locked(conn *c);
/* The body has ended (c->lock held; the state is CONN_BUSY). */
void upload_body_done_locked(conn *c);
/* The reader refused the body (c->lock held): status and message. */
void upload_body_failed_locked(conn *c, int status, const char *message);
void upload_free(upload *u);
/* GET /billing/imports/<id>. */
void upload_status_route(conn *c);

/* --- bills.c: GET /billing/bills/<debtId>[/slip.pdf] --- */
void bills_route(conn *c);

/* --- sse.c --- */
void sse_route(conn *c);
/* The publisher listener of the gateway (registered in gateway_create). */
void sse_on_message(void *arg, const Rpcq__StreamMessage *m);
/* The connection is closing: unlist it. gw->lock held, c->lock held. */
void sse_unlist_locked(gateway *gw, conn *c);
/* A streaming connection's output has drained (c->lock held): resumes a
 * catch-up that waited for it, or writes a heartbeat when due. */
void sse_drained_locked(conn *c);
/* The heartbeat / retry timer fired (c->lock held). */
void sse_timer_locked(conn *c);

#endif
