/*
 * GET /streams/<topic>: an update stream as Server-Sent Events
 * (html.spec.whatwg.org, "server-sent events"), one event per stream
 * message: `id:` its seq, `event:` its type, `data:` its payload as proto3
 * JSON. A client resumes after the Last-Event-ID header's seq (what a
 * browser's EventSource sends on reconnecting) or ?after_seq=N; without
 * either it starts with the messages after the topic's current last seq.
 *
 * The log is the truth, as for nng subscribers: the past comes from
 * rpcq.Streams/Replay, run through call_run on a worker like any call; the
 * present comes from this process's publisher (sse_on_message), which
 * sees every committed message in seq order. A stream writes a live
 * message only when it is the next seq; any jump, a full output buffer (a
 * slow client) or a failed Replay makes it catch up from the log once its
 * socket has drained, so memory stays bounded and nothing is lost or
 * repeated. A timer writes heartbeat comments for proxies and retries a
 * failed Replay.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>
#include <rpcq/json.h>
#include <rpcq/registry.h>

#include "call_internal.h"
#include "frame.h"
#include "gateway_internal.h"
#include "query.h"
#include "rpcq/stream.pb-c.h"

/* How often the timer looks at a stream: heartbeat due, Replay to retry. */
#define SSE_TICK_MS 1000
#define SSE_REPLAY_DEADLINE_MS 10000
/* A live start whose Replays keep failing (the database down) answers 503
 * after this long rather than keeping its client without a word. */
#define SSE_START_PATIENCE_MS 3000

static void catchup_run(server_job *job, arena *ar);

