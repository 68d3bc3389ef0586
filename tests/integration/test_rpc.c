/*
 * The RPC core as a caller sees it: a real rpcqd on loopback against a real
 * PostgreSQL, called through the generated stubs, the raw call API, a bare
 * nng socket (for what librpcq would never send) and the rpcq command.
 * One cluster and one server for the whole file; tests that stop a server
 * start their own.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/rpcq.h>

#include "envelope.h"
#include "harness.h"

static harness_pg pg;
static harness_server srv;

static int setup_all(void **state)
{
	(void)state;
	harness_pg_start(&pg);
	if (harness_migrate(&pg) != 0)
		return -1;
	const char *args[] = {"--max-message-bytes", "1048576", "--workers", "8", NULL};
	harness_server_start(&srv, &pg, args);
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	/* An rpcqd that does not exit 0 (a leak under ASan) fails the group. */
	int bad = srv.pid > 0 && harness_server_stop(&srv) != 0;
	harness_pg_stop(&pg);
	return bad ? -1 : 0;
}

static rpcq_client *client_for(const char *url, int timeout_ms, long max_bytes)
{
	rpcq_client_options o = {.servers = url, .timeout_ms = timeout_ms, .max_message_bytes = max_bytes};
	rpcq_client *c = NULL;
	rpcq_error err;
	if (rpcq_client_create(&c, &o, &err) != RPCQ_OK)
		fail_msg("client for %s: %s", url, err.message);
	return c;
}

static rpcq_status echo(rpcq_client *c, const void *data, size_t len, uint32_t delay_ms, Rpcq__EchoMessage **out,
			rpcq_error *err)
{
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT;
	in.payload.data = (uint8_t *)data;
	in.payload.len = len;
	in.delay_ms = delay_ms;
	return rpcq_health_echo(c, &in, out, NULL, err);
}

/* One request sent through a bare REQ socket; returns the parsed Response
 * (free with rpcq__response__free_unpacked), or NULL when none came. */
static Rpcq__Response *raw_exchange(const char *url, const void *data, size_t len)
{
	nng_socket s;
	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 5000);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 4 << 20);
	/* No redial if the server drops the connection (see below). */
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 3600000);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 3600000);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	Rpcq__Response *resp = NULL;
	if (nng_send(s, (void *)data, len, 0) == 0) {
		void *buf;
		size_t n;
		if (nng_recv(s, &buf, &n, NNG_FLAG_ALLOC) == 0) {
			rpcq_error err;
			if (envelope_parse_response(NULL, buf, n, &resp, &err) != RPCQ_OK)
				resp = NULL;
			nng_free(buf, n);
		}
	}
	nng_close(s);
	return resp;
}

static void test_echo_through_the_generated_stub_returns_the_payload(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 5000, 0);
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	assert_int_equal(echo(c, "hello", 5, 0, &out, &err), RPCQ_OK);
	assert_int_equal(out->payload.len, 5);
	assert_memory_equal(out->payload.data, "hello", 5);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rpcq_client_destroy(c);
}

static Rpcq__CheckResponse *health_check(rpcq_client *c)
{
	Rpcq__CheckRequest in = RPCQ__CHECK_REQUEST__INIT;
	Rpcq__CheckResponse *out = NULL;
	rpcq_error err;
	if (rpcq_health_check(c, &in, &out, NULL, &err) != RPCQ_OK)
		fail_msg("rpcq.Health/Check: %s", err.message);
	return out;
}

static void test_health_check_reports_serving_and_the_database(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 5000, 0);
	Rpcq__CheckResponse *before = health_check(c);
	assert_int_equal(before->status, RPCQ__CHECK_RESPONSE__SERVING_STATUS__SERVING);
	assert_true(before->database_ok);
	assert_true(strlen(before->version) > 0);
	assert_int_equal(before->in_flight, 1); /* itself */

	/* The counters follow the calls: one OK, one failed, and this Check. */
	Rpcq__EchoMessage *echoed = NULL;
	rpcq_error err;
	assert_int_equal(echo(c, "x", 1, 0, &echoed, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&echoed->base, NULL);
	void *out = NULL;
	size_t out_len = 0;
	assert_int_equal(rpcq_call_raw(c, "/rpcq.Health/Nope", "", 0, &out, &out_len, NULL, &err), RPCQ_UNIMPLEMENTED);
	Rpcq__CheckResponse *after = health_check(c);
	assert_int_equal(after->calls, before->calls + 3);
	assert_int_equal(after->calls_failed, before->calls_failed + 1);
	protobuf_c_message_free_unpacked(&before->base, NULL);
	protobuf_c_message_free_unpacked(&after->base, NULL);
	rpcq_client_destroy(c);
}

