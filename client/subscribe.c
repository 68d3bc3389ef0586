/*
 * librpcq subscriptions (see include/rpcq/stream.h for the contract).
 *
 * Per topic the subscription keeps three seqs: `queued` (the last seq put on
 * the delivery queue, or skipped as lost), `delivered` (the last one handed
 * to the caller) and `target` (the highest one known to exist). A frame whose
 * seq is queued + 1 is queued at once; an older one is a duplicate (another
 * publisher, or a replay that overtook it); a newer one reveals a gap, which
 * raises target and puts the topic on the `behind` list. While the queue is
 * empty, rpcq_subscription_next repairs one behind topic at a time with one
 * page of Streams/Replay, so memory stays bounded by a page however far
 * behind a subscription starts. Frames of a topic that is behind are still
 * queued when they are next in line, and dropped otherwise (the replay brings
 * them).
 *
 * Two more ways to find a gap, for losses no later frame reveals: every
 * connection to a publisher (the first one too: frames committed between the
 * Topics listing and the connection never reach this subscriber) triggers an
 * immediate check of the topics' last seqs; and every poll_interval the
 * check runs again, counting a topic as behind only when a seq it reported
 * at the previous check has still not arrived, so that messages merely in
 * flight between commit and frame do not cost a replay.
 *
 * Retention: when Replay starts above queued + 1, the messages in between are
 * gone. A loss marker goes on the queue in their place, so the caller gets
 * DATA_LOSS in order, once, and then the messages after it.
 *
 * Threading: the pipe callback (an nng thread) only bumps an atomic counter;
 * everything else runs on the caller's thread.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/alloc.h>
#include <rpcq/stream.h>
#include <rpcq/stubs.h>

#include "frame.h"
#include "readall.h"
#include "sockclose.h"
#include "tls_dial.h"
#include "topic_map.h"

#define DEFAULT_POLL_MS 1000
#define MAX_URLS 16
/* Frames the SUB socket holds for a caller busy elsewhere. */
#define SUB_RECVBUF 1024

struct topic_state {
	uint64_t queued;
	uint64_t delivered;
	uint64_t target;
	uint64_t polled; /* last_seq at the previous periodic check */
	int from_start;	 /* began with the whole retained history: a trimmed prefix is no loss */
	int behind;	 /* on the behind list */
};

/* A queued message, or (m NULL) a loss of seqs lost_from..lost_to. */
struct item {
	rpcq_stream_message *m;
	struct topic_state *t;
	uint64_t lost_from, lost_to;
};

struct rpcq_subscription {
	rpcq_client *c;
	char **metadata;	     /* copied pairs, NULL-terminated; NULL: none */
	rpcq_call_options call_opts; /* of its calls: the metadata */
	nng_socket sock;
	int sock_open;
	tls_dials tls; /* a configuration per TLS dialer */
	char **prefixes;
	int nprefixes;
	topic_map *topics;
	struct item *queue; /* ring buffer */
	size_t qhead, qlen, qcap;
	struct topic_state **behind;
	size_t nbehind, cap_behind;
	int poll_interval_ms;
	nng_time next_poll;
	atomic_uint connects; /* pipes added, bumped by the pipe callback */
	unsigned connects_seen;
	rpcq_subscription_stats stats;
};

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct rpcq_subscription *s = arg;
	(void)p;
	(void)ev;
	atomic_fetch_add(&s->connects, 1);
}

static int queue_push(struct rpcq_subscription *s, struct item it)
{
	if (s->qlen == s->qcap) {
		size_t cap = s->qcap ? s->qcap * 2 : 64;
		struct item *q = rpcq_alloc(cap * sizeof(*q));
		if (q == NULL)
			return -1;
		for (size_t i = 0; i < s->qlen; i++)
			q[i] = s->queue[(s->qhead + i) % s->qcap];
		rpcq_free(s->queue);
		s->queue = q;
		s->qcap = cap;
		s->qhead = 0;
	}
	s->queue[(s->qhead + s->qlen) % s->qcap] = it;
	s->qlen++;
	return 0;
}

