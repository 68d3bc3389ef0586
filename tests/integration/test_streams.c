/*
 * Update streams end to end: a real PostgreSQL, two real rpcqd processes on
 * one database, and subscribers through librpcq, bare nng SUB sockets and
 * the rpcq command. Changes are made the way services make them: the test
 * opens a connection pool of its own (server/db) and calls stream_append
 * inside db_begin ... db_commit (or db_rollback), as a handler would on its
 * call's connection. What is checked is what a subscriber sees: every
 * message of a topic once, in seq order, whichever process made the change
 * and whichever process it listens to; nothing from a rolled-back change;
 * everything after a disconnect; DATA_LOSS once for what retention trimmed.
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
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/rpcq.h>

#include "db/db.h"
#include "db/pool.h"
#include "frame.h"
#include "harness.h"
#include "stream_append.h"
#include "rpcq/health.pb-c.h"
#include "stream.h"

static harness_pg pg;
static harness_server s1, s2;
static pool *db;

static int setup_all(void **state)
{
	(void)state;
	harness_pg_start(&pg);
	if (harness_migrate(&pg) != 0)
		return -1;
	harness_server_start(&s1, &pg, NULL);
	harness_server_start(&s2, &pg, NULL);
	pool_config pc = {.conninfo = pg.conninfo, .min_conns = 1, .max_conns = 4};
	rpcq_error err;
	if (pool_create(&db, &pc, &err) != RPCQ_OK) {
		print_message("pool: %s\n", err.message);
		return -1;
	}
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	pool_destroy(db);
	/* An rpcqd that does not exit 0 (a leak under ASan) fails the group. */
	int bad = s2.pid > 0 && harness_server_stop(&s2) != 0;
	bad |= s1.pid > 0 && harness_server_stop(&s1) != 0;
	harness_pg_stop(&pg);
	return bad ? -1 : 0;
}

/* Appends n messages "<tag>-<i>" to topic in one transaction, committed or
 * rolled back; returns the seq of the last one. */
static uint64_t append(const char *topic, const char *tag, int n, int commit)
{
	return test_stream_append(db, topic, tag, n, commit);
}

static rpcq_client *client_for(const char *url)
{
	rpcq_client_options o = {.servers = url, .timeout_ms = 3000};
	rpcq_client *c = NULL;
	rpcq_error err;
	if (rpcq_client_create(&c, &o, &err) != RPCQ_OK)
		fail_msg("client for %s: %s", url, err.message);
	return c;
}

static rpcq_subscription *subscribe(rpcq_client *c, const char *prefix, const rpcq_subscribe_options *o)
{
	rpcq_subscription *s = NULL;
	rpcq_error err;
	const char *prefixes[] = {prefix};
	if (rpcq_subscription_create(&s, c, prefixes, 1, o, &err) != RPCQ_OK)
		fail_msg("subscribe %s: %s", prefix, err.message);
	/* Let the subscriber connect, so that frames, not replays, carry what
	 * follows (either way it must see everything). */
	rpcq_stream_message *m = NULL;
	if (rpcq_subscription_next(s, 300, &m, &err) != RPCQ_OK || m != NULL)
		fail_msg("a new subscription to %s delivered something: %s", prefix, m ? m->topic : err.message);
	return s;
}

/* The payload text of a delivered EchoMessage, in a static buffer. */
static const char *text_of(const rpcq_stream_message *m)
{
	static char buf[128];
	ProtobufCMessage *pm = NULL;
	rpcq_error err;
	if (rpcq_stream_message_unpack(m, NULL, &pm, &err) != RPCQ_OK)
		fail_msg("unpack %s seq %llu: %s", m->topic, (unsigned long long)m->seq, err.message);
	const Rpcq__EchoMessage *e = (const Rpcq__EchoMessage *)pm;
	snprintf(buf, sizeof(buf), "%.*s", (int)e->payload.len, (const char *)e->payload.data);
	protobuf_c_message_free_unpacked(pm, NULL);
	return buf;
}

/* Receives n messages of topic with seqs first..first+n-1, in order, each
 * once, and payloads "<tag>-<i>" where tag changes at each transaction the
 * caller made (checked by the caller through texts, may be NULL).
 * Transient failures (the server restarting) are retried until 20 s pass. */
