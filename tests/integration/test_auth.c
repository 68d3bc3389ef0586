/*
 * Access control as callers and operators meet it: keys made by `rpcqd keys`
 * on a real PostgreSQL, two rpcqd processes on it, calls over nng (librpcq)
 * and over HTTP (libcurl), the rpcq command, streams, TLS with a CA of the
 * test's own. Every kind of key a caller may present (none, malformed,
 * unknown, wrong secret, revoked, expired, each scope) against methods of
 * every kind (reads, a chunked upload that is a read, writes, the open
 * health check, a method nobody serves), with the exact status each gets.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/rpcq.h>
#include <rpcq/stream.h>

#include "harness.h"
#include "rpcq/health.pb-c.h"

#define RPCQD_TIMEOUT_MS 30000

static harness_pg pg;
static harness_server srv;  /* --auth auto */
static harness_server srv2; /* the same database */

/* The keys of the matrix, by what they may do. */
enum { K_ALL, K_READ, K_VESTING, K_ISSUER, K_MULTI, K_REVOKED, K_EXPIRED, NKEYS };
static const char *const key_names[NKEYS] = {"all", "reader", "vesting", "issuer", "multi", "gone", "old"};
static const char *const key_scopes[NKEYS] = {"*",
					      "read",
					      "rpcq.vesting.*",
					      "rpcq.vouchers.VoucherService/IssueVouchers",
					      "read,rpcq.vouchers.VoucherService/IssueVouchers",
					      "*",
					      "*"};
static char keys[NKEYS][128];

static const char *rpcqd_path(void)
{
	const char *p = getenv("RPCQD");
	if (p == NULL || access(p, X_OK) != 0)
		fail_msg("RPCQD (%s) is not an executable rpcqd", p ? p : "unset");
	return p;
}

/* `rpcqd keys ARGS... --database <pg>`; returns the exit status. */
static int keys_cmd(const harness_pg *db, const char *const *args, char **out, char **err)
{
	const char *argv[24];
	int n = 0;
	argv[n++] = rpcqd_path();
	argv[n++] = "keys";
	for (int i = 0; args[i] && n < 20; i++)
		argv[n++] = args[i];
	argv[n++] = "--database";
	argv[n++] = db->conninfo;
	argv[n] = NULL;
	return harness_run(argv, NULL, out, err, RPCQD_TIMEOUT_MS);
}

/* Creates a key and returns it (static buffer copied by the caller). */
static void create_key(const harness_pg *db, const char *name, const char *scopes, const char *extra1,
		       const char *extra2, char *key, size_t n)
{
	const char *args[] = {"create", name, "--scope", scopes, extra1, extra2, NULL};
	char *out = NULL, *err = NULL;
	int rc = keys_cmd(db, args, &out, &err);
	if (rc != 0)
		fail_msg("rpcqd keys create %s exited %d: %s", name, rc, err);
	out[strcspn(out, "\n")] = '\0';
	if (strlen(out) != 57 || strncmp(out, "rpcq_", 5) != 0)
		fail_msg("rpcqd keys create printed \"%s\", not a key", out);
	/* The key is on stdout only: stderr (for people) names its prefix. */
	if (strstr(err, out + 14) != NULL)
		fail_msg("the key's secret is on stderr: %s", err);
	snprintf(key, n, "%s", out);
	free(out);
	free(err);
}

static void revoke_key(const harness_pg *db, const char *which)
{
	const char *args[] = {"revoke", which, NULL};
	char *err = NULL;
	int rc = keys_cmd(db, args, NULL, &err);
	if (rc != 0)
		fail_msg("rpcqd keys revoke %s exited %d: %s", which, rc, err);
	free(err);
}