static int behind_add(struct rpcq_subscription *s, struct topic_state *t)
{
	if (t->behind)
		return 0;
	if (s->nbehind == s->cap_behind) {
		size_t cap = s->cap_behind ? s->cap_behind * 2 : 16;
		struct topic_state **b = rpcq_realloc(s->behind, cap * sizeof(*b));
		if (b == NULL)
			return -1;
		s->behind = b;
		s->cap_behind = cap;
	}
	s->behind[s->nbehind++] = t;
	t->behind = 1;
	s->stats.gaps++;
	return 0;
}

static void behind_remove_first(struct rpcq_subscription *s)
{
	s->behind[0]->behind = 0;
	memmove(s->behind, s->behind + 1, (s->nbehind - 1) * sizeof(*s->behind));
	s->nbehind--;
}

static int matches_prefix(const struct rpcq_subscription *s, const char *topic)
{
	for (int i = 0; i < s->nprefixes; i++) {
		if (strncmp(topic, s->prefixes[i], strlen(s->prefixes[i])) == 0)
			return 1;
	}
	return 0;
}

/* A topic's state, created for a topic first met after the start (whose
 * every message is new to this subscription). NULL when out of memory. */
static struct topic_state *topic_get(struct rpcq_subscription *s, const char *topic)
{
	return topic_map_put(s->topics, topic, strlen(topic), NULL);
}

/* The host of the first server URL of the client ("" if it has none). */
static void server_host(const rpcq_client *c, char *host, size_t len)
{
	char first[512];
	const char *servers = rpcq_client_servers(c);
	size_t n = strcspn(servers, ",");
	host[0] = '\0';
	if (n >= sizeof(first))
		return;
	memcpy(first, servers, n);
	first[n] = '\0';
	nng_url *u;
	if (nng_url_parse(&u, first) != 0)
		return;
	snprintf(host, len, "%s", u->u_hostname ? u->u_hostname : "");
	nng_url_free(u);
}

/* url with a wildcard host (empty, 0.0.0.0, ::, *) replaced by host, into
 * out. 0 on success, -1 if it does not fit. */
static int rewrite_wildcard(const char *url, const char *host, char *out, size_t len)
{
	nng_url *u;
	int n;
	if (host[0] == '\0' || nng_url_parse(&u, url) != 0 || u->u_port == NULL || u->u_port[0] == '\0') {
		n = snprintf(out, len, "%s", url);
		return n < 0 || (size_t)n >= len ? -1 : 0;
	}
	const char *h = u->u_hostname ? u->u_hostname : "";
	int wild = h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "*") == 0;
	if (!wild) {
		n = snprintf(out, len, "%s", url);
	} else {
		int v6 = strchr(host, ':') != NULL;
		n = snprintf(out, len, "%s://%s%s%s:%s%s", u->u_scheme, v6 ? "[" : "", host, v6 ? "]" : "", u->u_port,
			     u->u_path ? u->u_path : "");
	}
	nng_url_free(u);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The subscriber's own certificate, for publishers that want one. */
static rpcq_status own_cert(nng_tls_config *tls, const char *cert_file, const char *key_file, rpcq_error *err)
{
	char *cert = readall_pem("certificate", cert_file, err);
	if (cert == NULL)
		return err->code;
	char *key = readall_pem("key", key_file, err);
	if (key == NULL) {
		rpcq_free(cert);
		return err->code;
	}
	int rv = nng_tls_config_own_cert(tls, cert, key, NULL);
	rpcq_free(cert);
	rpcq_free(key);
	if (rv != 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "TLS certificate %s with key %s: %s", cert_file,
				      key_file, nng_strerror(rv));
	return RPCQ_OK;
}

static rpcq_status dial(struct rpcq_subscription *s, const char *url, const rpcq_subscribe_options *o, rpcq_error *err)
{
	nng_dialer d;
	int rv = nng_dialer_create(&d, s->sock, url);
	if (rv != 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "publish URL \"%s\": %s", url, nng_strerror(rv));
	if (tls_dial_url(url)) {
		nng_tls_config *cfg;
		rpcq_status st = tls_dials_add(&s->tls, url, o ? o->tls_ca_file : NULL, &cfg, err);
		if (st == RPCQ_OK && o && o->tls_cert_file && o->tls_key_file)
			st = own_cert(cfg, o->tls_cert_file, o->tls_key_file, err);
		if (st != RPCQ_OK)
			return st;
		nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
	}
	nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, 50);
	nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, 1000);
	if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0)
		return rpcq_error_set(err, RPCQ_UNAVAILABLE, "publish URL \"%s\": %s", url, nng_strerror(rv));
	return RPCQ_OK;
}