static void test_list_services_describes_every_method_with_its_types(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 5000, 0);
	Rpcq__ListServicesRequest in = RPCQ__LIST_SERVICES_REQUEST__INIT;
	Rpcq__ListServicesResponse *out = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_reflection_list_services(c, &in, &out, NULL, &err), RPCQ_OK);
	int found_echo = 0;
	for (size_t i = 0; i < out->n_services; i++) {
		for (size_t m = 0; m < out->services[i]->n_methods; m++) {
			const Rpcq__MethodInfo *mi = out->services[i]->methods[m];
			if (strcmp(mi->full_name, "/rpcq.Health/Echo") == 0) {
				found_echo = 1;
				assert_string_equal(out->services[i]->name, "rpcq.Health");
				assert_string_equal(mi->input_type, "rpcq.EchoMessage");
				assert_string_equal(mi->output_type, "rpcq.EchoMessage");
				assert_true(mi->idempotent);
			}
			/* Every method served is one the generated registry knows. */
			assert_non_null(rpcq_method_find(mi->full_name));
		}
	}
	assert_true(found_echo);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rpcq_client_destroy(c);
}

static void test_unknown_method_is_unimplemented_and_names_it(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 5000, 0);
	void *out = NULL;
	size_t out_len = 0;
	rpcq_error err;
	assert_int_equal(rpcq_call_raw(c, "/rpcq.Nothing/Here", "", 0, &out, &out_len, NULL, &err), RPCQ_UNIMPLEMENTED);
	assert_non_null(strstr(err.message, "/rpcq.Nothing/Here"));
	rpcq_client_destroy(c);
}

static void test_payload_that_does_not_decode_is_invalid_argument(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 5000, 0);
	/* Field 1 announced as length-delimited with 100 bytes that are not there. */
	static const uint8_t bad[] = {0x0a, 0x64, 0x01};
	void *out = NULL;
	size_t out_len = 0;
	rpcq_error err;
	assert_int_equal(rpcq_call_raw(c, "rpcq.Health/Echo", bad, sizeof(bad), &out, &out_len, NULL, &err),
			 RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "rpcq.EchoMessage"));
	/* The server goes on serving. */
	Rpcq__EchoMessage *ok = NULL;
	assert_int_equal(echo(c, "x", 1, 0, &ok, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&ok->base, NULL);
	rpcq_client_destroy(c);
}

static void test_garbage_envelope_is_answered_invalid_argument(void **state)
{
	(void)state;
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
	Rpcq__Response *r = raw_exchange(srv.rpc_url, garbage, sizeof(garbage));
	assert_non_null(r);
	assert_int_equal(r->code, RPCQ_INVALID_ARGUMENT);
	assert_true(strlen(r->message) > 0);
	rpcq__response__free_unpacked(r, NULL);

	/* An envelope without a method. */
	Rpcq__Request req = RPCQ__REQUEST__INIT;
	uint8_t buf[64];
	size_t n = rpcq__request__pack(&req, buf);
	r = raw_exchange(srv.rpc_url, buf, n);
	assert_non_null(r);
	assert_int_equal(r->code, RPCQ_INVALID_ARGUMENT);
	rpcq__response__free_unpacked(r, NULL);
}