static int setup_all(void **state)
{
	(void)state;
	unsetenv("RPCQ_API_KEY");
	harness_pg_start(&pg);
	assert_int_equal(harness_migrate(&pg), 0);
	for (int i = 0; i < NKEYS; i++)
		create_key(&pg, key_names[i], key_scopes[i], i == K_EXPIRED ? "--expires" : NULL, "1d", keys[i],
			   sizeof(keys[i]));
	revoke_key(&pg, "gone");
	harness_sql(pg.conninfo, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = 'old'");
	harness_server_start(&srv, &pg, NULL);
	harness_server_start(&srv2, &pg, NULL);
	return 0;
}

static int teardown_all(void **state)
{
	/* An rpcqd that does not exit 0 (a leak under ASan) fails the group. */
	int bad = srv.pid > 0 && harness_server_stop(&srv) != 0;
	bad |= srv2.pid > 0 && harness_server_stop(&srv2) != 0;
	harness_pg_stop(&pg);
	return harness_teardown(state) != 0 || bad ? -1 : 0;
}

static rpcq_client *client_for(const char *url)
{
	rpcq_client_options o = {.servers = url, .timeout_ms = 10000, .max_retries = -1, .api_key = ""};
	rpcq_client *c = NULL;
	rpcq_error err;
	if (rpcq_client_create(&c, &o, &err) != RPCQ_OK)
		fail_msg("client: %s", err.message);
	return c;
}

/* A call of method with an empty input and the authorization value given
 * (NULL: none). Returns the status; msg gets the message. */
static rpcq_status call_with(rpcq_client *c, const char *method, const char *authorization, char *msg, size_t n)
{
	const char *md[] = {"authorization", authorization, NULL};
	rpcq_call_options co = {.metadata = authorization ? md : NULL};
	void *out = NULL;
	size_t len = 0;
	rpcq_error err;
	rpcq_status st = rpcq_call_raw(c, method, "", 0, &out, &len, &co, &err);
	rpcq_free(out);
	if (msg)
		snprintf(msg, n, "%s", st == RPCQ_OK ? "" : err.message);
	return st;
}

/* Waits (at most 5 s) until the server behind c knows a new key. */
static void wait_key_loaded(rpcq_client *c, const char *value)
{
	int64_t until = harness_now_ms() + 5000;
	while (call_with(c, "/rpcq.Health/Echo", value, NULL, 0) == RPCQ_UNAUTHENTICATED) {
		if (harness_now_ms() > until)
			fail_msg("the new key was not loaded in 5 s");
		harness_sleep_ms(20);
	}
}

/* Polls Echo with authorization value (NULL: none) until it answers want,
 * failing the test with what if that takes more than a second: a change
 * of keys must reach every rpcqd that fast. */
static void within_a_second(rpcq_client *c, const char *value, rpcq_status want, const char *what)
{
	int64_t until = harness_now_ms() + 1000;
	while (call_with(c, "/rpcq.Health/Echo", value, NULL, 0) != want) {
		if (harness_now_ms() > until)
			fail_msg("%s", what);
		harness_sleep_ms(10);
	}
}

static char bearer[NKEYS][160];

static const char *bearer_of(int k)
{
	snprintf(bearer[k], sizeof(bearer[k]), "Bearer %.57s", keys[k]);
	return bearer[k];
}

/* What each method is, and which keys may call it. */
struct method {
	const char *name;
	int allowed[NKEYS]; /* K_ALL .. K_MULTI; revoked and expired never */
};

static const struct method methods[] = {
	{"/rpcq.Health/Echo", {[K_ALL] = 1, [K_READ] = 1, [K_MULTI] = 1}},
	{"/rpcq.Reflection/ListServices", {[K_ALL] = 1, [K_READ] = 1, [K_MULTI] = 1}},
	{"/rpcq.Streams/Replay", {[K_ALL] = 1, [K_READ] = 1, [K_MULTI] = 1}},
	{"/rpcq.vesting.VestingService/ListLedgers", {[K_ALL] = 1, [K_READ] = 1, [K_VESTING] = 1, [K_MULTI] = 1}},
	/* A schedule's chunked upload is a read, although its .proto says IDEMPOTENT. */
	{"/rpcq.vesting.VestingService/Upload", {[K_ALL] = 1, [K_READ] = 1, [K_VESTING] = 1, [K_MULTI] = 1}},
	{"/rpcq.vesting.VestingService/AppendEvents", {[K_ALL] = 1, [K_VESTING] = 1}},
	{"/rpcq.vouchers.VoucherService/IssueVouchers", {[K_ALL] = 1, [K_ISSUER] = 1, [K_MULTI] = 1}},
	{"/rpcq.vouchers.VoucherService/CountUnused", {[K_ALL] = 1, [K_READ] = 1, [K_MULTI] = 1}},
	{"/rpcq.billing.BillingService/RecordPayment", {[K_ALL] = 1}},
	{"/rpcq.events.EventService/Sync", {[K_ALL] = 1}},
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

/* The presentations that are no valid key, and the one message all but
 * the first two share. */
struct bad {
	const char *what;
	char value[160];
} bads[6];

static void make_bads(void)
{
	snprintf(bads[0].value, sizeof(bads[0].value), "%s", "");
	bads[0].what = "no key";
	snprintf(bads[1].value, sizeof(bads[1].value), "Basic dXNlcjpwYXNz");
	bads[1].what = "malformed";
	snprintf(bads[2].value, sizeof(bads[2].value), "Bearer rpcq_00000000_%.43s", keys[K_ALL] + 14);
	bads[2].what = "unknown";
	/* The all key's prefix with another key's secret. */
	snprintf(bads[3].value, sizeof(bads[3].value), "Bearer %.14s%.43s", keys[K_ALL], keys[K_READ] + 14);
	bads[3].what = "wrong secret";
	snprintf(bads[4].value, sizeof(bads[4].value), "Bearer %.57s", keys[K_REVOKED]);
	bads[4].what = "revoked";
	snprintf(bads[5].value, sizeof(bads[5].value), "Bearer %.57s", keys[K_EXPIRED]);
	bads[5].what = "expired";
}

/* No message may carry a secret. */
static void assert_no_secret(const char *text, const char *where)
{
	for (int k = 0; k < NKEYS; k++)
		if (strstr(text, keys[k] + 14) != NULL)
			fail_msg("%s holds the secret of key %s: %s", where, key_names[k], text);
}

static void test_every_key_against_every_method_over_nng(void **state)
{
	(void)state;
	make_bads();
	rpcq_client *c = client_for(srv.rpc_url);
	char msg[512], invalid_msg[512] = "";
	for (size_t m = 0; m < NMETHODS; m++) {
		/* What the method answers a caller it lets in (an empty input). */
		rpcq_status passed = call_with(c, methods[m].name, bearer_of(K_ALL), msg, sizeof(msg));
		if (passed == RPCQ_UNAUTHENTICATED || passed == RPCQ_PERMISSION_DENIED)
			fail_msg("%s refused the * key: %s", methods[m].name, msg);
		for (int k = K_ALL; k <= K_MULTI; k++) {
			rpcq_status st = call_with(c, methods[m].name, bearer_of(k), msg, sizeof(msg));
			rpcq_status want = methods[m].allowed[k] ? passed : RPCQ_PERMISSION_DENIED;
			if (st != want)
				fail_msg("%s with key %s (%s): %s (%s), wanted %s", methods[m].name, key_names[k],
					 key_scopes[k], rpcq_status_name(st), msg, rpcq_status_name(want));
			if (st == RPCQ_PERMISSION_DENIED && strstr(msg, methods[m].name) == NULL)
				fail_msg("the refusal does not name the method: %s", msg);
			assert_no_secret(msg, "an error message");
		}
		for (size_t b = 0; b < 6; b++) {
			rpcq_status st = call_with(c, methods[m].name, b == 0 ? NULL : bads[b].value, msg, sizeof(msg));
			if (st != RPCQ_UNAUTHENTICATED)
				fail_msg("%s with %s: %s (%s), wanted UNAUTHENTICATED", methods[m].name, bads[b].what,
					 rpcq_status_name(st), msg);
			assert_no_secret(msg, "an error message");
			/* Unknown, wrong secret, revoked, expired: one answer, so
			 * that nobody learns whether a key exists. */
			if (b >= 2) {
				if (invalid_msg[0] == '\0')
					snprintf(invalid_msg, sizeof(invalid_msg), "%s", msg);
				else if (strcmp(invalid_msg, msg) != 0)
					fail_msg("%s (%s) differs from \"%s\"", bads[b].what, msg, invalid_msg);
			}
		}
	}
	/* Health and readiness stay open, even to a key that is no key. */
	for (size_t b = 0; b < 6; b++)
		assert_int_equal(call_with(c, "/rpcq.Health/Check", b == 0 ? NULL : bads[b].value, NULL, 0), RPCQ_OK);
	/* A method nobody serves: the key first, then UNIMPLEMENTED. */
	assert_int_equal(call_with(c, "/rpcq.Nope/Nothing", NULL, NULL, 0), RPCQ_UNAUTHENTICATED);
	assert_int_equal(call_with(c, "/rpcq.Nope/Nothing", bads[2].value, NULL, 0), RPCQ_UNAUTHENTICATED);
	assert_int_equal(call_with(c, "/rpcq.Nope/Nothing", bearer_of(K_READ), NULL, 0), RPCQ_UNIMPLEMENTED);
	rpcq_client_destroy(c);
}

/* An HTTP call of /rpc/<method> with "{}" and the Authorization given. */
static long http_call(const harness_server *s, const char *method, const char *authorization, harness_http_reply *r)
{
	char url[256], auth[200];
	snprintf(url, sizeof(url), "%s/rpc%s", s->http_url, method);
	snprintf(auth, sizeof(auth), "Authorization: %s", authorization ? authorization : "");
	const char *h[] = {"Content-Type: application/json", authorization ? auth : NULL, NULL};
	if (harness_http("POST", url, h, "{}", 2, r) != 0)
		fail_msg("POST %s: %s", url, r->error);
	return r->status;
}

static void test_every_key_against_every_method_over_http(void **state)
{
	(void)state;
	make_bads();
	for (size_t m = 0; m < NMETHODS; m++) {
		harness_http_reply r;
		long passed = http_call(&srv, methods[m].name, bearer_of(K_ALL), &r);
		harness_http_reply_free(&r);
		if (passed == 401 || passed == 403)
			fail_msg("%s over HTTP refused the * key", methods[m].name);
		for (int k = K_ALL; k <= K_MULTI; k++) {
			long st = http_call(&srv, methods[m].name, bearer_of(k), &r);
			long want = methods[m].allowed[k] ? passed : 403;
			if (st != want)
				fail_msg("POST /rpc%s with key %s: %ld, wanted %ld: %s", methods[m].name, key_names[k],
					 st, want, r.body);
			if (st == 403 && strstr(r.body, "\"code\":\"permission_denied\"") == NULL)
				fail_msg("403 body: %s", r.body);
			assert_no_secret(r.body, "a reply");
			harness_http_reply_free(&r);
		}
		for (size_t b = 0; b < 6; b++) {
			long st = http_call(&srv, methods[m].name, b == 0 ? NULL : bads[b].value, &r);
			if (st != 401)
				fail_msg("POST /rpc%s with %s: %ld, wanted 401: %s", methods[m].name, bads[b].what, st,
					 r.body);
			const char *www = harness_http_header(&r, "WWW-Authenticate");
			if (www == NULL || strncmp(www, "Bearer", 6) != 0)
				fail_msg("401 without WWW-Authenticate: Bearer (%s)", www ? www : "absent");
			if (strstr(r.body, "\"code\":\"unauthenticated\"") == NULL)
				fail_msg("401 body: %s", r.body);
			assert_no_secret(r.body, "a reply");
			harness_http_reply_free(&r);
		}
	}
	/* The probes stay open. */
	const char *probes[] = {"/healthz", "/readyz"};
	for (int i = 0; i < 2; i++) {
		char url[256];
		snprintf(url, sizeof(url), "%s%s", srv.http_url, probes[i]);
		harness_http_reply r;
		assert_int_equal(harness_http("GET", url, NULL, NULL, 0, &r), 0);
		assert_int_equal(r.status, 200);
		harness_http_reply_free(&r);
	}
}

/* GET or POST on a gateway route with the Authorization given. */
static long route(const char *method, const char *path, const char *authorization, const char *ctype, const char *body,
		  harness_http_reply *r)
{
	char url[300], auth[200], ct[100];
	snprintf(url, sizeof(url), "%s%s", srv.http_url, path);
	snprintf(auth, sizeof(auth), "Authorization: %s", authorization ? authorization : "");
	snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "");
	const char *h[3] = {NULL, NULL, NULL};
	int n = 0;
	if (authorization)
		h[n++] = auth;
	if (ctype)
		h[n++] = ct;
	if (harness_http(method, url, h, body, body ? strlen(body) : 0, r) != 0)
		fail_msg("%s %s: %s", method, path, r->error);
	return r->status;
}

static void test_the_gateway_s_own_routes_check_the_caller_s_key(void **state)
{
	(void)state;
	harness_http_reply r;
	/* GET /search: the spec's error shape, with 401 and 403. */
	assert_int_equal(route("GET", "/search", NULL, NULL, NULL, &r), 401);
	assert_non_null(strstr(r.body, "\"error\":{\"code\":\"unauthenticated\""));
	harness_http_reply_free(&r);
	assert_int_equal(route("GET", "/search", bearer_of(K_ISSUER), NULL, NULL, &r), 403);
	assert_non_null(strstr(r.body, "\"error\":{\"code\":\"permission_denied\""));
	harness_http_reply_free(&r);
	assert_int_equal(route("GET", "/search", bearer_of(K_READ), NULL, NULL, &r), 200);
	harness_http_reply_free(&r);

	/* POST /billing/imports: refused before anything is stored. */
	const char *csv = "name,governmentId,email,debtAmount,debtDueDate,debtId\n";
	assert_int_equal(route("POST", "/billing/imports", NULL, "text/csv", csv, &r), 401);
	harness_http_reply_free(&r);
	assert_int_equal(route("POST", "/billing/imports", bearer_of(K_READ), "text/csv", csv, &r), 403);
	harness_http_reply_free(&r);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 0);
	assert_int_equal(route("POST", "/billing/imports", bearer_of(K_ALL), "text/csv", csv, &r), 201);
	harness_http_reply_free(&r);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 1);
	long long id = harness_sql_scalar(pg.conninfo, "SELECT max(id) FROM billing_imports");
	char path[64];
	snprintf(path, sizeof(path), "/billing/imports/%lld", id);
	assert_int_equal(route("GET", path, NULL, NULL, NULL, &r), 401);
	harness_http_reply_free(&r);
	assert_int_equal(route("GET", path, bearer_of(K_READ), NULL, NULL, &r), 200);
	harness_http_reply_free(&r);
	/* POST /billing/imports/<id> (resuming it) takes ImportChunk's scope. */
	assert_int_equal(route("POST", path, NULL, "text/csv", csv, &r), 401);
	harness_http_reply_free(&r);
	assert_int_equal(route("POST", path, bearer_of(K_READ), "text/csv", csv, &r), 403);
	harness_http_reply_free(&r);
	assert_int_equal(route("POST", path, bearer_of(K_ALL), "text/csv", csv, &r), 200);
	harness_http_reply_free(&r);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 1);

	/* /streams: refused with the status before the stream starts. */
	assert_int_equal(route("GET", "/streams/billing.imports", NULL, NULL, NULL, &r), 401);
	harness_http_reply_free(&r);
	assert_int_equal(route("GET", "/streams/billing.imports", bearer_of(K_VESTING), NULL, NULL, &r), 403);
	harness_http_reply_free(&r);
	char url[300], auth[200];
	snprintf(url, sizeof(url), "%s/streams/billing.imports", srv.http_url);
	snprintf(auth, sizeof(auth), "Authorization: %s", bearer_of(K_READ));
	const char *h[] = {auth, NULL};
	harness_sse *s = harness_sse_open(url, h, 5000);
	assert_int_equal(harness_sse_status(s), 200);
	harness_sse_close(s);
}

