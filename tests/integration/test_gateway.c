/*
 * The HTTP gateway as its users see it: a real PostgreSQL, real rpcqd
 * processes, and HTTP from libcurl, from raw sockets (for what no client
 * would send), from buf curl (a Connect client the project did not write)
 * and from Prometheus's own text parser (python3-prometheus-client). Stream
 * messages are appended the way services append them (a pool of the test's
 * own, stream_append in a transaction, as test_streams does) and read back as
 * Server-Sent Events. After every kind of bad request the server is checked
 * to serve a good call. Time-dependent checks poll with deadlines; the
 * server's timeouts are set short (500 ms read timeout, 1.5 s idle timeout,
 * 300 ms heartbeats) so the slow-client tests stay quick.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/rpcq.h>

#include "db/db.h"
#include "db/pool.h"
#include "harness.h"
#include "stream_append.h"
#include "rpcq/health.pb-c.h"
#include "stream.h"

#define MAX_MESSAGE_BYTES 65536
#define READ_TIMEOUT_MS 500
#define IDLE_TIMEOUT_MS 1500
#define HEARTBEAT_MS 300
#define MAX_CONNECTIONS 4
#define APP_ORIGIN "http://app.example:8080" /* srv2's --http-allow-origin */
#define STR_(x) #x
#define STR(x) STR_(x)

#define H_JSON "Content-Type: application/json"
#define H_PROTO "Content-Type: application/proto"

static harness_pg pg;
static harness_server srv;  /* short timeouts, small message limit */
static harness_server srv2; /* same database; a cap of MAX_CONNECTIONS connections */
static pool *db;

static int setup_all(void **state)
{
	(void)state;
	harness_pg_start(&pg);
	if (harness_migrate(&pg) != 0)
		return -1;
	const char *args[] = {"--max-message-bytes", STR(MAX_MESSAGE_BYTES),   "--http-read-timeout-ms",
			      STR(READ_TIMEOUT_MS),  "--http-idle-timeout-ms", STR(IDLE_TIMEOUT_MS),
			      "--http-heartbeat-ms", STR(HEARTBEAT_MS),	       NULL};
	harness_server_start(&srv, &pg, args);
	const char *args2[] = {"--http-max-connections",
			       STR(MAX_CONNECTIONS),
			       "--http-heartbeat-ms",
			       STR(HEARTBEAT_MS),
			       "--http-allow-origin",
			       APP_ORIGIN,
			       NULL};
	harness_server_start(&srv2, &pg, args2);
	pool_config pc = {.conninfo = pg.conninfo, .min_conns = 1, .max_conns = 2};
	rpcq_error err;
	if (pool_create(&db, &pc, &err) != RPCQ_OK) {
		print_message("pool: %s\n", err.message);
		return -1;
	}
	return 0;
}

static int teardown_all(void **state)
{
	pool_destroy(db);
	/* An rpcqd that does not exit 0 (a leak under ASan) fails the group. */
	int bad = srv2.pid > 0 && harness_server_stop(&srv2) != 0;
	bad |= srv.pid > 0 && harness_server_stop(&srv) != 0;
	harness_pg_stop(&pg);
	return harness_teardown(state) != 0 || bad ? -1 : 0;
}

/* ---- helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *url_of(const harness_server *s, const char *path, char *buf, size_t len)
{
	if (s->http_url[0] == '\0')
		fail_msg("the server has no HTTP URL");
	if ((size_t)snprintf(buf, len, "%s%s", s->http_url, path) >= len)
		fail_msg("URL %s%s too long", s->http_url, path);
	return buf;
}

/* A request that must get a response (whatever its status). */
static void request(const char *method, const harness_server *s, const char *path, const char *const *headers,
		    const void *body, size_t len, harness_http_reply *r)
{
	char u[512];
	url_of(s, path, u, sizeof(u));
	if (harness_http(method, u, headers, body, len, r) != 0)
		fail_msg("%s %s: no response: %s", method, u, r->error);
}

/* POST /rpc/<method> with a JSON body and extra headers (NULL-terminated, may be NULL). */
static void rpc_json(const harness_server *s, const char *method, const char *json, const char *const *extra,
		     harness_http_reply *r)
{
	const char *h[32];
	int n = 0;
	h[n++] = H_JSON;
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
		h[n++] = extra[i];
	h[n] = NULL;
	char path[256];
	snprintf(path, sizeof(path), "/rpc/%s", method);
	request("POST", s, path, h, json, strlen(json), r);
}

/* Whether hay holds needle, ignoring case. */
static int contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay != '\0'; hay++) {
		if (strncasecmp(hay, needle, n) == 0)
			return 1;
	}
	return n == 0;
}

static json_t *parse_json(const char *what, const char *text, size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je);
	if (j == NULL)
		fail_msg("%s: not JSON (%s at %d:%d): \"%.*s\"", what, je.text, je.line, je.column, (int)len, text);
	return j;
}

static json_t *reply_json(const char *what, const harness_http_reply *r)
{
	return parse_json(what, r->body, r->body_len);
}