static void test_request_over_the_size_limit_is_resource_exhausted(void **state)
{
	(void)state;
	/* The server's limit is 1 MiB; this client would send up to 64 MiB. */
	rpcq_client *c = client_for(srv.rpc_url, 10000, 64L << 20);
	size_t len = (1u << 20) + 4096;
	char *big = calloc(1, len);
	assert_non_null(big);
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	assert_int_equal(echo(c, big, len, 0, &out, &err), RPCQ_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(err.message, "exceeds the message size limit of 1048576 bytes"));
	free(big);
	/* Up to 2 MiB over the limit is answered too (a client's 1 MiB chunk
	 * to a server whose limit is smaller). */
	len = (2u << 20) + (1u << 19);
	big = calloc(1, len);
	assert_non_null(big);
	assert_int_equal(echo(c, big, len, 0, &out, &err), RPCQ_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(err.message, "exceeds the message size limit of 1048576 bytes"));
	free(big);

	/* Nothing of it stays: a normal call right after succeeds. (A frame
	 * over the limit and 2 MiB, and over twice the limit, is dropped by
	 * nng with its connection; the client's own limit keeps librpcq from
	 * sending one.) */
	assert_int_equal(echo(c, "after", 5, 0, &out, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rpcq_client_destroy(c);
}

struct destroyed_call {
	rpcq_client *c;
	rpcq_status st;
};

static void *slow_echo_thread(void *arg)
{
	struct destroyed_call *d = arg;
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	d->st = echo(d->c, "x", 1, 2000, &out, &err);
	if (d->st == RPCQ_OK)
		protobuf_c_message_free_unpacked(&out->base, NULL);
	return NULL;
}

/* Destroying a client while a call runs on another thread: the call fails
 * with CANCELLED, and destroy returns after it (the call used to retry on
 * the freed client). */
static void test_destroying_a_client_cancels_the_call_in_flight(void **state)
{
	(void)state;
	struct destroyed_call d = {.c = client_for(srv.rpc_url, 10000, 0)};
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	assert_int_equal(echo(d.c, "warm", 4, 0, &out, &err), RPCQ_OK); /* connected */
	protobuf_c_message_free_unpacked(&out->base, NULL);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, slow_echo_thread, &d), 0);
	nng_msleep(300);
	rpcq_client_destroy(d.c);
	pthread_join(t, NULL);
	assert_int_equal(d.st, RPCQ_CANCELLED);
	/* The server is none the worse. */
	rpcq_client *c = client_for(srv.rpc_url, 10000, 0);
	assert_int_equal(echo(c, "after", 5, 0, &out, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rpcq_client_destroy(c);
}

static void test_client_refuses_to_send_over_its_own_limit(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 5000, 4096);
	char big[8192] = {0};
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	/* A small call first: it also lets the connection finish before the
	 * client is destroyed (nng 1.5 can leak a pipe that is still being
	 * dialled when its socket closes). */
	assert_int_equal(echo(c, big, 100, 0, &out, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	assert_int_equal(echo(c, big, sizeof(big), 0, &out, &err), RPCQ_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(err.message, "4096"));
	rpcq_client_destroy(c);
}

/* Counts the pipes a socket has lost (nng_pipe_notify). */
static void pipe_removed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)ev;
	atomic_fetch_add((atomic_int *)arg, 1);
}

/* A frame over the server's limit and 2 MiB (and over twice the limit)
 * never reaches rpcqd: nng drops its connection unanswered. Only that
 * connection: its sender sees the connection reset, and everyone else is
 * served as before. */
static void test_frame_over_twice_the_limit_costs_only_its_own_connection(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 5000, 0);
	Rpcq__CheckResponse *before = health_check(c);

	nng_socket s;
	assert_int_equal(nng_req0_open(&s), 0);
	static atomic_int pipes_gone;
	atomic_store(&pipes_gone, 0);
	nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, pipe_removed, &pipes_gone);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 5000);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	/* No redial once the server has reset the connection: nng 1.5 leaks the
	 * pipe of a dial still under way when its socket closes (LeakSanitizer
	 * caught it when the close came after the default 100 ms of redial). */
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 3600000);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 3600000);
	assert_int_equal(nng_dial(s, srv.rpc_url, NULL, 0), 0);
	size_t len = (3u << 20) + 4096; /* the server's limit is 1 MiB: 3 MiB is dropped */
	void *big = calloc(1, len);
	assert_non_null(big);
	assert_int_equal(nng_send(s, big, len, 0), 0);
	void *buf;
	size_t n;
	assert_int_equal(nng_recv(s, &buf, &n, NNG_FLAG_ALLOC), NNG_ECONNRESET);
	/* Closed only once the reset pipe is gone: nng 1.5.2's close can wait
	 * for ever when it races the close of a pipe whose operations are
	 * completing (nanomsg/nng#1636, client/sockclose.h); it did here, under
	 * load, with the 3 MiB still being sent. */
	for (nng_time until = nng_clock() + 5000; atomic_load(&pipes_gone) == 0 && nng_clock() < until;)
		nng_msleep(5);
	assert_int_equal(atomic_load(&pipes_gone), 1);
	nng_msleep(50); /* and its last operations with it */
	nng_close(s);
	free(big);

	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	assert_int_equal(echo(c, "still here", 10, 0, &out, &err), RPCQ_OK);
	assert_int_equal(out->payload.len, 10);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	Rpcq__CheckResponse *after = health_check(c);
	assert_int_equal(after->calls, before->calls + 2); /* the Echo and this Check: the frame was no call */
	protobuf_c_message_free_unpacked(&before->base, NULL);
	protobuf_c_message_free_unpacked(&after->base, NULL);
	rpcq_client_destroy(c);
}

/* An Echo request envelope as the wire carries it (without nng's header):
 * a payload of len zero bytes. malloc'd; *size gets its length. */
static uint8_t *echo_request(size_t len, uint32_t delay_ms, uint32_t deadline_ms, size_t *size)
{
	uint8_t *data = calloc(1, len + 1);
	uint8_t *payload = malloc(len + 64);
	uint8_t *frame = malloc(len + 256);
	assert_non_null(data);
	assert_non_null(payload);
	assert_non_null(frame);
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT;
	in.payload.data = data;
	in.payload.len = len;
	in.delay_ms = delay_ms;
	Rpcq__Request req = RPCQ__REQUEST__INIT;
	req.method = "/rpcq.Health/Echo";
	req.deadline_ms = deadline_ms;
	req.payload.data = payload;
	req.payload.len = rpcq__echo_message__pack(&in, payload);
	*size = rpcq__request__pack(&req, frame);
	free(payload);
	free(data);
	return frame;
}

/* Polls Health/Check (and serves an Echo each time, which must succeed)
 * until the server has dropped a reply since `before`, for at most 10 s.
 * Returns the Check that saw it (fails the test if none did). */