/* `rpcq subscribe` with a key, on its own thread: exits once the key stops
 * working. */
struct cli_subscriber {
	const char *url, *key;
	int rc;
	char *out, *err;
};

static void *cli_subscriber_run(void *arg)
{
	struct cli_subscriber *cs = arg;
	const char *args[] = {"--api-key", cs->key, "subscribe", "billing.imports", NULL};
	cs->rc = harness_cli(cs->url, args, NULL, &cs->out, &cs->err);
	return NULL;
}

static void test_a_revoked_key_stops_on_the_other_process_within_a_second(void **state)
{
	(void)state;
	char key[128], value[160];
	create_key(&pg, "temp", "read", NULL, NULL, key, sizeof(key));
	snprintf(value, sizeof(value), "Bearer %.57s", key);
	rpcq_client *c = client_for(srv2.rpc_url);
	/* The new key reaches the other process by itself. */
	wait_key_loaded(c, value);
	assert_int_equal(call_with(c, "/rpcq.Health/Echo", value, NULL, 0), RPCQ_OK);
	/* A stream with the key, open on the second process. */
	char url[300], auth[200];
	snprintf(url, sizeof(url), "%s/streams/billing.imports", srv2.http_url);
	snprintf(auth, sizeof(auth), "Authorization: %s", value);
	const char *h[] = {auth, NULL};
	harness_sse *s = harness_sse_open(url, h, 5000);
	assert_int_equal(harness_sse_status(s), 200);
	/* And `rpcq subscribe` with it. */
	struct cli_subscriber cs = {.url = srv2.rpc_url, .key = key};
	pthread_t sub;
	assert_int_equal(pthread_create(&sub, NULL, cli_subscriber_run, &cs), 0);
	nng_msleep(1500);

	revoke_key(&pg, "temp");
	within_a_second(c, value, RPCQ_UNAUTHENTICATED, "the revoked key still worked on the second rpcqd after 1 s");
	/* The stream ends with an error event (the timer checks every second). */
	harness_sse_event ev;
	int got = 0;
	while ((got = harness_sse_next(s, 5000, &ev)) == 1) {
		int is_error = strcmp(ev.event, "error") == 0;
		if (is_error)
			assert_non_null(strstr(ev.data, "\"code\":\"unauthenticated\""));
		harness_sse_event_free(&ev);
		if (is_error)
			break;
	}
	if (got != 1)
		fail_msg("the stream of a revoked key did not end with an error event (%d)", got);
	assert_int_equal(harness_sse_next(s, 5000, &ev), -1);
	harness_sse_close(s);
	rpcq_client_destroy(c);
	/* The subscriber exits 1 (no retrying a key that is not valid). */
	pthread_join(sub, NULL);
	if (cs.rc != 1 || strstr(cs.err, "UNAUTHENTICATED") == NULL)
		fail_msg("rpcq subscribe with a revoked key: exit %d: %s", cs.rc, cs.err);
	free(cs.out);
	free(cs.err);
	/* The other process logged the change. */
	char *log = harness_read_file(srv2.log_path, NULL);
	assert_non_null(strstr(log, "auth: key temp (rpcq_"));
	assert_non_null(strstr(log, ") changed: revoked"));
	free(log);
}