static void expect_seqs(rpcq_subscription *s, const char *topic, uint64_t first, int n, char (*texts)[64])
{
	nng_time until = nng_clock() + 20000;
	uint64_t next = first;
	while (next < first + (uint64_t)n) {
		if (nng_clock() > until)
			fail_msg("%s: got seqs up to %llu of %llu..%llu within 20 s", topic,
				 (unsigned long long)next - 1, (unsigned long long)first,
				 (unsigned long long)first + (uint64_t)n - 1);
		rpcq_stream_message *m = NULL;
		rpcq_error err;
		rpcq_status st = rpcq_subscription_next(s, 500, &m, &err);
		if (st == RPCQ_UNAVAILABLE || st == RPCQ_DEADLINE_EXCEEDED)
			continue;
		if (st != RPCQ_OK)
			fail_msg("next: %s %s", rpcq_status_name(st), err.message);
		if (m == NULL)
			continue;
		if (strcmp(m->topic, topic) != 0)
			fail_msg("a message of %s came while waiting for %s", m->topic, topic);
		if (m->seq != next)
			fail_msg("%s: seq %llu came when %llu was next", topic, (unsigned long long)m->seq,
				 (unsigned long long)next);
		assert_string_equal(m->type, "rpcq.EchoMessage");
		assert_true(m->published_at_ms > 1600000000000LL);
		if (texts != NULL)
			snprintf(texts[next - first], 64, "%.63s", text_of(m));
		rpcq_stream_message_free(m);
		next++;
	}
	assert_int_equal(rpcq_subscription_position(s, topic), first + (uint64_t)n - 1);
}

/* Nothing more arrives within ms. */
static void expect_quiet(rpcq_subscription *s, int ms)
{
	rpcq_stream_message *m = NULL;
	rpcq_error err;
	rpcq_status st = rpcq_subscription_next(s, ms, &m, &err);
	if (st != RPCQ_OK || m != NULL)
		fail_msg("expected nothing, got %s %s seq %llu", rpcq_status_name(st), m ? m->topic : err.message,
			 m ? (unsigned long long)m->seq : 0ULL);
}

/* A bare SUB socket on one publish URL, subscribed to prefix. */
static nng_socket raw_sub(const char *url, const char *prefix, int recvbuf)
{
	nng_socket s;
	assert_int_equal(nng_sub0_open(&s), 0);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 8 << 20);
	nng_socket_set_int(s, NNG_OPT_RECVBUF, recvbuf);
	assert_int_equal(nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, prefix, strlen(prefix)), 0);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	nng_msleep(200);
	return s;
}

/* Receives frames of topic from a bare socket until seq `last` or 10 s;
 * fails unless they are 1..last, in order, each once. */
static void expect_raw_frames(nng_socket s, const char *url, const char *topic, uint64_t last)
{
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
	for (uint64_t want = 1; want <= last; want++) {
		nng_msg *msg;
		int rv = nng_recvmsg(s, &msg, 0);
		if (rv != 0)
			fail_msg("%s: frame for seq %llu of %s: %s", url, (unsigned long long)want, topic,
				 nng_strerror(rv));
		rpcq_stream_message *m = NULL;
		rpcq_error err;
		if (frame_decode(nng_msg_body(msg), nng_msg_len(msg), &m, &err) != RPCQ_OK)
			fail_msg("%s: bad frame: %s", url, err.message);
		nng_msg_free(msg);
		if (strcmp(m->topic, topic) != 0 || m->seq != want)
			fail_msg("%s: frame %s seq %llu came when %s seq %llu was next", url, m->topic,
				 (unsigned long long)m->seq, topic, (unsigned long long)want);
		rpcq_stream_message_free(m);
	}
	/* And no second copy of anything. */
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 700);
	nng_msg *msg;
	int rv = nng_recvmsg(s, &msg, 0);
	if (rv == 0) {
		rpcq_stream_message *m = NULL;
		rpcq_error err;
		if (frame_decode(nng_msg_body(msg), nng_msg_len(msg), &m, &err) == RPCQ_OK)
			fail_msg("%s: an extra frame %s seq %llu", url, m->topic, (unsigned long long)m->seq);
		fail_msg("%s: an extra frame", url);
	}
}

static void test_every_process_publishes_every_message_once(void **state)
{
	(void)state;
	nng_socket a = raw_sub(s1.pub_url, "once.", 1024);
	nng_socket b = raw_sub(s2.pub_url, "once.", 1024);
	for (int t = 0; t < 10; t++)
		append("once.t", "tx", 10, 1);
	expect_raw_frames(a, s1.pub_url, "once.t", 100);
	expect_raw_frames(b, s2.pub_url, "once.t", 100);
	nng_close(a);
	nng_close(b);
}

