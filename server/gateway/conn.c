/*
 * One HTTP/1.1 connection of the gateway on an nng byte stream: reads and
 * frames requests (http_parse.c), hands each to gateway_route, writes the
 * reply and reads the next one, with the read timeout, the idle timeout and
 * the output buffering that streams need. The state machine and the locking
 * rules are in gateway_internal.h.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "call_internal.h"
#include "gateway_internal.h"
#include "log.h"

static void rx_cb(void *arg);
static void tx_cb(void *arg);
static void timer_cb(void *arg);
static void process_locked(conn *c);

conn *conn_of_job(server_job *job)
{
	return (conn *)((char *)job - offsetof(conn, job));
}

void conn_hold(conn *c)
{
	c->refs++;
}

/* Frees a connection nothing refers to any more; no lock held. */
static void conn_free(conn *c)
{
	gateway *gw = c->gw;
	nng_mtx_lock(gw->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		gw->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->sse.listed) {
		nng_mtx_lock(c->lock);
		sse_unlist_locked(gw, c);
		nng_mtx_unlock(c->lock);
	}
	gw->nconns--;
	nng_cv_wake(gw->cv);
	nng_mtx_unlock(gw->lock);
	/* Possibly inside one of these aios' own callbacks: reap, not free. */
	nng_aio_reap(c->rx);
	nng_aio_reap(c->tx);
	nng_aio_reap(c->timer);
	nng_stream_free(c->stream);
	http_reader_fini(&c->reader);
	upload_free(c->up);
	search_free(c->search);
	arena_destroy(c->arena);
	nng_mtx_free(c->lock);
	rpcq_free(c->out);
	rpcq_free(c->sending);
	rpcq_free(c);
}

void conn_release_unlock(conn *c)
{
	int last = --c->refs == 0;
	nng_mtx_unlock(c->lock);
	if (last)
		conn_free(c);
}

void conn_close_locked(conn *c)
{
	if (c->state == CONN_CLOSED)
		return;
	c->state = CONN_CLOSED;
	nng_stream_close(c->stream);
	nng_aio_cancel(c->timer);
	c->refs--; /* the connection's own reference; a caller holds another */
}

/* Grows a buffer to hold need bytes; -1 when out of memory. */
static int reserve(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	char *p = rpcq_realloc(*buf, n);
	if (p == NULL)
		return -1;
	*buf = p;
	*cap = n;
	return 0;
}

static void send_more_locked(conn *c)
{
	nng_iov iov = {.iov_buf = c->sending + c->sent, .iov_len = c->sending_len - c->sent};
	nng_aio_set_iov(c->tx, 1, &iov);
	nng_aio_set_timeout(c->tx, c->gw->cfg->http_idle_timeout_ms);
	conn_hold(c);
	nng_stream_send(c->stream, c->tx);
}

/* Starts sending what is in c->out unless a send is under way. */
static void kick_locked(conn *c)
{
	if (c->tx_busy || c->out_len == 0 || c->state == CONN_CLOSED)
		return;
	char *b = c->sending;
	size_t cap = c->sending_cap;
	c->sending = c->out;
	c->sending_cap = c->out_cap;
	c->sending_len = c->out_len;
	c->out = b;
	c->out_cap = cap;
	c->out_len = 0;
	c->sent = 0;
	c->tx_busy = 1;
	send_more_locked(c);
}

int conn_write_locked(conn *c, const void *data, size_t len, int force)
{
	if (c->state == CONN_CLOSED)
		return -1;
	if (!force && c->out_len + len > GW_STREAM_BUFFER_BYTES)
		return -1;
	if (reserve(&c->out, &c->out_cap, c->out_len + len) != 0)
		return -1;
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	kick_locked(c);
	return 0;
}

int conn_idle_locked(const conn *c)
{
	return !c->tx_busy && c->out_len == 0;
}

static const char *reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 499:
		return "Client Closed Request";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