static void test_rate_limits_allow_the_burst_then_refill(void **state)
{
	(void)state;
	char key[128], value[160], msg[512];
	create_key(&pg, "limited", "*", "--rate", "5", key, sizeof(key)); /* burst: the rate, 5 */
	snprintf(value, sizeof(value), "Bearer %.57s", key);
	rpcq_client *c = client_for(srv.rpc_url);
	/* Once the key is loaded, let its bucket fill again. */
	wait_key_loaded(c, value);
	harness_sleep_ms(1200);
	int ok = 0;
	rpcq_status st;
	while ((st = call_with(c, "/rpcq.Health/Echo", value, msg, sizeof(msg))) == RPCQ_OK)
		ok++;
	assert_int_equal(st, RPCQ_RESOURCE_EXHAUSTED);
	/* The burst, and perhaps a token refilled while they ran. */
	if (ok < 5 || ok > 6)
		fail_msg("%d calls passed before the limit, wanted the burst of 5", ok);
	const char *in = strstr(msg, "retry in ");
	assert_non_null(in);
	long retry = strtol(in + 9, NULL, 10);
	if (retry < 1 || retry > 200)
		fail_msg("retry in %ld ms, wanted at most one token's 200 ms: %s", retry, msg);
	harness_sleep_ms((int)retry + 20);
	assert_int_equal(call_with(c, "/rpcq.Health/Echo", value, NULL, 0), RPCQ_OK);

	/* Over HTTP: 429 with Retry-After in whole seconds. */
	harness_http_reply r;
	long code;
	while ((code = http_call(&srv, "/rpcq.Health/Echo", value, &r)) == 200)
		harness_http_reply_free(&r);
	assert_int_equal(code, 429);
	const char *ra = harness_http_header(&r, "Retry-After");
	if (ra == NULL || strcmp(ra, "1") != 0)
		fail_msg("Retry-After: %s, wanted 1", ra ? ra : "(absent)");
	assert_non_null(strstr(r.body, "\"code\":\"resource_exhausted\""));
	harness_http_reply_free(&r);

	/* A stream open for seconds takes no token after its start (it is
	 * checked every second, not charged): the key's calls keep their
	 * budget of one a second. */
	char slow[128], slow_value[160];
	create_key(&pg, "slow", "read", "--rate", "1", slow, sizeof(slow));
	snprintf(slow_value, sizeof(slow_value), "Bearer %.57s", slow);
	wait_key_loaded(c, slow_value);
	harness_sleep_ms(1100);
	char url[300], auth[200];
	snprintf(url, sizeof(url), "%s/streams/billing.imports", srv.http_url);
	snprintf(auth, sizeof(auth), "Authorization: %s", slow_value);
	const char *h[] = {auth, NULL};
	harness_sse *s = harness_sse_open(url, h, 5000);
	assert_int_equal(harness_sse_status(s), 200);
	harness_sleep_ms(3200);
	assert_int_equal(call_with(c, "/rpcq.Health/Echo", slow_value, msg, sizeof(msg)), RPCQ_OK);
	harness_sse_close(s);
	rpcq_client_destroy(c);
}

struct hammer {
	rpcq_client *c;
	const char *value;
	int ok, limited, other;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	for (int i = 0; i < 150; i++) {
		rpcq_status st = call_with(h->c, "/rpcq.Health/Echo", h->value, NULL, 0);
		if (st == RPCQ_OK)
			h->ok++;
		else if (st == RPCQ_RESOURCE_EXHAUSTED)
			h->limited++;
		else {
			h->other++; /* the server is gone: say so, do not wait out 150 timeouts */
			break;
		}
	}
	return NULL;
}

/* Eight callers on one key share its budget: never more than the burst
 * plus the rate over the time they ran, however the workers interleave. */
static void test_callers_on_many_threads_share_one_key_s_budget(void **state)
{
	(void)state;
	char key[128], value[160];
	create_key(&pg, "shared", "read", "--rate", "50", key, sizeof(key));
	snprintf(value, sizeof(value), "Bearer %.57s", key);
	rpcq_client *c = client_for(srv.rpc_url);
	wait_key_loaded(c, value);
	harness_sleep_ms(1100); /* the bucket full again: 50 */
	struct hammer h[8];
	pthread_t t[8];
	int64_t start = harness_now_ms();
	for (int i = 0; i < 8; i++) {
		h[i] = (struct hammer){.c = c, .value = value};
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	int ok = 0, limited = 0, other = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		ok += h[i].ok;
		limited += h[i].limited;
		other += h[i].other;
	}
	double seconds = (double)(harness_now_ms() - start) / 1000.0;
	assert_int_equal(other, 0);
	assert_int_equal(ok + limited, 8 * 150);
	double most = 50 + 50 * seconds + 1;
	if ((double)ok > most)
		fail_msg("%d calls passed in %.2f s, more than the burst and rate allow (%.0f)", ok, seconds, most);
	assert_true(ok >= 50);
	assert_true(limited > 0);
	rpcq_client_destroy(c);
}

static double median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A wrong secret for a key that exists costs the server what an unknown
 * key costs: the two are timed alternately, many times, and their medians
 * compared with a generous bound (the point is no measurable lookup
 * shortcut, not a benchmark). */
static void test_a_wrong_secret_takes_as_long_as_an_unknown_key(void **state)
{
	(void)state;
	make_bads();
	rpcq_client *c = client_for(srv.rpc_url);
	enum { N = 300 };
	static double wrong[N], unknown[N];
	for (int i = 0; i < 20; i++) /* warm up connections and caches */
		(void)call_with(c, "/rpcq.Health/Echo", bads[2 + (i & 1)].value, NULL, 0);
	for (int i = 0; i < N; i++) {
		for (int which = 0; which < 2; which++) {
			struct timespec a, b;
			int first = (i + which) & 1; /* alternate which goes first */
			clock_gettime(CLOCK_MONOTONIC, &a);
			rpcq_status st = call_with(c, "/rpcq.Health/Echo", bads[first ? 3 : 2].value, NULL, 0);
			clock_gettime(CLOCK_MONOTONIC, &b);
			assert_int_equal(st, RPCQ_UNAUTHENTICATED);
			double us = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
			(first ? wrong : unknown)[i] = us;
		}
	}
	double mw = median(wrong, N), mu = median(unknown, N);
	double diff = fabs(mw - mu), bound = fmax(0.3 * fmin(mw, mu), 100.0);
	print_message("median call: wrong secret %.1f us, unknown key %.1f us\n", mw, mu);
	if (diff > bound)
		fail_msg("wrong secret %.1f us vs unknown key %.1f us: %.1f us apart (bound %.1f)", mw, mu, diff,
			 bound);
	rpcq_client_destroy(c);
}

