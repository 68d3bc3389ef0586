/*
 * rpcq-stream-bench: update streams through rpcqd against bare nng pub/sub,
 * in one run, with 1 and 10 (or any) subscribers.
 *
 * rpcq side: changes are published as services publish them (stream_append
 * inside a transaction on a pool connection, then COMMIT), the rpcqd given by
 * --server fans them out, and each subscriber is a librpcq subscription in
 * its own thread with its own client. Raw side: one PUB socket in this
 * process and bare SUB sockets, same payload, same transport (tcp loopback).
 *
 * Two measurements per side and subscriber count:
 *   latency     M messages, one per publish, paced at R per second; the
 *               publish time (CLOCK_MONOTONIC, before stream_append or the
 *               send) travels in the payload; p50/p99 of receive - publish
 *               over every subscriber.
 *   throughput  N messages as fast as the publisher goes (rpcq: B per
 *               transaction); messages per second each subscriber received,
 *               the slowest one counted, from the first publish to its last
 *               message; and how fast the publisher published. rpcq delivers every message (losses are replayed);
 *               the raw side reports what PUB dropped.
 *
 *   rpcq-stream-bench --server URL --database CONNINFO [-s "1 10"] [-m 2000]
 *                     [-r 1000] [-n 20000] [-b 100] [-p 100]
 *
 * Prints one markdown row per measurement (for bench/README.md); exit 0
 * unless something failed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/rpcq.h>

#include "db/db.h"
#include "db/pool.h"
#include "frame.h"
#include "rpcq/health.pb-c.h"
#include "stream.h"

#define MAX_SUBS 64

static const char *server_url, *database;
static int lat_messages = 2000, lat_rate = 1000, thr_messages = 20000, batch = 100, payload_bytes = 100;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "rpcq-stream-bench: %s: %s\n", what, why);
	exit(1);
}

/* What one subscriber thread measures. */
struct sub {
	pthread_t thread;
	int index;
	int raw; /* bare SUB socket, else a subscription */
	nng_socket sock;
	rpcq_client *client;
	rpcq_subscription *subscription;
	const char *topic;
	int expected;
	int64_t *lat_ns; /* per message received, when measuring latency */
	int received;
	int64_t last_ns; /* receive time of the last message */
	atomic_int ready;
};

/* The publish stamp at the start of an EchoMessage payload. */
static int64_t stamp_of(const uint8_t *p, size_t len)
{
	int64_t t = 0;
	if (len >= sizeof(t))
		memcpy(&t, p, sizeof(t));
	return t;
}