/* Opens the SUB socket, subscribes the prefixes and dials the publishers:
 * the given URLs, or those the server names. */
static rpcq_status connect_publishers(struct rpcq_subscription *s, const rpcq_subscribe_options *o, rpcq_error *err)
{
	rpcq_status st;
	int rv = nng_sub0_open(&s->sock);
	if (rv != 0)
		return rpcq_error_set(err, RPCQ_INTERNAL, "cannot open a subscribe socket: %s", nng_strerror(rv));
	s->sock_open = 1;
	long max = o && o->max_message_bytes > 0 ? o->max_message_bytes : RPCQ_DEFAULT_MAX_MESSAGE;
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, (size_t)max + FRAME_TOPIC_MAX + 1);
	nng_socket_set_int(s->sock, NNG_OPT_RECVBUF, SUB_RECVBUF);
	for (int i = 0; i < s->nprefixes; i++) {
		rv = nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE, s->prefixes[i], strlen(s->prefixes[i]));
		if (rv != 0)
			return rpcq_error_set(err, RPCQ_INTERNAL, "cannot subscribe to \"%s\": %s", s->prefixes[i],
					      nng_strerror(rv));
	}
	nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, on_pipe, s);

	if (o && o->publish_urls) {
		for (int i = 0; o->publish_urls[i] != NULL; i++) {
			if ((st = dial(s, o->publish_urls[i], o, err)) != RPCQ_OK)
				return st;
		}
		return RPCQ_OK;
	}
	Rpcq__EndpointsRequest req = RPCQ__ENDPOINTS_REQUEST__INIT;
	Rpcq__EndpointsResponse *resp = NULL;
	if ((st = rpcq_streams_endpoints(s->c, &req, &resp, &s->call_opts, err)) != RPCQ_OK)
		return st;
	if (resp->n_publish_urls == 0) {
		st = rpcq_error_set(err, RPCQ_UNAVAILABLE, "the server at %s publishes no streams",
				    rpcq_client_servers(s->c));
		goto out;
	}
	char host[256], url[1024];
	server_host(s->c, host, sizeof(host));
	for (size_t i = 0; i < resp->n_publish_urls && i < MAX_URLS; i++) {
		if (rewrite_wildcard(resp->publish_urls[i], host, url, sizeof(url)) != 0) {
			st = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "publish URL \"%.64s...\" is too long",
					    resp->publish_urls[i]);
			goto out;
		}
		if ((st = dial(s, url, o, err)) != RPCQ_OK)
			goto out;
	}
	st = RPCQ_OK;
out:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return st;
}

/* Checks the last seqs of every topic matching the prefixes. immediate: a
 * topic is behind as soon as its last seq is above what was queued (start,
 * reconnect); otherwise only if the seq it had at the previous check has not
 * arrived yet. */
static rpcq_status check_topics(struct rpcq_subscription *s, int immediate, rpcq_error *err)
{
	for (int i = 0; i < s->nprefixes; i++) {
		char *after = NULL;
		for (;;) {
			Rpcq__TopicsRequest req = RPCQ__TOPICS_REQUEST__INIT;
			Rpcq__TopicsResponse *resp = NULL;
			req.prefix = s->prefixes[i];
			req.after = after ? after : "";
			rpcq_status st = rpcq_streams_topics(s->c, &req, &resp, &s->call_opts, err);
			rpcq_free(after);
			after = NULL;
			if (st != RPCQ_OK)
				return st;
			for (size_t k = 0; k < resp->n_topics; k++) {
				const Rpcq__TopicInfo *ti = resp->topics[k];
				struct topic_state *t = topic_get(s, ti->topic);
				if (t == NULL) {
					protobuf_c_message_free_unpacked(&resp->base, NULL);
					return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
				}
				uint64_t known = immediate ? ti->last_seq : t->polled;
				if (known > t->target)
					t->target = known;
				t->polled = ti->last_seq;
				if (t->target > t->queued && behind_add(s, t) != 0) {
					protobuf_c_message_free_unpacked(&resp->base, NULL);
					return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
				}
			}
			if (resp->next_after[0] != '\0')
				after = rpcq_strdup(resp->next_after);
			protobuf_c_message_free_unpacked(&resp->base, NULL);
			if (after == NULL)
				break;
		}
	}
	return RPCQ_OK;
}

