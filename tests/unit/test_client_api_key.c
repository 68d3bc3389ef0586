/*
 * The client side of API keys (rpcq_client_options.api_key): which server
 * URLs rpcq_client_create refuses to send a key to, that it refuses before
 * dialing anything, that no message contains the key, that $RPCQ_API_KEY is
 * the default, and the "authorization" pair the calls carry, read by a REP
 * socket on inproc:// standing in for rpcqd. Nothing leaves the machine:
 * refused URLs (192.0.2.1, TEST-NET-1) are never dialed, and a client that
 * is accepted for a host that is not loopback gets 0.0.0.0:9, which is no
 * loopback name but which Linux dials on the local host (nothing listens
 * on the discard port); each client is destroyed at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/alloc.h>
#include <rpcq/client.h>

#include "envelope.h"

#define KEY "k3y-Th4t-must-n0t-leak"

/* rpcq_client_create with servers and key; the client is destroyed at once.
 * Returns the status, err holds the message. */
static rpcq_status create(const char *servers, const char *key, int allow, rpcq_error *err)
{
	rpcq_client_options o = {.servers = servers, .api_key = key, .allow_plaintext_key = allow};
	rpcq_client *c = NULL;
	rpcq_status st = rpcq_client_create(&c, &o, err);
	if (st != RPCQ_OK)
		assert_null(c);
	rpcq_client_destroy(c);
	return st;
}

static void test_key_over_plain_tcp_to_another_host_is_refused(void **state)
{
	(void)state;
	rpcq_error err;
	assert_int_equal(create("tcp://192.0.2.1:7400", KEY, 0, &err), RPCQ_INVALID_ARGUMENT);
	assert_int_equal(err.code, RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "refusing to send an API key over plain tcp://192.0.2.1:7400 (not "
					    "loopback); use tls+tcp:// or set allow_plaintext_key"));
	assert_null(strstr(err.message, KEY));
}

static void test_key_over_plain_ws_is_refused_with_wss_as_the_way_out(void **state)
{
	(void)state;
	rpcq_error err;
	assert_int_equal(create("ws://192.0.2.1:8080/rpcq", KEY, 0, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "plain ws://192.0.2.1:8080/rpcq"));
	assert_non_null(strstr(err.message, "use wss://"));
	assert_null(strstr(err.message, KEY));
}

static void test_one_remote_url_among_loopback_ones_is_refused(void **state)
{
	(void)state;
	rpcq_error err;
	assert_int_equal(create("tcp://127.0.0.1:7400, tcp://10.1.2.3:7400", KEY, 0, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "tcp://10.1.2.3:7400"));
}

static void test_key_to_a_url_whose_host_cannot_be_read_is_refused(void **state)
{
	(void)state;
	rpcq_error err;
	assert_int_equal(create("zt://8056c2e21c000001.7400", KEY, 0, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "refusing to send an API key to \"zt://8056c2e21c000001.7400\""));
	assert_null(strstr(err.message, KEY));
}

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)ev;
	(*(int *)arg)++;
}

/* The URLs are checked before the socket exists: a listener that is the first
 * server URL is never dialed when a later URL is refused. */
static void test_refusal_comes_before_any_dialing(void **state)
{
	(void)state;
	nng_socket rep;
	int pipes = 0;
	assert_int_equal(nng_rep0_open(&rep), 0);
	assert_int_equal(nng_pipe_notify(rep, NNG_PIPE_EV_ADD_POST, on_pipe, &pipes), 0);
	assert_int_equal(nng_listen(rep, "inproc://api-key-first", NULL, 0), 0);
	rpcq_error err;
	assert_int_equal(create("inproc://api-key-first,tcp://192.0.2.1:7400", KEY, 0, &err), RPCQ_INVALID_ARGUMENT);
	nng_msleep(100);
	assert_int_equal(pipes, 0);
	/* The same pair of URLs without a key: the listener is dialed. */
	rpcq_client_options o = {.servers = "inproc://api-key-first", .api_key = ""};
	rpcq_client *c;
	assert_int_equal(rpcq_client_create(&c, &o, &err), RPCQ_OK);
	for (int i = 0; i < 100 && pipes == 0; i++)
		nng_msleep(10);
	rpcq_client_destroy(c);
	assert_int_equal(pipes, 1);
	nng_close(rep);
}