static const char *jstr(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void expect_content_type(const char *what, const char *ct, const char *want)
{
	if (ct == NULL || strncasecmp(ct, want, strlen(want)) != 0 ||
	    (ct[strlen(want)] != '\0' && ct[strlen(want)] != ';' && ct[strlen(want)] != ' '))
		fail_msg("%s: Content-Type %s, wanted %s", what, ct ? ct : "(none)", want);
}

/* A reply that must be a Connect error: the HTTP status, Content-Type
 * application/json, {"code": code, "message": ...}. Returns the message
 * (malloc'd). */
static char *expect_error(const char *what, const harness_http_reply *r, long http, const char *code)
{
	if (r->status != http)
		fail_msg("%s: HTTP %ld, wanted %ld (%s); body: %.*s", what, r->status, http, code, (int)r->body_len,
			 r->body);
	expect_content_type(what, harness_http_header(r, "Content-Type"), "application/json");
	json_t *j = reply_json(what, r);
	const char *c = jstr(j, "code");
	const char *m = jstr(j, "message");
	if (c == NULL || strcmp(c, code) != 0 || m == NULL)
		fail_msg("%s: error body %.*s, wanted code \"%s\" and a message", what, (int)r->body_len, r->body,
			 code);
	char *msg = strdup(m);
	json_decref(j);
	return msg;
}

/* A header of r that must be there, with value (NULL: any). */
static void expect_header(const char *what, const harness_http_reply *r, const char *name, const char *value)
{
	const char *v = harness_http_header(r, name);
	if (v == NULL || (value != NULL && strcmp(v, value) != 0))
		fail_msg("%s: %s is %s%s%s, wanted %s; head:\n%s", what, name, v ? "\"" : "", v ? v : "missing",
			 v ? "\"" : "", value ? value : "one", r->head);
}

/* The server still serves: Echo over HTTP and over nng. */
static void expect_serving(const harness_server *s)
{
	harness_http_reply r;
	rpc_json(s, "rpcq.Health/Echo", "{\"payload\":\"b2s=\"}", NULL, &r);
	if (r.status != 200)
		fail_msg("after that, a good call got HTTP %ld: %s", r.status, r.body);
	json_t *j = reply_json("a good call", &r);
	assert_string_equal(jstr(j, "payload"), "b2s=");
	json_decref(j);
	harness_http_reply_free(&r);
}

static void base64(const char *in, size_t len, char *out, size_t outlen)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)(uint8_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= (uint8_t)in[i + 2];
		if (o + 5 > outlen)
			fail_msg("base64: output too small");
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

static rpcq_client *client_for(const char *url)
{
	rpcq_client_options o = {.servers = url, .timeout_ms = 5000};
	rpcq_client *c = NULL;
	rpcq_error err;
	if (rpcq_client_create(&c, &o, &err) != RPCQ_OK)
		fail_msg("client for %s: %s", url, err.message);
	return c;
}

/* Appends n messages "<tag>-<i>" to topic in one committed transaction;
 * returns the seq of the last one. */
static uint64_t append(const char *topic, const char *tag, int n)
{
	return test_stream_append(db, topic, tag, n, 1);
}

/* ---- unary calls ---- */

static void test_echo_over_http_with_json_returns_the_payload(void **state)
{
	(void)state;
	harness_http_reply r;
	rpc_json(&srv, "rpcq.Health/Echo", "{\"payload\":\"aGVsbG8=\"}", NULL, &r);
	assert_int_equal(r.status, 200);
	expect_content_type("Echo", harness_http_header(&r, "Content-Type"), "application/json");
	json_t *j = reply_json("Echo", &r);
	assert_string_equal(jstr(j, "payload"), "aGVsbG8=");
	assert_int_equal(json_object_size(j), 1);
	json_decref(j);
	harness_http_reply_free(&r);
}

static void test_a_charset_parameter_is_accepted_and_an_empty_object_is_an_empty_message(void **state)
{
	(void)state;
	const char *h[] = {"Content-Type: application/json; charset=utf-8", NULL};
	harness_http_reply r;
	request("POST", &srv, "/rpc/rpcq.Health/Echo", h, "{}", 2, &r);
	if (r.status != 200)
		fail_msg("charset=utf-8 and {}: HTTP %ld %s", r.status, r.body);
	expect_content_type("Echo {}", harness_http_header(&r, "Content-Type"), "application/json");
	json_t *j = reply_json("Echo {}", &r);
	assert_true(json_is_object(j));
	assert_int_equal(json_object_size(j), 0);
	json_decref(j);
	harness_http_reply_free(&r);
}

static void test_check_over_http_writes_lower_camel_case_and_64_bit_integers_as_strings(void **state)
{
	(void)state;
	harness_http_reply r;
	rpc_json(&srv, "rpcq.Health/Check", "{}", NULL, &r);
	if (r.status != 200)
		fail_msg("Check: HTTP %ld %s", r.status, r.body);
	json_t *j = reply_json("Check", &r);
	assert_true(json_is_true(json_object_get(j, "databaseOk")));
	assert_null(json_object_get(j, "database_ok"));
	/* uint64 fields are strings of digits; uint32 ones are numbers. */
	const char *uptime = jstr(j, "uptimeMs");
	const char *calls = jstr(j, "calls");
	if (uptime == NULL || calls == NULL || strspn(uptime, "0123456789") != strlen(uptime) ||
	    strspn(calls, "0123456789") != strlen(calls))
		fail_msg("Check: uptimeMs and calls are not strings of digits: %s", r.body);
	assert_true(json_is_integer(json_object_get(j, "inFlight")));
	assert_string_equal(jstr(j, "status"), "SERVING");
	assert_true(strlen(jstr(j, "version")) > 0);
	json_decref(j);
	harness_http_reply_free(&r);
}

static void test_echo_over_http_with_protobuf_round_trips_binary_bytes(void **state)
{
	(void)state;
	uint8_t bytes[256];
	for (int i = 0; i < 256; i++)
		bytes[i] = (uint8_t)i;
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT;
	in.payload.data = bytes;
	in.payload.len = sizeof(bytes);
	uint8_t packed[512];
	size_t n = rpcq__echo_message__pack(&in, packed);
	const char *h[] = {H_PROTO, NULL};
	harness_http_reply r;
	request("POST", &srv, "/rpc/rpcq.Health/Echo", h, packed, n, &r);
	if (r.status != 200)
		fail_msg("proto Echo: HTTP %ld %s", r.status, r.body);
	expect_content_type("proto Echo", harness_http_header(&r, "Content-Type"), "application/proto");
	Rpcq__EchoMessage *out = rpcq__echo_message__unpack(NULL, r.body_len, (const uint8_t *)r.body);
	assert_non_null(out);
	assert_int_equal(out->payload.len, sizeof(bytes));
	assert_memory_equal(out->payload.data, bytes, sizeof(bytes));
	rpcq__echo_message__free_unpacked(out, NULL);
	harness_http_reply_free(&r);

	/* An empty body is an empty message, and so is the reply. */
	request("POST", &srv, "/rpc/rpcq.Health/Echo", h, NULL, 0, &r);
	if (r.status != 200)
		fail_msg("empty proto Echo: HTTP %ld %s", r.status, r.body);
	expect_content_type("empty proto Echo", harness_http_header(&r, "Content-Type"), "application/proto");
	assert_int_equal(r.body_len, 0);
	harness_http_reply_free(&r);

	/* Bytes that are no EchoMessage: field 1 promises 100 bytes that are not there. */
	static const uint8_t bad[] = {0x0a, 0x64, 0x01};
	request("POST", &srv, "/rpc/rpcq.Health/Echo", h, bad, sizeof(bad), &r);
	free(expect_error("an undecodable protobuf body", &r, 400, "invalid_argument"));
	harness_http_reply_free(&r);
	expect_serving(&srv);
}

/* gRPC numbering → HTTP code and Connect's code name. */
static const struct {
	int http;
	const char *code;
} status_map[17] = {
	{200, "ok"},
	{499, "canceled"},
	{500, "unknown"},
	{400, "invalid_argument"},
	{504, "deadline_exceeded"},
	{404, "not_found"},
	{409, "already_exists"},
	{403, "permission_denied"},
	{429, "resource_exhausted"},
	{400, "failed_precondition"},
	{409, "aborted"},
	{400, "out_of_range"},
	{501, "unimplemented"},
	{500, "internal"},
	{503, "unavailable"},
	{500, "data_loss"},
	{401, "unauthenticated"},
};

static void test_every_status_maps_to_its_http_code_and_connect_error(void **state)
{
	(void)state;
	for (int code = 1; code <= 16; code++) {
		char what[64], json[256], message[64];
		snprintf(message, sizeof(message), "failure %d on purpose", code);
		snprintf(json, sizeof(json), "{\"failCode\":%d,\"failMessage\":\"%s\"}", code, message);
		snprintf(what, sizeof(what), "fail_code %d (JSON)", code);
		harness_http_reply r;
		rpc_json(&srv, "rpcq.Health/Echo", json, NULL, &r);
		char *m = expect_error(what, &r, status_map[code].http, status_map[code].code);
		assert_string_equal(m, message);
		free(m);
		harness_http_reply_free(&r);

		/* The same with a protobuf request: errors are JSON all the same. */
		Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT;
		in.fail_code = (uint32_t)code;
		in.fail_message = message;
		uint8_t packed[128];
		size_t n = rpcq__echo_message__pack(&in, packed);
		const char *h[] = {H_PROTO, NULL};
		snprintf(what, sizeof(what), "fail_code %d (proto)", code);
		request("POST", &srv, "/rpc/rpcq.Health/Echo", h, packed, n, &r);
		m = expect_error(what, &r, status_map[code].http, status_map[code].code);
		assert_string_equal(m, message);
		free(m);
		harness_http_reply_free(&r);
	}
	expect_serving(&srv);
}

static void test_unknown_methods_and_malformed_rpc_paths_are_404_unimplemented(void **state)
{
	(void)state;
	const char *paths[] = {"/rpc/rpcq.Health/Nope",	     "/rpc/rpcq.Nothing/Here",
			       "/rpc/rpcq.Health",	     "/rpc/",
			       "/rpc/rpcq.Health/Echo/more", "/rpc//Echo",
			       "/rpc/rpcq.Health/"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const char *h[] = {H_JSON, NULL};
		harness_http_reply r;
		request("POST", &srv, paths[i], h, "{}", 2, &r);
		char what[128];
		snprintf(what, sizeof(what), "POST %s", paths[i]);
		free(expect_error(what, &r, 404, "unimplemented"));
		harness_http_reply_free(&r);
	}
	expect_serving(&srv);
}

/* The metadata map of an echo_metadata reply. */
static json_t *echoed_metadata(const harness_http_reply *r)
{
	if (r->status != 200)
		fail_msg("echo_metadata: HTTP %ld %s", r->status, r->body);
	json_t *j = reply_json("echo_metadata", r);
	json_t *md = json_object_get(j, "metadata");
	if (!json_is_object(md))
		fail_msg("echo_metadata: no metadata object in %s", r->body);
	json_incref(md);
	json_decref(j);
	return md;
}

static void test_headers_become_metadata_and_the_request_id_is_echoed(void **state)
{
	(void)state;
	const char *h[] = {"Authorization: Bearer t0ken",
			   "X-Request-Id: gw-req-42",
			   "X-Custom: Some Value",
			   "Accept: application/json",
			   "Accept-Encoding: identity",
			   "User-Agent: gwtest/1",
			   "Connect-Protocol-Version: 1",
			   "Connect-Timeout-Ms: 10000",
			   "Connection: keep-alive",
			   "TE: trailers",
			   NULL};
	harness_http_reply r;
	rpc_json(&srv, "rpcq.Health/Echo", "{\"echoMetadata\":true}", h, &r);
	json_t *md = echoed_metadata(&r);
	const char *want[][2] = {{"x-request-id", "gw-req-42"}, {"x-custom", "Some Value"}};
	for (size_t i = 0; i < 2; i++) {
		const char *v = jstr(md, want[i][0]);
		if (v == NULL || strcmp(v, want[i][1]) != 0)
			fail_msg("metadata %s is %s, wanted %s (all: %s)", want[i][0], v ? v : "(absent)", want[i][1],
				 r.body);
	}
	const char *protocol[] = {"host",
				  "content-type",
				  "content-length",
				  "accept",
				  "accept-encoding",
				  "user-agent",
				  "connect-protocol-version",
				  "connect-timeout-ms",
				  "connection",
				  "te",
				  "expect",
				  "transfer-encoding"};
	for (size_t i = 0; i < sizeof(protocol) / sizeof(protocol[0]); i++) {
		if (json_object_get(md, protocol[i]) != NULL)
			fail_msg("the protocol header %s became metadata: %s", protocol[i], r.body);
	}
	/* Authorization is access control's (with auth off as here, too): no
	 * handler sees a caller's credentials. */
	if (json_object_get(md, "authorization") != NULL)
		fail_msg("Authorization reached the handler: %s", r.body);
	const char *id = harness_http_header(&r, "X-Request-Id");
	if (id == NULL || strcmp(id, "gw-req-42") != 0)
		fail_msg("X-Request-Id came back as %s", id ? id : "(absent)");
	json_decref(md);
	harness_http_reply_free(&r);
}

static void test_a_request_without_an_id_gets_one_made_up_by_the_server(void **state)
{
	(void)state;
	harness_http_reply r;
	rpc_json(&srv, "rpcq.Health/Echo", "{\"echoMetadata\":true}", NULL, &r);
	json_t *md = echoed_metadata(&r);
	const char *made = jstr(md, "x-request-id");
	const char *id = harness_http_header(&r, "X-Request-Id");
	if (made == NULL || made[0] == '\0' || id == NULL || strcmp(id, made) != 0)
		fail_msg("made-up request id: metadata %s, header %s", made ? made : "(absent)", id ? id : "(absent)");
	json_decref(md);
	/* Errors carry it too, and ids differ from call to call. */
	char first[128];
	snprintf(first, sizeof(first), "%s", id);
	harness_http_reply_free(&r);
	rpc_json(&srv, "rpcq.Health/Echo", "{\"failCode\":5}", NULL, &r);
	assert_int_equal(r.status, 404);
	id = harness_http_header(&r, "X-Request-Id");
	if (id == NULL || id[0] == '\0' || strcmp(id, first) == 0)
		fail_msg("an error reply's X-Request-Id is %s (the previous call's was %s)", id ? id : "(absent)",
			 first);
	harness_http_reply_free(&r);
}

static void test_handler_trailers_come_back_as_trailer_headers(void **state)
{
	(void)state;
	harness_http_reply r;
	rpc_json(&srv, "rpcq.Health/Echo", "{\"trailers\":{\"x-page\":\"2\",\"next\":\"abc\"}}", NULL, &r);
	assert_int_equal(r.status, 200);
	const char *page = harness_http_header(&r, "Trailer-x-page");
	const char *next = harness_http_header(&r, "Trailer-next");
	if (page == NULL || strcmp(page, "2") != 0 || next == NULL || strcmp(next, "abc") != 0)
		fail_msg("trailers: Trailer-x-page %s, Trailer-next %s", page ? page : "(absent)",
			 next ? next : "(absent)");
	harness_http_reply_free(&r);
}

static void test_connect_timeout_ms_is_the_calls_deadline(void **state)
{
	(void)state;
	const char *h[] = {"Connect-Timeout-Ms: 200", NULL};
	harness_http_reply r;
	int64_t t0 = now_ms();
	rpc_json(&srv, "rpcq.Health/Echo", "{\"delayMs\":2000}", h, &r);
	int64_t took = now_ms() - t0;
	free(expect_error("delay 2000 ms, Connect-Timeout-Ms 200", &r, 504, "deadline_exceeded"));
	if (took >= 1500)
		fail_msg("the 200 ms deadline answered after %lld ms", (long long)took);
	harness_http_reply_free(&r);

	/* A deadline longer than the call is no failure. */
	const char *h2[] = {"Connect-Timeout-Ms: 5000", NULL};
	rpc_json(&srv, "rpcq.Health/Echo", "{\"delayMs\":100,\"payload\":\"eA==\"}", h2, &r);
	assert_int_equal(r.status, 200);
	harness_http_reply_free(&r);
	expect_serving(&srv);
}

static void test_an_invalid_connect_timeout_ms_is_invalid_argument(void **state)
{
	(void)state;
	const char *bad[] = {"Connect-Timeout-Ms: abc", "Connect-Timeout-Ms: 12345678901", "Connect-Timeout-Ms: -1",
			     "Connect-Timeout-Ms: 1.5", "Connect-Timeout-Ms: 10s"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *h[] = {bad[i], NULL};
		harness_http_reply r;
		rpc_json(&srv, "rpcq.Health/Echo", "{}", h, &r);
		char *m = expect_error(bad[i], &r, 400, "invalid_argument");
		if (!contains_ci(m, "timeout"))
			fail_msg("%s: the message does not name the header: %s", bad[i], m);
		free(m);
		harness_http_reply_free(&r);
	}
	/* Ten digits is the most Connect allows, and allowed. */
	const char *h[] = {"Connect-Timeout-Ms: 9999999999", NULL};
	harness_http_reply r;
	rpc_json(&srv, "rpcq.Health/Echo", "{}", h, &r);
	assert_int_equal(r.status, 200);
	harness_http_reply_free(&r);
	expect_serving(&srv);
}

/* ---- bad requests through a real client ---- */

static void test_a_get_on_an_rpc_route_is_405_with_allow_post(void **state)
{
	(void)state;
	const char *methods[] = {"GET", "PUT", "DELETE"};
	for (size_t i = 0; i < 3; i++) {
		harness_http_reply r;
		request(methods[i], &srv, "/rpc/rpcq.Health/Echo", NULL, NULL, 0, &r);
		if (r.status != 405)
			fail_msg("%s /rpc/rpcq.Health/Echo: HTTP %ld, wanted 405", methods[i], r.status);
		const char *allow = harness_http_header(&r, "Allow");
		if (allow == NULL || strstr(allow, "POST") == NULL)
			fail_msg("%s: Allow is %s", methods[i], allow ? allow : "(absent)");
		harness_http_reply_free(&r);
	}
	expect_serving(&srv);
}

static void test_a_content_type_other_than_json_or_proto_is_415(void **state)
{
	(void)state;
	const char *types[] = {"Content-Type: text/plain", "Content-Type: application/x-www-form-urlencoded",
			       "Content-Type: application/jsonx", "Content-Type: application/grpc", "Content-Type:"};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		const char *h[] = {types[i], NULL};
		harness_http_reply r;
		request("POST", &srv, "/rpc/rpcq.Health/Echo", h, "{}", 2, &r);
		if (r.status != 415)
			fail_msg("\"%s\": HTTP %ld, wanted 415; body %s", types[i], r.status, r.body);
		harness_http_reply_free(&r);
	}
	expect_serving(&srv);
}