static void test_the_client_option_the_cli_flag_and_the_environment_send_the_key(void **state)
{
	(void)state;
	/* librpcq's api_key option. */
	rpcq_client_options o = {.servers = srv.rpc_url, .timeout_ms = 10000, .api_key = keys[K_READ]};
	rpcq_client *c = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_client_create(&c, &o, &err), RPCQ_OK);
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT, *out = NULL;
	assert_int_equal(rpcq_health_echo(c, &in, &out, NULL, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rpcq_client_destroy(c);

	char *sout = NULL, *serr = NULL;
	const char *no_key[] = {"list", NULL};
	assert_int_equal(harness_cli(srv.rpc_url, no_key, NULL, &sout, &serr), 1);
	assert_non_null(strstr(serr, "UNAUTHENTICATED"));
	free(sout);
	free(serr);
	const char *flag[] = {"--api-key", keys[K_READ], "list", NULL};
	assert_int_equal(harness_cli(srv.rpc_url, flag, NULL, &sout, &serr), 0);
	assert_non_null(strstr(sout, "rpcq.vouchers.VoucherService"));
	free(sout);
	free(serr);
	/* A metadata key is a key whatever its case, as an HTTP header's name:
	 * "Authorization" carries the key, and "X-Request-Id" is the request
	 * id, not a second pair beside a generated one. */
	char auth_header[200];
	snprintf(auth_header, sizeof(auth_header), "Authorization=Bearer %s", keys[K_READ]);
	const char *header[] = {"--header", auth_header, "list", NULL};
	if (harness_cli(srv.rpc_url, header, NULL, &sout, &serr) != 0)
		fail_msg("rpcq --header Authorization=Bearer KEY list: %s", serr);
	free(sout);
	free(serr);
	const char *rid[] = {"--header",
			     auth_header,
			     "--header",
			     "X-Request-Id=Abc-123",
			     "call",
			     "rpcq.Health/Echo",
			     "{\"echoMetadata\":true}",
			     NULL};
	if (harness_cli(srv.rpc_url, rid, NULL, &sout, &serr) != 0)
		fail_msg("rpcq call with X-Request-Id: %s", serr);
	if (strstr(sout, "x-request-id") == NULL || strstr(sout, "Abc-123") == NULL ||
	    strstr(sout, "X-Request-Id") != NULL || strstr(sout, "authorization") != NULL)
		fail_msg("Echo of X-Request-Id (the id, lowercase, once; the key never): %s", sout);
	free(sout);
	free(serr);
	setenv("RPCQ_API_KEY", keys[K_READ], 1);
	assert_int_equal(harness_cli(srv.rpc_url, no_key, NULL, &sout, &serr), 0);
	free(sout);
	free(serr);
	/* A write the key's scopes do not cover. */
	const char *issue[] = {"vouchers", "issue", "--customer", "c1", "--quantity", "1", NULL};
	assert_int_equal(harness_cli(srv.rpc_url, issue, NULL, &sout, &serr), 1);
	assert_non_null(strstr(serr, "PERMISSION_DENIED"));
	free(sout);
	free(serr);
	/* Never over plain TCP to a host that is not loopback (refused before
	 * any connection is tried). */
	const char *health[] = {"health", NULL};
	assert_int_equal(harness_cli("tcp://192.0.2.1:7400", health, NULL, &sout, &serr), 1);
	assert_non_null(strstr(serr, "refusing to send an API key over plain tcp://192.0.2.1:7400"));
	assert_no_secret(serr, "the CLI's refusal");
	free(sout);
	free(serr);
	unsetenv("RPCQ_API_KEY");
	/* rpcq subscribe's Topics and Replay calls carry the key too (the
	 * gateway test's upload left progress messages on billing.imports.*). */
	const char *sub_nokey[] = {"subscribe", "--from-seq", "0", "--count", "1", "billing.imports", NULL};
	assert_int_equal(harness_cli(srv.rpc_url, sub_nokey, NULL, &sout, &serr), 1);
	assert_non_null(strstr(serr, "UNAUTHENTICATED"));
	free(sout);
	free(serr);
	const char *sub[] = {"--api-key", keys[K_READ], "subscribe",	   "--from-seq", "0",
			     "--count",	  "1",		"billing.imports", NULL};
	int rc = harness_cli(srv.rpc_url, sub, NULL, &sout, &serr);
	if (rc != 0 || strstr(sout, "\"topic\":\"billing.imports.") == NULL)
		fail_msg("rpcq subscribe with a key: exit %d: %s%s", rc, sout, serr);
	free(sout);
	free(serr);
	/* ... and the --header pairs, a key among them, as every command's. */
	const char *sub_header[] = {"--header", auth_header, "subscribe",	"--from-seq", "0",
				    "--count",	"1",	     "billing.imports", NULL};
	rc = harness_cli(srv.rpc_url, sub_header, NULL, &sout, &serr);
	if (rc != 0 || strstr(sout, "\"topic\":\"billing.imports.") == NULL)
		fail_msg("rpcq --header authorization=... subscribe: exit %d: %s%s", rc, sout, serr);
	free(sout);
	free(serr);
}

static void test_auth_modes_off_on_and_auto(void **state)
{
	(void)state;
	rpcq_client *c;
	/* --auth off on a database with keys: anyone calls anything. */
	const char *off[] = {"--auth", "off", NULL};
	harness_server s;
	harness_server_start(&s, &pg, off);
	c = client_for(s.rpc_url);
	assert_int_equal(call_with(c, "/rpcq.Health/Echo", NULL, NULL, 0), RPCQ_OK);
	rpcq_client_destroy(c);
	assert_int_equal(harness_server_stop(&s), 0);
	char *log = harness_read_file(s.log_path, NULL);
	assert_non_null(strstr(log, "auth: off (--auth off)"));
	free(log);

	/* A database without keys: auto lets everyone in, on nobody but the
	 * health check, and auto turns on as soon as a key is made. */
	harness_sql(pg.conninfo, "CREATE DATABASE nokeys");
	harness_pg fresh = pg;
	snprintf(fresh.conninfo, sizeof(fresh.conninfo), "%.400s dbname=nokeys", pg.conninfo);
	assert_int_equal(harness_migrate(&fresh), 0);
	const char *on[] = {"--auth", "on", NULL};
	harness_server s_on, s_auto;
	harness_server_start(&s_on, &fresh, on);
	harness_server_start(&s_auto, &fresh, NULL);
	c = client_for(s_on.rpc_url);
	assert_int_equal(call_with(c, "/rpcq.Health/Echo", NULL, NULL, 0), RPCQ_UNAUTHENTICATED);
	assert_int_equal(call_with(c, "/rpcq.Health/Check", NULL, NULL, 0), RPCQ_OK);
	rpcq_client_destroy(c);
	c = client_for(s_auto.rpc_url);
	assert_int_equal(call_with(c, "/rpcq.Health/Echo", NULL, NULL, 0), RPCQ_OK);
	char key[128], value[160];
	create_key(&fresh, "first", "read", NULL, NULL, key, sizeof(key));
	snprintf(value, sizeof(value), "Bearer %.57s", key);
	within_a_second(c, NULL, RPCQ_UNAUTHENTICATED,
			"--auth auto still let calls without a key in 1 s after the first key");
	assert_int_equal(call_with(c, "/rpcq.Health/Echo", value, NULL, 0), RPCQ_OK);
	rpcq_client_destroy(c);
	assert_int_equal(harness_server_stop(&s_on), 0);
	assert_int_equal(harness_server_stop(&s_auto), 0);
	log = harness_read_file(s_on.log_path, NULL);
	assert_non_null(strstr(log, "no active API key"));
	free(log);
}

static void test_rpcqd_keys_refuses_what_would_not_work_and_lists_no_secret(void **state)
{
	(void)state;
	struct {
		const char *args[8];
		int rc;
		const char *says;
	} cases[] = {
		{{"create", "typo", "--scope", "rpcq.vestng.*", NULL}, 2, "covers no method"},
		{{"create", "typo", "--scope", "rpcq.vesting.VestingService", NULL}, 2, "names no method"},
		{{"create", "typo", "--scope", "rpcq.vesting;x", NULL}, 2, "not allowed"},
		{{"create", "noscope", NULL}, 2, "at least one --scope"},
		{{"create", "bad name!", "--scope", "read", NULL}, 2, "NAME"},
		{{"create", "all", "--scope", "read", NULL}, 1, "an active key is named all"},
		{{"create", "past", "--scope", "read", "--expires", "2020-01-01T00:00:00Z", NULL},
		 2,
		 "not in the future"},
		{{"create", "when", "--scope", "read", "--expires", "tomorrow-ish", NULL}, 2, "neither a time"},
		{{"create", "fast", "--scope", "read", "--rate", "0", NULL}, 2, "--rate"},
		{{"create", "slow", "--scope", "read", "--rate", "1e-11", NULL}, 2, "from 0.000001"},
		{{"create", "bare", "--scope", "read", "--expires", "90", NULL}, 2, "neither a time"},
		{{"create", "burst", "--scope", "read", "--burst", "3", NULL}, 2, "--burst needs --rate"},
		{{"revoke", "nobody", NULL}, 1, "no active key"},
		{{"rotate", "all", NULL}, 2, "unknown command"},
	};
	long long before = harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM api_keys");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL, *err = NULL;
		int rc = keys_cmd(&pg, cases[i].args, &out, &err);
		if (rc != cases[i].rc || strstr(err, cases[i].says) == NULL)
			fail_msg("rpcqd keys %s %s: exit %d (wanted %d): %s", cases[i].args[0], cases[i].args[1], rc,
				 cases[i].rc, err);
		assert_string_equal(out, "");
		free(out);
		free(err);
	}
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM api_keys"), before);
	/* rpcqd's own options may come before NAME: "--database X" is never
	 * taken for it. */
	{
		const char *argv[] = {rpcqd_path(), "keys", "revoke", "--database", pg.conninfo, "nobody", NULL};
		char *out = NULL, *err = NULL;
		int rc = harness_run(argv, NULL, &out, &err, RPCQD_TIMEOUT_MS);
		if (rc != 1 || strstr(err, "no active key") == NULL || strstr(err, "nobody") == NULL)
			fail_msg("rpcqd keys revoke --database X nobody: exit %d: %s", rc, err);
		free(out);
		free(err);
	}

	/* --help anywhere: the usage, every subcommand named, on stdout, exit 0. */
	static const char *const sub[] = {"create", "list", "limit", "revoke"};
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		const char *argv[] = {rpcqd_path(), "keys", sub[i], "x", "--help", NULL};
		char *out = NULL, *err = NULL;
		int rc = harness_run(argv, NULL, &out, &err, RPCQD_TIMEOUT_MS);
		if (rc != 0 || strstr(out, "rpcqd keys limit NAME|PREFIX --rate R") == NULL || *err != '\0')
			fail_msg("rpcqd keys %s x --help: exit %d, stdout %s, stderr %s", sub[i], rc, out, err);
		free(out);
		free(err);
	}

	/* Revoking by prefix, with or without rpcq_. */
	char key[128];
	create_key(&pg, "byprefix", "read", NULL, NULL, key, sizeof(key));
	char prefix[16];
	snprintf(prefix, sizeof(prefix), "%.13s", key); /* rpcq_xxxxxxxx */
	revoke_key(&pg, prefix);
	assert_int_equal(
		harness_sql_scalar(pg.conninfo,
				   "SELECT count(*) FROM api_keys WHERE name = 'byprefix' AND revoked_at IS NOT NULL"),
		1);

	/* A limit changed in place, then lifted: each seen within a second. */
	char tuned[128], tuned_value[160];
	create_key(&pg, "tuned", "read", NULL, NULL, tuned, sizeof(tuned));
	snprintf(tuned_value, sizeof(tuned_value), "Bearer %.57s", tuned);
	rpcq_client *c = client_for(srv.rpc_url);
	wait_key_loaded(c, tuned_value);
	const char *limit[] = {"limit", "tuned", "--rate", "0.5", NULL};
	char *lerr = NULL;
	assert_int_equal(keys_cmd(&pg, limit, NULL, &lerr), 0);
	assert_non_null(strstr(lerr, "0.5 calls/s"));
	free(lerr);
	within_a_second(c, tuned_value, RPCQ_RESOURCE_EXHAUSTED, "a new limit was not in force within a second");
	const char *unlimit[] = {"limit", "tuned", "--rate", "0", NULL};
	assert_int_equal(keys_cmd(&pg, unlimit, NULL, NULL), 0);
	within_a_second(c, tuned_value, RPCQ_OK, "a lifted limit still refused calls after a second");
	for (int i = 0; i < 20; i++)
		assert_int_equal(call_with(c, "/rpcq.Health/Echo", tuned_value, NULL, 0), RPCQ_OK);
	rpcq_client_destroy(c);
	const char *limit_nobody[] = {"limit", "nobody", "--rate", "1", NULL};
	assert_int_equal(keys_cmd(&pg, limit_nobody, NULL, NULL), 1);
	const char *limit_norate[] = {"limit", "tuned", NULL};
	assert_int_equal(keys_cmd(&pg, limit_norate, NULL, NULL), 2);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM api_key_audit WHERE action = 'changed'"
							 " AND key_name = 'tuned'"),
			 2);

	const char *list[] = {"list", NULL};
	char *out = NULL, *err = NULL;
	assert_int_equal(keys_cmd(&pg, list, &out, &err), 0);
	assert_non_null(strstr(out, "NAME"));
	assert_non_null(strstr(out, "reader"));
	assert_non_null(strstr(out, "revoked"));
	assert_non_null(strstr(out, "expired"));
	assert_non_null(strstr(out, "5/s burst 5"));
	assert_no_secret(out, "rpcqd keys list");
	free(out);
	free(err);
	/* The trail: every change, with who made it. */
	assert_true(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM api_key_audit WHERE action = 'created'"
						    " AND by_application = 'rpcqd keys'") >= NKEYS);
	assert_int_equal(
		harness_sql_scalar(
			pg.conninfo,
			"SELECT count(*) FROM api_key_audit WHERE action = 'revoked' AND key_name = 'byprefix'"),
		1);
}