static void respond_locked(conn *c, int status, const char *content_type, const char *headers, const void *body,
			   size_t len)
{
	if (c->state == CONN_CLOSED)
		return;
	if (c->req != NULL && !c->req->keep_alive)
		c->close_after = 1;
	if (c->gw->closing)
		c->close_after = 1;
	char head[1024];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%s", status,
			 reason(status), len, content_type ? "Content-Type: " : "", content_type ? content_type : "",
			 content_type ? "\r\n" : "", c->close_after ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head)) {
		conn_close_locked(c);
		return;
	}
	size_t hlen = headers ? strlen(headers) : 0;
	size_t clen = strlen(c->cors);
	size_t blen = c->head_only ? 0 : len;
	if (reserve(&c->out, &c->out_cap, c->out_len + (size_t)n + clen + hlen + 2 + blen) != 0) {
		log_warn("http: out of memory for a %zu-byte reply", len);
		conn_close_locked(c);
		return;
	}
	memcpy(c->out + c->out_len, head, (size_t)n);
	c->out_len += (size_t)n;
	/* Access control's refusals (auth.h), whichever route answers them. */
	char extra[96];
	int en = 0;
	if (status == 401)
		en = snprintf(extra, sizeof(extra), "WWW-Authenticate: Bearer realm=\"rpcq\"\r\n");
	else if (status == 429 && c->retry_after_ms)
		en = snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n",
			      (unsigned long long)((c->retry_after_ms + 999) / 1000));
	c->retry_after_ms = 0;
	if (en > 0 && reserve(&c->out, &c->out_cap, c->out_len + (size_t)en + clen + hlen + 2 + blen) == 0) {
		memcpy(c->out + c->out_len, extra, (size_t)en);
		c->out_len += (size_t)en;
	}
	memcpy(c->out + c->out_len, c->cors, clen);
	c->out_len += clen;
	c->cors[0] = '\0';
	if (hlen) {
		memcpy(c->out + c->out_len, headers, hlen);
		c->out_len += hlen;
	}
	memcpy(c->out + c->out_len, "\r\n", 2);
	c->out_len += 2;
	if (blen) {
		memcpy(c->out + c->out_len, body, blen);
		c->out_len += blen;
	}
	c->req = NULL; /* answered: the next one may be read once this is written */
	metrics_http(c->gw->metrics, c->route, status);
	kick_locked(c);
}

void conn_respond_locked(conn *c, int status, const char *content_type, const char *headers, const void *body,
			 size_t len)
{
	respond_locked(c, status, content_type, headers, body, len);
}

void conn_respond(conn *c, int status, const char *content_type, const char *headers, const void *body, size_t len)
{
	nng_mtx_lock(c->lock);
	respond_locked(c, status, content_type, headers, body, len);
	nng_mtx_unlock(c->lock);
}

size_t gw_json_escape(char *buf, size_t cap, const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char tmp[8];
		const char *add = tmp;
		size_t alen = 1;
		if (*p == '"' || *p == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)*p;
			alen = 2;
		} else if (*p < 0x20) {
			alen = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
		} else {
			tmp[0] = (char)*p;
		}
		if (n + alen < cap)
			memcpy(buf + n, add, alen);
		n += alen;
	}
	if (cap > 0)
		buf[n < cap ? n : cap - 1] = '\0';
	return n;
}

static void respond_error_locked(conn *c, int status, const char *code, const char *message)
{
	char esc[1024];
	gw_json_escape(esc, sizeof(esc), message);
	char body[1200];
	int n = snprintf(body, sizeof(body), "{\"code\":\"%s\",\"message\":\"%s\"}", code, esc);
	if (n < 0 || (size_t)n >= sizeof(body))
		n = snprintf(body, sizeof(body), "{\"code\":\"%s\"}", code);
	respond_locked(c, status, "application/json", NULL, body, (size_t)n);
}

void conn_respond_error_locked(conn *c, int status, const char *code, const char *message)
{
	respond_error_locked(c, status, code, message);
}