static void test_malformed_json_is_400_naming_the_line_and_column_or_the_field(void **state)
{
	(void)state;
	const struct {
		const char *body;
		const char *named[2]; /* the message names one of these */
	} cases[] = {
		{"{\"payload\":", {"line", "column"}},
		{"{\n  \"payload\": \"aGk=\",\n  oops\n}", {"line 3", "column"}},
		{"{\"foo\":1}", {"foo", "foo"}},
		{"{\"delayMs\":\"soon\"}", {"delayMs", "delay_ms"}},
		{"{\"payload\":\"not base64!\"}", {"payload", "payload"}},
		{"[1,2]", {"object", "message"}},
		{"{\"payload\":\"aGk=\"} trailing", {"line", "column"}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		harness_http_reply r;
		rpc_json(&srv, "rpcq.Health/Echo", cases[i].body, NULL, &r);
		char *m = expect_error(cases[i].body, &r, 400, "invalid_argument");
		if (!contains_ci(m, cases[i].named[0]) && !contains_ci(m, cases[i].named[1]))
			fail_msg("body %s: the message \"%s\" names neither %s nor %s", cases[i].body, m,
				 cases[i].named[0], cases[i].named[1]);
		free(m);
		harness_http_reply_free(&r);
		expect_serving(&srv);
	}
}

/* {"payload":"AAAA..."} of about total bytes. */
static char *big_json(size_t total)
{
	char *b = malloc(total + 1);
	assert_non_null(b);
	memcpy(b, "{\"payload\":\"", 12);
	size_t n = (total - 14) / 4 * 4;
	memset(b + 12, 'A', n);
	memcpy(b + 12 + n, "\"}", 3);
	return b;
}

/* Connects, sends req and reads one whole response into *out (malloc'd);
 * the connection stays open: its socket is returned. */
static int raw_request(const char *req, int timeout_ms, char **out)
{
	int fd = harness_raw_connect(srv.http_url);
	assert_int_equal(harness_raw_send(fd, req, strlen(req)), 0);
	size_t len;
	int closed;
	*out = harness_raw_read(fd, timeout_ms, 1, &len, &closed);
	return fd;
}
static void test_a_body_over_max_message_bytes_is_413_resource_exhausted(void **state)
{
	(void)state;
	char *body = big_json(100000);
	const char *variants[][3] = {
		{H_JSON, NULL, NULL},
		{H_JSON, "Expect: 100-continue", NULL},
		{H_JSON, "Transfer-Encoding: chunked", NULL},
	};
	for (size_t i = 0; i < 3; i++) {
		harness_http_reply r;
		request("POST", &srv, "/rpc/rpcq.Health/Echo", variants[i], body, strlen(body), &r);
		char what[96];
		snprintf(what, sizeof(what), "a 100000-byte body (%s)", variants[i][1] ? variants[i][1] : "plain");
		free(expect_error(what, &r, 413, "resource_exhausted"));
		harness_http_reply_free(&r);
		expect_serving(&srv);
	}
	/* Just under the limit is served. */
	free(body);
	body = big_json(MAX_MESSAGE_BYTES / 2);
	harness_http_reply r;
	rpc_json(&srv, "rpcq.Health/Echo", body, NULL, &r);
	if (r.status != 200)
		fail_msg("a %zu-byte body: HTTP %ld %.200s", strlen(body), r.status, r.body);
	harness_http_reply_free(&r);
	free(body);

	/* A Content-Length over the limit is refused without waiting for the body. */
	const char *head = "POST /rpc/rpcq.Health/Echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
			   "Content-Length: 10000000\r\n\r\n{\"payload\":\"";
	char *out;
	int fd = raw_request(head, 5000, &out);
	if (strncmp(out, "HTTP/1.1 413", 12) != 0)
		fail_msg("Content-Length 10000000: got \"%.200s\", wanted HTTP/1.1 413", out);
	free(out);
	close(fd);
	expect_serving(&srv);
}

/* ---- bad requests on raw sockets ---- */

/* Sends req on a connection of its own; the answer must be HTTP code and
 * then the connection closed (within 5 s). */
static void expect_raw_refusal(const char *what, const char *req, size_t len, int code)
{
	size_t n;
	int closed;
	char *out = harness_raw_exchange(srv.http_url, req, len, 5000, &n, &closed);
	char want[16];
	snprintf(want, sizeof(want), " %d", code);
	if (n < 12 || strncmp(out, "HTTP/1.", 7) != 0 || strncmp(out + 8, want, 4) != 0)
		fail_msg("%s: got \"%.300s\", wanted HTTP %d", what, out, code);
	if (!closed)
		fail_msg("%s: answered %d but the connection stayed open", what, code);
	free(out);
	expect_serving(&srv);
}

static void test_a_malformed_request_line_or_header_is_400_and_closes_the_connection(void **state)
{
	(void)state;
	const char *reqs[] = {
		"GARBAGE\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
		"POST /rpc/rpcq.Health/Echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
		"GET  HTTP/1.1\r\n\r\n",
		"\x01\x02\x03\x04 / HTTP/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		expect_raw_refusal(reqs[i], reqs[i], strlen(reqs[i]), 400);
}

static void test_a_request_head_over_16_kib_is_431(void **state)
{
	(void)state;
	size_t big = 20000;
	char *req = malloc(big + 128);
	assert_non_null(req);
	int n = snprintf(req, 128, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ");
	memset(req + n, 'a', big);
	memcpy(req + n + big, "\r\n\r\n", 5);
	expect_raw_refusal("a 20000-byte header", req, strlen(req), 431);
	/* Many small headers add up the same way. */
	size_t off = (size_t)snprintf(req, 128, "GET /healthz HTTP/1.1\r\nHost: t\r\n");
	char *many = malloc(40000);
	assert_non_null(many);
	memcpy(many, req, off);
	for (int i = 0; off < 20000; i++)
		off += (size_t)snprintf(many + off, 40000 - off, "X-H%d: %0400d\r\n", i, i);
	memcpy(many + off, "\r\n", 3);
	expect_raw_refusal("20000 bytes of small headers", many, off + 2, 431);
	free(many);
	free(req);
}

/* Sends a part of a request and stops: the server must answer 408 and
 * close, after about READ_TIMEOUT_MS. */
static void expect_read_timeout(const char *what, const char *partial)
{
	int fd = harness_raw_connect(srv.http_url);
	int64_t t0 = now_ms();
	assert_int_equal(harness_raw_send(fd, partial, strlen(partial)), 0);
	size_t n;
	int closed;
	char *out = harness_raw_read(fd, 10000, 0, &n, &closed);
	int64_t took = now_ms() - t0;
	close(fd);
	if (strncmp(out, "HTTP/1.1 408", 12) != 0 || !closed)
		fail_msg("%s: after %lld ms got \"%.200s\" (%s), wanted 408 and a close", what, (long long)took, out,
			 closed ? "closed" : "still open");
	if (took < READ_TIMEOUT_MS * 8 / 10 || took > READ_TIMEOUT_MS + 4000)
		fail_msg("%s: cut off after %lld ms with a read timeout of %d ms", what, (long long)took,
			 READ_TIMEOUT_MS);
	free(out);
	expect_serving(&srv);
}

static void test_a_client_that_stops_mid_request_gets_408_after_the_read_timeout(void **state)
{
	(void)state;
	expect_read_timeout("half a head", "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Part");
	expect_read_timeout("half a body", "POST /rpc/rpcq.Health/Echo HTTP/1.1\r\nHost: t\r\n"
					   "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"pay");
}

/* A client still sending when its request times out can read the 408:
 * rpcqd goes on reading (and dropping) what comes, until the client closes
 * or for GW_LINGER_MS, before it closes, so that the close is no reset
 * (closing with bytes unread sends one, and a reset can cost the client the
 * answer it has not read yet). */
static void test_a_client_still_sending_at_the_read_timeout_is_read_on_after_the_408(void **state)
{
	(void)state;
	const char *partial = "POST /rpc/rpcq.Health/Echo HTTP/1.1\r\nHost: t\r\n"
			      "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{\"pay";
	char *out;
	int fd = raw_request(partial, 10000, &out);
	if (strncmp(out, "HTTP/1.1 408", 12) != 0)
		fail_msg("a body stopped midway got \"%.200s\", wanted 408", out);
	free(out);
	/* More of the body (not beyond its length) for half a second after
	 * the answer: taken, not refused with a reset (which fails the sends
	 * after it). */
	static char more[1024];
	memset(more, 'x', sizeof(more));
	for (int i = 0; i < 50; i++) {
		if (harness_raw_send(fd, more, sizeof(more)) != 0)
			fail_msg("the body sent after the 408 was refused after %d KiB", i);
		nng_msleep(10);
	}
	close(fd);
	expect_serving(&srv);
}

static void test_a_client_that_trickles_its_head_is_cut_off_too(void **state)
{
	(void)state;
	/* One byte every 100 ms never finishes a head: a read timeout that
	 * restarted at every byte would let it hold the connection for ever. */
	int fd = harness_raw_connect(srv.http_url);
	const char *head =
		"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	int64_t t0 = now_ms();
	int cut = 0;
	char *out = NULL;
	for (size_t i = 0; head[i] != '\0' && now_ms() - t0 < READ_TIMEOUT_MS * 8L; i++) {
		if (harness_raw_send(fd, head + i, 1) != 0) {
			cut = 1;
			break;
		}
		size_t n;
		int closed;
		free(out);
		out = harness_raw_read(fd, 100, 0, &n, &closed);
		if (closed || n > 0) {
			cut = 1;
			break;
		}
	}
	int64_t took = now_ms() - t0;
	close(fd);
	if (!cut)
		fail_msg("a head sent a byte every 100 ms was still being read after %lld ms (read timeout %d ms)",
			 (long long)took, READ_TIMEOUT_MS);
	if (out != NULL && out[0] != '\0' && strncmp(out, "HTTP/1.1 408", 12) != 0)
		fail_msg("a trickling head got \"%.200s\", wanted 408", out);
	free(out);
	expect_serving(&srv);
}

static void test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(void **state)
{
	(void)state;
	const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
	int fd = harness_raw_connect(srv.http_url);
	for (int i = 0; i < 2; i++) {
		/* Two requests on one connection: keep-alive works. */
		assert_int_equal(harness_raw_send(fd, req, strlen(req)), 0);
		size_t n;
		int closed;
		char *out = harness_raw_read(fd, 5000, 1, &n, &closed);
		if (strncmp(out, "HTTP/1.1 200", 12) != 0)
			fail_msg("request %d on a kept-alive connection: \"%.200s\"", i + 1, out);
		free(out);
	}
	int64_t t0 = now_ms();
	size_t n;
	int closed;
	char *out = harness_raw_read(fd, IDLE_TIMEOUT_MS + 8000, 0, &n, &closed);
	int64_t took = now_ms() - t0;
	close(fd);
	if (!closed)
		fail_msg("an idle connection was still open %lld ms after its last reply (idle timeout %d ms)",
			 (long long)took, IDLE_TIMEOUT_MS);
	if (took < IDLE_TIMEOUT_MS * 8 / 10)
		fail_msg("an idle connection was closed after %lld ms, before the idle timeout of %d ms",
			 (long long)took, IDLE_TIMEOUT_MS);
	if (n > 0)
		print_message("(the idle connection got \"%.100s\" before the close)\n", out);
	free(out);
	expect_serving(&srv);
}

static void test_one_connection_over_the_cap_gets_503_and_is_closed(void **state)
{
	(void)state;
	const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
	int fds[MAX_CONNECTIONS];
	for (int i = 0; i < MAX_CONNECTIONS; i++) {
		/* Each connection answered once, so the server surely counts it. */
		fds[i] = harness_raw_connect(srv2.http_url);
		assert_int_equal(harness_raw_send(fds[i], req, strlen(req)), 0);
		size_t n;
		int closed;
		char *out = harness_raw_read(fds[i], 5000, 1, &n, &closed);
		if (strncmp(out, "HTTP/1.1 200", 12) != 0)
			fail_msg("connection %d of %d: \"%.200s\"", i + 1, MAX_CONNECTIONS, out);
		free(out);
	}
	size_t n;
	int closed;
	char *out = harness_raw_exchange(srv2.http_url, req, strlen(req), 5000, &n, &closed);
	if (strncmp(out, "HTTP/1.1 503", 12) != 0 || !closed)
		fail_msg("connection %d over a cap of %d: \"%.200s\" (%s), wanted 503 and a close", MAX_CONNECTIONS + 1,
			 MAX_CONNECTIONS, out, closed ? "closed" : "left open");
	free(out);
	/* The capped connections were not hurt. */
	assert_int_equal(harness_raw_send(fds[0], req, strlen(req)), 0);
	out = harness_raw_read(fds[0], 5000, 1, &n, &closed);
	if (strncmp(out, "HTTP/1.1 200", 12) != 0)
		fail_msg("a connection under the cap, after the refusal: \"%.200s\"", out);
	free(out);
	/* One closes: a new one is served (once the server has seen the close). */
	close(fds[MAX_CONNECTIONS - 1]);
	int64_t until = now_ms() + 5000;
	const char *req_close = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	for (;;) {
		out = harness_raw_exchange(srv2.http_url, req_close, strlen(req_close), 5000, &n, &closed);
		int ok = strncmp(out, "HTTP/1.1 200", 12) == 0;
		if (!ok && now_ms() > until)
			fail_msg("with one connection closed, a new one still gets \"%.200s\"", out);
		free(out);
		if (ok)
			break;
		nng_msleep(50);
	}
	for (int i = 0; i < MAX_CONNECTIONS - 1; i++)
		close(fds[i]);
	/* And with all closed, calls go through again. */
	until = now_ms() + 5000;
	for (;;) {
		harness_http_reply r;
		rpc_json(&srv2, "rpcq.Health/Echo", "{\"payload\":\"b2s=\"}", NULL, &r);
		long st = r.status;
		harness_http_reply_free(&r);
		if (st == 200)
			break;
		if (now_ms() > until)
			fail_msg("after closing the capped connections, Echo on the second server: HTTP %ld", st);
		nng_msleep(50);
	}
}

/* ---- health and readiness ---- */

static void expect_status_body(const char *what, const harness_http_reply *r, long http, const char *status)
{
	if (r->status != http)
		fail_msg("%s: HTTP %ld, wanted %ld: %s", what, r->status, http, r->body);
	expect_content_type(what, harness_http_header(r, "Content-Type"), "application/json");
	json_t *j = reply_json(what, r);
	if (jstr(j, "status") == NULL || strcmp(jstr(j, "status"), status) != 0)
		fail_msg("%s: body %s, wanted status \"%s\"", what, r->body, status);
	json_decref(j);
}

static void test_healthz_is_200_ok(void **state)
{
	(void)state;
	harness_http_reply r;
	request("GET", &srv, "/healthz", NULL, NULL, 0, &r);
	expect_status_body("GET /healthz", &r, 200, "ok");
	harness_http_reply_free(&r);
	request("GET", &srv, "/readyz", NULL, NULL, 0, &r);
	expect_status_body("GET /readyz", &r, 200, "ready");
	harness_http_reply_free(&r);
	/* An unknown route is a 404, not a crash. */
	request("GET", &srv, "/nothing/here", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 404);
	harness_http_reply_free(&r);
	expect_serving(&srv);
}

/* Polls GET path until it answers http (or fails after ms). */
static void poll_until(const harness_server *s, const char *path, long http, int ms, harness_http_reply *r)
{
	int64_t until = now_ms() + ms;
	for (;;) {
		request("GET", s, path, NULL, NULL, 0, r);
		if (r->status == http)
			return;
		if (now_ms() > until)
			fail_msg("GET %s answered %ld (%s) for %d ms, never %ld", path, r->status, r->body, ms, http);
		harness_http_reply_free(r);
		nng_msleep(100);
	}
}

/* Last but one: it stops PostgreSQL for a while. */
static void test_readyz_is_503_while_the_database_is_down_and_200_when_it_returns(void **state)
{
	(void)state;
	harness_http_reply r;
	request("GET", &srv, "/readyz", NULL, NULL, 0, &r);
	expect_status_body("GET /readyz before", &r, 200, "ready");
	harness_http_reply_free(&r);

	harness_pg_pause(&pg);
	poll_until(&srv, "/readyz", 503, 15000, &r);
	expect_status_body("GET /readyz with the database down", &r, 503, "unavailable");
	json_t *j = reply_json("readyz", &r);
	const char *reason = jstr(j, "reason");
	/* libpq's own reason (no such socket, refused), not just "unavailable". */
	if (reason == NULL || strncmp(reason, "database unavailable: ", 22) != 0 || strstr(reason, "retry later"))
		fail_msg("readyz 503 without the database's reason: %s", r.body);
	print_message("readyz while the database is down: %s\n", r.body);
	json_decref(j);
	harness_http_reply_free(&r);
	/* The process is up all the same. */
	request("GET", &srv, "/healthz", NULL, NULL, 0, &r);
	expect_status_body("GET /healthz with the database down", &r, 200, "ok");
	harness_http_reply_free(&r);
	/* A live stream cannot find where "now" is: after a few seconds of
	 * trying it answers 503, where it used to keep its client waiting,
	 * without a byte, until the database came back. */
	int64_t t0 = now_ms();
	request("GET", &srv, "/streams/sse.down", NULL, NULL, 0, &r);
	int64_t took = now_ms() - t0;
	free(expect_error("GET /streams with the database down", &r, 503, "unavailable"));
	expect_header("the stream's 503", &r, "Retry-After", "1");
	if (took < 2500 || took > 15000)
		fail_msg("the stream's 503 came after %lld ms (it tries for 3 s)", (long long)took);
	harness_http_reply_free(&r);

	harness_pg_resume(&pg);
	poll_until(&srv, "/readyz", 200, 20000, &r);
	expect_status_body("GET /readyz after the database returned", &r, 200, "ready");
	harness_http_reply_free(&r);
	expect_serving(&srv);
}

struct slow_call {
	const harness_server *s;
	long status;
	char body[256];
};

static void *slow_call_thread(void *arg)
{
	struct slow_call *sc = arg;
	char u[512];
	snprintf(u, sizeof(u), "%s/rpc/rpcq.Health/Echo", sc->s->http_url);
	const char *h[] = {H_JSON, NULL};
	const char *body = "{\"delayMs\":3000,\"payload\":\"c2xvdw==\"}";
	harness_http_reply r;
	harness_http("POST", u, h, body, strlen(body), &r);
	sc->status = r.status;
	snprintf(sc->body, sizeof(sc->body), "%.200s", r.error[0] ? r.error : r.body);
	harness_http_reply_free(&r);
	return NULL;
}

static void test_readyz_is_503_while_draining_and_the_call_in_flight_finishes(void **state)
{
	(void)state;
	harness_server s3;
	const char *args[] = {"--drain-timeout-ms", "10000", NULL};
	harness_server_start(&s3, &pg, args);
	harness_http_reply r;
	poll_until(&s3, "/readyz", 200, 10000, &r);
	harness_http_reply_free(&r);

	struct slow_call sc = {.s = &s3};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, slow_call_thread, &sc), 0);
	/* Wait until the slow call is in flight (Check counts itself too). */
	rpcq_client *c = client_for(s3.rpc_url);
	int64_t until = now_ms() + 5000;
	for (;;) {
		Rpcq__CheckRequest in = RPCQ__CHECK_REQUEST__INIT;
		Rpcq__CheckResponse *out = NULL;
		rpcq_error err;
		assert_int_equal(rpcq_health_check(c, &in, &out, NULL, &err), RPCQ_OK);
		unsigned in_flight = out->in_flight;
		protobuf_c_message_free_unpacked(&out->base, NULL);
		if (in_flight >= 2)
			break;
		if (now_ms() > until)
			fail_msg("the slow HTTP call never showed in flight");
		nng_msleep(20);
	}
	rpcq_client_destroy(c);
	kill(s3.pid, SIGTERM);
	/* While it drains, /readyz says so (the slow call holds it ~3 s). */
	poll_until(&s3, "/readyz", 503, 2500, &r);
	json_t *j = reply_json("readyz while draining", &r);
	if (jstr(j, "status") == NULL || strcmp(jstr(j, "status"), "unavailable") != 0 || jstr(j, "reason") == NULL)
		fail_msg("readyz while draining: %s", r.body);
	json_decref(j);
	harness_http_reply_free(&r);
	pthread_join(t, NULL);
	if (sc.status != 200)
		fail_msg("the call in flight at SIGTERM got %ld: %s", sc.status, sc.body);
	assert_int_equal(harness_server_stop(&s3), 0);
}

/* With every worker held, /readyz says busy at once rather than waiting in
 * the queue behind the held calls (a probe would time out instead). */
static void test_readyz_is_503_busy_while_every_worker_is_held(void **state)
{
	(void)state;
	harness_server s1;
	const char *args[] = {"--workers", "1", NULL};
	harness_server_start(&s1, &pg, args);
	harness_http_reply r;
	poll_until(&s1, "/readyz", 200, 10000, &r);
	harness_http_reply_free(&r);

	/* Two calls hold the one worker for 4 s each, one after the other: the
	 * second waits in the queue. */
	const char *body = "{\"delayMs\":4000,\"payload\":\"aGVsZA==\"}";
	char call[256];
	int n = snprintf(call, sizeof(call),
			 "POST /rpc/rpcq.Health/Echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 strlen(body), body);
	int fd[2];
	for (int i = 0; i < 2; i++) {
		fd[i] = harness_raw_connect(s1.http_url);
		assert_int_equal(harness_raw_send(fd[i], call, (size_t)n), 0);
	}

	/* Once the queued call has waited 2 s, a probe is answered at once
	 * (within its 1 s here) with 503 busy. */
	int64_t start = now_ms();
	nng_msleep(2500);
	char *out = NULL;
	for (;;) {
		const char *probe = "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
		size_t len;
		int closed;
		out = harness_raw_exchange(s1.http_url, probe, strlen(probe), 1000, &len, &closed);
		if (strstr(out, "HTTP/1.1 503") != NULL)
			break;
		if (now_ms() - start > 7000)
			fail_msg("readyz never said busy with the one worker held; last probe got:\n%s", out);
		free(out);
	}
	if (strstr(out, "\"unavailable\"") == NULL || strstr(out, "busy: a call has waited") == NULL ||
	    strstr(out, "--workers 1") == NULL)
		fail_msg("readyz with the worker held:\n%s", out);
	print_message("readyz with the worker held: %s\n", strstr(out, "{"));
	free(out);
	for (int i = 0; i < 2; i++) {
		size_t len;
		int closed;
		out = harness_raw_read(fd[i], 12000, 1, &len, &closed);
		close(fd[i]);
		if (strstr(out, "HTTP/1.1 200") == NULL || strstr(out, "aGVsZA==") == NULL)
			fail_msg("held call %d got:\n%s", i, out);
		free(out);
	}
	poll_until(&s1, "/readyz", 200, 5000, &r);
	expect_status_body("GET /readyz once the worker is free", &r, 200, "ready");
	harness_http_reply_free(&r);
	assert_int_equal(harness_server_stop(&s1), 0);
}

/* ---- metrics ---- */

struct sample {
	char name[128];
	char labels[512]; /* k=v,k=v sorted by key */
	double value;
};

struct scrape {
	struct sample *s;
	int n;
	char *families; /* "name type\n" lines */
	char content_type[128];
};

/* Parses text with prometheus_client's own parser. */
static const char parser_py[] = "import sys\n"
				"from prometheus_client.parser import text_string_to_metric_families\n"
				"for f in text_string_to_metric_families(sys.stdin.read()):\n"
				"    print('F\\t%s\\t%s' % (f.name, f.type))\n"
				"    for s in f.samples:\n"
				"        labels = ','.join('%s=%s' % (k, s.labels[k]) for k in sorted(s.labels))\n"
				"        print('S\\t%s\\t%s\\t%r' % (s.name, labels, s.value))\n";

static void scrape(const harness_server *s, struct scrape *out)
{
	memset(out, 0, sizeof(*out));
	harness_http_reply r;
	request("GET", s, "/metrics", NULL, NULL, 0, &r);
	if (r.status != 200)
		fail_msg("GET /metrics: HTTP %ld %s", r.status, r.body);
	const char *ct = harness_http_header(&r, "Content-Type");
	snprintf(out->content_type, sizeof(out->content_type), "%s", ct ? ct : "");
	const char *argv[] = {"/usr/bin/python3", "-c", parser_py, NULL};
	char *text = NULL, *err = NULL;
	int rc = harness_run(argv, r.body, &text, &err, 60000);
	if (rc != 0)
		fail_msg("prometheus_client's parser refused /metrics (exit %d): %s\n---- /metrics ----\n%s", rc, err,
			 r.body);
	harness_http_reply_free(&r);
	free(err);
	int cap = 256;
	out->s = calloc((size_t)cap, sizeof(*out->s));
	size_t flen = 0;
	size_t tlen = strlen(text); /* before strtok cuts it up */
	out->families = calloc(1, tlen + 1);
	assert_non_null(out->s);
	assert_non_null(out->families);
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (line[0] == 'F') {
			char *name = line + 2, *type = strchr(name, '\t');
			if (type == NULL)
				continue;
			*type++ = '\0';
			flen += (size_t)snprintf(out->families + flen, tlen + 1 - flen, "%s %s\n", name, type);
			continue;
		}
		char *name = line + 2, *labels = strchr(name, '\t');
		char *value = labels ? strchr(labels + 1, '\t') : NULL;
		if (value == NULL)
			continue;
		*labels++ = '\0';
		*value++ = '\0';
		if (out->n == cap) {
			cap *= 2;
			struct sample *p = realloc(out->s, (size_t)cap * sizeof(*p));
			assert_non_null(p);
			out->s = p;
		}
		struct sample *sm = &out->s[out->n++];
		snprintf(sm->name, sizeof(sm->name), "%s", name);
		snprintf(sm->labels, sizeof(sm->labels), "%s", labels);
		sm->value = strtod(value, NULL);
	}
	free(text);
}

static void scrape_free(struct scrape *sc)
{
	free(sc->s);
	free(sc->families);
}

/* The value of one series, or NAN when the scrape has none. */
static double metric(const struct scrape *sc, const char *name, const char *labels)
{
	for (int i = 0; i < sc->n; i++) {
		if (strcmp(sc->s[i].name, name) == 0 && strcmp(sc->s[i].labels, labels) == 0)
			return sc->s[i].value;
	}
	return NAN;
}

static double metric0(const struct scrape *sc, const char *name, const char *labels)
{
	double v = metric(sc, name, labels);
	return isnan(v) ? 0 : v;
}

static int has_sample(const struct scrape *sc, const char *name)
{
	for (int i = 0; i < sc->n; i++) {
		if (strcmp(sc->s[i].name, name) == 0)
			return 1;
	}
	return 0;
}

static void test_metrics_parse_as_prometheus_text_with_every_family(void **state)
{
	(void)state;
	expect_serving(&srv); /* something counted */
	struct scrape sc;
	scrape(&srv, &sc);
	if (strncmp(sc.content_type, "text/plain; version=0.0.4", 25) != 0)
		fail_msg("/metrics Content-Type is \"%s\"", sc.content_type);
	/* prometheus_client names a counter family without its _total. */
	const char *families[] = {"rpcq_calls counter",
				  "rpcq_call_duration_seconds histogram",
				  "rpcq_calls_in_flight gauge",
				  "rpcq_replies_dropped counter",
				  "rpcq_http_requests counter",
				  "rpcq_pool_connections gauge",
				  "rpcq_pool_acquire_waits counter",
				  "rpcq_stream_messages_published counter",
				  "rpcq_stream_subscribers gauge",
				  "rpcq_http_connections gauge",
				  "rpcq_build_info gauge",
				  "process_start_time_seconds gauge"};
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char want[128];
		snprintf(want, sizeof(want), "%s\n", families[i]);
		const char *at = strstr(sc.families, want);
		if (at == NULL || (at != sc.families && at[-1] != '\n'))
			fail_msg("/metrics has no family \"%s\"; it has:\n%s", families[i], sc.families);
	}
	const char *samples[] = {"rpcq_calls_total",
				 "rpcq_call_duration_seconds_bucket",
				 "rpcq_call_duration_seconds_sum",
				 "rpcq_call_duration_seconds_count",
				 "rpcq_replies_dropped_total",
				 "rpcq_http_requests_total",
				 "rpcq_pool_acquire_waits_total",
				 "rpcq_stream_messages_published_total"};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		if (!has_sample(&sc, samples[i]))
			fail_msg("/metrics has no sample %s", samples[i]);
	}
	assert_false(isnan(metric(&sc, "rpcq_calls_total", "code=OK,method=rpcq.Health/Echo")));
	assert_false(isnan(metric(&sc, "rpcq_stream_subscribers", "transport=nng")));
	assert_false(isnan(metric(&sc, "rpcq_stream_subscribers", "transport=sse")));
	assert_false(isnan(metric(&sc, "rpcq_pool_connections", "state=idle")));
	assert_false(isnan(metric(&sc, "rpcq_pool_connections", "state=active")));
	assert_false(isnan(metric(&sc, "rpcq_http_requests_total", "code=200,route=rpc")));
	assert_true(metric(&sc, "rpcq_http_connections", "") >= 1); /* this scrape's */
	/* build info: one series, value 1, a version label. */
	int builds = 0;
	for (int i = 0; i < sc.n; i++) {
		if (strcmp(sc.s[i].name, "rpcq_build_info") == 0) {
			builds++;
			assert_int_equal(strncmp(sc.s[i].labels, "version=", 8), 0);
			assert_true(strlen(sc.s[i].labels) > 8);
			assert_true(sc.s[i].value == 1.0);
		}
	}
	assert_int_equal(builds, 1);
	double start = metric(&sc, "process_start_time_seconds", "");
	double now = (double)time(NULL);
	if (!(start > now - 3600 && start <= now + 1))
		fail_msg("process_start_time_seconds %f is not a recent Unix time (now %f)", start, now);
	/* Echo's histogram: buckets never decrease, +Inf is the count. */
	double prev = 0, inf = NAN;
	int buckets = 0;
	for (int i = 0; i < sc.n; i++) {
		if (strcmp(sc.s[i].name, "rpcq_call_duration_seconds_bucket") != 0 ||
		    strstr(sc.s[i].labels, "method=rpcq.Health/Echo") == NULL)
			continue;
		buckets++;
		if (sc.s[i].value < prev)
			fail_msg("bucket %s: %f after %f", sc.s[i].labels, sc.s[i].value, prev);
		prev = sc.s[i].value;
		if (strstr(sc.s[i].labels, "le=+Inf") != NULL)
			inf = sc.s[i].value;
	}
	assert_true(buckets >= 3);
	assert_true(inf == metric(&sc, "rpcq_call_duration_seconds_count", "method=rpcq.Health/Echo"));
	assert_true(inf >= 1);
	/* Every method has its histogram, called or not. */
	assert_false(isnan(metric(&sc, "rpcq_call_duration_seconds_count", "method=rpcq.Reflection/ListServices")));
	scrape_free(&sc);
}