static void test_a_subscriber_on_process_2_gets_changes_in_order_once(void **state)
{
	(void)state;
	/* Only process 2's publisher is dialed; the changes are committed by
	 * someone else (as they would be through process 1). */
	rpcq_client *c = client_for(s2.rpc_url);
	const char *urls[] = {s2.pub_url, NULL};
	rpcq_subscribe_options o = {.publish_urls = urls};
	rpcq_subscription *s = subscribe(c, "order.", &o);
	for (int t = 0; t < 20; t++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "tx%d", t);
		append("order.a", tag, 5, 1);
	}
	char texts[100][64];
	expect_seqs(s, "order.a", 1, 100, texts);
	for (int i = 0; i < 100; i++) {
		char want[64];
		snprintf(want, sizeof(want), "tx%d-%d", i / 5, i % 5);
		assert_string_equal(texts[i], want);
	}
	expect_quiet(s, 300);
	rpcq_subscription_stats st;
	rpcq_subscription_get_stats(s, &st);
	assert_true(st.frames > 0);
	assert_int_equal(st.bad_frames, 0);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
}

static void test_a_subscriber_asks_the_server_for_its_publish_urls(void **state)
{
	(void)state;
	rpcq_client *c = client_for(s1.rpc_url);
	Rpcq__EndpointsRequest req = RPCQ__ENDPOINTS_REQUEST__INIT;
	Rpcq__EndpointsResponse *resp = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_streams_endpoints(c, &req, &resp, NULL, &err), RPCQ_OK);
	assert_int_equal(resp->n_publish_urls, 1);
	assert_string_equal(resp->publish_urls[0], s1.pub_url);
	protobuf_c_message_free_unpacked(&resp->base, NULL);

	rpcq_subscription *s = subscribe(c, "ask.", NULL);
	append("ask.x", "m", 3, 1);
	expect_seqs(s, "ask.x", 1, 3, NULL);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
}

static void test_a_wildcard_publish_url_is_dialed_at_the_servers_host(void **state)
{
	(void)state;
	/* A second publish listener on every interface: the server gives
	 * tcp://0.0.0.0:<port>, which the subscriber dials at 127.0.0.1. Both
	 * listeners share one PUB socket, so a subscriber connected to both
	 * gets every frame twice and drops the second copy. */
	harness_server s3;
	char loopback[64];
	snprintf(loopback, sizeof(loopback), "tcp://127.0.0.1:%d", harness_free_port());
	const char *args[] = {"--publish", loopback, "--publish", "tcp://0.0.0.0:0", NULL};
	harness_server_start(&s3, &pg, args);
	rpcq_client *c = client_for(s3.rpc_url);
	Rpcq__EndpointsRequest req = RPCQ__ENDPOINTS_REQUEST__INIT;
	Rpcq__EndpointsResponse *resp = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_streams_endpoints(c, &req, &resp, NULL, &err), RPCQ_OK);
	assert_int_equal(resp->n_publish_urls, 2);
	assert_string_equal(resp->publish_urls[0], loopback);
	assert_int_equal(strncmp(resp->publish_urls[1], "tcp://0.0.0.0:", 14), 0);
	assert_string_not_equal(resp->publish_urls[1], "tcp://0.0.0.0:0");
	protobuf_c_message_free_unpacked(&resp->base, NULL);

	rpcq_subscription *s = subscribe(c, "wild.", NULL);
	append("wild.t", "m", 10, 1);
	expect_seqs(s, "wild.t", 1, 10, NULL);
	expect_quiet(s, 500);
	rpcq_subscription_stats st;
	rpcq_subscription_get_stats(s, &st);
	assert_true(st.duplicates >= 5);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
	assert_int_equal(harness_server_stop(&s3), 0);
}