void conn_respond_error(conn *c, int status, const char *code, const char *message)
{
	nng_mtx_lock(c->lock);
	respond_error_locked(c, status, code, message);
	nng_mtx_unlock(c->lock);
}

void conn_submit_locked(conn *c, void (*run)(server_job *, arena *))
{
	conn_hold(c);
	c->job.run = run;
	if (server_submit(c->gw->srv, &c->job) != 0) {
		c->close_after = 1;
		c->state = CONN_BUSY;
		respond_error_locked(c, 503, "unavailable", "server is shutting down; retry on another server");
		c->refs--; /* the job's reference; the caller holds another */
	}
}

void conn_submit(conn *c, void (*run)(server_job *, arena *))
{
	nng_mtx_lock(c->lock);
	conn_hold(c);
	c->job.run = run;
	nng_mtx_unlock(c->lock);
	if (server_submit(c->gw->srv, &c->job) != 0) {
		nng_mtx_lock(c->lock);
		c->close_after = 1;
		respond_error_locked(c, 503, "unavailable", "server is shutting down; retry on another server");
		conn_release_unlock(c);
	}
}

/* Arms the receive, with the timeout of the state the connection is in. */
void conn_read_locked(conn *c)
{
	nng_duration to;
	if (c->state == CONN_STREAMING) {
		to = NNG_DURATION_INFINITE;
	} else if (c->state == CONN_UPLOAD) {
		/* A streamed body: each piece must come within the read timeout. */
		to = c->gw->cfg->http_read_timeout_ms;
	} else if (c->state == CONN_LINGER) {
		nng_time now = nng_clock();
		to = c->linger_until > now ? (nng_duration)(c->linger_until - now) : 1;
	} else if (c->started) {
		nng_time now = nng_clock();
		to = c->request_deadline > now ? (nng_duration)(c->request_deadline - now) : 1;
	} else {
		to = c->gw->cfg->http_idle_timeout_ms;
	}
	c->rx_off = c->rx_len = 0;
	nng_iov iov = {.iov_buf = c->rxbuf, .iov_len = sizeof(c->rxbuf)};
	nng_aio_set_iov(c->rx, 1, &iov);
	nng_aio_set_timeout(c->rx, to);
	conn_hold(c);
	nng_stream_recv(c->stream, c->rx);
}

/* Frames what has been read; routes a whole request, or reads on. */
static void process_locked(conn *c)
{
	while (c->state == CONN_READING) {
		if (c->rx_off == c->rx_len) {
			conn_read_locked(c);
			return;
		}
		size_t used = 0;
		int r = http_reader_feed(&c->reader, c->rxbuf + c->rx_off, c->rx_len - c->rx_off, &used);
		if (r == HTTP_READ_MORE) {
			c->rx_off = c->rx_len;
			if (!c->started) {
				c->started = 1;
				c->continue_sent = 0;
				c->request_deadline = nng_clock() + (nng_time)c->gw->cfg->http_read_timeout_ms;
			}
			if (!c->continue_sent && http_reader_expects_continue(&c->reader)) {
				/* curl waits a second for this before sending a large body. */
				static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
				c->continue_sent = 1;
				conn_write_locked(c, go_on, sizeof(go_on) - 1, 1);
			}
			continue;
		}
		if (r == HTTP_READ_HEAD) {
			/* A streamed body: its route takes it from here. */
			c->state = CONN_UPLOAD;
			c->started = 0;
			c->route = METRICS_ROUTE_OTHER;
			c->body_paused = 1; /* until the route is ready for the body */
			c->rx_off += used;
			c->received = nng_clock();
			c->received_ns = call_clock_ns();
			c->req = http_reader_request(&c->reader);
			c->head_only = 0;
			nng_mtx_unlock(c->lock);
			upload_begin(c);
			nng_mtx_lock(c->lock);
			return;
		}
		c->state = CONN_BUSY;
		c->started = 0;
		c->route = METRICS_ROUTE_OTHER;
		if (r == HTTP_READ_ERROR) {
			const char *msg = NULL;
			int status = http_reader_error(&c->reader, &msg);
			c->close_after = 1;
			c->linger = 1; /* a body may follow the head refused */
			c->req = NULL;
			respond_error_locked(c, status,
					     status == 413 || status == 431   ? "resource_exhausted"
					     : status == 501 || status == 505 ? "unimplemented"
									      : "invalid_argument",
					     msg ? msg : "malformed request");
			return;
		}
		c->rx_off += used;
		c->received = nng_clock();
		c->received_ns = call_clock_ns();
		c->req = http_reader_request(&c->reader);
		c->head_only = strcmp(c->req->method, "HEAD") == 0;
		/* Routes run without the lock (they take it to answer); the
		 * caller's reference keeps the connection alive meanwhile. */
		nng_mtx_unlock(c->lock);
		gateway_route(c);
		nng_mtx_lock(c->lock);
		return;
	}
}