static void test_key_is_accepted_where_it_is_safe_or_allowed(void **state)
{
	(void)state;
	rpcq_error err;
	assert_int_equal(create("tcp://0.0.0.0:9", KEY, 0, &err), RPCQ_INVALID_ARGUMENT);
	assert_int_equal(create("tcp://0.0.0.0:9", KEY, 1, &err), RPCQ_OK);
	assert_int_equal(create("ws://0.0.0.0:9/rpcq", KEY, 1, &err), RPCQ_OK);
	assert_int_equal(create("tcp://127.0.0.1:7400", KEY, 0, &err), RPCQ_OK);
	assert_int_equal(create("tcp://localhost:7400", KEY, 0, &err), RPCQ_OK);
	assert_int_equal(create("tcp://[::1]:7400", KEY, 0, &err), RPCQ_OK);
	assert_int_equal(create("tls+tcp://0.0.0.0:9", KEY, 0, &err), RPCQ_OK);
	assert_int_equal(create("wss://0.0.0.0:9/rpcq", KEY, 0, &err), RPCQ_OK);
	assert_int_equal(create("ipc:///tmp/rpcq-test-api-key.sock", KEY, 0, &err), RPCQ_OK);
	assert_int_equal(create("inproc://api-key-none", KEY, 0, &err), RPCQ_OK);
}

static void test_without_a_key_any_url_is_accepted(void **state)
{
	(void)state;
	rpcq_error err;
	unsetenv("RPCQ_API_KEY");
	assert_int_equal(create("tcp://0.0.0.0:9", NULL, 0, &err), RPCQ_OK);
	assert_int_equal(create("tcp://0.0.0.0:9", "", 0, &err), RPCQ_OK);
}

static void test_a_key_with_spaces_or_control_characters_is_refused_unprinted(void **state)
{
	(void)state;
	rpcq_error err;
	assert_int_equal(create("tcp://127.0.0.1:7400", "abc def", 0, &err), RPCQ_INVALID_ARGUMENT);
	assert_null(strstr(err.message, "abc"));
	assert_int_equal(create("tcp://127.0.0.1:7400", "abc\r\nx-other: 1", 0, &err), RPCQ_INVALID_ARGUMENT);
	assert_null(strstr(err.message, "abc"));
	setenv("RPCQ_API_KEY", "tab\there", 1);
	assert_int_equal(create("tcp://127.0.0.1:7400", NULL, 0, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "$RPCQ_API_KEY"));
	assert_null(strstr(err.message, "tab"));
	unsetenv("RPCQ_API_KEY");
}

static void test_null_key_is_the_environment_s_and_empty_is_none(void **state)
{
	(void)state;
	rpcq_error err;
	setenv("RPCQ_API_KEY", KEY, 1);
	assert_int_equal(create("tcp://192.0.2.1:7400", NULL, 0, &err), RPCQ_INVALID_ARGUMENT);
	assert_null(strstr(err.message, KEY));
	/* "" is no key even with the variable set. */
	assert_int_equal(create("tcp://0.0.0.0:9", "", 0, &err), RPCQ_OK);
	/* An empty variable is no key. */
	setenv("RPCQ_API_KEY", "", 1);
	assert_int_equal(create("tcp://0.0.0.0:9", NULL, 0, &err), RPCQ_OK);
	unsetenv("RPCQ_API_KEY");
}

/* A stand-in for rpcqd: answers one request with OK and keeps its
 * "authorization" pairs. */
struct fake_server {
	nng_socket sock;
	int n_auth;	/* authorization pairs in the request */
	char auth[128]; /* the last one's value */
	int n_meta;	/* all pairs */
};

static void serve_one(void *arg)
{
	struct fake_server *s = arg;
	nng_msg *msg;
	if (nng_recvmsg(s->sock, &msg, 0) != 0)
		return;
	Rpcq__Request *req = rpcq__request__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	if (req == NULL)
		return;
	s->n_meta = (int)req->n_metadata;
	for (size_t i = 0; i < req->n_metadata; i++) {
		if (strcmp(req->metadata[i]->key, "authorization") == 0) {
			s->n_auth++;
			snprintf(s->auth, sizeof(s->auth), "%s", req->metadata[i]->value);
		}
	}
	rpcq__request__free_unpacked(req, NULL);
	nng_msg *reply;
	rpcq_error err;
	if (envelope_pack_response(&reply, RPCQ_OK, "", NULL, 0, NULL, &err) == RPCQ_OK &&
	    nng_sendmsg(s->sock, reply, 0) != 0)
		nng_msg_free(reply);
}

/* One call through a client with key (NULL: $RPCQ_API_KEY) and the call's
 * metadata md; s says what the server saw. */
static rpcq_status one_call(const char *key, const char *const *md, struct fake_server *s, rpcq_error *err)
{
	static int n;
	char url[64];
	snprintf(url, sizeof(url), "inproc://api-key-call-%d", n++);
	memset(s, 0, sizeof(*s));
	assert_int_equal(nng_rep0_open(&s->sock), 0);
	assert_int_equal(nng_listen(s->sock, url, NULL, 0), 0);
	nng_thread *t;
	assert_int_equal(nng_thread_create(&t, serve_one, s), 0);
	rpcq_client_options o = {.servers = url, .timeout_ms = 5000, .api_key = key};
	rpcq_client *c;
	assert_int_equal(rpcq_client_create(&c, &o, err), RPCQ_OK);
	rpcq_call_options co = {.metadata = md};
	void *out = NULL;
	size_t out_len = 0;
	rpcq_status st = rpcq_call_raw(c, "rpcq.Health/Echo", "", 0, &out, &out_len, &co, err);
	rpcq_free(out);
	rpcq_client_destroy(c);
	nng_close(s->sock); /* ends serve_one if the request never came */
	nng_thread_destroy(t);
	return st;
}

