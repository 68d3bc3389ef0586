/*
 * The gateway's listeners and routes: accepting connections (with the
 * connection cap), the route table, the probes (/healthz, /readyz), the
 * Prometheus exposition (/metrics), and the status mapping shared by the
 * routes. The Connect calls are in rpc.c, the streams in sse.c, the
 * search in search.c, the billing uploads in upload.c and its bills in
 * bills.c.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <rpcq/alloc.h>
#include <rpcq/json.h>

#include "call_internal.h"
#include "cors.h"
#include "db/pool.h"
#include "gateway_internal.h"
#include "log.h"
#include "publisher.h"
#include "rpcq/health.pb-c.h"
#include "tls.h"

/* Connect's codes (connectrpc.com/docs/protocol#error-codes) and the HTTP
 * status each maps to, as Connect and gRPC's HTTP mapping have them. */
const char *gateway_connect_code(rpcq_status st)
{
	static const char *const codes[] = {
		"ok",	     "canceled",	"unknown",	     "invalid_argument",   "deadline_exceeded",
		"not_found", "already_exists",	"permission_denied", "resource_exhausted", "failed_precondition",
		"aborted",   "out_of_range",	"unimplemented",     "internal",	   "unavailable",
		"data_loss", "unauthenticated",
	};
	return (unsigned)st < sizeof(codes) / sizeof(codes[0]) ? codes[st] : "unknown";
}

call_origin gw_origin(const conn *c)
{
	call_origin o = {.peer = c->peer};
	if (c->req)
		o.authorization = http_request_header(c->req, "authorization");
	return o;
}

void gw_call(conn *c, arena *ar, const char *method, uint32_t deadline_ms, nng_time received, uint64_t received_ns,
	     ProtobufCMessage *in, call_result *res)
{
	gw_call_emitting(c, ar, method, deadline_ms, received, received_ns, in, NULL, NULL, res);
}

void gw_call_emitting(conn *c, arena *ar, const char *method, uint32_t deadline_ms, nng_time received,
		      uint64_t received_ns, ProtobufCMessage *in, call_emit_fn emit, void *emit_arg, call_result *res)
{
	call_origin from = gw_origin(c);
	call_run_emitting(c->gw->srv, ar, method, deadline_ms, received, received_ns, in, &from, emit, emit_arg, res);
	c->retry_after_ms = res->retry_after_ms;
}

void gw_respond_json(conn *c, const call_result *res)
{
	if (res->status != RPCQ_OK) {
		conn_respond_error(c, gateway_http_status(res->status), gateway_connect_code(res->status),
				   res->message);
		return;
	}
	char *json = rpcq_message_to_json(res->output, 0);
	if (json == NULL)
		conn_respond_error(c, 500, "internal", "the reply does not convert to JSON");
	else
		conn_respond(c, 200, "application/json", NULL, json, strlen(json));
	rpcq_free(json);
}

int gateway_http_status(rpcq_status st)
{
	switch (st) {
	case RPCQ_OK:
		return 200;
	case RPCQ_INVALID_ARGUMENT:
	case RPCQ_FAILED_PRECONDITION:
	case RPCQ_OUT_OF_RANGE:
		return 400;
	case RPCQ_UNAUTHENTICATED:
		return 401;
	case RPCQ_PERMISSION_DENIED:
		return 403;
	case RPCQ_NOT_FOUND:
		return 404;
	case RPCQ_ALREADY_EXISTS:
	case RPCQ_ABORTED:
		return 409;
	case RPCQ_RESOURCE_EXHAUSTED:
		return 429;
	case RPCQ_CANCELLED:
		return 499;
	case RPCQ_UNIMPLEMENTED:
		return 501;
	case RPCQ_UNAVAILABLE:
		return 503;
	case RPCQ_DEADLINE_EXCEEDED:
		return 504;
	default:
		return 500;
	}
}

static int is_get(const http_request *req)
{
	return strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
}

/* GET /healthz: the process is up and answering. */
static void healthz(conn *c)
{
	static const char body[] = "{\"status\":\"ok\"}";
	conn_respond(c, 200, "application/json", "Cache-Control: no-store\r\n", body, sizeof(body) - 1);
}

/* How long the oldest queued call may have waited for a worker before
 * /readyz says busy at once instead of queueing behind it. The same as the
 * deadline readyz_run gives its own check. */
#define READYZ_DEADLINE_MS 2000