void conn_body_locked(conn *c)
{
	while (c->state == CONN_UPLOAD) {
		if (c->body_paused) {
			upload_paused_locked(c); /* the route takes the piece it holds */
			return;
		}
		if (c->rx_off == c->rx_len) {
			conn_read_locked(c);
			return;
		}
		size_t used = 0;
		int r = http_reader_feed(&c->reader, c->rxbuf + c->rx_off, c->rx_len - c->rx_off, &used);
		c->rx_off += used;
		if (r == HTTP_READ_MORE)
			continue;
		c->state = CONN_BUSY;
		if (r == HTTP_READ_DONE) {
			upload_body_done_locked(c);
			return;
		}
		const char *msg = NULL;
		int status = http_reader_error(&c->reader, &msg);
		c->close_after = 1; /* the rest of the body is not read */
		c->linger = 1;
		upload_body_failed_locked(c, status, msg ? msg : "malformed body");
		return;
	}
}

static void rx_cb(void *arg)
{
	conn *c = arg;
	nng_mtx_lock(c->lock);
	int rv = nng_aio_result(c->rx);
	if (c->state == CONN_CLOSED) {
		conn_release_unlock(c);
		return;
	}
	if (rv != 0) {
		if (c->state == CONN_LINGER) {
			conn_close_locked(c); /* the client closed, or time is up */
		} else if (rv == NNG_ETIMEDOUT && c->state == CONN_UPLOAD) {
			c->state = CONN_BUSY;
			c->close_after = 1;
			upload_body_failed_locked(c, 408, "the body stopped arriving within the read timeout");
		} else if (rv == NNG_ETIMEDOUT && c->state == CONN_READING && c->started) {
			c->state = CONN_BUSY;
			c->close_after = 1;
			c->linger = 1; /* the client may still be sending: let it read the 408 */
			c->req = NULL;
			c->route = METRICS_ROUTE_OTHER;
			respond_error_locked(c, 408, "deadline_exceeded",
					     "request not received within the read timeout");
		} else {
			conn_close_locked(c);
		}
		conn_release_unlock(c);
		return;
	}
	size_t n = nng_aio_count(c->rx);
	if (c->state == CONN_LINGER) {
		c->lingered += n;
		if (c->lingered > GW_LINGER_BYTES || nng_clock() >= c->linger_until)
			conn_close_locked(c);
		else
			conn_read_locked(c);
		conn_release_unlock(c);
		return;
	}
	if (c->state == CONN_UPLOAD) {
		c->rx_off = 0;
		c->rx_len = n;
		conn_body_locked(c);
		conn_release_unlock(c);
		return;
	}
	if (c->state == CONN_STREAMING) {
		/* A stream's client has nothing to say; reading only tells us when it goes. */
		conn_read_locked(c);
		conn_release_unlock(c);
		return;
	}
	c->rx_off = 0;
	c->rx_len = n;
	process_locked(c);
	conn_release_unlock(c);
}

