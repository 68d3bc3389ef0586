/*
 * rpcq.Streams: what a subscriber needs besides the PUB frames. Replay serves
 * the persisted log of one topic after a seq (how a subscriber fills a gap),
 * Topics lists the topics with their last seq (how it notices messages lost
 * at the tail of a stream, and learns where topics stand when it starts), and
 * Endpoints gives this process's publish URLs. The log is written by
 * stream_append (server/core/stream.c) and trimmed by the publisher.
 */
#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "frame.h"
#include "publisher.h"
#include "rpcq/stream.pb-c.h"
#include "server.h"
#include "sql.h"
#include "streams.h"

#define REPLAY_DEFAULT_LIMIT 1000
#define REPLAY_MAX_LIMIT 1000
#define TOPICS_DEFAULT_LIMIT 1000
#define TOPICS_MAX_LIMIT 10000
/* Room left in a reply for the envelope and the response's own fields. */
#define REPLY_OVERHEAD 4096

static rpcq_status replay(call *c, const Rpcq__ReplayRequest *in, Rpcq__ReplayResponse **out)
{
	if (!frame_topic_valid(in->topic, strlen(in->topic)))
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "topic \"%.64s\" is not 1..%d bytes of [A-Za-z0-9_.-]",
				 in->topic, FRAME_TOPIC_MAX);
	if (in->after_seq > (uint64_t)INT64_MAX)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "after_seq %llu is out of range",
				 (unsigned long long)in->after_seq);
	unsigned limit = in->limit == 0 ? REPLAY_DEFAULT_LIMIT : in->limit;
	if (limit > REPLAY_MAX_LIMIT)
		limit = REPLAY_MAX_LIMIT;
	long budget = server_config(call_server(c))->max_message_bytes - REPLY_OVERHEAD;
	/* The caller's own limit, when smaller: a larger reply would be
	 * dropped by nng with the caller's connection. */
	if (in->max_bytes > 0 && in->max_bytes < (uint64_t)budget + REPLY_OVERHEAD)
		budget = in->max_bytes > REPLY_OVERHEAD ? (long)in->max_bytes - REPLY_OVERHEAD : 1;

	arena *a = call_arena(c);
	char after[24], lim[16], bud[24];
	snprintf(after, sizeof(after), "%llu", (unsigned long long)in->after_seq);
	snprintf(lim, sizeof(lim), "%u", limit);
	snprintf(bud, sizeof(bud), "%ld", budget);
	const char *values[4] = {in->topic, after, lim, bud};

	PGresult *res = NULL;
	rpcq_status st = call_query(c, &streams_sql_replay, values, 1, &res);
	if (st != RPCQ_OK)
		return st;
	int n = PQntuples(res);
	if (n == 0) {
		PQclear(res);
		return call_fail(c, RPCQ_NOT_FOUND, "stream topic \"%s\" has no messages", in->topic);
	}
	Rpcq__ReplayResponse *r = arena_alloc(a, sizeof(*r));
	Rpcq__StreamMessage **msgs = arena_calloc(a, (size_t)n, sizeof(*msgs));
	if (r == NULL || msgs == NULL)
		goto oom;
	rpcq__replay_response__init(r);
	r->last_seq = (uint64_t)db_int8(res, 0, 0);
	r->first_retained_seq = (uint64_t)db_int8(res, 0, 1);
	r->messages = msgs;
	for (int i = 0; i < n; i++) {
		if (PQgetisnull(res, i, 2))
			continue;
		Rpcq__StreamMessage *m = arena_alloc(a, sizeof(*m));
		size_t plen = (size_t)PQgetlength(res, i, 4);
		uint8_t *payload = arena_alloc(a, plen ? plen : 1);
		char *type = arena_strndup(a, PQgetvalue(res, i, 3), (size_t)PQgetlength(res, i, 3));
		if (m == NULL || payload == NULL || type == NULL)
			goto oom;
		rpcq__stream_message__init(m);
		memcpy(payload, PQgetvalue(res, i, 4), plen);
		m->topic = in->topic;
		m->seq = (uint64_t)db_int8(res, i, 2);
		m->type = type;
		m->payload.data = payload;
		m->payload.len = plen;
		m->published_at_ms = db_int8(res, i, 5);
		msgs[r->n_messages++] = m;
	}
	PQclear(res);
	/* A page holds at least its first message: one too large for the
	 * caller is said so, where sending it would reset the connection. */
	size_t size = rpcq__replay_response__get_packed_size(r);
	if (in->max_bytes > 0 && r->n_messages == 1 && size + 1024 > in->max_bytes)
		return call_fail(
			c, RPCQ_RESOURCE_EXHAUSTED,
			"stream message %llu of \"%s\" needs a reply of %zu bytes, more than this caller takes "
			"(max_bytes %llu)",
			(unsigned long long)r->messages[0]->seq, in->topic, size, (unsigned long long)in->max_bytes);
	*out = r;
	return RPCQ_OK;