/* A PUB socket of the test's own, which publishes only what the test says. */
static nng_socket own_pub(char *url, size_t len)
{
	nng_socket p;
	nng_listener l;
	int port;
	assert_int_equal(nng_pub0_open(&p), 0);
	nng_socket_set_size(p, NNG_OPT_RECVMAXSZ, 1024);
	assert_int_equal(nng_listen(p, "tcp://127.0.0.1:0", &l, 0), 0);
	assert_int_equal(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(url, len, "tcp://127.0.0.1:%d", port);
	return p;
}

static void test_a_frame_after_a_gap_waits_for_the_replayed_messages(void **state)
{
	(void)state;
	/* The subscriber hears only the test's publisher, which sends seq 5
	 * alone; the periodic check is too slow to matter here. */
	char url[64];
	nng_socket pub = own_pub(url, sizeof(url));
	rpcq_client *c = client_for(s1.rpc_url);
	const char *urls[] = {url, NULL};
	rpcq_subscribe_options o = {.publish_urls = urls, .poll_interval_ms = 60000};
	rpcq_subscription *s = subscribe(c, "fgap.", &o);
	append("fgap.t", "m", 5, 1);
	Rpcq__StreamMessage m = RPCQ__STREAM_MESSAGE__INIT;
	m.topic = "fgap.t";
	m.seq = 5;
	m.type = "rpcq.EchoMessage";
	nng_msg *msg;
	assert_int_equal(nng_msg_alloc(&msg, frame_size(&m)), 0);
	frame_encode(&m, nng_msg_body(msg));
	assert_int_equal(nng_sendmsg(pub, msg, 0), 0);
	nng_time t0 = nng_clock();
	char texts[5][64];
	expect_seqs(s, "fgap.t", 1, 5, texts);
	assert_true(nng_clock() - t0 < 5000);
	assert_string_equal(texts[4], "m-4");
	rpcq_subscription_stats st;
	rpcq_subscription_get_stats(s, &st);
	assert_int_equal(st.gaps, 1);
	assert_int_equal(st.replayed, 5);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
	nng_close(pub);
}

static void test_messages_lost_at_the_tail_are_found_by_the_periodic_check(void **state)
{
	(void)state;
	/* Nothing ever arrives by frame: only the Topics check can tell. */
	char url[64];
	nng_socket pub = own_pub(url, sizeof(url));
	rpcq_client *c = client_for(s1.rpc_url);
	const char *urls[] = {url, NULL};
	rpcq_subscribe_options o = {.publish_urls = urls, .poll_interval_ms = 200};
	rpcq_subscription *s = subscribe(c, "tail.", &o);
	append("tail.t", "m", 3, 1);
	append("tail.new", "m", 2, 1);
	/* Topics interleave; each one's seqs come in order. */
	nng_time t0 = nng_clock();
	uint64_t next_t = 1, next_new = 1;
	while ((next_t <= 3 || next_new <= 2) && nng_clock() - t0 < 5000) {
		rpcq_stream_message *m = NULL;
		rpcq_error err;
		assert_int_equal(rpcq_subscription_next(s, 200, &m, &err), RPCQ_OK);
		if (m == NULL)
			continue;
		if (strcmp(m->topic, "tail.t") == 0)
			assert_int_equal(m->seq, next_t++);
		else if (strcmp(m->topic, "tail.new") == 0)
			assert_int_equal(m->seq, next_new++);
		else
			fail_msg("unexpected topic %s", m->topic);
		rpcq_stream_message_free(m);
	}
	assert_int_equal(next_t, 4);
	assert_int_equal(next_new, 3);
	expect_quiet(s, 600);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
	nng_close(pub);
}

static void test_a_rolled_back_transaction_publishes_nothing(void **state)
{
	(void)state;
	rpcq_client *c = client_for(s1.rpc_url);
	rpcq_subscription *s = subscribe(c, "rb.", NULL);
	nng_socket raw = raw_sub(s2.pub_url, "rb.", 1024);
	append("rb.gone", "x", 5, 0);
	append("rb.kept", "x", 3, 0);
	uint64_t seq = append("rb.kept", "y", 1, 1);
	/* The rolled-back seqs were handed out again: no gap, nothing else. */
	assert_int_equal(seq, 1);
	char texts[1][64];
	expect_seqs(s, "rb.kept", 1, 1, texts);
	assert_string_equal(texts[0], "y-0");
	expect_raw_frames(raw, s2.pub_url, "rb.kept", 1);
	expect_quiet(s, 1500);
	Rpcq__ReplayRequest req = RPCQ__REPLAY_REQUEST__INIT;
	Rpcq__ReplayResponse *resp = NULL;
	rpcq_error err;
	req.topic = "rb.gone";
	assert_int_equal(rpcq_streams_replay(c, &req, &resp, NULL, &err), RPCQ_NOT_FOUND);
	nng_close(raw);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
}

static void test_a_subscriber_can_start_after_a_given_seq(void **state)
{
	(void)state;
	append("from.a", "old", 10, 1);
	append("from.b", "old", 4, 1);
	rpcq_client *c = client_for(s1.rpc_url);
	rpcq_topic_position pos[] = {{"from.b", 2}};
	rpcq_subscribe_options o = {
		.start = RPCQ_SUBSCRIBE_AFTER_SEQ, .after_seq = 7, .positions = pos, .npositions = 1};
	const char *prefixes[] = {"from.a", "from.b"};
	rpcq_subscription *s = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_subscription_create(&s, c, prefixes, 2, &o, &err), RPCQ_OK);
	/* from.a 8..10 and from.b 3..4 come, each topic in order. */
	uint64_t next_a = 8, next_b = 3;
	nng_time until = nng_clock() + 10000;
	while ((next_a <= 10 || next_b <= 4) && nng_clock() < until) {
		rpcq_stream_message *m = NULL;
		assert_int_equal(rpcq_subscription_next(s, 500, &m, &err), RPCQ_OK);
		if (m == NULL)
			continue;
		if (strcmp(m->topic, "from.a") == 0)
			assert_int_equal(m->seq, next_a++);
		else if (strcmp(m->topic, "from.b") == 0)
			assert_int_equal(m->seq, next_b++);
		else
			fail_msg("unexpected topic %s", m->topic);
		rpcq_stream_message_free(m);
	}
	assert_int_equal(next_a, 11);
	assert_int_equal(next_b, 5);
	append("from.b", "new", 1, 1);
	expect_seqs(s, "from.b", 5, 1, NULL);
	rpcq_subscription_stats st;
	rpcq_subscription_get_stats(s, &st);
	assert_true(st.replayed >= 5);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
}