static void test_metrics_count_nng_and_http_calls_on_one_path(void **state)
{
	(void)state;
	const char *echo_ok = "code=OK,method=rpcq.Health/Echo";
	const char *echo_bad = "code=INVALID_ARGUMENT,method=rpcq.Health/Echo";
	struct scrape a, b;
	scrape(&srv, &a);

	rpcq_client *c = client_for(srv.rpc_url);
	for (int i = 0; i < 5; i++) {
		Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT, *out = NULL;
		rpcq_error err;
		assert_int_equal(rpcq_health_echo(c, &in, &out, NULL, &err), RPCQ_OK);
		protobuf_c_message_free_unpacked(&out->base, NULL);
	}
	rpcq_client_destroy(c);
	for (int i = 0; i < 3; i++) {
		harness_http_reply r;
		rpc_json(&srv, "rpcq.Health/Echo", "{\"payload\":\"eA==\"}", NULL, &r);
		assert_int_equal(r.status, 200);
		harness_http_reply_free(&r);
	}
	/* One failure over nng through the CLI and one over HTTP. */
	const char *args[] = {"call", "rpcq.Health/Echo", "{\"failCode\":3}", NULL};
	char *o = NULL, *e = NULL;
	assert_int_not_equal(harness_cli(srv.rpc_url, args, NULL, &o, &e), 0);
	free(o);
	free(e);
	harness_http_reply r;
	rpc_json(&srv, "rpcq.Health/Echo", "{\"failCode\":3}", NULL, &r);
	assert_int_equal(r.status, 400);
	harness_http_reply_free(&r);
	request("GET", &srv, "/healthz", NULL, NULL, 0, &r);
	harness_http_reply_free(&r);
	request("GET", &srv, "/nothing/here", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 404);
	harness_http_reply_free(&r);
	request("GET", &srv, "/streams/m.t?after_seq=x", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 400);
	harness_http_reply_free(&r);

	scrape(&srv, &b);
	double d_ok = metric0(&b, "rpcq_calls_total", echo_ok) - metric0(&a, "rpcq_calls_total", echo_ok);
	double d_bad = metric0(&b, "rpcq_calls_total", echo_bad) - metric0(&a, "rpcq_calls_total", echo_bad);
	double d_hist = metric0(&b, "rpcq_call_duration_seconds_count", "method=rpcq.Health/Echo") -
			metric0(&a, "rpcq_call_duration_seconds_count", "method=rpcq.Health/Echo");
	double d_http_ok = metric0(&b, "rpcq_http_requests_total", "code=200,route=rpc") -
			   metric0(&a, "rpcq_http_requests_total", "code=200,route=rpc");
	double d_http_bad = metric0(&b, "rpcq_http_requests_total", "code=400,route=rpc") -
			    metric0(&a, "rpcq_http_requests_total", "code=400,route=rpc");
	double d_healthz = metric0(&b, "rpcq_http_requests_total", "code=200,route=healthz") -
			   metric0(&a, "rpcq_http_requests_total", "code=200,route=healthz");
	double d_metrics = metric0(&b, "rpcq_http_requests_total", "code=200,route=metrics") -
			   metric0(&a, "rpcq_http_requests_total", "code=200,route=metrics");
	print_message("deltas: Echo OK %g, INVALID_ARGUMENT %g, histogram %g, http rpc 200 %g, 400 %g, healthz %g, "
		      "metrics %g\n",
		      d_ok, d_bad, d_hist, d_http_ok, d_http_bad, d_healthz, d_metrics);
	assert_true(d_ok == 8);
	assert_true(d_bad == 2);
	assert_true(d_hist == 10);
	assert_true(d_http_ok == 3);
	assert_true(d_http_bad == 1);
	assert_true(d_healthz == 1);
	assert_true(d_metrics >= 1 && d_metrics <= 2); /* the first scrape, and maybe this one */
	assert_true(metric0(&b, "rpcq_http_requests_total", "code=404,route=other") -
			    metric0(&a, "rpcq_http_requests_total", "code=404,route=other") ==
		    1);
	assert_true(metric0(&b, "rpcq_http_requests_total", "code=400,route=streams") -
			    metric0(&a, "rpcq_http_requests_total", "code=400,route=streams") ==
		    1);
	scrape_free(&a);
	scrape_free(&b);
}