/* Certificates of the test's own, under pg.dir: a CA, and certificates it
 * signs for 127.0.0.1 (servers and clients alike). */
static void pem_path(char out[300], const char *name, const char *ext)
{
	snprintf(out, 300, "%s/%s.%s", pg.dir, name, ext);
}

static void make_ca(const char *name, const char *cn)
{
	char crt[300], key[300], subj[100];
	pem_path(crt, name, "crt");
	pem_path(key, name, "key");
	snprintf(subj, sizeof(subj), "/CN=%s", cn);
	const char *argv[] = {"openssl", "req", "-x509",   "-newkey", "rsa:2048", "-nodes", "-days", "2",
			      "-subj",	 subj,	"-keyout", key,	      "-out",	  crt,	    NULL};
	assert_int_equal(harness_run(argv, NULL, NULL, NULL, 30000), 0);
}

/* A certificate and key of name, for the names in san, signed by ca. */
static void make_signed_for(const char *ca, const char *name, const char *san)
{
	char ca_crt[300], ca_key[300], csr[300], crt[300], key[300], ext[300];
	pem_path(ca_crt, ca, "crt");
	pem_path(ca_key, ca, "key");
	pem_path(csr, name, "csr");
	pem_path(crt, name, "crt");
	pem_path(key, name, "key");
	snprintf(ext, sizeof(ext), "%s/%s-san.ext", pg.dir, name);
	FILE *f = fopen(ext, "w");
	assert_non_null(f);
	fprintf(f, "subjectAltName=%s\n", san);
	fclose(f);
	const char *mk_csr[] = {"openssl",	 "req",	    "-newkey", "rsa:2048", "-nodes", "-subj",
				"/CN=127.0.0.1", "-keyout", key,       "-out",	   csr,	     NULL};
	const char *sign[] = {"openssl",	 "x509",  "-req", "-in",      csr, "-CA",  ca_crt, "-CAkey", ca_key,
			      "-CAcreateserial", "-days", "2",	  "-extfile", ext, "-out", crt,	   NULL};
	assert_int_equal(harness_run(mk_csr, NULL, NULL, NULL, 30000), 0);
	assert_int_equal(harness_run(sign, NULL, NULL, NULL, 30000), 0);
}