oom:
	PQclear(res);
	return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory replaying \"%s\"", in->topic);
}

static rpcq_status topics(call *c, const Rpcq__TopicsRequest *in, Rpcq__TopicsResponse **out)
{
	size_t plen = strlen(in->prefix);
	if (!frame_prefix_valid(in->prefix, plen))
		return call_fail(c, RPCQ_INVALID_ARGUMENT,
				 "topic prefix \"%.64s\" is not 0..%d bytes of [A-Za-z0-9_.-]", in->prefix,
				 FRAME_TOPIC_MAX);
	if (in->after[0] != '\0' && !frame_topic_valid(in->after, strlen(in->after)))
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "after \"%.64s\" is not a topic name", in->after);
	unsigned limit = in->limit == 0 ? TOPICS_DEFAULT_LIMIT : in->limit;
	if (limit > TOPICS_MAX_LIMIT)
		limit = TOPICS_MAX_LIMIT;

	/* Topics starting with prefix sort in [prefix, upper), upper being the
	 * prefix with its last byte incremented (topic bytes are all below
	 * 0x7f, so the increment never overflows). */
	arena *a = call_arena(c);
	char *upper = arena_strdup(a, in->prefix);
	if (upper == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	if (plen > 0)
		upper[plen - 1]++;
	char lim[16];
	snprintf(lim, sizeof(lim), "%u", limit + 1);
	const char *values[4] = {in->after, in->prefix, upper, lim};

	PGresult *res = NULL;
	rpcq_status st = call_query(c, &streams_sql_topics, values, 1, &res);
	if (st != RPCQ_OK)
		return st;
	int n = PQntuples(res);
	Rpcq__TopicsResponse *r = arena_alloc(a, sizeof(*r));
	Rpcq__TopicInfo **infos = arena_calloc(a, (size_t)n + 1, sizeof(*infos));
	if (r == NULL || infos == NULL)
		goto oom;
	rpcq__topics_response__init(r);
	r->topics = infos;
	for (int i = 0; i < n && (unsigned)i < limit; i++) {
		Rpcq__TopicInfo *t = arena_alloc(a, sizeof(*t));
		char *name = arena_strndup(a, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
		if (t == NULL || name == NULL)
			goto oom;
		rpcq__topic_info__init(t);
		t->topic = name;
		t->last_seq = (uint64_t)db_int8(res, i, 1);
		t->first_retained_seq = (uint64_t)db_int8(res, i, 2);
		infos[r->n_topics++] = t;
	}
	if ((unsigned)n > limit)
		r->next_after = infos[r->n_topics - 1]->topic;
	PQclear(res);
	*out = r;
	return RPCQ_OK;
oom:
	PQclear(res);
	return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory listing topics");
}

static rpcq_status endpoints(call *c, const Rpcq__EndpointsRequest *in, Rpcq__EndpointsResponse **out)
{
	(void)in;
	Rpcq__EndpointsResponse *r = arena_alloc(call_arena(c), sizeof(*r));
	if (r == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__endpoints_response__init(r);
	publisher *p = server_publisher(call_server(c));
	if (p != NULL) {
		int n;
		const char *const *urls = publisher_urls(p, &n);
		r->publish_urls = (char **)urls;
		r->n_publish_urls = (size_t)n;
	}
	*out = r;
	return RPCQ_OK;
}

RPCQ_HANDLER(replay, Rpcq__ReplayRequest, Rpcq__ReplayResponse)
RPCQ_HANDLER(topics, Rpcq__TopicsRequest, Rpcq__TopicsResponse)
RPCQ_HANDLER(endpoints, Rpcq__EndpointsRequest, Rpcq__EndpointsResponse)

static const method_def streams_methods[] = {
	{"Replay", replay_handler},
	{"Endpoints", endpoints_handler},
	{"Topics", topics_handler},
	{NULL, NULL},
};

const service_def streams_service = {
	.descriptor = &rpcq__streams__descriptor,
	.methods = streams_methods,
};