/* Answers /readyz: 200 ready when reason is empty, else 503 with it. */
static void readyz_answer(conn *c, const char *reason)
{
	if (reason[0] == '\0') {
		static const char body[] = "{\"status\":\"ready\"}";
		conn_respond(c, 200, "application/json", "Cache-Control: no-store\r\n", body, sizeof(body) - 1);
		return;
	}
	char esc[800], body[900];
	gw_json_escape(esc, sizeof(esc), reason);
	int n = snprintf(body, sizeof(body), "{\"status\":\"unavailable\",\"reason\":\"%s\"}", esc);
	conn_respond(c, 503, "application/json", "Cache-Control: no-store\r\n", body,
		     n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0);
}

/* GET /readyz, on a worker: rpcq.Health/Check through call_run, as any
 * caller would make it, with a short deadline. */
static void readyz_run(server_job *job, arena *ar)
{
	conn *c = conn_of_job(job);
	call_result res;
	call_run_message(c->gw->srv, ar, "/rpcq.Health/Check", READYZ_DEADLINE_MS, c->received, c->received_ns, NULL,
			 NULL, &res);
	char reason[600] = "";
	if (res.status != RPCQ_OK) {
		snprintf(reason, sizeof(reason), "%s", res.message);
	} else {
		const Rpcq__CheckResponse *r = (const Rpcq__CheckResponse *)res.output;
		if (r->status != RPCQ__CHECK_RESPONSE__SERVING_STATUS__SERVING)
			snprintf(reason, sizeof(reason), "draining: the server is shutting down");
		else if (!r->database_ok && r->database_message && strncmp(r->database_message, "database", 8) == 0)
			snprintf(reason, sizeof(reason), "%s", r->database_message); /* "database unavailable: ..." */
		else if (!r->database_ok)
			snprintf(reason, sizeof(reason), "database: %s",
				 r->database_message && *r->database_message ? r->database_message : "not answering");
	}
	nng_mtx_lock(c->gw->lock); /* gateway_drain sets it under the lock */
	int draining = c->gw->draining;
	nng_mtx_unlock(c->gw->lock);
	if (reason[0] == '\0' && draining)
		snprintf(reason, sizeof(reason), "draining: the server is shutting down");
	readyz_answer(c, reason);
	nng_mtx_lock(c->lock);
	conn_release_unlock(c);
}

/* GET /readyz: when every worker is held (the oldest queued call has
 * waited the probe's whole deadline) the server is not ready, and saying so
 * must not wait in the same queue: a load balancer's probe would time out
 * instead of reading why. Otherwise the check runs on a worker. */
static void readyz(conn *c)
{
	nng_duration waited = server_queue_wait_ms(c->gw->srv);
	if (waited < READYZ_DEADLINE_MS) {
		conn_submit(c, readyz_run);
		return;
	}
	char reason[160];
	snprintf(reason, sizeof(reason), "busy: a call has waited %d ms for a worker (--workers %d)", (int)waited,
		 c->gw->cfg->workers);
	readyz_answer(c, reason);
}

/* GET /metrics: reads counters and gauges without blocking anyone. */
static void metrics_page(conn *c)
{
	gateway *gw = c->gw;
	server *srv = gw->srv;
	metrics_gauges g = {0};
	server_stats ss;
	server_get_stats(srv, &ss);
	g.calls_in_flight = ss.in_flight;
	g.replies_dropped = ss.replies_dropped;
	pool_stats ps;
	pool_get_stats(server_pool(srv), &ps);
	g.pool_idle = ps.idle;
	g.pool_active = ps.in_use;
	g.pool_connecting = ps.total > ps.idle + ps.in_use ? ps.total - ps.idle - ps.in_use : 0;
	g.pool_acquire_waits = ps.waits;
	g.pool_acquire_timeouts = ps.timeouts;
	if (server_publisher(srv))
		publisher_get_stats(server_publisher(srv), &g.stream_published, &g.stream_subscribers);
	gateway_counts(gw, &g.http_connections, &g.sse_subscribers);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	g.start_time_seconds = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - (double)server_uptime_ms(srv) / 1e3;
	size_t len = 0;
	char *text = metrics_render(gw->metrics, &g, RPCQ_VERSION, &len);
	if (text == NULL) {
		conn_respond_error(c, 500, "resource_exhausted", "out of memory rendering the metrics");
		return;
	}
	conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-store\r\n", text, len);
	rpcq_free(text);
}

static void method_not_allowed(conn *c, const char *allow)
{
	char headers[64];
	snprintf(headers, sizeof(headers), "Allow: %s\r\n", allow);
	char msg[128];
	snprintf(msg, sizeof(msg), "%s is not allowed here; use %s", c->req->method, allow);
	char esc[160], body[256];
	gw_json_escape(esc, sizeof(esc), msg);
	int n = snprintf(body, sizeof(body), "{\"code\":\"unimplemented\",\"message\":\"%s\"}", esc);
	conn_respond(c, 405, "application/json", headers, body, (size_t)n);
}