/* A client whose message limit is smaller than the server's catches up in
 * pages it can take (Replay's max_bytes): 1,500 messages of 2 KB through a
 * 256 KiB client (pages of the server's 4 MiB reset its connection). */
static void test_a_client_with_a_smaller_limit_catches_up_in_pages_it_can_take(void **state)
{
	(void)state;
	static char tag[2001];
	memset(tag, 'k', sizeof(tag) - 1);
	append("small.client", tag, 1500, 1);
	rpcq_client_options co = {.servers = s1.rpc_url, .timeout_ms = 5000, .max_message_bytes = 262144};
	rpcq_client *c = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_client_create(&c, &co, &err), RPCQ_OK);
	rpcq_subscribe_options o = {.start = RPCQ_SUBSCRIBE_AFTER_SEQ, .after_seq = 0, .max_message_bytes = 262144};
	const char *prefixes[] = {"small.client"};
	rpcq_subscription *s = NULL;
	assert_int_equal(rpcq_subscription_create(&s, c, prefixes, 1, &o, &err), RPCQ_OK);
	expect_seqs(s, "small.client", 1, 1500, NULL);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
}

static void test_a_subscriber_disconnected_while_100_messages_went_by_gets_them_all(void **state)
{
	(void)state;
	harness_server s3;
	harness_server_start(&s3, &pg, NULL);
	rpcq_client *c = client_for(s3.rpc_url);
	rpcq_subscription *s = subscribe(c, "gap.", NULL);
	append("gap.t", "before", 5, 1);
	expect_seqs(s, "gap.t", 1, 5, NULL);

	/* The server this subscriber listens to goes away; 100 messages are
	 * committed meanwhile (and published by the other processes only);
	 * a new rpcqd comes up on the same addresses. */
	char rpc_url[128], pub_url[128];
	snprintf(rpc_url, sizeof(rpc_url), "%s", s3.rpc_url);
	snprintf(pub_url, sizeof(pub_url), "%s", s3.pub_url);
	assert_int_equal(harness_server_stop(&s3), 0);
	for (int t = 0; t < 10; t++)
		append("gap.t", "while", 10, 1);
	const char *args[] = {"--listen", rpc_url, "--publish", pub_url, NULL};
	harness_server_start(&s3, &pg, args);

	char texts[100][64];
	expect_seqs(s, "gap.t", 6, 100, texts);
	assert_string_equal(texts[0], "while-0");
	assert_string_equal(texts[99], "while-9");
	/* And the stream goes on live. */
	append("gap.t", "after", 3, 1);
	expect_seqs(s, "gap.t", 106, 3, NULL);
	rpcq_subscription_stats st;
	rpcq_subscription_get_stats(s, &st);
	assert_true(st.replayed >= 100);
	assert_true(st.gaps >= 1);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
	assert_int_equal(harness_server_stop(&s3), 0);
}