static Rpcq__CheckResponse *wait_for_a_dropped_reply(rpcq_client *c, const Rpcq__CheckResponse *before)
{
	for (int i = 0; i < 100; i++) {
		nng_msleep(100);
		Rpcq__EchoMessage *out = NULL;
		rpcq_error err;
		assert_int_equal(echo(c, "meanwhile", 9, 0, &out, &err), RPCQ_OK);
		protobuf_c_message_free_unpacked(&out->base, NULL);
		Rpcq__CheckResponse *now = health_check(c);
		if (now->replies_dropped > before->replies_dropped)
			return now;
		protobuf_c_message_free_unpacked(&now->base, NULL);
	}
	fail_msg("no reply was dropped within 10 s");
	return NULL;
}

/* A caller that leaves before its answer is ready: REP drops the reply
 * without a word, so rpcqd counts it where an operator can see it. */
static void test_reply_to_a_departed_caller_is_dropped_and_counted(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 5000, 0);
	Rpcq__CheckResponse *before = health_check(c);

	nng_socket s;
	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	assert_int_equal(nng_dial(s, srv.rpc_url, NULL, 0), 0);
	size_t flen;
	uint8_t *frame = echo_request(0, 300, 0, &flen);
	assert_int_equal(nng_send(s, frame, flen, 0), 0);
	free(frame);
	nng_msleep(100); /* received, and sleeping in its handler */
	nng_close(s);

	Rpcq__CheckResponse *after = wait_for_a_dropped_reply(c, before);
	assert_int_equal(after->replies_dropped, before->replies_dropped + 1);
	protobuf_c_message_free_unpacked(&before->base, NULL);
	protobuf_c_message_free_unpacked(&after->base, NULL);
	rpcq_client_destroy(c);
}

/* A TCP connection speaking nng's SP protocol as a REQ peer, by hand, so
 * that it can do what no nng socket does: never read. Returns the fd. */
static int sp_req_connect(const char *url)
{
	int port = 0;
	assert_int_equal(sscanf(url, "tcp://127.0.0.1:%d", &port), 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0}; /* protocol REQ0 */
	assert_int_equal(write(fd, hello, sizeof(hello)), (ssize_t)sizeof(hello));
	return fd;
}

/* Sends one framed request: 8-byte length, 4-byte request id, body. */
static void sp_req_send(int fd, uint32_t id, const uint8_t *body, size_t len)
{
	uint8_t head[12];
	uint64_t n = len + 4;
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)(n >> (56 - 8 * i));
	id |= 0x80000000u;
	for (int i = 0; i < 4; i++)
		head[8 + i] = (uint8_t)(id >> (24 - 8 * i));
	assert_int_equal(write(fd, head, sizeof(head)), (ssize_t)sizeof(head));
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, body + off, len - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
}

/* A caller that sends and never reads: once the kernel's buffers are full,
 * its replies queue in rpcqd, each waits out its time (the call's deadline,
 * at least 1 s) and is dropped and counted; everyone else is served the
 * whole time. */
static void test_replies_to_a_caller_that_never_reads_are_dropped_in_time(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 5000, 0);
	Rpcq__CheckResponse *before = health_check(c);

	size_t blen;
	uint8_t *body = echo_request(900 * 1024, 0, 500, &blen); /* the server's limit is 1 MiB */
	int fd = sp_req_connect(srv.rpc_url);
	const int n = 24; /* 21 MiB of replies: more than loopback buffers hold */
	for (int i = 0; i < n; i++)
		sp_req_send(fd, (uint32_t)i + 1, body, blen);
	free(body);

	Rpcq__CheckResponse *after = wait_for_a_dropped_reply(c, before);
	close(fd);
	assert_true(after->replies_dropped > before->replies_dropped);
	protobuf_c_message_free_unpacked(&before->base, NULL);
	protobuf_c_message_free_unpacked(&after->base, NULL);
	rpcq_client_destroy(c);
}