/* A route: what it counts under in /metrics, the methods it takes, and
 * what runs it (NULL: its POST streams its body, upload.c, and never
 * gets here). post: run takes POST, else GET and HEAD. */
typedef struct route {
	metrics_route metric;
	const char *allow;
	int post;
	void (*run)(conn *);
} route;

static int find_route(const char *path, route *r)
{
	if (strncmp(path, "/rpc/", 5) == 0)
		*r = (route){METRICS_ROUTE_RPC, "POST", 1, rpc_route};
	else if (strncmp(path, "/streams/", 9) == 0)
		*r = (route){METRICS_ROUTE_STREAMS, "GET", 0, sse_route};
	else if (strcmp(path, "/healthz") == 0)
		*r = (route){METRICS_ROUTE_HEALTHZ, "GET", 0, healthz};
	else if (strcmp(path, "/readyz") == 0)
		*r = (route){METRICS_ROUTE_READYZ, "GET", 0, readyz};
	else if (strcmp(path, "/metrics") == 0)
		*r = (route){METRICS_ROUTE_METRICS, "GET", 0, metrics_page};
	else if (strcmp(path, "/search") == 0)
		*r = (route){METRICS_ROUTE_SEARCH, "GET", 0, search_route};
	else if (strcmp(path, "/billing/imports") == 0)
		*r = (route){METRICS_ROUTE_OTHER, "POST", 1, NULL};
	else if (upload_import_of_path(path) != NULL)
		*r = (route){METRICS_ROUTE_OTHER, "GET, POST", 0, upload_status_route};
	else if (strncmp(path, "/billing/bills/", 15) == 0 && path[15] != '\0')
		*r = (route){METRICS_ROUTE_OTHER, "GET", 0, bills_route};
	else
		return 0;
	return 1;
}

int gw_origin_check(conn *c, char *why, size_t len)
{
	const http_request *req = c->req;
	const rpcq_config *cfg = c->gw->cfg;
	c->cors[0] = '\0';
	const char *origin = http_request_header(req, "origin");
	if (origin == NULL)
		return 0;
	const char *host = http_request_header(req, "host");
	if (cors_same_origin(origin, host))
		return 0;
	const char *echo = NULL;
	for (int i = 0; i < cfg->nhttp_allow_origin && echo == NULL; i++) {
		const char *a = cfg->http_allow_origin[i];
		if (strcmp(a, "*") == 0 || strcasecmp(a, origin) == 0)
			echo = a;
	}
	if (echo == NULL) {
		snprintf(why, len, "origin \"%.100s\" may not call this gateway (rpcqd --http-allow-origin)", origin);
		return -1;
	}
	/* The configured spelling, not the request's: what is echoed is known
	 * to be a well-formed origin. */
	snprintf(c->cors, sizeof(c->cors),
		 "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n"
		 "Access-Control-Expose-Headers: Location, X-Request-Id, Retry-After, WWW-Authenticate\r\n",
		 echo);
	return 0;
}

/* OPTIONS: the route's methods; for a browser's preflight (Fetch's CORS)
 * also the methods and headers its request may use, for ten minutes. */
static void options(conn *c, const route *r)
{
	const http_request *req = c->req;
	const char *want = http_request_header(req, "access-control-request-headers");
	int preflight = c->cors[0] != '\0' && http_request_header(req, "access-control-request-method") != NULL;
	char headers[1400];
	int n = snprintf(headers, sizeof(headers), "Allow: %s%s\r\n", r->allow, r->post ? "" : ", HEAD");
	if (preflight) {
		n += snprintf(headers + n, sizeof(headers) - (size_t)n,
			      "Access-Control-Allow-Methods: %s%s\r\nAccess-Control-Max-Age: 600\r\n", r->allow,
			      r->post ? "" : ", HEAD");
		if (want != NULL && cors_header_list_valid(want))
			snprintf(headers + n, sizeof(headers) - (size_t)n, "Access-Control-Allow-Headers: %s\r\n",
				 want);
	}
	conn_respond(c, 200, NULL, headers, NULL, 0);
}