static void make_signed(const char *ca, const char *name)
{
	make_signed_for(ca, name, "IP:127.0.0.1,DNS:localhost");
}

/* A CA of the test's own signs the server's certificate; a client that
 * trusts that CA calls with its key, one that trusts another CA cannot
 * connect at all. */
static void test_tls_with_the_ca_check_on(void **state)
{
	(void)state;
	char ca[300], other[300], cert[300], key[300];
	pem_path(ca, "ca", "crt");
	pem_path(other, "other", "crt");
	pem_path(cert, "server", "crt");
	pem_path(key, "server", "key");
	make_ca("ca", "rpcq test CA");
	make_ca("other", "another CA");
	make_signed("ca", "server");

	char url[96], listen[120], cert_flag[320], key_flag[320];
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", harness_free_port());
	snprintf(listen, sizeof(listen), "--listen=%s", url);
	snprintf(cert_flag, sizeof(cert_flag), "--tls-cert=%s", cert);
	snprintf(key_flag, sizeof(key_flag), "--tls-key=%s", key);
	const char *args[] = {listen, cert_flag, key_flag, NULL};
	harness_server s;
	harness_server_start(&s, &pg, args);

	rpcq_client_options o = {.servers = url, .timeout_ms = 5000, .tls_ca_file = ca, .api_key = keys[K_READ]};
	rpcq_client *c = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_client_create(&c, &o, &err), RPCQ_OK);
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT, *out = NULL;
	assert_int_equal(rpcq_health_echo(c, &in, &out, NULL, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rpcq_client_destroy(c);
	/* TLS does not stand in for a key. */
	o.api_key = "";
	assert_int_equal(rpcq_client_create(&c, &o, &err), RPCQ_OK);
	assert_int_equal(rpcq_health_echo(c, &in, &out, NULL, &err), RPCQ_UNAUTHENTICATED);
	rpcq_client_destroy(c);
	/* A server whose certificate another CA signed is never reached. */
	o.tls_ca_file = other;
	o.api_key = keys[K_READ];
	o.timeout_ms = 1500;
	assert_int_equal(rpcq_client_create(&c, &o, &err), RPCQ_OK);
	rpcq_status st = rpcq_health_echo(c, &in, &out, NULL, &err);
	if (st == RPCQ_OK)
		fail_msg("a client trusting another CA got an answer");
	rpcq_client_destroy(c);
	/* The CLI with --tls-ca. */
	char *sout = NULL, *serr = NULL;
	const char *cli[] = {"--tls-ca", ca, "--api-key", keys[K_READ], "list", NULL};
	assert_int_equal(harness_cli(url, cli, NULL, &sout, &serr), 0);
	free(sout);
	free(serr);
	/* By name, the certificate must name the host: localhost is one of
	 * the server's names, and a certificate of the same CA for another
	 * host is refused (it was taken: any certificate the CA signed). */
	char by_name[96];
	snprintf(by_name, sizeof(by_name), "tls+tcp4://localhost:%d", harness_url_port(url));
	const char *health[] = {"--tls-ca", ca, "--timeout", "3000", "health", NULL};
	if (harness_cli(by_name, health, NULL, &sout, &serr) != 0)
		fail_msg("rpcq health at %s: %s", by_name, serr);
	free(sout);
	free(serr);
	assert_int_equal(harness_server_stop(&s), 0);

	char evil_cert[300], evil_key[300];
	pem_path(evil_cert, "evil", "crt");
	pem_path(evil_key, "evil", "key");
	make_signed_for("ca", "evil", "DNS:evil.example.com");
	snprintf(cert_flag, sizeof(cert_flag), "--tls-cert=%s", evil_cert);
	snprintf(key_flag, sizeof(key_flag), "--tls-key=%s", evil_key);
	harness_server evil;
	harness_server_start(&evil, &pg, args);
	int rc = harness_cli(by_name, health, NULL, &sout, &serr);
	if (rc == 0)
		fail_msg("a certificate for evil.example.com was taken for localhost: %s", sout);
	free(sout);
	free(serr);
	assert_int_equal(harness_server_stop(&evil), 0);
}

/* The frames a subscription received from publishers (not from Replay). */
static uint64_t frames_of(rpcq_subscription *sub)
{
	rpcq_subscription_stats st;
	rpcq_subscription_get_stats(sub, &st);
	return st.frames;
}

/* The SUB connections a server counts (its /metrics). */
static int subscribers_of(const harness_server *s)
{
	char url[256];
	snprintf(url, sizeof(url), "%s/metrics", s->http_url);
	harness_http_reply r;
	assert_int_equal(harness_http("GET", url, NULL, NULL, 0, &r), 0);
	const char *at = strstr(r.body, "rpcq_stream_subscribers{transport=\"nng\"} ");
	assert_non_null(at);
	int n = (int)strtol(at + strlen("rpcq_stream_subscribers{transport=\"nng\"} "), NULL, 10);
	harness_http_reply_free(&r);
	return n;
}

/* Waits for the first message of sub; fails after 15 s. */
static void first_message(rpcq_subscription *sub, const char *who)
{
	int64_t until = harness_now_ms() + 15000;
	rpcq_stream_message *m = NULL;
	rpcq_error err;
	while (m == NULL && harness_now_ms() < until)
		if (rpcq_subscription_next(sub, 500, &m, &err) != RPCQ_OK)
			fail_msg("%s: %s", who, err.message);
	if (m == NULL)
		fail_msg("%s: no message within 15 s", who);
	rpcq_stream_message_free(m);
	/* The rest, so that the frames waiting on the socket are read (a new
	 * topic's first messages come through Replay, and their frames are
	 * then dropped as duplicates, but counted). */
	until = harness_now_ms() + 1500;
	while (harness_now_ms() < until) {
		m = NULL;
		if (rpcq_subscription_next(sub, 200, &m, &err) != RPCQ_OK)
			fail_msg("%s: %s", who, err.message);
		rpcq_stream_message_free(m);
	}
}

/* --publish-client-ca: a TLS publish listener takes only subscribers whose
 * certificate the CA signed. The others still get every message through
 * Replay, which checks their key, but never a frame from the publisher. A
 * publish listener that is not TLS is refused at start. */
static void test_publish_listeners_take_only_subscribers_with_a_certificate(void **state)
{
	(void)state;
	char ca[300], cert[300], key[300], client[300], client_key[300], stranger[300], stranger_key[300];
	pem_path(ca, "pca", "crt");
	pem_path(cert, "pserver", "crt");
	pem_path(key, "pserver", "key");
	pem_path(client, "subscriber", "crt");
	pem_path(client_key, "subscriber", "key");
	pem_path(stranger, "stranger", "crt");
	pem_path(stranger_key, "stranger", "key");
	make_ca("pca", "rpcq streams CA");
	make_ca("pother", "someone else's CA");
	make_signed("pca", "pserver");
	make_signed("pca", "subscriber");
	make_signed("pother", "stranger");

	char publish[120], cert_flag[320], key_flag[320], ca_flag[320];
	snprintf(publish, sizeof(publish), "--publish=tls+tcp://127.0.0.1:%d", harness_free_port());
	snprintf(cert_flag, sizeof(cert_flag), "--tls-cert=%s", cert);
	snprintf(key_flag, sizeof(key_flag), "--tls-key=%s", key);
	snprintf(ca_flag, sizeof(ca_flag), "--publish-client-ca=%s", ca);

	/* Refused: a plain listener beside it. */
	const char *plain[] = {rpcqd_path(),
			       "--listen=tcp://127.0.0.1:0",
			       "--publish=tcp://127.0.0.1:0",
			       "--http=",
			       cert_flag,
			       key_flag,
			       ca_flag,
			       "--database",
			       pg.conninfo,
			       NULL};
	char *out = NULL, *err_text = NULL;
	assert_int_not_equal(harness_run(plain, NULL, &out, &err_text, RPCQD_TIMEOUT_MS), 0);
	assert_non_null(strstr(err_text, "publish URL \"tcp://127.0.0.1:0\" is not TLS"));
	free(out);
	free(err_text);

	const char *args[] = {publish, cert_flag, key_flag, ca_flag, NULL};
	harness_server s;
	harness_server_start(&s, &pg, args);
	rpcq_client_options o = {.servers = s.rpc_url, .timeout_ms = 5000, .api_key = keys[K_ALL]};
	rpcq_client *c = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_client_create(&c, &o, &err), RPCQ_OK);
	const char *prefixes[] = {"billing.imports."};
	rpcq_subscribe_options with = {.tls_ca_file = ca, .tls_cert_file = client, .tls_key_file = client_key};
	rpcq_subscribe_options without = {.tls_ca_file = ca};
	rpcq_subscribe_options foreign = {.tls_ca_file = ca, .tls_cert_file = stranger, .tls_key_file = stranger_key};
	rpcq_subscription *good = NULL, *none = NULL, *other = NULL;
	assert_int_equal(rpcq_subscription_create(&good, c, prefixes, 1, &with, &err), RPCQ_OK);
	assert_int_equal(rpcq_subscription_create(&none, c, prefixes, 1, &without, &err), RPCQ_OK);
	assert_int_equal(rpcq_subscription_create(&other, c, prefixes, 1, &foreign, &err), RPCQ_OK);
	/* The dials go on in the background: the one with a certificate gets
	 * through, the other two never do. */
	int64_t until = harness_now_ms() + 15000;
	while (subscribers_of(&s) != 1 && harness_now_ms() < until)
		harness_sleep_ms(100);
	harness_sleep_ms(1000);
	assert_int_equal(subscribers_of(&s), 1);

	/* An import publishes its progress. */
	char csv[300];
	snprintf(csv, sizeof(csv), "%s/pub.csv", pg.dir);
	FILE *f = fopen(csv, "w");
	assert_non_null(f);
	fputs("name,governmentId,email,debtAmount,debtDueDate,debtId\nAnn,1,ann@example.com,10.00,2030-01-01,pub-1\n",
	      f);
	fclose(f);
	const char *cli[] = {"--api-key", keys[K_ALL], "billing", "import", csv, NULL};
	assert_int_equal(harness_cli(s.rpc_url, cli, NULL, NULL, NULL), 0);

	first_message(good, "the subscriber with a certificate");
	first_message(none, "the subscriber without one");
	first_message(other, "the subscriber with another CA's");
	assert_true(frames_of(good) > 0);
	assert_int_equal(frames_of(none), 0);
	assert_int_equal(frames_of(other), 0);
	rpcq_subscription_destroy(good);
	rpcq_subscription_destroy(none);
	rpcq_subscription_destroy(other);
	rpcq_client_destroy(c);
	assert_int_equal(harness_server_stop(&s), 0);
}