static void test_deadline_expiry_is_deadline_exceeded(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 300, 0);
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	nng_time t0 = nng_clock();
	assert_int_equal(echo(c, "slow", 4, 5000, &out, &err), RPCQ_DEADLINE_EXCEEDED);
	nng_time took = nng_clock() - t0;
	assert_true(took >= 250 && took < 3000);
	/* The deadline travels with the request: the server stops waiting too
	 * and its worker is free again. */
	assert_int_equal(echo(c, "fast", 4, 0, &out, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rpcq_client_destroy(c);
}

/* Clients whose calls time out just as the server answers DEADLINE_EXCEEDED
 * close cleanly: nng 1.5.2 used to hang in nng_close (or crash) for one
 * client in a few dozen when the client's own timeout raced that reply
 * (client.c, REPLY_GRACE_MS). */
static void test_clients_whose_calls_time_out_close_cleanly(void **state)
{
	(void)state;
	for (int i = 0; i < 40; i++) {
		rpcq_client *c = client_for(srv.rpc_url, 20 + i % 7, 0);
		/* Connected first: a first call of 20 ms can end before a loaded
		 * machine has connected, which is UNAVAILABLE, not this race. */
		Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT, *first = NULL;
		rpcq_call_options patient = {.timeout_ms = 10000};
		rpcq_error e;
		assert_int_equal(rpcq_health_echo(c, &in, &first, &patient, &e), RPCQ_OK);
		protobuf_c_message_free_unpacked(&first->base, NULL);
		for (int j = 0; j < 5; j++) {
			Rpcq__EchoMessage *out = NULL;
			rpcq_error err;
			assert_int_equal(echo(c, "late", 4, 5000, &out, &err), RPCQ_DEADLINE_EXCEEDED);
		}
		rpcq_client_destroy(c);
	}
}

static void test_per_call_timeout_overrides_the_client_default(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 100, 0);
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT;
	in.delay_ms = 300;
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	rpcq_call_options o = {.timeout_ms = 3000};
	assert_int_equal(rpcq_health_echo(c, &in, &out, &o, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rpcq_client_destroy(c);
}

#define CALLERS 64
#define CALLS_EACH 50

struct caller {
	rpcq_client *c;
	int id;
	int mismatches;
	int failures;
};

static void *caller_main(void *arg)
{
	struct caller *k = arg;
	for (int i = 0; i < CALLS_EACH; i++) {
		char payload[64];
		int n = snprintf(payload, sizeof(payload), "caller %d call %d", k->id, i);
		Rpcq__EchoMessage *out = NULL;
		rpcq_error err;
		if (echo(k->c, payload, (size_t)n, (uint32_t)(i % 3), &out, &err) != RPCQ_OK) {
			k->failures++;
			continue;
		}
		if (out->payload.len != (size_t)n || memcmp(out->payload.data, payload, (size_t)n) != 0)
			k->mismatches++;
		protobuf_c_message_free_unpacked(&out->base, NULL);
	}
	return NULL;
}

static void test_64_concurrent_callers_sharing_a_client_get_their_own_answers(void **state)
{
	(void)state;
	rpcq_client *c = client_for(srv.rpc_url, 20000, 0);
	pthread_t t[CALLERS];
	struct caller k[CALLERS];
	for (int i = 0; i < CALLERS; i++) {
		k[i] = (struct caller){.c = c, .id = i};
		assert_int_equal(pthread_create(&t[i], NULL, caller_main, &k[i]), 0);
	}
	for (int i = 0; i < CALLERS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(k[i].failures, 0);
		assert_int_equal(k[i].mismatches, 0);
	}
	rpcq_client_destroy(c);
}

static void test_no_server_is_unavailable_with_the_url(void **state)
{
	(void)state;
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", harness_free_port());
	rpcq_client *c = client_for(url, 400, 0);
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	assert_int_equal(echo(c, "x", 1, 0, &out, &err), RPCQ_UNAVAILABLE);
	assert_non_null(strstr(err.message, url));
	rpcq_client_destroy(c);
}

struct slow_call {
	const char *url;
	uint32_t delay_ms;
	int no_retry;
	rpcq_status st;
	size_t len;
};

static void *slow_call_main(void *arg)
{
	struct slow_call *s = arg;
	rpcq_client *c = client_for(s->url, 10000, 0);
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT;
	in.payload.data = (uint8_t *)"in flight";
	in.payload.len = 9;
	in.delay_ms = s->delay_ms;
	rpcq_call_options opts = {.retry = s->no_retry ? 2 : 0};
	s->st = rpcq_health_echo(c, &in, &out, &opts, &err);
	if (s->st == RPCQ_OK) {
		s->len = out->payload.len;
		protobuf_c_message_free_unpacked(&out->base, NULL);
	}
	rpcq_client_destroy(c);
	return NULL;
}

static void test_sigterm_drains_in_flight_calls_and_refuses_new_ones(void **state)
{
	(void)state;
	harness_server s2;
	harness_server_start(&s2, &pg, NULL);
	struct slow_call sc = {.url = s2.rpc_url, .delay_ms = 1500};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, slow_call_main, &sc), 0);
	nng_msleep(400);
	assert_int_equal(kill(s2.pid, SIGTERM), 0);
	nng_msleep(200);

	/* While draining, a new call is refused so the caller can go elsewhere. */
	rpcq_client *c = client_for(s2.rpc_url, 2000, 0);
	Rpcq__EchoMessage *out = NULL;
	rpcq_error err;
	rpcq_status st = echo(c, "late", 4, 0, &out, &err);
	assert_int_equal(st, RPCQ_UNAVAILABLE);
	rpcq_client_destroy(c);

	/* Idempotent calls are retried when a server answers UNAVAILABLE, so
	 * with a second server in the list none of them fails; without retries
	 * the draining server's refusals reach the caller. */
	char both[300];
	snprintf(both, sizeof(both), "%s,%s", s2.rpc_url, srv.rpc_url);
	c = client_for(both, 3000, 0);
	nng_msleep(100); /* both connections up */
	int refused = 0, refused_without_retry = 0;
	rpcq_call_options no_retry = {.retry = 2};
	for (int i = 0; i < 10; i++) {
		Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT;
		if (rpcq_health_echo(c, &in, &out, NULL, &err) == RPCQ_OK)
			protobuf_c_message_free_unpacked(&out->base, NULL);
		else
			refused++;
		if (rpcq_health_echo(c, &in, &out, &no_retry, &err) == RPCQ_OK)
			protobuf_c_message_free_unpacked(&out->base, NULL);
		else
			refused_without_retry++;
	}
	assert_int_equal(refused, 0);
	assert_true(refused_without_retry > 0);
	rpcq_client_destroy(c);

	pthread_join(t, NULL);
	assert_int_equal(sc.st, RPCQ_OK);
	assert_int_equal(sc.len, 9);
	assert_int_equal(harness_server_stop(&s2), 0);
}