void gateway_route(conn *c)
{
	const http_request *req = c->req;
	const char *path = req->path;
	route r;
	int found = find_route(path, &r);
	if (found)
		c->route = r.metric;
	char why[200];
	if (gw_origin_check(c, why, sizeof(why)) != 0) {
		conn_respond_error(c, 403, "permission_denied", why);
		return;
	}
	if (!found) {
		char msg[300];
		snprintf(msg, sizeof(msg), "no route for %s %.200s", req->method, path);
		conn_respond_error(c, 404, "not_found", msg);
		return;
	}
	if (strcmp(req->method, "OPTIONS") == 0)
		options(c, &r);
	else if (r.run == NULL || !(r.post ? strcmp(req->method, "POST") == 0 : is_get(req)))
		method_not_allowed(c, r.allow);
	else
		r.run(c);
}

/* The accept callback of a listener: a connection, or one over the cap. */
static void accept_cb(void *arg)
{
	gw_listener *gl = arg;
	gateway *gw = gl->gw;
	nng_aio *aio = gl->aio;
	int rv = nng_aio_result(aio);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0) {
		nng_stream *s = nng_aio_get_output(aio, 0);
		nng_mtx_lock(gw->lock);
		int closing = gw->closing;
		int reject = gw->nconns >= (unsigned)gw->cfg->http_max_connections;
		nng_mtx_unlock(gw->lock);
		if (closing)
			nng_stream_free(s);
		else
			conn_start(gw, s, reject);
	} else {
		log_warn("http: accept: %s", nng_strerror(rv));
	}
	nng_stream_listener_accept(gl->l, aio);
}

/* "https://h:p" -> "tls+tcp://h:p", "http://h:p" -> "tcp://h:p"; NULL otherwise. */
static char *stream_url(const char *url, int *tls)
{
	const char *rest;
	if (strncmp(url, "http://", 7) == 0) {
		rest = url + 7;
		*tls = 0;
	} else if (strncmp(url, "https://", 8) == 0) {
		rest = url + 8;
		*tls = 1;
	} else {
		return NULL;
	}
	size_t n = strcspn(rest, "/");
	if (n == 0 || (strcmp(rest + n, "") != 0 && strcmp(rest + n, "/") != 0))
		return NULL;
	const char *scheme = *tls ? "tls+tcp://" : "tcp://";
	size_t len = strlen(scheme) + n + 1;
	char *out = rpcq_alloc(len);
	if (out)
		snprintf(out, len, "%s%.*s", scheme, (int)n, rest);
	return out;
}

static rpcq_status listen_one(gateway *gw, const char *url, rpcq_error *err)
{
	int tls = 0;
	char *surl = stream_url(url, &tls);
	if (surl == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "HTTP URL \"%s\": expected http://host:port or https://host:port", url);
	rpcq_status st = RPCQ_OK;
	nng_stream_listener *l = NULL;
	int rv = nng_stream_listener_alloc(&l, surl);
	if (rv != 0) {
		st = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "HTTP URL \"%s\": %s", url, nng_strerror(rv));
		goto out;
	}
	if (tls) {
		if ((st = tls_server_config(url, gw->cfg, NULL, &gw->tls, err)) != RPCQ_OK)
			goto out;
		if ((rv = nng_stream_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, gw->tls)) != 0) {
			st = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "HTTP URL \"%s\": %s", url, nng_strerror(rv));
			goto out;
		}
	}
	if ((rv = nng_stream_listener_listen(l)) != 0) {
		st = rpcq_error_set(err, RPCQ_UNAVAILABLE, "cannot listen for HTTP on %s: %s", url, nng_strerror(rv));
		goto out;
	}
	int port = 0;
	nng_stream_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
	const char *host = strstr(surl, "://") + 3;
	size_t hostlen = strcspn(host, "]");
	hostlen = host[0] == '[' ? hostlen + 1 : strcspn(host, ":");
	char bound[300];
	snprintf(bound, sizeof(bound), "%s://%.*s:%d", tls ? "https" : "http", (int)hostlen, host, port);
	gw_listener *gl = &gw->lst[gw->nlisteners];
	gl->gw = gw;
	if ((gl->url = rpcq_strdup(bound)) == NULL || nng_aio_alloc(&gl->aio, accept_cb, gl) != 0) {
		st = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	gl->l = l;
	l = NULL;
	gw->nlisteners++;
	log_info("serving HTTP on %s", bound);
out:
	if (l)
		nng_stream_listener_free(l);
	rpcq_free(surl);
	return st;
}

void gateway_counts(gateway *gw, unsigned *connections, unsigned *streams)
{
	nng_mtx_lock(gw->lock);
	*connections = gw->nconns;
	*streams = gw->nstreams;
	nng_mtx_unlock(gw->lock);
}