static void base64(const uint8_t *in, size_t len, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
			     (i + 2 < len ? in[i + 2] : 0);
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

/* The event of one message, malloc'd (*len without the NUL), or NULL when
 * out of memory. */
static char *encode_event(const Rpcq__StreamMessage *m, size_t *len)
{
	const ProtobufCMessageDescriptor *d = rpcq_message_find(m->type);
	char *json = NULL;
	rpcq_error err;
	if (d == NULL || rpcq_payload_to_json(d, m->payload.data, m->payload.len, 0, &json, &err) != RPCQ_OK) {
		json = rpcq_alloc(m->payload.len * 4 / 3 + 32);
		if (json == NULL)
			return NULL;
		memcpy(json, "{\"payloadBase64\":\"", 18);
		base64(m->payload.data, m->payload.len, json + 18);
		memcpy(json + strlen(json), "\"}", 3);
	}
	size_t cap = strlen(json) + strlen(m->type) + 64;
	char *ev = rpcq_alloc(cap);
	if (ev != NULL) {
		int n = snprintf(ev, cap, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", m->seq, m->type, json);
		*len = n > 0 ? (size_t)n : 0;
	}
	rpcq_free(json);
	return ev;
}

/* The response's head, once; c->lock held. */
static void head_locked(conn *c)
{
	if (!c->sse.head_pending)
		return;
	c->sse.head_pending = 0;
	metrics_http(c->gw->metrics, METRICS_ROUTE_STREAMS, 200);
	char head[600];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\n"
			 "Content-Type: text/event-stream\r\n"
			 "Cache-Control: no-cache\r\n"
			 "X-Accel-Buffering: no\r\n"
			 "Connection: close\r\n"
			 "%s"
			 "\r\n"
			 "retry: 2000\n\n",
			 c->cors);
	c->cors[0] = '\0';
	conn_write_locked(c, head, n > 0 && (size_t)n < sizeof(head) ? (size_t)n : 0, 1);
	c->sse.last_write = nng_clock();
}

/* Queues a Replay from the cursor; c->lock held. */
static void catchup_locked(conn *c)
{
	if (c->sse.catching_up || c->state != CONN_STREAMING)
		return;
	c->sse.catching_up = 1;
	conn_hold(c);
	c->job.run = catchup_run;
	if (server_submit(c->gw->srv, &c->job) != 0) {
		/* The workers have stopped: the server is going away. */
		c->sse.catching_up = 0;
		conn_close_locked(c);
		c->refs--; /* the job's; the caller holds another */
	}
}

static void arm_timer_locked(conn *c)
{
	conn_hold(c);
	int hb = c->gw->cfg->http_heartbeat_ms;
	nng_sleep_aio(hb < SSE_TICK_MS ? hb : SSE_TICK_MS, c->timer);
}

/* Writes a live or replayed message if it is the next seq; c->lock held.
 * force: a Replay page, written whole even past the buffer limit (one page
 * is bounded by the message size limit). */
static void deliver_locked(conn *c, const Rpcq__StreamMessage *m, char **ev, size_t *len, int force)
{
	if (m->seq != c->sse.cursor + 1)
		return;
	if (*ev == NULL && (*ev = encode_event(m, len)) == NULL)
		return;
	if (conn_write_locked(c, *ev, *len, force) == 0) {
		c->sse.cursor = m->seq;
		c->sse.last_write = nng_clock();
	}
}

/* Ends a stream whose key no longer passes (revoked, expired, scopes
 * changed, ...): an "error" event with the status, then the connection
 * closes. c->lock held. */
static void end_stream_locked(conn *c, rpcq_status st, const char *message)
{
	if (c->sse.ending)
		return;
	head_locked(c);
	char esc[400], ev[600];
	gw_json_escape(esc, sizeof(esc), message);
	int n = snprintf(ev, sizeof(ev), "event: error\ndata: {\"code\":\"%s\",\"message\":\"%s\"}\n\n",
			 gateway_connect_code(st), esc);
	c->sse.ending = 1;
	if (n <= 0 || (size_t)n >= sizeof(ev) || conn_write_locked(c, ev, (size_t)n, 1) != 0)
		conn_close_locked(c);
}

/* A live start that cannot find where "now" is (its Replays fail): the
 * 503 it answers instead of its 200, and the close. c->lock held. */
static void refuse_start_locked(conn *c, rpcq_status st, const char *message)
{
	char esc[400], body[600], head[1200];
	gw_json_escape(esc, sizeof(esc), message);
	int bn = snprintf(body, sizeof(body), "{\"code\":\"%s\",\"message\":\"%s\"}", gateway_connect_code(st), esc);
	if (bn <= 0 || (size_t)bn >= sizeof(body))
		bn = snprintf(body, sizeof(body), "{\"code\":\"%s\"}", gateway_connect_code(st));
	int hn = snprintf(head, sizeof(head),
			  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
			  "Retry-After: 1\r\nConnection: close\r\n%s\r\n%s",
			  bn, c->cors, body);
	c->cors[0] = '\0';
	c->sse.head_pending = 0;
	c->sse.ending = 1;
	metrics_http(c->gw->metrics, METRICS_ROUTE_STREAMS, 503);
	if (hn <= 0 || (size_t)hn >= sizeof(head) || conn_write_locked(c, head, (size_t)hn, 1) != 0)
		conn_close_locked(c);
}

/* The caller of a started stream: the Authorization its request had
 * (copied at the start, never written again) and its address. c->lock
 * held: a worker that read c->state or c->req without it raced the
 * connection's close. */
static call_origin stream_origin(const conn *c)
{
	call_origin o = {.peer = c->peer};
	if (c->sse.authorization[0])
		o.authorization = c->sse.authorization;
	return o;
}

/* Access control of a stream, at its start (c->req held by the route's
 * worker) and on every tick (c->lock held). OK, or the refusal in msg. */
static rpcq_status stream_allowed(conn *c, int charge, char *msg, size_t n, uint64_t *retry_after_ms)
{
	call_origin from = c->req ? gw_origin(c) : stream_origin(c);
	return call_authorize(c->gw->srv, "/rpcq.Streams/Replay", &from, charge, msg, n, retry_after_ms);
}

static void catchup_run(server_job *job, arena *ar)
{
	conn *c = conn_of_job(job);
	Rpcq__ReplayRequest in = RPCQ__REPLAY_REQUEST__INIT;
	char topic[sizeof(c->sse.topic)];
	nng_mtx_lock(c->lock);
	if (c->state != CONN_STREAMING) {
		c->sse.catching_up = 0;
		conn_release_unlock(c);
		return;
	}
	memcpy(topic, c->sse.topic, sizeof(topic));
	in.topic = topic;
	in.after_seq = c->sse.live_start ? (uint64_t)INT64_MAX : c->sse.cursor;
	call_origin from = stream_origin(c);
	from.uncharged = 1; /* access is checked; the rate was charged when the stream began */
	uint64_t before = c->sse.cursor;
	nng_mtx_unlock(c->lock);

	call_result res;
	call_run_message(c->gw->srv, ar, "/rpcq.Streams/Replay", SSE_REPLAY_DEADLINE_MS, nng_clock(), call_clock_ns(),
			 &in.base, &from, &res);

	nng_mtx_lock(c->lock);
	c->sse.catching_up = 0;
	if (c->state != CONN_STREAMING) {
		conn_release_unlock(c);
		return;
	}
	int none = res.status == RPCQ_NOT_FOUND && res.output == NULL && !res.unknown_method;
	/* A live start answers 200 only once its cursor is fixed: a client
	 * that acts on the 200 sees what its action publishes. Until then a
	 * failed Replay is tried again on the next tick, for
	 * SSE_START_PATIENCE_MS; then the answer is 503 (the database is
	 * down, say), which a client can act on, where silence is not. */
	if (c->sse.live_start && c->sse.head_pending && !none && res.status != RPCQ_OK &&
	    res.status != RPCQ_UNAUTHENTICATED && res.status != RPCQ_PERMISSION_DENIED &&
	    nng_clock() - c->sse.started >= SSE_START_PATIENCE_MS) {
		refuse_start_locked(c, res.status, res.message);
		conn_release_unlock(c);
		return;
	}
	if (!c->sse.live_start || none || res.status == RPCQ_OK)
		head_locked(c);
	if (none) {
		/* No message yet: every seq from 1 on is new. */
		if (c->sse.live_start)
			c->sse.cursor = 0;
		c->sse.live_start = 0;
	} else if (res.status == RPCQ_UNAUTHENTICATED || res.status == RPCQ_PERMISSION_DENIED) {
		end_stream_locked(c, res.status, res.message);
	} else if (res.status != RPCQ_OK) {
		c->sse.retry_pending = 1;
	} else {
		const Rpcq__ReplayResponse *r = (const Rpcq__ReplayResponse *)res.output;
		if (c->sse.live_start) {
			c->sse.cursor = r->last_seq;
			c->sse.live_start = 0;
		} else if ((r->n_messages > 0 ? r->messages[0]->seq : r->first_retained_seq) > c->sse.cursor + 1) {
			/* Trimmed by retention before this client read them (all of
			 * them, when the reply has no message). */
			char ev[400];
			uint64_t first = r->n_messages > 0 ? r->messages[0]->seq : r->first_retained_seq;
			int n = snprintf(ev, sizeof(ev),
					 "id: %" PRIu64
					 "\nevent: data_loss\ndata: {\"topic\":\"%s\",\"afterSeq\":\"%" PRIu64
					 "\",\"firstRetainedSeq\":\"%" PRIu64 "\"}\n\n",
					 first - 1, c->sse.topic, c->sse.cursor, first);
			if (n > 0 && conn_write_locked(c, ev, (size_t)n, 1) == 0)
				c->sse.cursor = first - 1;
		}
		for (size_t i = 0; i < r->n_messages; i++) {
			char *ev = NULL;
			size_t len = 0;
			deliver_locked(c, r->messages[i], &ev, &len, 1);
			rpcq_free(ev);
		}
		if (r->last_seq > c->sse.known)
			c->sse.known = r->last_seq;
		/* A Replay that moved nothing is not asked again at once (it
		 * would answer the same): the next tick tries. */
		if (c->sse.cursor == before && c->sse.known > c->sse.cursor)
			c->sse.retry_pending = 1;
	}
	if (c->sse.known > c->sse.cursor && !c->sse.retry_pending && conn_idle_locked(c))
		catchup_locked(c);
	conn_release_unlock(c);
}

void sse_on_message(void *arg, const Rpcq__StreamMessage *m)
{
	gateway *gw = arg;
	char *ev = NULL;
	size_t len = 0;
	nng_mtx_lock(gw->lock);
	for (conn *c = gw->streams; c; c = c->sse.next) {
		if (strcmp(c->sse.topic, m->topic) != 0)
			continue;
		nng_mtx_lock(c->lock);
		if (c->state == CONN_STREAMING) {
			if (m->seq > c->sse.known)
				c->sse.known = m->seq;
			if (!c->sse.catching_up && !c->sse.live_start && !c->sse.retry_pending) {
				deliver_locked(c, m, &ev, &len, 0);
				if (c->sse.known > c->sse.cursor && conn_idle_locked(c))
					catchup_locked(c);
			}
		}
		nng_mtx_unlock(c->lock);
	}
	nng_mtx_unlock(gw->lock);
	rpcq_free(ev);
}

void sse_unlist_locked(gateway *gw, conn *c)
{
	if (!c->sse.listed)
		return;
	conn **p = &gw->streams;
	while (*p && *p != c)
		p = &(*p)->sse.next;
	if (*p)
		*p = c->sse.next;
	c->sse.listed = 0;
	gw->nstreams--;
}

void sse_drained_locked(conn *c)
{
	if (c->sse.ending) {
		conn_close_locked(c);
		return;
	}
	if (c->sse.known > c->sse.cursor && !c->sse.retry_pending && !c->sse.live_start)
		catchup_locked(c);
}

void sse_timer_locked(conn *c)
{
	char why[200];
	uint64_t retry = 0;
	/* A rate limit applies to calls, not to a stream already granted. */
	rpcq_status st = c->sse.ending ? RPCQ_OK : stream_allowed(c, 0, why, sizeof(why), &retry);
	if (st != RPCQ_OK) {
		end_stream_locked(c, st, why);
		return;
	}
	if (c->sse.retry_pending && !c->sse.catching_up && conn_idle_locked(c)) {
		c->sse.retry_pending = 0;
		catchup_locked(c);
	}
	nng_time now = nng_clock();
	if (now - c->sse.last_write >= (nng_time)c->gw->cfg->http_heartbeat_ms && conn_idle_locked(c) &&
	    !c->sse.head_pending) {
		static const char beat[] = ": keepalive\n\n";
		if (conn_write_locked(c, beat, sizeof(beat) - 1, 0) == 0)
			c->sse.last_write = now;
	}
	arm_timer_locked(c);
}

static void bad_position(conn *c, const char *what, const char *value)
{
	char msg[200];
	snprintf(msg, sizeof(msg), "%s \"%.40s\" is not a seq (0 to 9223372036854775807)", what, value);
	conn_respond_error(c, 400, "invalid_argument", msg);
}

void sse_route(conn *c)
{
	gateway *gw = c->gw;
	const http_request *req = c->req;
	const char *topic = req->path + 9;
	if (!frame_topic_valid(topic, strlen(topic))) {
		char msg[300];
		snprintf(msg, sizeof(msg), "topic \"%.64s\" is not 1..%d bytes of [A-Za-z0-9_.-]", topic,
			 FRAME_TOPIC_MAX);
		conn_respond_error(c, 400, "invalid_argument", msg);
		return;
	}
	uint64_t after = 0;
	int live = 1;
	const char *last = http_request_header(req, "last-event-id");
	if (query_count(req->query, "after_seq") > 1) {
		conn_respond_error(c, 400, "invalid_argument", "after_seq is given more than once");
		return;
	}
	char val[64];
	int q = query_get(req->query, "after_seq", val, sizeof(val));
	if (last != NULL && *last) {
		if (query_uint(last, &after) != 0) {
			bad_position(c, "Last-Event-ID", last);
			return;
		}
		live = 0;
	} else if (q < 0 || (q == 1 && query_uint(val, &after) != 0)) {
		bad_position(c, "after_seq", q < 0 ? req->query : val);
		return;
	} else if (q == 1) {
		live = 0;
	}
	char why[200];
	uint64_t retry = 0;
	rpcq_status st = stream_allowed(c, 1, why, sizeof(why), &retry);
	if (st != RPCQ_OK) {
		c->retry_after_ms = retry;
		conn_respond_error(c, gateway_http_status(st), gateway_connect_code(st), why);
		return;
	}
	const char *authorization = http_request_header(req, "authorization");
	if (c->head_only) {
		conn_respond(c, 200, "text/event-stream", "Cache-Control: no-cache\r\n", NULL, 0);
		return;
	}

	nng_mtx_lock(gw->lock);
	nng_mtx_lock(c->lock);
	if (c->state == CONN_CLOSED || gw->draining) {
		nng_mtx_unlock(c->lock);
		nng_mtx_unlock(gw->lock);
		conn_respond_error(c, 503, "unavailable", "server is shutting down; retry on another server");
		return;
	}
	c->state = CONN_STREAMING;
	c->req = NULL;
	/* Checked above, so it fits unless it is not a key at all. */
	if (authorization && strlen(authorization) < sizeof(c->sse.authorization))
		memcpy(c->sse.authorization, authorization, strlen(authorization) + 1);
	else
		snprintf(c->sse.authorization, sizeof(c->sse.authorization), "%s", authorization ? "-" : "");
	snprintf(c->sse.topic, sizeof(c->sse.topic), "%s", topic);
	c->sse.cursor = after;
	c->sse.known = after;
	c->sse.live_start = live;
	c->sse.next = gw->streams;
	gw->streams = c;
	c->sse.listed = 1;
	gw->nstreams++;
	nng_mtx_unlock(gw->lock);

	/* A live stream answers once its first Replay has fixed where "now"
	 * is: a client that acts on the 200 sees what its action publishes. */
	c->sse.head_pending = 1;
	c->sse.started = nng_clock();
	if (!live)
		head_locked(c);
	c->sse.last_write = nng_clock();
	catchup_locked(c);
	arm_timer_locked(c);
	conn_read_locked(c); /* to see the client go */
	nng_mtx_unlock(c->lock);
}