/* ---- connections: pipelining, HTTP/1.0, Expect, chunked, concurrency ---- */

/* Counts non-overlapping occurrences of needle in hay. */
static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + strlen(needle), needle))
		n++;
	return n;
}

static void test_pipelined_requests_on_one_connection_are_answered_in_order(void **state)
{
	(void)state;
	/* Three requests in one write; the last asks for the close. */
	char buf[512];
	const char *body = "{\"payload\":\"cGlwZQ==\"}";
	int n = snprintf(buf, sizeof(buf),
			 "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
			 "POST /rpc/rpcq.Health/Echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n%s"
			 "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
			 strlen(body), body);
	size_t len;
	int closed;
	char *out = harness_raw_exchange(srv.http_url, buf, (size_t)n, 5000, &len, &closed);
	const char *a = strstr(out, "{\"status\":\"ok\"}");
	const char *b = strstr(out, "{\"payload\":\"cGlwZQ==\"}");
	const char *c = strstr(out, "{\"status\":\"ready\"}");
	if (count_of(out, "HTTP/1.1 200") != 3 || a == NULL || b == NULL || c == NULL || !(a < b && b < c) || !closed)
		fail_msg("three pipelined requests got (%s):\n%s", closed ? "closed" : "left open", out);
	free(out);
	expect_serving(&srv);
}

static void test_an_http_1_0_request_is_answered_and_the_connection_closed(void **state)
{
	(void)state;
	const char *req = "GET /healthz HTTP/1.0\r\n\r\n";
	size_t len;
	int closed;
	int64_t t0 = now_ms();
	char *out = harness_raw_exchange(srv.http_url, req, strlen(req), 5000, &len, &closed);
	int64_t took = now_ms() - t0;
	if (strncmp(out, "HTTP/1.", 7) != 0 || strncmp(out + 8, " 200", 4) != 0 ||
	    strstr(out, "{\"status\":\"ok\"}") == NULL)
		fail_msg("an HTTP/1.0 GET /healthz got \"%.300s\"", out);
	if (!closed || took > 1000)
		fail_msg("after an HTTP/1.0 reply the connection %s (%lld ms)", closed ? "closed late" : "stayed open",
			 (long long)took);
	free(out);
}

static void test_expect_100_continue_and_chunked_bodies_are_served(void **state)
{
	(void)state;
	char *body = big_json(20000);
	const char *variants[][3] = {
		{H_JSON, "Expect: 100-continue", NULL},
		{H_JSON, "Transfer-Encoding: chunked", NULL},
	};
	for (size_t i = 0; i < 2; i++) {
		harness_http_reply r;
		request("POST", &srv, "/rpc/rpcq.Health/Echo", variants[i], body, strlen(body), &r);
		if (r.status != 200)
			fail_msg("a 20000-byte body with %s: HTTP %ld %.200s", variants[i][1], r.status, r.body);
		json_t *j = reply_json(variants[i][1], &r);
		const char *p = jstr(j, "payload");
		if (p == NULL || strlen(p) != strlen(body) - 14)
			fail_msg("%s: the payload came back %zu characters long, sent %zu", variants[i][1],
				 p ? strlen(p) : 0, strlen(body) - 14);
		json_decref(j);
		harness_http_reply_free(&r);
	}
	free(body);
}

#define CONCURRENT_THREADS 8
#define CONCURRENT_CALLS 25

struct caller {
	int id;
	int good;
	char failure[256];
};

static void *caller_thread(void *arg)
{
	struct caller *c = arg;
	char u[512];
	snprintf(u, sizeof(u), "%s/rpc/rpcq.Health/Echo", srv.http_url);
	for (int i = 0; i < CONCURRENT_CALLS; i++) {
		char text[32], b64[64], json[128], rid[64];
		snprintf(text, sizeof(text), "caller %d call %d", c->id, i);
		base64(text, strlen(text), b64, sizeof(b64));
		snprintf(json, sizeof(json), "{\"payload\":\"%s\"}", b64);
		snprintf(rid, sizeof(rid), "X-Request-Id: c%d-%d", c->id, i);
		const char *h[] = {H_JSON, rid, NULL};
		harness_http_reply r;
		int rc = harness_http("POST", u, h, json, strlen(json), &r);
		char want[96];
		snprintf(want, sizeof(want), "{\"payload\":\"%s\"}", b64);
		const char *id = harness_http_header(&r, "X-Request-Id");
		if (rc != 0 || r.status != 200 || strcmp(r.body, want) != 0 || id == NULL ||
		    strcmp(id, rid + 14) != 0) {
			snprintf(c->failure, sizeof(c->failure), "call %d: rc %d HTTP %ld id %s body %.100s", i, rc,
				 r.status, id ? id : "(none)", r.error[0] ? r.error : r.body);
			harness_http_reply_free(&r);
			return NULL;
		}
		harness_http_reply_free(&r);
		c->good++;
	}
	return NULL;
}

static void test_concurrent_http_calls_each_get_their_own_reply(void **state)
{
	(void)state;
	pthread_t t[CONCURRENT_THREADS];
	struct caller c[CONCURRENT_THREADS];
	for (int i = 0; i < CONCURRENT_THREADS; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, caller_thread, &c[i]), 0);
	}
	for (int i = 0; i < CONCURRENT_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < CONCURRENT_THREADS; i++) {
		if (c[i].good != CONCURRENT_CALLS)
			fail_msg("caller %d: %d of %d calls right; %s", i, c[i].good, CONCURRENT_CALLS, c[i].failure);
	}
}