/* When the drain timeout runs out, calls not started yet are refused with
 * UNAVAILABLE (safe to send elsewhere: they did nothing), while a running
 * handler finishes and its answer is delivered. One worker: the slow call
 * holds it, the second call waits in the queue past the timeout. */
static void test_drain_timeout_refuses_calls_not_started(void **state)
{
	(void)state;
	harness_server s3;
	const char *args[] = {"--drain-timeout-ms", "200", "--workers", "1", NULL};
	harness_server_start(&s3, &pg, args);
	struct slow_call running = {.url = s3.rpc_url, .delay_ms = 1500, .no_retry = 1};
	struct slow_call queued = {.url = s3.rpc_url, .delay_ms = 0, .no_retry = 1};
	pthread_t t1, t2;
	assert_int_equal(pthread_create(&t1, NULL, slow_call_main, &running), 0);
	nng_msleep(200);
	assert_int_equal(pthread_create(&t2, NULL, slow_call_main, &queued), 0);
	nng_msleep(200);
	assert_int_equal(kill(s3.pid, SIGTERM), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(running.st, RPCQ_OK);
	assert_int_equal(running.len, 9);
	assert_int_equal(queued.st, RPCQ_UNAVAILABLE);
	assert_int_equal(harness_server_stop(&s3), 0);
	size_t n;
	char *log = harness_read_file(s3.log_path, &n);
	assert_non_null(strstr(log, "drain timeout with 2 call(s) in flight"));
	free(log);
}

static void test_ipc_and_ws_listeners_serve_calls_too(void **state)
{
	(void)state;
	char ipc[300], ws[96], listen_ipc[320], listen_ws[120];
	snprintf(ipc, sizeof(ipc), "ipc://%s/rpcq.sock", pg.dir);
	snprintf(ws, sizeof(ws), "ws://127.0.0.1:%d/rpcq", harness_free_port());
	snprintf(listen_ipc, sizeof(listen_ipc), "--listen=%s", ipc);
	snprintf(listen_ws, sizeof(listen_ws), "--listen=%s", ws);
	const char *args[] = {listen_ipc, listen_ws, NULL};
	harness_server s3;
	harness_server_start(&s3, &pg, args);
	const char *urls[] = {ipc, ws};
	for (int i = 0; i < 2; i++) {
		rpcq_client *c = client_for(urls[i], 5000, 0);
		Rpcq__EchoMessage *out = NULL;
		rpcq_error err;
		assert_int_equal(echo(c, "via", 3, 0, &out, &err), RPCQ_OK);
		assert_memory_equal(out->payload.data, "via", 3);
		protobuf_c_message_free_unpacked(&out->base, NULL);
		rpcq_client_destroy(c);
	}
	assert_int_equal(harness_server_stop(&s3), 0);
}

static void test_tls_listener_serves_a_client_that_verifies_its_certificate(void **state)
{
	(void)state;
	char cert[300], key[300];
	snprintf(cert, sizeof(cert), "%s/server.crt", pg.dir);
	snprintf(key, sizeof(key), "%s/server.key", pg.dir);
	const char *openssl[] = {"openssl",  "req",
				 "-x509",    "-newkey",
				 "rsa:2048", "-nodes",
				 "-days",    "2",
				 "-subj",    "/CN=127.0.0.1",
				 "-addext",  "subjectAltName=IP:127.0.0.1,DNS:localhost",
				 "-keyout",  key,
				 "-out",     cert,
				 NULL};
	assert_int_equal(harness_run(openssl, NULL, NULL, NULL, 30000), 0);
	char url[96], listen[120], cert_flag[320], key_flag[320];
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", harness_free_port());
	snprintf(listen, sizeof(listen), "--listen=%s", url);
	snprintf(cert_flag, sizeof(cert_flag), "--tls-cert=%s", cert);
	snprintf(key_flag, sizeof(key_flag), "--tls-key=%s", key);
	char pub_url[96], publish[120];
	snprintf(pub_url, sizeof(pub_url), "tls+tcp://127.0.0.1:%d", harness_free_port());
	snprintf(publish, sizeof(publish), "--publish=%s", pub_url);
	const char *args[] = {listen, publish, cert_flag, key_flag, NULL};
	harness_server s4;
	harness_server_start(&s4, &pg, args);
	rpcq_client_options o = {.servers = url, .timeout_ms = 5000, .tls_ca_file = cert};
	rpcq_client *c = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_client_create(&c, &o, &err), RPCQ_OK);
	Rpcq__EchoMessage *out = NULL;
	assert_int_equal(echo(c, "sealed", 6, 0, &out, &err), RPCQ_OK);
	assert_memory_equal(out->payload.data, "sealed", 6);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	/* The stream publisher listens with TLS too, and says so. */
	Rpcq__EndpointsRequest ein = RPCQ__ENDPOINTS_REQUEST__INIT;
	Rpcq__EndpointsResponse *eout = NULL;
	assert_int_equal(rpcq_streams_endpoints(c, &ein, &eout, NULL, &err), RPCQ_OK);
	int listed = 0; /* beside the harness's own plain one */
	for (size_t i = 0; i < eout->n_publish_urls; i++)
		listed |= strcmp(eout->publish_urls[i], pub_url) == 0;
	assert_true(listed);
	protobuf_c_message_free_unpacked(&eout->base, NULL);
	rpcq_client_destroy(c);
	assert_int_equal(harness_server_stop(&s4), 0);
}