static void test_a_subscriber_that_never_reads_does_not_stall_publishing(void **state)
{
	(void)state;
	/* A subscriber that connects and never reads, with the smallest
	 * queue; another that reads everything. */
	nng_socket stalled = raw_sub(s1.pub_url, "", 1);
	rpcq_client *c = client_for(s1.rpc_url);
	rpcq_subscription *s = subscribe(c, "slow.", NULL);
	/* 4000 messages of 1 KiB: far more than the stalled one's socket
	 * buffers hold. */
	nng_time t0 = nng_clock();
	for (int t = 0; t < 40; t++) {
		dbconn *conn;
		rpcq_error err;
		assert_int_equal(pool_acquire(db, 0, &conn, &err), RPCQ_OK);
		dbconn_set_deadline(conn, nng_clock() + 20000);
		assert_int_equal(db_begin(conn, &err), RPCQ_OK);
		for (int i = 0; i < 100; i++) {
			uint8_t blob[1024];
			memset(blob, 'a' + i % 26, sizeof(blob));
			Rpcq__EchoMessage m = RPCQ__ECHO_MESSAGE__INIT;
			m.payload.data = blob;
			m.payload.len = sizeof(blob);
			assert_int_equal(stream_append(conn, "slow.t", &m.base, NULL, &err), RPCQ_OK);
		}
		assert_int_equal(db_commit(conn, &err), RPCQ_OK);
		pool_release(db, conn);
	}
	expect_seqs(s, "slow.t", 1, 4000, NULL);
	nng_duration took = (nng_duration)(nng_clock() - t0);
	print_message("4000 messages through with a stalled subscriber in %d ms\n", took);
	assert_true(took < 20000);
	/* The server still answers calls. */
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT, *out = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_health_echo(c, &in, &out, NULL, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	nng_close(stalled);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
}

static void test_publishing_resumes_after_the_database_restarts(void **state)
{
	(void)state;
	rpcq_client *c = client_for(s1.rpc_url);
	rpcq_subscription *s = subscribe(c, "pgre.", NULL);
	append("pgre.t", "a", 2, 1);
	expect_seqs(s, "pgre.t", 1, 2, NULL);
	harness_pg_restart(&pg);
	/* The test's own pool reconnects on the next acquire. */
	nng_msleep(300);
	append("pgre.t", "b", 2, 1);
	expect_seqs(s, "pgre.t", 3, 2, NULL);
	/* Frames, not only replays: the publisher is back on its own. */
	nng_socket raw = raw_sub(s2.pub_url, "pgre.u", 16);
	append("pgre.u", "c", 1, 1);
	expect_raw_frames(raw, s2.pub_url, "pgre.u", 1);
	nng_close(raw);
	rpcq_subscription_destroy(s);
	rpcq_client_destroy(c);
}

static void test_replay_and_topics_answer_from_the_log(void **state)
{
	(void)state;
	append("log.a", "m", 7, 1);
	append("log.b", "m", 2, 1);
	rpcq_client *c = client_for(s2.rpc_url);
	rpcq_error err;

	Rpcq__ReplayRequest rr = RPCQ__REPLAY_REQUEST__INIT;
	Rpcq__ReplayResponse *rresp = NULL;
	rr.topic = "log.a";
	rr.after_seq = 2;
	rr.limit = 3;
	assert_int_equal(rpcq_streams_replay(c, &rr, &rresp, NULL, &err), RPCQ_OK);
	assert_int_equal(rresp->n_messages, 3);
	assert_int_equal(rresp->messages[0]->seq, 3);
	assert_int_equal(rresp->messages[2]->seq, 5);
	assert_int_equal(rresp->last_seq, 7);
	assert_int_equal(rresp->first_retained_seq, 1);
	protobuf_c_message_free_unpacked(&rresp->base, NULL);
	rr.topic = "bad topic";
	assert_int_equal(rpcq_streams_replay(c, &rr, &rresp, NULL, &err), RPCQ_INVALID_ARGUMENT);

	Rpcq__TopicsRequest tr = RPCQ__TOPICS_REQUEST__INIT;
	Rpcq__TopicsResponse *tresp = NULL;
	tr.prefix = "log.";
	tr.limit = 1;
	assert_int_equal(rpcq_streams_topics(c, &tr, &tresp, NULL, &err), RPCQ_OK);
	assert_int_equal(tresp->n_topics, 1);
	assert_string_equal(tresp->topics[0]->topic, "log.a");
	assert_int_equal(tresp->topics[0]->last_seq, 7);
	assert_string_equal(tresp->next_after, "log.a");
	tr.after = "log.a";
	protobuf_c_message_free_unpacked(&tresp->base, NULL);
	assert_int_equal(rpcq_streams_topics(c, &tr, &tresp, NULL, &err), RPCQ_OK);
	assert_int_equal(tresp->n_topics, 1);
	assert_string_equal(tresp->topics[0]->topic, "log.b");
	assert_string_equal(tresp->next_after, "");
	protobuf_c_message_free_unpacked(&tresp->base, NULL);
	rpcq_client_destroy(c);
}

static void test_a_batch_append_takes_gap_free_seqs_in_order_in_one_statement(void **state)
{
	(void)state;
	append("batch.a", "single", 2, 1);
	dbconn *db1;
	rpcq_error err;
	assert_int_equal(pool_acquire(db, 0, &db1, &err), RPCQ_OK);
	dbconn_set_deadline(db1, nng_clock() + 20000);
	Rpcq__EchoMessage m[3] = {RPCQ__ECHO_MESSAGE__INIT, RPCQ__ECHO_MESSAGE__INIT, RPCQ__ECHO_MESSAGE__INIT};
	const ProtobufCMessage *msgs[3];
	const char *texts[3] = {"b-0", "b-1", "b-2"};
	for (int i = 0; i < 3; i++) {
		m[i].payload.data = (uint8_t *)texts[i];
		m[i].payload.len = 3;
		msgs[i] = &m[i].base;
	}
	uint64_t last = 0;
	assert_int_equal(db_begin(db1, &err), RPCQ_OK);
	assert_int_equal(stream_append_batch(db1, "batch.a", msgs, 3, &last, &err), RPCQ_OK);
	assert_int_equal(db_commit(db1, &err), RPCQ_OK);
	assert_int_equal(last, 5);
	/* A new topic starts at 1; a rolled-back batch leaves no trace. */
	assert_int_equal(db_begin(db1, &err), RPCQ_OK);
	assert_int_equal(stream_append_batch(db1, "batch.b", msgs, 3, &last, &err), RPCQ_OK);
	assert_int_equal(last, 3);
	db_rollback(db1);
	/* Mixed types are refused. */
	Rpcq__CheckRequest other = RPCQ__CHECK_REQUEST__INIT;
	const ProtobufCMessage *mixed[2] = {msgs[0], &other.base};
	assert_int_equal(db_begin(db1, &err), RPCQ_OK);
	assert_int_equal(stream_append_batch(db1, "batch.a", mixed, 2, &last, &err), RPCQ_INVALID_ARGUMENT);
	db_rollback(db1);
	pool_release(db, db1);

	rpcq_client *c = client_for(s2.rpc_url);
	Rpcq__ReplayRequest rr = RPCQ__REPLAY_REQUEST__INIT;
	Rpcq__ReplayResponse *rresp = NULL;
	rr.topic = "batch.a";
	assert_int_equal(rpcq_streams_replay(c, &rr, &rresp, NULL, &err), RPCQ_OK);
	assert_int_equal(rresp->n_messages, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(rresp->messages[i]->seq, (uint64_t)i + 1);
	assert_int_equal(rresp->messages[3]->payload.len, 5); /* the packed EchoMessage of "b-1" */
	protobuf_c_message_free_unpacked(&rresp->base, NULL);
	rr.topic = "batch.b";
	assert_int_equal(rpcq_streams_replay(c, &rr, &rresp, NULL, &err), RPCQ_NOT_FOUND);
	rpcq_client_destroy(c);
}

static void test_rpcq_subscribe_prints_json_lines_and_exits_after_count(void **state)
{
	(void)state;
	append("cli.t", "hello", 3, 1);
	const char *args[] = {"subscribe", "--from-seq", "1", "--count", "2", "cli.", NULL};
	char *out = NULL, *err = NULL;
	int rc = harness_cli(s1.rpc_url, args, NULL, &out, &err);
	if (rc != 0)
		fail_msg("rpcq subscribe exited %d: %s", rc, err);
	/* "hello-1" and "hello-2", base64 in the EchoMessage's JSON. */
	const char *want1 = "{\"topic\":\"cli.t\",\"seq\":\"2\",\"type\":\"rpcq.EchoMessage\",\"publishedAt\":\"";
	const char *want2 = "\"payload\":{\"payload\":\"aGVsbG8tMQ==\"}}\n";
	if (strncmp(out, want1, strlen(want1)) != 0 || strstr(out, want2) == NULL)
		fail_msg("unexpected output:\n%s", out);
	const char *line2 = strchr(out, '\n') + 1;
	assert_non_null(strstr(line2, "\"seq\":\"3\""));
	assert_non_null(strstr(line2, "aGVsbG8tMg=="));
	assert_string_equal(strchr(line2, '\n'), "\n");
	free(out);
	free(err);

	const char *help[] = {"subscribe", "--help", NULL};
	rc = harness_cli(s1.rpc_url, help, NULL, &out, &err);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "--from-seq"));
	free(out);
	free(err);
	const char *bad[] = {"subscribe", "no spaces", NULL};
	rc = harness_cli(s1.rpc_url, bad, NULL, &out, &err);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(err, "INVALID_ARGUMENT"));
	free(out);
	free(err);
}