static void test_a_client_that_hangs_up_mid_call_does_not_hurt_the_server(void **state)
{
	(void)state;
	struct scrape a;
	scrape(&srv, &a);
	char u[512];
	url_of(&srv, "/rpc/rpcq.Health/Echo", u, sizeof(u));
	const char *h[] = {H_JSON, NULL};
	const char *body = "{\"delayMs\":1000}";
	harness_http_reply r;
	int rc = harness_http_timeout("POST", u, h, body, strlen(body), 200, &r);
	assert_int_not_equal(rc, 0); /* curl gave up */
	harness_http_reply_free(&r);
	expect_serving(&srv);
	/* The abandoned call ends: nothing stays in flight. */
	int64_t until = now_ms() + 5000;
	struct scrape b;
	for (;;) {
		scrape(&srv, &b);
		if (metric0(&b, "rpcq_calls_in_flight", "") == 0)
			break;
		if (now_ms() > until)
			fail_msg("rpcq_calls_in_flight stays %g after the caller hung up",
				 metric0(&b, "rpcq_calls_in_flight", ""));
		scrape_free(&b);
		nng_msleep(100);
	}
	print_message("replies dropped: %g before, %g after the hang-up\n",
		      metric0(&a, "rpcq_replies_dropped_total", ""), metric0(&b, "rpcq_replies_dropped_total", ""));
	scrape_free(&a);
	scrape_free(&b);
}

static void test_several_http_urls_all_serve(void **state)
{
	(void)state;
	char u1[64], u2[64];
	snprintf(u1, sizeof(u1), "http://127.0.0.1:%d", harness_free_port());
	snprintf(u2, sizeof(u2), "http://127.0.0.1:%d", harness_free_port());
	harness_server s3;
	const char *args[] = {"--http", u1, "--http", u2, NULL};
	harness_server_start(&s3, &pg, args);
	const char *urls[] = {u1, u2};
	for (int i = 0; i < 2; i++) {
		char u[128];
		snprintf(u, sizeof(u), "%s/healthz", urls[i]);
		int64_t until = now_ms() + 5000;
		for (;;) {
			harness_http_reply r;
			int rc = harness_http("GET", u, NULL, NULL, 0, &r);
			long st = r.status;
			harness_http_reply_free(&r);
			if (rc == 0 && st == 200)
				break;
			if (now_ms() > until)
				fail_msg("GET %s: rc %d HTTP %ld", u, rc, st);
			nng_msleep(50);
		}
	}
	assert_int_equal(harness_server_stop(&s3), 0);
}

static void test_an_https_url_serves_calls_with_the_tls_certificate(void **state)
{
	(void)state;
	char cert[300], key[300];
	snprintf(cert, sizeof(cert), "%s/gw.crt", pg.dir);
	snprintf(key, sizeof(key), "%s/gw.key", pg.dir);
	const char *openssl[] = {"openssl",  "req",
				 "-x509",    "-newkey",
				 "rsa:2048", "-nodes",
				 "-days",    "2",
				 "-subj",    "/CN=127.0.0.1",
				 "-addext",  "subjectAltName=IP:127.0.0.1",
				 "-keyout",  key,
				 "-out",     cert,
				 NULL};
	assert_int_equal(harness_run(openssl, NULL, NULL, NULL, 30000), 0);
	char url[64], http[80], cert_flag[320], key_flag[320];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", harness_free_port());
	snprintf(http, sizeof(http), "--http=%s", url);
	snprintf(cert_flag, sizeof(cert_flag), "--tls-cert=%s", cert);
	snprintf(key_flag, sizeof(key_flag), "--tls-key=%s", key);
	const char *args[] = {http, cert_flag, key_flag, NULL};
	harness_server s3;
	harness_server_start(&s3, &pg, args);
	/* curl verifies the certificate against the file given: a real TLS client. */
	char target[128];
	snprintf(target, sizeof(target), "%s/rpc/rpcq.Health/Echo", url);
	const char *curl[] = {"curl",	    "-sS",
			      "--max-time", "10",
			      "--cacert",   cert,
			      "-H",	    "Content-Type: application/json",
			      "--data",	    "{\"payload\":\"c2VhbGVk\"}",
			      target,	    NULL};
	char *out = NULL, *err = NULL;
	int64_t until = now_ms() + 5000;
	int rc;
	while ((rc = harness_run(curl, NULL, &out, &err, 15000)) != 0 && now_ms() < until) {
		free(out);
		free(err);
		out = err = NULL;
		nng_msleep(100);
	}
	if (rc != 0 || out == NULL || strcmp(out, "{\"payload\":\"c2VhbGVk\"}") != 0)
		fail_msg("curl over https: exit %d, out %s, err %s", rc, out ? out : "", err ? err : "");
	free(out);
	free(err);
	assert_int_equal(harness_server_stop(&s3), 0);
}

/* ---- Server-Sent Events ---- */

static harness_sse *sse_open(const harness_server *s, const char *path, const char *last_event_id)
{
	char u[512], h[128];
	url_of(s, path, u, sizeof(u));
	const char *hdrs[3] = {"Accept: text/event-stream", NULL, NULL};
	if (last_event_id != NULL) {
		snprintf(h, sizeof(h), "Last-Event-ID: %s", last_event_id);
		hdrs[1] = h;
	}
	harness_sse *e = harness_sse_open(u, hdrs, 5000);
	if (harness_sse_status(e) != 200) {
		size_t n;
		const char *t = harness_sse_text(e, &n);
		fail_msg("GET %s: HTTP %ld (%s) %.*s", path, harness_sse_status(e), harness_sse_error(e), (int)n, t);
	}
	expect_content_type(path, harness_sse_header(e, "Content-Type"), "text/event-stream");
	return e;
}

/* Reads events first..last of topic, written by append(topic, tag, ...)
 * (payload "<tag>-<i>" where i counts within that append: the caller passes
 * the payload text of each seq through texts, indexed by seq). Fails on any
 * other event, a gap, a repeat, or none within ms of the previous one. */
static void expect_events(harness_sse *e, const char *what, uint64_t first, uint64_t last, char (*texts)[32], int *seen,
			  int ms)
{
	for (uint64_t want = first; want <= last; want++) {
		harness_sse_event ev;
		int rc = harness_sse_next(e, ms, &ev);
		if (rc != 1)
			fail_msg("%s: waiting for seq %llu of %llu..%llu: %s", what, (unsigned long long)want,
				 (unsigned long long)first, (unsigned long long)last,
				 rc == 0 ? "nothing came in time" : harness_sse_error(e));
		char *end;
		unsigned long long id = strtoull(ev.id, &end, 10);
		if (ev.id[0] == '\0' || *end != '\0' || id != want)
			fail_msg("%s: event id \"%s\" came when %llu was next", what, ev.id, (unsigned long long)want);
		assert_string_equal(ev.event, "rpcq.EchoMessage");
		if (strchr(ev.data, '\n') != NULL)
			fail_msg("%s: seq %llu's data spans lines: %s", what, id, ev.data);
		json_t *j = parse_json("event data", ev.data, strlen(ev.data));
		char b64[64];
		base64(texts[want], strlen(texts[want]), b64, sizeof(b64));
		const char *p = jstr(j, "payload");
		if (p == NULL || strcmp(p, b64) != 0)
			fail_msg("%s: seq %llu data %s, wanted payload %s (\"%s\")", what, id, ev.data, b64,
				 texts[want]);
		json_decref(j);
		harness_sse_event_free(&ev);
		if (seen != NULL)
			seen[want]++;
	}
}

/* Nothing but heartbeats for two of them. */
static void expect_no_event(harness_sse *e, const char *what)
{
	int have = harness_sse_comments(e);
	harness_sse_event ev;
	int64_t until = now_ms() + HEARTBEAT_MS * 2 + 500;
	while (now_ms() < until) {
		int rc = harness_sse_next(e, 100, &ev);
		if (rc == 1)
			fail_msg("%s: an extra event id %s: %s", what, ev.id, ev.data);
		if (rc < 0)
			fail_msg("%s: the stream ended: %s", what, harness_sse_error(e));
	}
	assert_true(harness_sse_comments(e) > have);
}

/* append() and a record of each seq's payload text. */
static void append_tracked(const char *topic, const char *tag, int n, char (*texts)[32], uint64_t *last)
{
	uint64_t seq = append(topic, tag, n);
	for (int i = 0; i < n; i++)
		snprintf(texts[seq - (uint64_t)n + 1 + (uint64_t)i], 32, "%s-%d", tag, i);
	*last = seq;
}

static void test_sse_resumes_after_last_event_id_with_nothing_lost_or_repeated(void **state)
{
	(void)state;
	const char *topic = "sse.resume";
	char texts[64][32];
	int seen[64] = {0};
	uint64_t last;
	append_tracked(topic, "a", 6, texts, &last);
	append_tracked(topic, "b", 4, texts, &last);
	assert_int_equal(last, 10);

	/* From the start of the log; hang up after 4. */
	harness_sse *e = sse_open(&srv, "/streams/sse.resume?after_seq=0", NULL);
	expect_events(e, "from after_seq=0", 1, 4, texts, seen, 5000);
	const char *first = harness_sse_first_line(e);
	if (first == NULL || strcmp(first, "retry: 2000") != 0)
		fail_msg("the stream's first line is \"%s\", wanted \"retry: 2000\"", first ? first : "(none)");
	assert_int_equal(harness_sse_retry(e), 2000);
	harness_sse_close(e);

	append_tracked(topic, "c", 10, texts, &last);
	/* Last-Event-ID wins over after_seq. */
	e = sse_open(&srv, "/streams/sse.resume?after_seq=15", "4");
	expect_events(e, "resumed at Last-Event-ID 4", 5, 20, texts, seen, 5000);
	expect_no_event(e, "after seq 20");
	/* Appended while connected: live. Hang up in the middle of them. */
	append_tracked(topic, "d", 5, texts, &last);
	expect_events(e, "live after 20", 21, 22, texts, seen, 5000);
	harness_sse_close(e);
	append_tracked(topic, "e", 5, texts, &last);
	assert_int_equal(last, 30);

	e = sse_open(&srv, "/streams/sse.resume", "22");
	expect_events(e, "resumed at Last-Event-ID 22", 23, 30, texts, seen, 5000);
	expect_no_event(e, "after seq 30");
	harness_sse_close(e);
	for (int i = 1; i <= 30; i++) {
		if (seen[i] != 1)
			fail_msg("seq %d was delivered %d times", i, seen[i]);
	}

	/* after_seq alone. */
	e = sse_open(&srv, "/streams/sse.resume?after_seq=27", NULL);
	expect_events(e, "after_seq=27", 28, 30, texts, NULL, 5000);
	expect_no_event(e, "after_seq=27, after 30");
	harness_sse_close(e);
	expect_serving(&srv);
}

static void test_a_live_sse_subscriber_sees_messages_appended_after_it_connected(void **state)
{
	(void)state;
	const char *topic = "sse.live";
	char texts[16][32];
	uint64_t last;
	append_tracked(topic, "old", 3, texts, &last);
	harness_sse *e = sse_open(&srv, "/streams/sse.live", NULL);
	/* A heartbeat: the stream is set up at the server. */
	if (harness_sse_wait_comments(e, 1, 5000) < 1)
		fail_msg("no heartbeat within 5 s with --http-heartbeat-ms %d", HEARTBEAT_MS);
	struct scrape sc;
	scrape(&srv, &sc);
	assert_true(metric0(&sc, "rpcq_stream_subscribers", "transport=sse") >= 1);
	scrape_free(&sc);

	int64_t t0 = now_ms();
	append_tracked(topic, "new", 2, texts, &last);
	/* Only the new ones, and soon. */
	expect_events(e, "live", 4, 5, texts, NULL, 3000);
	int64_t took = now_ms() - t0;
	print_message("live SSE delivery of 2 messages: %lld ms\n", (long long)took);
	assert_true(took < 3000);
	expect_no_event(e, "live after 5");
	harness_sse_close(e);

	/* The subscriber is gone from the gauge once the server notices. */
	int64_t until = now_ms() + 5000;
	for (;;) {
		scrape(&srv, &sc);
		double v = metric0(&sc, "rpcq_stream_subscribers", "transport=sse");
		scrape_free(&sc);
		if (v == 0)
			break;
		if (now_ms() > until)
			fail_msg("rpcq_stream_subscribers{transport=\"sse\"} still %g 5 s after the hang-up", v);
		nng_msleep(100);
	}
}

/* A live stream (no position) answers 200 only once it knows where "now"
 * is: a message appended right after the client has its 200 is delivered,
 * every time, with no wait for the stream to settle. */
static void test_a_live_sse_stream_delivers_what_is_appended_right_after_its_200(void **state)
{
	(void)state;
	const char *topic = "sse.now";
	char texts[16][32];
	uint64_t last;
	append_tracked(topic, "old", 2, texts, &last);
	for (int i = 0; i < 8; i++) {
		harness_sse *e = sse_open(&srv, "/streams/sse.now", NULL);
		char tag[8];
		snprintf(tag, sizeof(tag), "now%d", i);
		append_tracked(topic, tag, 1, texts, &last);
		expect_events(e, "appended right after the 200", last, last, texts, NULL, 3000);
		harness_sse_close(e);
	}
}

/* A client resuming into a log that retention trimmed whole (a topic quiet
 * for longer than the retention: first_retained_seq is last_seq + 1, and a
 * Replay has no message) is told what it lost, once, and then gets what
 * comes next; its stream does not ask Replay again and again meanwhile. */