static void *sub_main(void *arg)
{
	struct sub *s = arg;
	int64_t idle_since = now_ns();
	atomic_store(&s->ready, 1);
	while (s->received < s->expected && now_ns() - idle_since < 10LL * 1000000000) {
		int64_t stamp;
		if (s->raw) {
			nng_msg *msg;
			if (nng_recvmsg(s->sock, &msg, 0) != 0)
				continue;
			rpcq_stream_message *m;
			rpcq_error err;
			if (frame_decode(nng_msg_body(msg), nng_msg_len(msg), &m, &err) != RPCQ_OK)
				die("raw frame", err.message);
			nng_msg_free(msg);
			ProtobufCMessage *pm;
			if (rpcq_stream_message_unpack(m, NULL, &pm, &err) != RPCQ_OK)
				die("raw payload", err.message);
			const Rpcq__EchoMessage *e = (const Rpcq__EchoMessage *)pm;
			stamp = stamp_of(e->payload.data, e->payload.len);
			protobuf_c_message_free_unpacked(pm, NULL);
			rpcq_stream_message_free(m);
		} else {
			rpcq_stream_message *m = NULL;
			rpcq_error err;
			rpcq_status st = rpcq_subscription_next(s->subscription, 200, &m, &err);
			if (st != RPCQ_OK)
				die("subscription", err.message);
			if (m == NULL)
				continue;
			ProtobufCMessage *pm;
			if (rpcq_stream_message_unpack(m, NULL, &pm, &err) != RPCQ_OK)
				die("payload", err.message);
			const Rpcq__EchoMessage *e = (const Rpcq__EchoMessage *)pm;
			stamp = stamp_of(e->payload.data, e->payload.len);
			protobuf_c_message_free_unpacked(pm, NULL);
			rpcq_stream_message_free(m);
		}
		int64_t t = now_ns();
		if (s->lat_ns)
			s->lat_ns[s->received] = t - stamp;
		s->received++;
		s->last_ns = t;
		idle_since = t;
	}
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The packed EchoMessage of payload_bytes with the stamp first. */
static size_t make_payload(uint8_t *buf, int64_t stamp)
{
	static uint8_t body[1 << 16];
	size_t n = (size_t)payload_bytes < sizeof(stamp) ? sizeof(stamp) : (size_t)payload_bytes;
	memset(body, 'x', n);
	memcpy(body, &stamp, sizeof(stamp));
	Rpcq__EchoMessage e = RPCQ__ECHO_MESSAGE__INIT;
	e.payload.data = body;
	e.payload.len = n;
	return rpcq__echo_message__pack(&e, buf);
}

/* Publisher of the raw side. */
static nng_socket raw_pub;
static char raw_url[64];

static void raw_publish(const char *topic, uint64_t seq)
{
	static uint8_t packed[(1 << 16) + 64];
	Rpcq__StreamMessage m = RPCQ__STREAM_MESSAGE__INIT;
	m.topic = (char *)topic;
	m.seq = seq;
	m.type = "rpcq.EchoMessage";
	m.payload.data = packed;
	m.payload.len = make_payload(packed, now_ns());
	nng_msg *msg;
	if (nng_msg_alloc(&msg, frame_size(&m)) != 0)
		die("raw publish", "out of memory");
	frame_encode(&m, nng_msg_body(msg));
	if (nng_sendmsg(raw_pub, msg, NNG_FLAG_NONBLOCK) != 0)
		nng_msg_free(msg);
}

/* Publishes n messages on the rpcq side, per_tx per transaction. */
static void rpcq_publish(pool *db, const char *topic, int n, int per_tx)
{
	dbconn *c;
	rpcq_error err;
	if (pool_acquire(db, 0, &c, &err) != RPCQ_OK)
		die("pool_acquire", err.message);
	dbconn_set_deadline(c, 0);
	for (int i = 0; i < n;) {
		if (db_begin(c, &err) != RPCQ_OK)
			die("begin", err.message);
		for (int k = 0; k < per_tx && i < n; k++, i++) {
			static uint8_t body[1 << 16];
			size_t len = (size_t)payload_bytes < 8 ? 8 : (size_t)payload_bytes;
			int64_t stamp = now_ns();
			memset(body, 'x', len);
			memcpy(body, &stamp, sizeof(stamp));
			Rpcq__EchoMessage e = RPCQ__ECHO_MESSAGE__INIT;
			e.payload.data = body;
			e.payload.len = len;
			if (stream_append(c, topic, &e.base, NULL, &err) != RPCQ_OK)
				die("stream_append", err.message);
		}
		if (db_commit(c, &err) != RPCQ_OK)
			die("commit", err.message);
	}
	pool_release(db, c);
}

static void paced_sleep(int64_t start, int i)
{
	int64_t due = start + (int64_t)i * 1000000000 / lat_rate;
	int64_t wait = due - now_ns();
	if (wait > 0) {
		struct timespec ts = {wait / 1000000000, wait % 1000000000};
		nanosleep(&ts, NULL);
	}
}

/* One measurement with k subscribers. latency: paced single messages;
 * otherwise a throughput run. Prints its row. */
static void measure(pool *db, int raw, int k, int latency)
{
	static int run;
	char topic[64];
	snprintf(topic, sizeof(topic), "bench.%d.%d", (int)getpid(), ++run);
	int n = latency ? lat_messages : thr_messages;
	struct sub subs[MAX_SUBS];
	memset(subs, 0, sizeof(subs));
	for (int i = 0; i < k; i++) {
		struct sub *s = &subs[i];
		s->index = i;
		s->raw = raw;
		s->topic = topic;
		s->expected = n;
		if (latency && (s->lat_ns = calloc((size_t)n, sizeof(int64_t))) == NULL)
			die("latencies", "out of memory");
		rpcq_error err;
		if (raw) {
			if (nng_sub0_open(&s->sock) != 0)
				die("sub", "cannot open");
			nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 1 << 20);
			nng_socket_set_int(s->sock, NNG_OPT_RECVBUF, 1024);
			nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, 200);
			nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE, topic, strlen(topic));
			if (nng_dial(s->sock, raw_url, NULL, 0) != 0)
				die("raw dial", raw_url);
		} else {
			rpcq_client_options o = {.servers = server_url};
			if (rpcq_client_create(&s->client, &o, &err) != RPCQ_OK)
				die("client", err.message);
			const char *prefixes[] = {topic};
			if (rpcq_subscription_create(&s->subscription, s->client, prefixes, 1, NULL, &err) != RPCQ_OK)
				die("subscribe", err.message);
		}
		pthread_create(&s->thread, NULL, sub_main, s);
	}
	for (int i = 0; i < k; i++) {
		while (!atomic_load(&subs[i].ready))
			nng_msleep(1);
	}
	nng_msleep(300); /* connections up */

	int64_t start = now_ns();
	if (latency) {
		for (int i = 0; i < n; i++) {
			paced_sleep(start, i);
			if (raw)
				raw_publish(topic, (uint64_t)i + 1);
			else
				rpcq_publish(db, topic, 1, 1);
		}
	} else if (raw) {
		for (int i = 0; i < n; i++)
			raw_publish(topic, (uint64_t)i + 1);
	} else {
		rpcq_publish(db, topic, n, batch);
	}
	int64_t published = now_ns();

	int64_t *all = NULL;
	size_t nall = 0;
	double slowest = 0;
	int min_received = n;
	for (int i = 0; i < k; i++) {
		struct sub *s = &subs[i];
		pthread_join(s->thread, NULL);
		if (s->received < min_received)
			min_received = s->received;
		double secs = (double)((s->last_ns > published ? s->last_ns : published) - start) / 1e9;
		double rate = s->received / secs;
		if (i == 0 || rate < slowest)
			slowest = rate;
		if (latency) {
			int64_t *grown = realloc(all, (nall + (size_t)s->received) * sizeof(int64_t));
			if (grown == NULL)
				die("latencies", "out of memory");
			all = grown;
			memcpy(all + nall, s->lat_ns, (size_t)s->received * sizeof(int64_t));
			nall += (size_t)s->received;
			free(s->lat_ns);
		}
		if (raw) {
			nng_close(s->sock);
		} else {
			rpcq_subscription_stats st;
			rpcq_subscription_get_stats(s->subscription, &st);
			if (st.replayed)
				fprintf(stderr, "  subscriber %d: %llu of %d messages came by Replay\n", i,
					(unsigned long long)st.replayed, n);
			rpcq_subscription_destroy(s->subscription);
			rpcq_client_destroy(s->client);
		}
	}
	double lost = 100.0 * (double)(n - min_received) / n;
	if (latency) {
		qsort(all, nall, sizeof(*all), cmp_i64);
		double p50 = nall ? (double)all[nall / 2] / 1000 : 0;
		double p99 = nall ? (double)all[nall * 99 / 100] / 1000 : 0;
		printf("| %d | %s | latency, %d msg at %d/s | %.0f | %.0f | | | %.1f%% |\n", k,
		       raw ? "raw nng" : "rpcq", n, lat_rate, p50, p99, lost);
		free(all);
	} else {
		printf("| %d | %s | throughput, %d msg%s | | | %.0f | %.0f | %.1f%% |\n", k, raw ? "raw nng" : "rpcq",
		       n, raw ? "" : " (stream_append, batched commits)", (double)n * 1e9 / (double)(published - start),
		       slowest, lost);
	}
	fflush(stdout);
}