/* Queues a loss of t's seqs queued+1..last. */
static int queue_loss(struct rpcq_subscription *s, struct topic_state *t, uint64_t last)
{
	struct item it = {NULL, t, t->queued + 1, last};
	if (queue_push(s, it) != 0)
		return -1;
	s->stats.lost += last - t->queued;
	t->queued = last;
	return 0;
}

/* One page of Replay for the first topic on the behind list. */
static rpcq_status catch_up(struct rpcq_subscription *s, rpcq_error *err)
{
	struct topic_state *t = s->behind[0];
	const char *topic = topic_map_key(s->topics, t);
	Rpcq__ReplayRequest req = RPCQ__REPLAY_REQUEST__INIT;
	Rpcq__ReplayResponse *resp = NULL;
	req.topic = (char *)topic;
	req.after_seq = t->queued;
	/* Pages the client's connection can take (its limit may be smaller than
	 * the server's, which sizes pages otherwise). */
	req.max_bytes = (uint64_t)rpcq_client_max_message_bytes(s->c);
	rpcq_status st = rpcq_streams_replay(s->c, &req, &resp, &s->call_opts, err);
	if (st == RPCQ_NOT_FOUND) {
		/* The topic is gone from the log (recreated): nothing to fill. */
		t->target = t->queued;
		behind_remove_first(s);
		return RPCQ_OK;
	}
	if (st != RPCQ_OK)
		return st;
	st = RPCQ_RESOURCE_EXHAUSTED;
	uint64_t before = t->queued;
	if (resp->first_retained_seq > t->queued + 1) {
		if (t->from_start && t->queued == 0)
			t->queued = resp->first_retained_seq - 1;
		else if (queue_loss(s, t, resp->first_retained_seq - 1) != 0)
			goto oom;
	}
	t->from_start = 0;
	for (size_t i = 0; i < resp->n_messages; i++) {
		const Rpcq__StreamMessage *m = resp->messages[i];
		if (m->seq <= t->queued)
			continue;
		if (m->seq > t->queued + 1 && queue_loss(s, t, m->seq - 1) != 0)
			goto oom;
		rpcq_stream_message *dm =
			frame_message_new(topic, m->seq, m->type, m->payload.data, m->payload.len, m->published_at_ms);
		struct item it = {dm, t, 0, 0};
		if (dm == NULL || queue_push(s, it) != 0) {
			rpcq_stream_message_free(dm);
			goto oom;
		}
		t->queued = m->seq;
		s->stats.replayed++;
	}
	if (resp->last_seq > t->target)
		t->target = resp->last_seq;
	/* Done, or no progress (the log holds less than was announced). */
	if (t->queued >= t->target || t->queued == before) {
		t->target = t->queued;
		behind_remove_first(s);
	}
	st = RPCQ_OK;
	goto out;
oom:
	rpcq_error_set(err, st, "out of memory replaying \"%s\"", topic);
out:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return st;
}

/* Takes a decoded frame: queues it, drops it as a duplicate, or notes the
 * gap it reveals. Takes ownership of m. */
static void on_frame(struct rpcq_subscription *s, rpcq_stream_message *m)
{
	struct topic_state *t = matches_prefix(s, m->topic) ? topic_get(s, m->topic) : NULL;
	if (t == NULL) {
		rpcq_stream_message_free(m);
		return;
	}
	if (m->seq <= t->queued) {
		s->stats.duplicates++;
		rpcq_stream_message_free(m);
		return;
	}
	if (m->seq == t->queued + 1) {
		struct item it = {m, t, 0, 0};
		if (queue_push(s, it) != 0) {
			rpcq_stream_message_free(m);
			return;
		}
		t->queued = m->seq;
		if (m->seq > t->target)
			t->target = m->seq;
		return;
	}
	if (m->seq > t->target)
		t->target = m->seq;
	rpcq_stream_message_free(m);
	/* Out of memory: the periodic check finds the gap again. */
	(void)behind_add(s, t);
}