static void test_an_sse_client_resuming_into_a_wholly_trimmed_log_gets_data_loss(void **state)
{
	(void)state;
	const char *topic = "sse.trimmed";
	char texts[16][32];
	uint64_t last;
	append_tracked(topic, "gone", 5, texts, &last);
	assert_int_equal(last, 5);
	harness_sql(pg.conninfo,
		    "BEGIN; DELETE FROM stream_log WHERE topic = 'sse.trimmed';"
		    " UPDATE stream_topics SET first_retained_seq = last_seq + 1 WHERE topic = 'sse.trimmed';"
		    " COMMIT");
	harness_sse *e = sse_open(&srv, "/streams/sse.trimmed?after_seq=2", NULL);
	harness_sse_event ev;
	int rc = harness_sse_next(e, 3000, &ev);
	if (rc != 1)
		fail_msg("no data_loss event: %s", rc == 0 ? "nothing came within 3 s" : harness_sse_error(e));
	assert_string_equal(ev.event, "data_loss");
	assert_string_equal(ev.id, "5");
	json_t *j = parse_json("data_loss", ev.data, strlen(ev.data));
	assert_string_equal(jstr(j, "afterSeq"), "2");
	assert_string_equal(jstr(j, "firstRetainedSeq"), "6");
	json_decref(j);
	harness_sse_event_free(&ev);
	expect_no_event(e, "after the loss");
	append_tracked(topic, "new", 1, texts, &last);
	expect_events(e, "after the loss", 6, 6, texts, NULL, 3000);
	harness_sse_close(e);
}

/* Appends n messages with payloads of size bytes in one transaction. */
static void append_big(const char *topic, int n, size_t size)
{
	dbconn *c;
	rpcq_error err;
	uint8_t *blob = malloc(size);
	assert_non_null(blob);
	if (pool_acquire(db, 0, &c, &err) != RPCQ_OK)
		fail_msg("pool_acquire: %s", err.message);
	dbconn_set_deadline(c, nng_clock() + 60000);
	if (db_begin(c, &err) != RPCQ_OK)
		fail_msg("begin: %s", err.message);
	for (int i = 0; i < n; i++) {
		memset(blob, 'a' + i % 26, size);
		Rpcq__EchoMessage m = RPCQ__ECHO_MESSAGE__INIT;
		m.payload.data = blob;
		m.payload.len = size;
		if (stream_append(c, topic, &m.base, NULL, &err) != RPCQ_OK)
			fail_msg("stream_append %s: %s", topic, err.message);
	}
	if (db_commit(c, &err) != RPCQ_OK)
		fail_msg("commit: %s", err.message);
	pool_release(db, c);
	free(blob);
}

/* Reads events with ids first..last in order (payloads not checked). */
static void expect_ids(harness_sse *e, const char *what, uint64_t first, uint64_t last, int ms)
{
	for (uint64_t want = first; want <= last; want++) {
		harness_sse_event ev;
		int rc = harness_sse_next(e, ms, &ev);
		if (rc != 1)
			fail_msg("%s: waiting for seq %llu of %llu..%llu: %s", what, (unsigned long long)want,
				 (unsigned long long)first, (unsigned long long)last,
				 rc == 0 ? "nothing came in time" : harness_sse_error(e));
		if (strtoull(ev.id, NULL, 10) != want)
			fail_msg("%s: event id \"%s\" came when %llu was next", what, ev.id, (unsigned long long)want);
		harness_sse_event_free(&ev);
	}
}

static void test_sse_replays_a_backlog_longer_than_one_replay_page(void **state)
{
	(void)state;
	/* Replay pages hold at most 1000 messages: 2500 take three. */
	append_big("sse.backlog", 2500, 16);
	harness_sse *e = sse_open(&srv, "/streams/sse.backlog?after_seq=0", NULL);
	expect_ids(e, "a backlog of 2500", 1, 2500, 10000);
	expect_no_event(e, "after the backlog");
	harness_sse_close(e);
	e = sse_open(&srv, "/streams/sse.backlog", "1234");
	expect_ids(e, "the backlog after 1234", 1235, 2500, 10000);
	harness_sse_close(e);
}

static void test_an_sse_client_that_never_reads_does_not_stall_other_subscribers(void **state)
{
	(void)state;
	/* A subscriber with a tiny receive window that never reads, and one
	 * that does; 4000 messages of 1 KiB (5 MB of events) go by. */
	int stalled = harness_raw_connect(srv.http_url);
	int small = 4096;
	setsockopt(stalled, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	const char *req = "GET /streams/sse.stall HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n";
	assert_int_equal(harness_raw_send(stalled, req, strlen(req)), 0);
	harness_sse *e = sse_open(&srv, "/streams/sse.stall", NULL);
	if (harness_sse_wait_comments(e, 1, 5000) < 1)
		fail_msg("no heartbeat within 5 s");
	int64_t t0 = now_ms();
	for (int i = 0; i < 40; i++)
		append_big("sse.stall", 100, 1024);
	expect_ids(e, "beside a stalled subscriber", 1, 4000, 10000);
	print_message("4000 events beside a stalled subscriber in %lld ms\n", (long long)(now_ms() - t0));
	expect_serving(&srv);
	harness_sse_close(e);
	close(stalled);
}

static void test_sse_sends_keepalive_comments_on_an_idle_topic(void **state)
{
	(void)state;
	harness_sse *e = sse_open(&srv, "/streams/sse.idle", NULL);
	int64_t t0 = now_ms();
	int n = harness_sse_wait_comments(e, 3, HEARTBEAT_MS * 3 + 3000);
	int64_t took = now_ms() - t0;
	if (n < 3)
		fail_msg("%d heartbeats in %lld ms with --http-heartbeat-ms %d", n, (long long)took, HEARTBEAT_MS);
	size_t len;
	const char *text = harness_sse_text(e, &len);
	if (strstr(text, "\n: keepalive") == NULL && strncmp(text, ": keepalive", 11) != 0)
		fail_msg("the heartbeats are not \": keepalive\" lines: %.*s", (int)len, text);
	harness_sse_close(e);
}

static void test_a_malformed_after_seq_or_last_event_id_is_400(void **state)
{
	(void)state;
	const char *paths[] = {"/streams/sse.bad?after_seq=abc", "/streams/sse.bad?after_seq=-1",
			       "/streams/sse.bad?after_seq=99999999999999999999999",
			       "/streams/sse.bad?after_seq=", "/streams/sse.bad?after_seq=1x"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		harness_http_reply r;
		request("GET", &srv, paths[i], NULL, NULL, 0, &r);
		free(expect_error(paths[i], &r, 400, "invalid_argument"));
		harness_http_reply_free(&r);
	}
	/* Given twice, which one would be meant is not for the server to guess. */
	harness_http_reply tr;
	request("GET", &srv, "/streams/sse.bad?after_seq=1&after_seq=2", NULL, NULL, 0, &tr);
	char *twice = expect_error("after_seq twice", &tr, 400, "invalid_argument");
	assert_string_equal(twice, "after_seq is given more than once");
	free(twice);
	harness_http_reply_free(&tr);
	const char *ids[] = {"Last-Event-ID: xyz", "Last-Event-ID: -3", "Last-Event-ID: 12abc"};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		const char *h[] = {ids[i], NULL};
		harness_http_reply r;
		request("GET", &srv, "/streams/sse.bad", h, NULL, 0, &r);
		free(expect_error(ids[i], &r, 400, "invalid_argument"));
		harness_http_reply_free(&r);
	}
	expect_serving(&srv);
}

/* Without --http-allow-origin, a browser's request from another site
 * (Origin not the gateway's own) is refused 403 before it does anything,
 * a form's POST to /billing/imports included (browsers send that one
 * without asking first); a page of the gateway's own origin, and every
 * client that sends no Origin, are served as before. */
static void test_a_browser_request_from_another_site_is_refused_403(void **state)
{
	(void)state;
	long long imports = harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports");
	const char *evil[] = {"Origin: http://evil.example", NULL};
	harness_http_reply r;
	request("GET", &srv, "/healthz", evil, NULL, 0, &r);
	char *m = expect_error("GET /healthz from another site", &r, 403, "permission_denied");
	assert_string_equal(m, "origin \"http://evil.example\" may not call this gateway (rpcqd --http-allow-origin)");
	free(m);
	assert_null(harness_http_header(&r, "Access-Control-Allow-Origin"));
	harness_http_reply_free(&r);

	const char *evil_json[] = {H_JSON, "Origin: http://evil.example", NULL};
	request("POST", &srv, "/rpc/rpcq.Health/Echo", evil_json, "{}", 2, &r);
	free(expect_error("POST /rpc from another site", &r, 403, "permission_denied"));
	harness_http_reply_free(&r);

	static const char form[] = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.csv\"\r\n"
				   "Content-Type: text/csv\r\n\r\n"
				   "name,governmentId,email,debtAmount,debtDueDate,debtId\r\n"
				   "A,1111,a@example.com,10,2030-01-01,cors-1\r\n--b--\r\n";
	const char *evil_form[] = {"Content-Type: multipart/form-data; boundary=b", "Origin: null", NULL};
	request("POST", &srv, "/billing/imports", evil_form, form, sizeof(form) - 1, &r);
	free(expect_error("a form posted from another site", &r, 403, "permission_denied"));
	harness_http_reply_free(&r);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), imports);

	/* The gateway's own origin (its host and port are the Host header's). */
	char own[300];
	snprintf(own, sizeof(own), "Origin: %s", srv.http_url);
	const char *same[] = {own, NULL};
	request("GET", &srv, "/healthz", same, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	assert_null(harness_http_header(&r, "Access-Control-Allow-Origin"));
	harness_http_reply_free(&r);
	/* The same port on another host is another origin. */
	char other[300];
	snprintf(other, sizeof(other), "Origin: http://localhost%s", strrchr(srv.http_url, ':'));
	const char *other_host[] = {other, NULL};
	request("GET", &srv, "/healthz", other_host, NULL, 0, &r);
	assert_int_equal(r.status, 403);
	harness_http_reply_free(&r);
	expect_serving(&srv);
}

/* With --http-allow-origin, that origin's pages may call: every reply
 * carries Access-Control-Allow-Origin (and the headers a page may read),
 * a preflight OPTIONS answers the route's methods and the headers asked
 * for, and a stream's head carries it too. Other sites are still 403. */