/* The rpcq command. */

static int cli(const char *const *args, const char *input, char **out, char **err)
{
	return harness_cli(srv.rpc_url, args, input, out, err);
}

static void test_cli_health_and_list(void **state)
{
	(void)state;
	char *out = NULL, *err = NULL;
	const char *health[] = {"health", NULL};
	assert_int_equal(cli(health, NULL, &out, &err), 0);
	assert_non_null(strstr(out, "status: SERVING"));
	assert_non_null(strstr(out, "database: ok"));
	assert_non_null(strstr(out, "max message: 1.0 MiB (1048576 bytes)\n")); /* the server's --max-message-bytes */
	free(out);
	free(err);
	/* For scripts and health checks: the reply as JSON, the same exit status. */
	const char *health_json[] = {"health", "--json", NULL};
	assert_int_equal(cli(health_json, NULL, &out, &err), 0);
	if (strstr(out, "\"status\": \"SERVING\"") == NULL || strstr(out, "\"databaseOk\": true") == NULL ||
	    strstr(out, "\"maxMessageBytes\": \"1048576\"") == NULL)
		fail_msg("rpcq health --json printed: %s", out);
	free(out);
	free(err);
	const char *health_bad[] = {"health", "--jsn", NULL};
	assert_int_equal(cli(health_bad, NULL, &out, &err), 2);
	free(out);
	free(err);

	const char *list[] = {"list", NULL};
	assert_int_equal(cli(list, NULL, &out, &err), 0);
	assert_non_null(strstr(out, "rpcq.Health\n"));
	assert_non_null(strstr(out, "/rpcq.Health/Echo(rpcq.EchoMessage) returns (rpcq.EchoMessage)"));
	free(out);
	free(err);
}

static void test_cli_call_takes_json_as_argument_file_or_stdin(void **state)
{
	(void)state;
	char *out = NULL, *err = NULL;
	const char *arg[] = {"call", "rpcq.Health/Echo", "{\"payload\":\"aGVsbG8=\"}", NULL};
	assert_int_equal(cli(arg, NULL, &out, &err), 0);
	assert_non_null(strstr(out, "\"payload\": \"aGVsbG8=\""));
	free(out);
	free(err);

	char path[300];
	snprintf(path, sizeof(path), "%s/echo.json", pg.dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"payload\": \"ZmlsZQ==\"}", f);
	fclose(f);
	char at[310];
	snprintf(at, sizeof(at), "@%s", path);
	const char *file[] = {"call", "/rpcq.Health/Echo", at, NULL};
	assert_int_equal(cli(file, NULL, &out, &err), 0);
	assert_non_null(strstr(out, "ZmlsZQ=="));
	free(out);
	free(err);

	const char *in[] = {"call", "rpcq.Health/Echo", "-", NULL};
	assert_int_equal(cli(in, "{\"payload\":\"c3RkaW4=\"}", &out, &err), 0);
	assert_non_null(strstr(out, "c3RkaW4="));
	free(out);
	free(err);
}