/* The reply is written: next request, or close. c->lock held. */
static void replied_locked(conn *c)
{
	if (c->close_after && c->linger) {
		/* Read what the client still sends until it closes (CONN_LINGER). */
		c->state = CONN_LINGER;
		c->linger_until = nng_clock() + GW_LINGER_MS;
		c->lingered = 0;
		conn_read_locked(c);
		return;
	}
	if (c->close_after) {
		conn_close_locked(c);
		return;
	}
	http_reader_reset(&c->reader);
	c->state = CONN_READING;
	process_locked(c);
}

static void tx_cb(void *arg)
{
	conn *c = arg;
	nng_mtx_lock(c->lock);
	int rv = nng_aio_result(c->tx);
	if (c->state == CONN_CLOSED) {
		conn_release_unlock(c);
		return;
	}
	if (rv != 0) {
		/* A reply (not a stream's output) that its caller did not take. */
		if (c->state == CONN_BUSY && c->route == METRICS_ROUTE_RPC)
			server_count_dropped(c->gw->srv);
		conn_close_locked(c);
		conn_release_unlock(c);
		return;
	}
	c->sent += nng_aio_count(c->tx);
	if (c->sent < c->sending_len) {
		send_more_locked(c);
		conn_release_unlock(c);
		return;
	}
	c->tx_busy = 0;
	if (c->out_len > 0) {
		kick_locked(c);
	} else if (c->state == CONN_BUSY && c->req == NULL) {
		replied_locked(c);
	} else if (c->state == CONN_STREAMING) {
		sse_drained_locked(c);
	}
	conn_release_unlock(c);
}

static void timer_cb(void *arg)
{
	conn *c = arg;
	nng_mtx_lock(c->lock);
	if (c->state == CONN_STREAMING && nng_aio_result(c->timer) == 0)
		sse_timer_locked(c);
	conn_release_unlock(c);
}

void conn_start(gateway *gw, nng_stream *stream, int reject)
{
	conn *c = rpcq_calloc(1, sizeof(*c));
	if (c == NULL || nng_mtx_alloc(&c->lock) != 0) {
		rpcq_free(c);
		nng_stream_free(stream);
		return;
	}
	if (nng_aio_alloc(&c->rx, rx_cb, c) != 0 || nng_aio_alloc(&c->tx, tx_cb, c) != 0 ||
	    nng_aio_alloc(&c->timer, timer_cb, c) != 0) {
		nng_aio_free(c->rx);
		nng_aio_free(c->tx);
		nng_mtx_free(c->lock);
		rpcq_free(c);
		nng_stream_free(stream);
		return;
	}
	c->gw = gw;
	c->stream = stream;
	c->refs = 1;
	nng_sockaddr sa;
	if (nng_stream_get_addr(stream, NNG_OPT_REMADDR, &sa) == 0)
		call_format_sockaddr(&sa, c->peer, sizeof(c->peer));
	else
		snprintf(c->peer, sizeof(c->peer), "-");
	http_limits lim = {.max_head_bytes = GW_MAX_HEAD_BYTES,
			   .max_body_bytes = (size_t)gw->cfg->max_message_bytes,
			   .stream_body = upload_streams};
	http_reader_init(&c->reader, &lim);
	nng_mtx_lock(gw->lock);
	c->next = gw->conns;
	if (gw->conns)
		gw->conns->prev = c;
	gw->conns = c;
	gw->nconns++;
	nng_mtx_unlock(gw->lock);

	nng_mtx_lock(c->lock);
	conn_hold(c);
	if (reject) {
		c->state = CONN_BUSY;
		c->close_after = 1;
		c->route = METRICS_ROUTE_OTHER;
		respond_error_locked(c, 503, "unavailable", "too many HTTP connections; retry later");
	} else {
		c->state = CONN_READING;
		conn_read_locked(c);
	}
	conn_release_unlock(c);
}