const char *gateway_url(gateway *gw, int i)
{
	return i >= 0 && i < gw->nlisteners ? gw->lst[i].url : NULL;
}

rpcq_status gateway_create(gateway **out, server *srv, rpcq_error *err)
{
	const rpcq_config *cfg = server_config(srv);
	int any = 0;
	for (int i = 0; i < cfg->nhttp; i++)
		any |= cfg->http[i][0] != '\0';
	if (!any) {
		*out = NULL;
		return RPCQ_OK;
	}
	for (int i = 0; i < cfg->nhttp_allow_origin; i++) {
		if (!cors_origin_valid(cfg->http_allow_origin[i]))
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					      "--http-allow-origin \"%.100s\" is not an origin: http:// or https://, a "
					      "host, an optional :port and nothing after (or * or null)",
					      cfg->http_allow_origin[i]);
	}
	rpcq_status st = RPCQ_RESOURCE_EXHAUSTED;
	gateway *gw = rpcq_calloc(1, sizeof(*gw));
	if (gw == NULL)
		return rpcq_error_set(err, st, "out of memory");
	gw->srv = srv;
	gw->cfg = cfg;
	gw->metrics = server_metrics(srv);
	if (nng_mtx_alloc(&gw->lock) != 0 || nng_cv_alloc(&gw->cv, gw->lock) != 0) {
		rpcq_error_set(err, st, "out of memory");
		goto fail;
	}
	for (int i = 0; i < cfg->nhttp; i++) {
		if (cfg->http[i][0] != '\0' && (st = listen_one(gw, cfg->http[i], err)) != RPCQ_OK)
			goto fail;
	}
	if (server_publisher(srv) && publisher_add_listener(server_publisher(srv), sse_on_message, gw) == 0)
		gw->listening = 1;
	*out = gw;
	for (int i = 0; i < gw->nlisteners; i++)
		nng_stream_listener_accept(gw->lst[i].l, gw->lst[i].aio);
	return RPCQ_OK;
fail:
	gateway_destroy(gw);
	return st;
}

/* Closes every connection, or every streaming one. */
static void close_conns(gateway *gw, int streams_only)
{
	nng_mtx_lock(gw->lock);
	unsigned n = 0;
	for (conn *c = gw->conns; c; c = c->next)
		n++;
	conn **list = n ? rpcq_calloc(n, sizeof(*list)) : NULL;
	unsigned k = 0;
	for (conn *c = gw->conns; c && list; c = c->next) {
		nng_mtx_lock(c->lock);
		if (c->state != CONN_CLOSED && (!streams_only || c->state == CONN_STREAMING)) {
			conn_hold(c);
			list[k++] = c;
		}
		nng_mtx_unlock(c->lock);
	}
	nng_mtx_unlock(gw->lock);
	for (unsigned i = 0; i < k; i++) {
		nng_mtx_lock(list[i]->lock);
		conn_close_locked(list[i]);
		conn_release_unlock(list[i]);
	}
	rpcq_free(list);
}

void gateway_drain(gateway *gw)
{
	if (gw == NULL)
		return;
	nng_mtx_lock(gw->lock);
	gw->draining = 1;
	nng_mtx_unlock(gw->lock);
	close_conns(gw, 1);
}

void gateway_destroy(gateway *gw)
{
	if (gw == NULL)
		return;
	if (gw->listening)
		publisher_remove_listener(server_publisher(gw->srv), sse_on_message, gw);
	if (gw->lock) {
		nng_mtx_lock(gw->lock);
		gw->closing = 1;
		nng_mtx_unlock(gw->lock);
	}
	for (int i = 0; i < gw->nlisteners; i++) {
		nng_stream_listener_close(gw->lst[i].l);
		nng_aio_stop(gw->lst[i].aio);
	}
	if (gw->lock) {
		close_conns(gw, 0);
		nng_mtx_lock(gw->lock);
		while (gw->nconns > 0)
			nng_cv_wait(gw->cv);
		nng_mtx_unlock(gw->lock);
	}
	for (int i = 0; i < CONFIG_MAX_URLS; i++) {
		if (gw->lst[i].aio)
			nng_aio_free(gw->lst[i].aio);
		if (gw->lst[i].l)
			nng_stream_listener_free(gw->lst[i].l);
		rpcq_free(gw->lst[i].url);
	}
	if (gw->tls)
		nng_tls_config_free(gw->tls);
	if (gw->cv)
		nng_cv_free(gw->cv);
	if (gw->lock)
		nng_mtx_free(gw->lock);
	rpcq_free(gw);
}