rpcq_status rpcq_subscription_next(rpcq_subscription *s, int timeout_ms, rpcq_stream_message **out, rpcq_error *err)
{
	nng_time deadline = timeout_ms < 0 ? NNG_DURATION_INFINITE : nng_clock() + (nng_time)timeout_ms;
	*out = NULL;
	for (;;) {
		if (s->qlen > 0) {
			struct item it = s->queue[s->qhead];
			s->qhead = (s->qhead + 1) % s->qcap;
			s->qlen--;
			if (it.m != NULL) {
				it.t->delivered = it.m->seq;
				*out = it.m;
				return RPCQ_OK;
			}
			it.t->delivered = it.lost_to;
			return rpcq_error_set(err, RPCQ_DATA_LOSS,
					      "stream %s: messages %llu..%llu were trimmed by retention before "
					      "they could be delivered",
					      topic_map_key(s->topics, it.t), (unsigned long long)it.lost_from,
					      (unsigned long long)it.lost_to);
		}
		nng_time now = nng_clock();
		unsigned connects = atomic_load(&s->connects);
		if (connects != s->connects_seen || now >= s->next_poll) {
			int immediate = connects != s->connects_seen;
			/* Whatever the outcome, wait a period before the next check. */
			s->next_poll = now + (nng_time)s->poll_interval_ms;
			rpcq_status st = check_topics(s, immediate, err);
			if (st != RPCQ_OK)
				return st;
			s->connects_seen = connects;
		}
		if (s->nbehind > 0) {
			rpcq_status st = catch_up(s, err);
			if (st != RPCQ_OK)
				return st;
			continue;
		}
		now = nng_clock();
		if (timeout_ms >= 0 && now >= deadline && timeout_ms != 0)
			return RPCQ_OK;
		nng_time until = s->next_poll;
		if (timeout_ms >= 0 && deadline < until)
			until = deadline;
		nng_msg *msg;
		int rv;
		if (until <= now) {
			rv = nng_recvmsg(s->sock, &msg, NNG_FLAG_NONBLOCK);
		} else {
			nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, (nng_duration)(until - now));
			rv = nng_recvmsg(s->sock, &msg, 0);
		}
		if (rv == NNG_ETIMEDOUT || rv == NNG_EAGAIN) {
			if (timeout_ms == 0)
				return RPCQ_OK;
			continue;
		}
		if (rv != 0)
			return rpcq_error_set(err, RPCQ_UNAVAILABLE, "receiving stream frames: %s", nng_strerror(rv));
		s->stats.frames++;
		rpcq_stream_message *m;
		rpcq_error ferr;
		if (frame_decode(nng_msg_body(msg), nng_msg_len(msg), &m, &ferr) != RPCQ_OK) {
			s->stats.bad_frames++;
		} else {
			on_frame(s, m);
		}
		nng_msg_free(msg);
	}
}