static void test_an_allowed_origin_gets_cors_headers_and_its_preflight_answered(void **state)
{
	(void)state;
	const char *app[] = {"Origin: http://APP.example:8080", NULL};
	harness_http_reply r;
	request("GET", &srv2, "/healthz", app, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	expect_header("GET /healthz", &r, "Access-Control-Allow-Origin", APP_ORIGIN);
	expect_header("GET /healthz", &r, "Vary", "Origin");
	expect_header("GET /healthz", &r, "Access-Control-Expose-Headers",
		      "Location, X-Request-Id, Retry-After, WWW-Authenticate");
	harness_http_reply_free(&r);

	const char *pre[] = {"Origin: " APP_ORIGIN, "Access-Control-Request-Method: POST",
			     "Access-Control-Request-Headers: content-type, authorization, x-tenant", NULL};
	request("OPTIONS", &srv2, "/rpc/rpcq.Health/Echo", pre, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	expect_header("the preflight", &r, "Access-Control-Allow-Origin", APP_ORIGIN);
	expect_header("the preflight", &r, "Access-Control-Allow-Methods", "POST");
	expect_header("the preflight", &r, "Access-Control-Allow-Headers", "content-type, authorization, x-tenant");
	expect_header("the preflight", &r, "Access-Control-Max-Age", "600");
	expect_header("the preflight", &r, "Allow", "POST");
	assert_int_equal(r.body_len, 0);
	harness_http_reply_free(&r);

	const char *call[] = {H_JSON, "Origin: " APP_ORIGIN, NULL};
	rpc_json(&srv2, "rpcq.Health/Echo", "{\"payload\":\"b2s=\"}", call + 1, &r);
	assert_int_equal(r.status, 200);
	expect_header("POST /rpc", &r, "Access-Control-Allow-Origin", APP_ORIGIN);
	expect_header("POST /rpc", &r, "X-Request-Id", NULL);
	harness_http_reply_free(&r);

	/* An error reply carries it too, so the page can read the error. */
	request("GET", &srv2, "/nowhere", app, NULL, 0, &r);
	assert_int_equal(r.status, 404);
	expect_header("a 404", &r, "Access-Control-Allow-Origin", APP_ORIGIN);
	harness_http_reply_free(&r);

	/* OPTIONS without a preflight's headers: the methods only. */
	request("OPTIONS", &srv2, "/healthz", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	expect_header("OPTIONS /healthz", &r, "Allow", "GET, HEAD");
	assert_null(harness_http_header(&r, "Access-Control-Allow-Methods"));
	harness_http_reply_free(&r);

	const char *evil[] = {"Origin: https://app.example:8080", NULL}; /* another scheme: another origin */
	request("GET", &srv2, "/healthz", evil, NULL, 0, &r);
	assert_int_equal(r.status, 403);
	harness_http_reply_free(&r);

	/* A stream's head. */
	int fd = harness_raw_connect(srv2.http_url);
	static const char get[] =
		"GET /streams/sse.cors?after_seq=0 HTTP/1.1\r\nHost: t\r\nOrigin: " APP_ORIGIN "\r\n\r\n";
	assert_int_equal(harness_raw_send(fd, get, sizeof(get) - 1), 0);
	size_t len;
	int closed;
	char *head = harness_raw_read(fd, 1000, 0, &len, &closed);
	if (strncmp(head, "HTTP/1.1 200 ", 13) != 0 ||
	    strstr(head, "\r\nAccess-Control-Allow-Origin: " APP_ORIGIN "\r\n") == NULL)
		fail_msg("the stream's head: %.400s", head);
	free(head);
	close(fd);
}

/* --http-allow-origin takes origins only: a path, a slash or another
 * scheme is refused at start, naming the value. */
static void test_a_malformed_allowed_origin_stops_rpcqd_at_start(void **state)
{
	(void)state;
	const char *bad[] = {"http://app.example/", "ftp://app.example", "app.example", "http://a:99999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[] = {getenv("RPCQD"),
				      "--database",
				      pg.conninfo,
				      "--listen",
				      "tcp://127.0.0.1:0",
				      "--publish",
				      "tcp://127.0.0.1:0",
				      "--http",
				      "http://127.0.0.1:0",
				      "--http-allow-origin",
				      bad[i],
				      NULL};
		char *out = NULL, *err = NULL;
		int rc = harness_run(argv, NULL, &out, &err, 20000);
		char want[200];
		snprintf(want, sizeof(want), "--http-allow-origin \"%s\" is not an origin", bad[i]);
		if (rc == 0 || strstr(err, want) == NULL)
			fail_msg("rpcqd --http-allow-origin %s: exit %d, stderr: %s", bad[i], rc, err);
		free(out);
		free(err);
	}
}

static void test_a_message_appended_once_is_seen_on_both_processes_streams(void **state)
{
	(void)state;
	char texts[16][32];
	uint64_t last;
	harness_sse *e1 = sse_open(&srv, "/streams/sse.two", NULL);
	harness_sse *e2 = sse_open(&srv2, "/streams/sse.two", NULL);
	if (harness_sse_wait_comments(e1, 1, 5000) < 1 || harness_sse_wait_comments(e2, 1, 5000) < 1)
		fail_msg("no heartbeat on one of the two streams");
	append_tracked("sse.two", "x", 5, texts, &last);
	expect_events(e1, "process 1", 1, 5, texts, NULL, 5000);
	expect_events(e2, "process 2", 1, 5, texts, NULL, 5000);
	expect_no_event(e1, "process 1 after 5");
	expect_no_event(e2, "process 2 after 5");
	harness_sse_close(e1);
	harness_sse_close(e2);
}

/* ---- a Connect client we did not write ---- */

static int buf_curl(const char *json, const char *const *headers, char **out, char **err)
{
	char schema[512], u[512];
	harness_source_path("proto", schema, sizeof(schema));
	url_of(&srv, "/rpc/rpcq.Health/Echo", u, sizeof(u));
	const char *argv[32];
	int n = 0;
	argv[n++] = "buf";
	argv[n++] = "curl";
	argv[n++] = "--protocol";
	argv[n++] = "connect";
	argv[n++] = "--schema";
	argv[n++] = schema;
	/* buf sends its deadline as Connect-Timeout-Ms (it refuses the header from -H). */
	argv[n++] = "--timeout";
	argv[n++] = "20s";
	for (int i = 0; headers != NULL && headers[i] != NULL; i++) {
		argv[n++] = "-H";
		argv[n++] = headers[i];
	}
	argv[n++] = "--data";
	argv[n++] = json;
	argv[n++] = u;
	argv[n] = NULL;
	return harness_run(argv, NULL, out, err, 60000);
}

static void test_buf_curl_calls_echo_over_connect_and_reads_an_error(void **state)
{
	(void)state;
	char *out = NULL, *err = NULL;
	int rc = buf_curl("{\"payload\":\"aGk=\"}", NULL, &out, &err);
	if (rc != 0)
		fail_msg("buf curl exited %d:\n%s%s", rc, out, err);
	json_t *j = parse_json("buf curl's output", out, strlen(out));
	assert_string_equal(jstr(j, "payload"), "aGk=");
	json_decref(j);
	free(out);
	free(err);

	/* Metadata from its headers. */
	const char *h[] = {"X-Request-Id: buf-7", "X-Trace: YnVmOmN1cmw=", NULL};
	rc = buf_curl("{\"echoMetadata\":true}", h, &out, &err);
	if (rc != 0)
		fail_msg("buf curl with headers exited %d:\n%s%s", rc, out, err);
	j = parse_json("buf curl's output", out, strlen(out));
	json_t *md = json_object_get(j, "metadata");
	if (!json_is_object(md) || jstr(md, "x-request-id") == NULL || strcmp(jstr(md, "x-request-id"), "buf-7") ||
	    jstr(md, "x-trace") == NULL || strcmp(jstr(md, "x-trace"), "YnVmOmN1cmw="))
		fail_msg("buf curl's metadata: %s", out);
	json_decref(j);
	free(out);
	free(err);

	/* An error: buf prints the Connect code and exits with code << 3. */
	rc = buf_curl("{\"failCode\":5,\"failMessage\":\"no such thing\"}", NULL, &out, &err);
	if (rc != 5 << 3 || (strstr(err, "not_found") == NULL && strstr(out, "not_found") == NULL) ||
	    (strstr(err, "no such thing") == NULL && strstr(out, "no such thing") == NULL))
		fail_msg("buf curl with fail_code 5: exit %d (wanted %d)\nstdout: %s\nstderr: %s", rc, 5 << 3, out,
			 err);
	free(out);
	free(err);
	rc = buf_curl("{\"failCode\":16,\"failMessage\":\"who are you\"}", NULL, &out, &err);
	if (rc != 16 << 3 || (strstr(err, "unauthenticated") == NULL && strstr(out, "unauthenticated") == NULL))
		fail_msg("buf curl with fail_code 16: exit %d (wanted %d)\nstdout: %s\nstderr: %s", rc, 16 << 3, out,
			 err);
	free(out);
	free(err);
}

/* ---- HTTP off ---- */

/* How many TCP sockets of process pid are listening. */
static int listening_sockets(pid_t pid)
{
	unsigned long inodes[256];
	int ninodes = 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	DIR *d = opendir(path);
	if (d == NULL)
		fail_msg("cannot list %s", path);
	struct dirent *de;
	while ((de = readdir(d)) != NULL && ninodes < 256) {
		char link[512], target[128];
		snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		unsigned long ino;
		if (sscanf(target, "socket:[%lu]", &ino) == 1)
			inodes[ninodes++] = ino;
	}
	closedir(d);
	int listening = 0;
	const char *tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	for (int t = 0; t < 2; t++) {
		FILE *f = fopen(tables[t], "r");
		if (f == NULL)
			continue;
		char line[512];
		if (fgets(line, sizeof(line), f) == NULL) {
			fclose(f);
			continue;
		}
		while (fgets(line, sizeof(line), f) != NULL) {
			unsigned st;
			unsigned long ino;
			if (sscanf(line, "%*s %*s %*s %x %*s %*s %*s %*s %*s %lu", &st, &ino) != 2)
				continue;
			if (st != 0x0A)
				continue;
			for (int i = 0; i < ninodes; i++) {
				if (inodes[i] == ino)
					listening++;
			}
		}
		fclose(f);
	}
	return listening;
}

static void test_http_can_be_turned_off_and_nng_calls_still_work(void **state)
{
	(void)state;
	int with_http = listening_sockets(srv.pid);
	harness_server s3;
	const char *args[] = {"--http", "", NULL};
	harness_server_start(&s3, &pg, args);
	assert_string_equal(s3.http_url, "");
	rpcq_client *c = client_for(s3.rpc_url);
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT, *out = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_health_echo(c, &in, &out, NULL, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rpcq_client_destroy(c);
	/* Listening: the RPC and publish sockets, one fewer than with HTTP. */
	int64_t until = now_ms() + 1000;
	while (now_ms() < until) {
		int n = listening_sockets(s3.pid);
		if (n != with_http - 1)
			fail_msg("rpcqd --http '' listens on %d TCP sockets; with HTTP it listens on %d", n, with_http);
		nng_msleep(100);
	}
	assert_int_equal(harness_server_stop(&s3), 0);
	/* And the default HTTP on srv kept working throughout. */
	expect_serving(&srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_over_http_with_json_returns_the_payload),
		cmocka_unit_test(test_a_charset_parameter_is_accepted_and_an_empty_object_is_an_empty_message),
		cmocka_unit_test(test_check_over_http_writes_lower_camel_case_and_64_bit_integers_as_strings),
		cmocka_unit_test(test_echo_over_http_with_protobuf_round_trips_binary_bytes),
		cmocka_unit_test(test_every_status_maps_to_its_http_code_and_connect_error),
		cmocka_unit_test(test_unknown_methods_and_malformed_rpc_paths_are_404_unimplemented),
		cmocka_unit_test(test_headers_become_metadata_and_the_request_id_is_echoed),
		cmocka_unit_test(test_a_request_without_an_id_gets_one_made_up_by_the_server),
		cmocka_unit_test(test_handler_trailers_come_back_as_trailer_headers),
		cmocka_unit_test(test_connect_timeout_ms_is_the_calls_deadline),
		cmocka_unit_test(test_an_invalid_connect_timeout_ms_is_invalid_argument),
		cmocka_unit_test(test_a_get_on_an_rpc_route_is_405_with_allow_post),
		cmocka_unit_test(test_a_content_type_other_than_json_or_proto_is_415),
		cmocka_unit_test(test_malformed_json_is_400_naming_the_line_and_column_or_the_field),
		cmocka_unit_test(test_a_body_over_max_message_bytes_is_413_resource_exhausted),
		cmocka_unit_test(test_a_malformed_request_line_or_header_is_400_and_closes_the_connection),
		cmocka_unit_test(test_a_request_head_over_16_kib_is_431),
		cmocka_unit_test(test_a_client_that_stops_mid_request_gets_408_after_the_read_timeout),
		cmocka_unit_test(test_a_client_still_sending_at_the_read_timeout_is_read_on_after_the_408),
		cmocka_unit_test(test_a_client_that_trickles_its_head_is_cut_off_too),
		cmocka_unit_test(test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout),
		cmocka_unit_test(test_one_connection_over_the_cap_gets_503_and_is_closed),
		cmocka_unit_test(test_pipelined_requests_on_one_connection_are_answered_in_order),
		cmocka_unit_test(test_an_http_1_0_request_is_answered_and_the_connection_closed),
		cmocka_unit_test(test_expect_100_continue_and_chunked_bodies_are_served),
		cmocka_unit_test(test_concurrent_http_calls_each_get_their_own_reply),
		cmocka_unit_test(test_several_http_urls_all_serve),
		cmocka_unit_test(test_an_https_url_serves_calls_with_the_tls_certificate),
		cmocka_unit_test(test_healthz_is_200_ok),
		cmocka_unit_test(test_metrics_parse_as_prometheus_text_with_every_family),
		cmocka_unit_test(test_metrics_count_nng_and_http_calls_on_one_path),
		cmocka_unit_test(test_a_client_that_hangs_up_mid_call_does_not_hurt_the_server),
		cmocka_unit_test(test_sse_resumes_after_last_event_id_with_nothing_lost_or_repeated),
		cmocka_unit_test(test_a_live_sse_subscriber_sees_messages_appended_after_it_connected),
		cmocka_unit_test(test_a_live_sse_stream_delivers_what_is_appended_right_after_its_200),
		cmocka_unit_test(test_sse_replays_a_backlog_longer_than_one_replay_page),
		cmocka_unit_test(test_an_sse_client_that_never_reads_does_not_stall_other_subscribers),
		cmocka_unit_test(test_sse_sends_keepalive_comments_on_an_idle_topic),
		cmocka_unit_test(test_an_sse_client_resuming_into_a_wholly_trimmed_log_gets_data_loss),
		cmocka_unit_test(test_a_malformed_after_seq_or_last_event_id_is_400),
		cmocka_unit_test(test_a_browser_request_from_another_site_is_refused_403),
		cmocka_unit_test(test_an_allowed_origin_gets_cors_headers_and_its_preflight_answered),
		cmocka_unit_test(test_a_malformed_allowed_origin_stops_rpcqd_at_start),
		cmocka_unit_test(test_a_message_appended_once_is_seen_on_both_processes_streams),
		cmocka_unit_test(test_buf_curl_calls_echo_over_connect_and_reads_an_error),
		cmocka_unit_test(test_http_can_be_turned_off_and_nng_calls_still_work),
		cmocka_unit_test(test_readyz_is_503_while_draining_and_the_call_in_flight_finishes),
		cmocka_unit_test(test_readyz_is_503_busy_while_every_worker_is_held),
		cmocka_unit_test(test_readyz_is_503_while_the_database_is_down_and_200_when_it_returns),
	};
	int failed = cmocka_run_group_tests(tests, setup_all, teardown_all);
	nng_fini();
	return failed;
}