static void test_calls_carry_the_key_as_a_bearer_authorization(void **state)
{
	(void)state;
	struct fake_server s;
	rpcq_error err;
	const char *md[] = {"x-request-id", "abc", NULL};
	assert_int_equal(one_call(KEY, md, &s, &err), RPCQ_OK);
	assert_int_equal(s.n_meta, 2);
	assert_int_equal(s.n_auth, 1);
	assert_string_equal(s.auth, "Bearer " KEY);
	assert_int_equal(one_call(KEY, NULL, &s, &err), RPCQ_OK);
	assert_int_equal(s.n_meta, 1);
	assert_string_equal(s.auth, "Bearer " KEY);
}

static void test_the_call_s_own_authorization_wins(void **state)
{
	(void)state;
	struct fake_server s;
	rpcq_error err;
	const char *md[] = {"Authorization", "Bearer other", "x-request-id", "abc", NULL};
	assert_int_equal(one_call(KEY, md, &s, &err), RPCQ_OK);
	assert_int_equal(s.n_meta, 2);
	assert_int_equal(s.n_auth, 0); /* sent as the caller spelled it */
	const char *md2[] = {"x-request-id", "abc", "authorization", "Bearer other", NULL};
	assert_int_equal(one_call(KEY, md2, &s, &err), RPCQ_OK);
	assert_int_equal(s.n_auth, 1);
	assert_string_equal(s.auth, "Bearer other");
}

static void test_no_key_sends_no_authorization(void **state)
{
	(void)state;
	struct fake_server s;
	rpcq_error err;
	unsetenv("RPCQ_API_KEY");
	const char *md[] = {"x-request-id", "abc", NULL};
	assert_int_equal(one_call(NULL, md, &s, &err), RPCQ_OK);
	assert_int_equal(s.n_meta, 1);
	assert_int_equal(s.n_auth, 0);
	setenv("RPCQ_API_KEY", "from-env", 1);
	assert_int_equal(one_call("", md, &s, &err), RPCQ_OK);
	assert_int_equal(s.n_auth, 0);
	assert_int_equal(one_call(NULL, md, &s, &err), RPCQ_OK);
	assert_int_equal(s.n_auth, 1);
	assert_string_equal(s.auth, "Bearer from-env");
	unsetenv("RPCQ_API_KEY");
}

static void test_a_full_metadata_list_leaves_no_room_for_the_key(void **state)
{
	(void)state;
	static char keys[ENVELOPE_MAX_PAIRS][16];
	const char *md[2 * ENVELOPE_MAX_PAIRS + 1];
	for (int i = 0; i < ENVELOPE_MAX_PAIRS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "x-k%d", i);
		md[2 * i] = keys[i];
		md[2 * i + 1] = "v";
	}
	md[2 * ENVELOPE_MAX_PAIRS] = NULL;
	struct fake_server s;
	rpcq_error err;
	assert_int_equal(one_call(KEY, md, &s, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "64 metadata pairs and the API key's authorization"));
	assert_null(strstr(err.message, KEY));
	/* One fewer fits. */
	md[2 * (ENVELOPE_MAX_PAIRS - 1)] = NULL;
	assert_int_equal(one_call(KEY, md, &s, &err), RPCQ_OK);
	assert_int_equal(s.n_meta, ENVELOPE_MAX_PAIRS);
	assert_string_equal(s.auth, "Bearer " KEY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_over_plain_tcp_to_another_host_is_refused),
		cmocka_unit_test(test_key_over_plain_ws_is_refused_with_wss_as_the_way_out),
		cmocka_unit_test(test_one_remote_url_among_loopback_ones_is_refused),
		cmocka_unit_test(test_key_to_a_url_whose_host_cannot_be_read_is_refused),
		cmocka_unit_test(test_refusal_comes_before_any_dialing),
		cmocka_unit_test(test_key_is_accepted_where_it_is_safe_or_allowed),
		cmocka_unit_test(test_without_a_key_any_url_is_accepted),
		cmocka_unit_test(test_a_key_with_spaces_or_control_characters_is_refused_unprinted),
		cmocka_unit_test(test_null_key_is_the_environment_s_and_empty_is_none),
		cmocka_unit_test(test_calls_carry_the_key_as_a_bearer_authorization),
		cmocka_unit_test(test_the_call_s_own_authorization_wins),
		cmocka_unit_test(test_no_key_sends_no_authorization),
		cmocka_unit_test(test_a_full_metadata_list_leaves_no_room_for_the_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