/* Last: its server trims every topic to 5 messages. */
static void test_trimmed_messages_are_reported_once_as_data_loss(void **state)
{
	(void)state;
	append("loss.t", "m", 20, 1);
	/* A process with a retention of 5 messages per topic trims at start. */
	harness_server s3;
	const char *args[] = {"--stream-retention-count", "5", NULL};
	harness_server_start(&s3, &pg, args);
	rpcq_client *c = client_for(s3.rpc_url);
	rpcq_error err;
	nng_time until = nng_clock() + 10000;
	uint64_t first = 0;
	while (first != 16 && nng_clock() < until) {
		Rpcq__ReplayRequest rr = RPCQ__REPLAY_REQUEST__INIT;
		Rpcq__ReplayResponse *rresp = NULL;
		rr.topic = "loss.t";
		assert_int_equal(rpcq_streams_replay(c, &rr, &rresp, NULL, &err), RPCQ_OK);
		first = rresp->first_retained_seq;
		if (first == 16) {
			assert_int_equal(rresp->n_messages, 5);
			assert_int_equal(rresp->messages[0]->seq, 16);
		}
		protobuf_c_message_free_unpacked(&rresp->base, NULL);
		if (first != 16)
			nng_msleep(100);
	}
	assert_int_equal(first, 16);

	/* A subscriber resuming after seq 2 learns that 3..15 are gone, once,
	 * then gets the rest. */
	rpcq_topic_position pos[] = {{"loss.t", 2}};
	rpcq_subscribe_options o = {.positions = pos, .npositions = 1};
	const char *prefixes[] = {"loss."};
	rpcq_subscription *s = NULL;
	assert_int_equal(rpcq_subscription_create(&s, c, prefixes, 1, &o, &err), RPCQ_OK);
	rpcq_stream_message *m = NULL;
	rpcq_status st = rpcq_subscription_next(s, 5000, &m, &err);
	assert_int_equal(st, RPCQ_DATA_LOSS);
	assert_null(m);
	if (strstr(err.message, "loss.t") == NULL || strstr(err.message, "3..15") == NULL)
		fail_msg("the loss is not named: %s", err.message);
	assert_int_equal(rpcq_subscription_position(s, "loss.t"), 15);
	expect_seqs(s, "loss.t", 16, 5, NULL);
	rpcq_subscription_stats stats;
	rpcq_subscription_get_stats(s, &stats);
	assert_int_equal(stats.lost, 13);
	append("loss.t", "n", 1, 1);
	expect_seqs(s, "loss.t", 21, 1, NULL);
	expect_quiet(s, 300);
	rpcq_subscription_destroy(s);

	/* Starting from the whole retained history is no loss. */
	rpcq_subscribe_options all = {.start = RPCQ_SUBSCRIBE_AFTER_SEQ};
	assert_int_equal(rpcq_subscription_create(&s, c, prefixes, 1, &all, &err), RPCQ_OK);
	expect_seqs(s, "loss.t", 16, 6, NULL);
	rpcq_subscription_get_stats(s, &stats);
	assert_int_equal(stats.lost, 0);
	rpcq_subscription_destroy(s);

	rpcq_client_destroy(c);
	assert_int_equal(harness_server_stop(&s3), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_process_publishes_every_message_once),
		cmocka_unit_test(test_a_subscriber_on_process_2_gets_changes_in_order_once),
		cmocka_unit_test(test_a_subscriber_asks_the_server_for_its_publish_urls),
		cmocka_unit_test(test_a_wildcard_publish_url_is_dialed_at_the_servers_host),
		cmocka_unit_test(test_a_frame_after_a_gap_waits_for_the_replayed_messages),
		cmocka_unit_test(test_messages_lost_at_the_tail_are_found_by_the_periodic_check),
		cmocka_unit_test(test_a_rolled_back_transaction_publishes_nothing),
		cmocka_unit_test(test_a_subscriber_can_start_after_a_given_seq),
		cmocka_unit_test(test_a_client_with_a_smaller_limit_catches_up_in_pages_it_can_take),
		cmocka_unit_test(test_a_subscriber_disconnected_while_100_messages_went_by_gets_them_all),
		cmocka_unit_test(test_a_subscriber_that_never_reads_does_not_stall_publishing),
		cmocka_unit_test(test_replay_and_topics_answer_from_the_log),
		cmocka_unit_test(test_a_batch_append_takes_gap_free_seqs_in_order_in_one_statement),
		cmocka_unit_test(test_rpcq_subscribe_prints_json_lines_and_exits_after_count),
		cmocka_unit_test(test_publishing_resumes_after_the_database_restarts),
		cmocka_unit_test(test_trimmed_messages_are_reported_once_as_data_loss),
	};
	int failed = cmocka_run_group_tests(tests, setup_all, teardown_all);
	/* nng tears closed sockets down on its own threads; let it finish
	 * before exit, so the leak checker sees only what is really lost. */
	nng_fini();
	return failed;
}