/* Last: what both processes wrote and count must hold no secret, and the
 * refusals must be in the audit trail with prefix, method, peer and
 * request id. */
static void test_logs_and_metrics_hold_no_key_and_every_refusal_is_audited(void **state)
{
	(void)state;
	const harness_server *both[] = {&srv, &srv2};
	for (int i = 0; i < 2; i++) {
		char *log = harness_read_file(both[i]->log_path, NULL);
		assert_no_secret(log, "rpcqd's log");
		char url[256];
		snprintf(url, sizeof(url), "%s/metrics", both[i]->http_url);
		harness_http_reply r;
		assert_int_equal(harness_http("GET", url, NULL, NULL, 0, &r), 0);
		assert_int_equal(r.status, 200);
		assert_no_secret(r.body, "/metrics");
		harness_http_reply_free(&r);
		if (i == 0) {
			char want[160];
			snprintf(want, sizeof(want),
				 "auth: refused /rpcq.Health/Echo UNAUTHENTICATED: wrong secret (key %.13s, peer "
				 "127.0.0.1:",
				 keys[K_ALL]);
			assert_non_null(strstr(log, want));
			assert_non_null(
				strstr(log, "UNAUTHENTICATED: unknown key (key rpcq_00000000, peer 127.0.0.1:"));
			assert_non_null(strstr(log, "UNAUTHENTICATED: revoked (key rpcq_"));
			assert_non_null(strstr(log, "UNAUTHENTICATED: expired (key rpcq_"));
			assert_non_null(strstr(log, "UNAUTHENTICATED: no key (key none, peer 127.0.0.1:"));
			assert_non_null(strstr(log, "PERMISSION_DENIED: scope (key rpcq_"));
			assert_non_null(strstr(log, "RESOURCE_EXHAUSTED: rate limit (key rpcq_"));
			/* With the request id every line carries. */
			const char *line = strstr(log, "auth: refused");
			const char *start = line;
			while (start > log && start[-1] != '\n')
				start--;
			assert_non_null(strstr(start, "[req="));
			assert_true(strstr(start, "[req=") < line);
		}
		free(log);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_key_against_every_method_over_nng),
		cmocka_unit_test(test_every_key_against_every_method_over_http),
		cmocka_unit_test(test_the_gateway_s_own_routes_check_the_caller_s_key),
		cmocka_unit_test(test_a_revoked_key_stops_on_the_other_process_within_a_second),
		cmocka_unit_test(test_rate_limits_allow_the_burst_then_refill),
		cmocka_unit_test(test_callers_on_many_threads_share_one_key_s_budget),
		cmocka_unit_test(test_a_wrong_secret_takes_as_long_as_an_unknown_key),
		cmocka_unit_test(test_the_client_option_the_cli_flag_and_the_environment_send_the_key),
		cmocka_unit_test(test_rpcqd_keys_refuses_what_would_not_work_and_lists_no_secret),
		cmocka_unit_test(test_tls_with_the_ca_check_on),
		cmocka_unit_test(test_publish_listeners_take_only_subscribers_with_a_certificate),
		cmocka_unit_test(test_auth_modes_off_on_and_auto),
		cmocka_unit_test(test_logs_and_metrics_hold_no_key_and_every_refusal_is_audited),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