static int parse_int(const char *v, int min, int max)
{
	char *end;
	long x = strtol(v, &end, 10);
	if (*end != '\0' || x < min || x > max)
		die("bad number", v);
	return (int)x;
}

int main(int argc, char **argv)
{
	const char *counts = "1 10";
	static const char usage[] = "usage: rpcq-stream-bench --server URL --database CONNINFO [-s \"1 10\"] "
				    "[-m LAT_MESSAGES] [-r RATE] [-n THR_MESSAGES] [-b PER_TX] [-p BYTES]\n";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
		if (v == NULL) {
			fputs(usage, stderr);
			return 2;
		}
		i++;
		if (strcmp(a, "--server") == 0)
			server_url = v;
		else if (strcmp(a, "--database") == 0)
			database = v;
		else if (strcmp(a, "-s") == 0)
			counts = v;
		else if (strcmp(a, "-m") == 0)
			lat_messages = parse_int(v, 1, 10000000);
		else if (strcmp(a, "-r") == 0)
			lat_rate = parse_int(v, 1, 10000000);
		else if (strcmp(a, "-n") == 0)
			thr_messages = parse_int(v, 1, 100000000);
		else if (strcmp(a, "-b") == 0)
			batch = parse_int(v, 1, 100000);
		else if (strcmp(a, "-p") == 0)
			payload_bytes = parse_int(v, 8, 60000);
		else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (server_url == NULL || database == NULL) {
		fputs(usage, stderr);
		return 2;
	}

	pool *db;
	rpcq_error err;
	pool_config pc = {.conninfo = database, .min_conns = 1, .max_conns = 2};
	if (pool_create(&db, &pc, &err) != RPCQ_OK)
		die("pool", err.message);
	if (nng_pub0_open(&raw_pub) != 0)
		die("pub", "cannot open");
	nng_socket_set_size(raw_pub, NNG_OPT_RECVMAXSZ, 1024);
	nng_socket_set_int(raw_pub, NNG_OPT_SENDBUF, 1024);
	nng_listener l;
	int port = 0;
	if (nng_listen(raw_pub, "tcp://127.0.0.1:0", &l, 0) != 0 ||
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0)
		die("pub", "cannot listen on tcp://127.0.0.1:0");
	snprintf(raw_url, sizeof(raw_url), "tcp://127.0.0.1:%d", port);

	printf("| subscribers | side | measurement | p50 µs | p99 µs | published/s | received/s (slowest "
	       "subscriber) | lost |\n");
	printf("|---:|:---|:---|---:|---:|---:|---:|---:|\n");
	char list[256];
	snprintf(list, sizeof(list), "%s", counts);
	for (char *save = NULL, *tok = strtok_r(list, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
		int k = parse_int(tok, 1, MAX_SUBS);
		measure(db, 1, k, 1);
		measure(db, 0, k, 1);
		measure(db, 1, k, 0);
		measure(db, 0, k, 0);
	}
	nng_close(raw_pub);
	pool_destroy(db);
	return 0;
}