static void test_cli_failures_print_status_and_message_on_one_line(void **state)
{
	(void)state;
	char *out = NULL, *err = NULL;
	const char *unknown_field[] = {"call", "rpcq.Health/Echo", "{\"nope\":1}", NULL};
	assert_int_not_equal(cli(unknown_field, NULL, &out, &err), 0);
	assert_non_null(strstr(err, "rpcq: INVALID_ARGUMENT: "));
	assert_non_null(strstr(err, "nope"));
	assert_int_equal(strchr(err, '\n') - err + 1, (long)strlen(err));
	free(out);
	free(err);

	const char *unknown_method[] = {"call", "rpcq.Health/Nope", NULL};
	assert_int_not_equal(cli(unknown_method, NULL, &out, &err), 0);
	assert_non_null(strstr(err, "rpcq: UNIMPLEMENTED: "));
	free(out);
	free(err);

	const char *timeout[] = {"--timeout", "200", "call", "rpcq.Health/Echo", "{\"delayMs\":2000}", NULL};
	const char *argv[10] = {getenv("RPCQ_CLI"), "--server", srv.rpc_url};
	for (int i = 0; timeout[i]; i++)
		argv[3 + i] = timeout[i];
	assert_int_not_equal(harness_run(argv, NULL, &out, &err, 10000), 0);
	assert_non_null(strstr(err, "rpcq: DEADLINE_EXCEEDED: "));
	free(out);
	free(err);

	/* Nothing listening there: said within the CLI's 3 s wait for a first
	 * connection, not after the whole 60 s deadline. */
	char nowhere[64];
	snprintf(nowhere, sizeof(nowhere), "tcp://127.0.0.1:%d", harness_free_port());
	const char *health[] = {getenv("RPCQ_CLI"), "--server", nowhere, "--timeout", "60000", "health", NULL};
	int64_t t0 = harness_now_ms();
	assert_int_equal(harness_run(health, NULL, &out, &err, 30000), 1);
	int64_t took = harness_now_ms() - t0;
	if (strstr(err, "rpcq: UNAVAILABLE: no server reachable at ") == NULL || strstr(err, "3000 ms") == NULL ||
	    took > 20000)
		fail_msg("rpcq health with nothing at %s: %lld ms, stderr: %s", nowhere, (long long)took, err);
	free(out);
	free(err);
	const char *server_only[] = {getenv("RPCQ_CLI"), "--server", NULL};
	assert_int_equal(harness_run(server_only, NULL, &out, &err, 10000), 2);
	assert_non_null(strstr(err, "--server needs a value"));
	free(out);
	free(err);
}

static void test_cli_help_everywhere(void **state)
{
	(void)state;
	const char *cmds[][3] = {{"--help", NULL}, {"call", "--help"}, {"list", "--help"}, {"health", "--help"}};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *out = NULL, *err = NULL;
		assert_int_equal(cli(cmds[i], NULL, &out, &err), 0);
		assert_non_null(strstr(out, "usage: rpcq"));
		free(out);
		free(err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_through_the_generated_stub_returns_the_payload),
		cmocka_unit_test(test_health_check_reports_serving_and_the_database),
		cmocka_unit_test(test_list_services_describes_every_method_with_its_types),
		cmocka_unit_test(test_unknown_method_is_unimplemented_and_names_it),
		cmocka_unit_test(test_payload_that_does_not_decode_is_invalid_argument),
		cmocka_unit_test(test_garbage_envelope_is_answered_invalid_argument),
		cmocka_unit_test(test_request_over_the_size_limit_is_resource_exhausted),
		cmocka_unit_test(test_client_refuses_to_send_over_its_own_limit),
		cmocka_unit_test(test_destroying_a_client_cancels_the_call_in_flight),
		cmocka_unit_test(test_frame_over_twice_the_limit_costs_only_its_own_connection),
		cmocka_unit_test(test_reply_to_a_departed_caller_is_dropped_and_counted),
		cmocka_unit_test(test_replies_to_a_caller_that_never_reads_are_dropped_in_time),
		cmocka_unit_test(test_deadline_expiry_is_deadline_exceeded),
		cmocka_unit_test(test_clients_whose_calls_time_out_close_cleanly),
		cmocka_unit_test(test_per_call_timeout_overrides_the_client_default),
		cmocka_unit_test(test_64_concurrent_callers_sharing_a_client_get_their_own_answers),
		cmocka_unit_test(test_no_server_is_unavailable_with_the_url),
		cmocka_unit_test(test_sigterm_drains_in_flight_calls_and_refuses_new_ones),
		cmocka_unit_test(test_drain_timeout_refuses_calls_not_started),
		cmocka_unit_test(test_ipc_and_ws_listeners_serve_calls_too),
		cmocka_unit_test(test_tls_listener_serves_a_client_that_verifies_its_certificate),
		cmocka_unit_test(test_cli_health_and_list),
		cmocka_unit_test(test_cli_call_takes_json_as_argument_file_or_stdin),
		cmocka_unit_test(test_cli_failures_print_status_and_message_on_one_line),
		cmocka_unit_test(test_cli_help_everywhere),
	};
	int failed = cmocka_run_group_tests(tests, setup_all, teardown_all);
	/* nng tears closed sockets down on its own threads; let it finish
	 * before exit, so the leak checker sees only what is really lost. */
	nng_fini();
	return failed;
}