/* Sets where each topic known now starts, per the options. */
static rpcq_status set_start(struct rpcq_subscription *s, const rpcq_subscribe_options *o, rpcq_error *err)
{
	rpcq_subscribe_start start = o ? o->start : RPCQ_SUBSCRIBE_FROM_NOW;
	uint64_t after = o ? o->after_seq : 0;
	/* The topics' last seqs, as an immediate check would take them. */
	rpcq_status st = check_topics(s, 1, err);
	if (st != RPCQ_OK)
		return st;
	/* check_topics listed every existing topic as behind from 0: now set
	 * each one's real starting point. */
	const char *key;
	void *val;
	for (size_t i = 0; (i = topic_map_next(s->topics, i, &key, &val)) != 0;) {
		struct topic_state *t = val;
		if (start == RPCQ_SUBSCRIBE_AFTER_SEQ) {
			t->queued = t->delivered = after;
			t->from_start = after == 0;
		} else {
			t->queued = t->delivered = t->target;
		}
	}
	for (size_t i = 0; o && i < o->npositions; i++) {
		struct topic_state *t = topic_get(s, o->positions[i].topic);
		if (t == NULL)
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		t->queued = t->delivered = o->positions[i].after_seq;
		t->from_start = 0;
	}
	/* Rebuild the behind list from the starting points. */
	for (size_t i = 0; i < s->nbehind; i++)
		s->behind[i]->behind = 0;
	s->nbehind = 0;
	for (size_t i = 0; (i = topic_map_next(s->topics, i, &key, &val)) != 0;) {
		struct topic_state *t = val;
		if (t->target > t->queued && behind_add(s, t) != 0)
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	s->stats.gaps = 0;
	return RPCQ_OK;
}

rpcq_status rpcq_subscription_create(rpcq_subscription **out, rpcq_client *c, const char *const *topic_prefixes,
				     int nprefixes, const rpcq_subscribe_options *opts, rpcq_error *err)
{
	if (nprefixes <= 0 || topic_prefixes == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "subscribe: no topic prefix given");
	for (int i = 0; i < nprefixes; i++) {
		if (topic_prefixes[i] == NULL || !frame_prefix_valid(topic_prefixes[i], strlen(topic_prefixes[i])))
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					      "subscribe: topic prefix \"%.64s\" is not 0..%d bytes of [A-Za-z0-9_.-]",
					      topic_prefixes[i] ? topic_prefixes[i] : "(null)", FRAME_TOPIC_MAX);
	}
	rpcq_status st = RPCQ_RESOURCE_EXHAUSTED;
	struct rpcq_subscription *s = rpcq_calloc(1, sizeof(*s));
	if (s == NULL)
		return rpcq_error_set(err, st, "out of memory");
	s->c = c;
	s->poll_interval_ms = opts && opts->poll_interval_ms > 0 ? opts->poll_interval_ms : DEFAULT_POLL_MS;
	s->topics = topic_map_create(sizeof(struct topic_state));
	s->prefixes = rpcq_calloc((size_t)nprefixes, sizeof(*s->prefixes));
	if (s->topics == NULL || s->prefixes == NULL) {
		rpcq_error_set(err, st, "out of memory");
		goto fail;
	}
	for (int i = 0; i < nprefixes; i++) {
		if ((s->prefixes[i] = rpcq_strdup(topic_prefixes[i])) == NULL) {
			rpcq_error_set(err, st, "out of memory");
			goto fail;
		}
		s->nprefixes++;
	}
	if (opts && opts->metadata && opts->metadata[0]) {
		size_t n = 0;
		while (opts->metadata[n] && opts->metadata[n + 1])
			n += 2;
		if ((s->metadata = rpcq_calloc(n + 1, sizeof(*s->metadata))) == NULL) {
			rpcq_error_set(err, st, "out of memory");
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			if ((s->metadata[i] = rpcq_strdup(opts->metadata[i])) == NULL) {
				rpcq_error_set(err, st, "out of memory");
				goto fail;
			}
		}
		s->call_opts.metadata = (const char *const *)s->metadata;
	}
	for (size_t i = 0; opts && i < opts->npositions; i++) {
		const char *t = opts->positions[i].topic;
		if (t == NULL || !frame_topic_valid(t, strlen(t)) || !matches_prefix(s, t)) {
			st = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					    "subscribe: position topic \"%.64s\" is not a topic matching the prefixes",
					    t ? t : "(null)");
			goto fail;
		}
	}
	/* Dial first, so that connecting overlaps the Topics listing. */
	if ((st = connect_publishers(s, opts, err)) != RPCQ_OK)
		goto fail;
	if ((st = set_start(s, opts, err)) != RPCQ_OK)
		goto fail;
	s->next_poll = nng_clock() + (nng_time)s->poll_interval_ms;
	*out = s;
	return RPCQ_OK;
fail:
	rpcq_subscription_destroy(s);
	return st;
}

uint64_t rpcq_subscription_position(const rpcq_subscription *s, const char *topic)
{
	const struct topic_state *t = topic_map_get(s->topics, topic, strlen(topic));
	return t ? t->delivered : 0;
}

void rpcq_subscription_get_stats(const rpcq_subscription *s, rpcq_subscription_stats *out)
{
	*out = s->stats;
}

void rpcq_subscription_destroy(rpcq_subscription *s)
{
	if (s == NULL)
		return;
	if (s->sock_open) {
		/* No callback into s once it is freed, even from a close that
		 * never ends. */
		nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, NULL, NULL);
		sock_close_bounded(s->sock);
	}
	tls_dials_free(&s->tls);
	for (char **m = s->metadata; m && *m; m++)
		rpcq_free(*m);
	rpcq_free(s->metadata);
	for (size_t i = 0; i < s->qlen; i++)
		rpcq_stream_message_free(s->queue[(s->qhead + i) % s->qcap].m);
	rpcq_free(s->queue);
	rpcq_free(s->behind);
	for (int i = 0; i < s->nprefixes; i++)
		rpcq_free(s->prefixes[i]);
	rpcq_free(s->prefixes);
	topic_map_destroy(s->topics);
	rpcq_free(s);
}
