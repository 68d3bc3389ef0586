/*
 * stream_append: the write side of update streams, inside the caller's
 * transaction. One statement does the three steps (the functions
 * stream_append() of migration 0007 for one message and
 * stream_append_batch() of 0009 for many, which services' own statements
 * call too), so an append costs one round trip:
 *   1. bump the topic's last_seq (an upsert on stream_topics, which also
 *      records the appending transaction's xid for the publishers). The row lock it
 *      takes lasts until the caller commits, so a concurrent append to the
 *      same topic waits: seqs are handed out gap-free (a rollback returns
 *      the number) and become visible in seq order, which is what lets a
 *      publisher read "everything up to last_seq" without holes;
 *   2. insert the message into stream_log with that seq;
 *   3. pg_notify('rpcq_stream', ''): every rpcqd's publisher LISTENs on the
 *      channel. PostgreSQL folds identical notifications of one transaction
 *      into one and delivers it only on commit, so a transaction appending a
 *      thousand messages wakes each publisher once, and a rolled-back one not
 *      at all. The notification carries nothing: the log is the truth.
 * published_at is clock_timestamp(), taken after the row lock was granted, so
 * it grows with seq within a topic (retention by age relies on it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "db/db.h"
#include "frame.h"
#include "stream.h"

/* The migrations' stream_append() does the three steps, so that a service's
 * own statement can append in the same round trip as its change (IssueVouchers
 * does); this is the same append on its own. */
static const db_stmt stmt_append = {
	"stream_append",
	"SELECT stream_append($1, $2, $3)",
	3,
};

/* n messages of one type in one statement: stream_append_batch() of
 * migration 0009 moves the topic's last_seq by n under its row lock, and the
 * messages take the seqs below it in order. */
static const db_stmt stmt_append_batch = {
	"stream_append_batch",
	"SELECT stream_append_batch($1, $2, $3::bytea[])",
	3,
};

static uint8_t *put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

rpcq_status stream_append_batch(dbconn *c, const char *topic, const ProtobufCMessage *const *msgs, size_t n,
				uint64_t *last_seq, rpcq_error *err)
{
	if (!stream_topic_valid(topic))
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "stream topic \"%.64s\" is not 1..%d bytes of [A-Za-z0-9_.-]",
				      topic ? topic : "(null)", FRAME_TOPIC_MAX);
	if (n == 0) {
		if (last_seq)
			*last_seq = 0;
		return RPCQ_OK;
	}
	/* The payloads as one bytea[] in PostgreSQL's binary array format:
	 * ndim, has-null flag, element type (bytea, 17), length and lower bound
	 * of the one dimension, then each element as length and bytes. */
	size_t total = 20;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i]->descriptor != msgs[0]->descriptor)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "stream batch for \"%s\" mixes %s and %s",
					      topic, msgs[0]->descriptor->name, msgs[i]->descriptor->name);
		size_t len = protobuf_c_message_get_packed_size(msgs[i]);
		if (len > STREAM_MAX_PAYLOAD)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					      "stream message %s for \"%s\" has %zu bytes; the limit is %d",
					      msgs[i]->descriptor->name, topic, len, STREAM_MAX_PAYLOAD);
		total += 4 + len;
	}
	if (total > INT32_MAX)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "stream batch for \"%s\" is too large", topic);
	rpcq_status result = RPCQ_RESOURCE_EXHAUSTED;
	PGresult *res = NULL;
	uint8_t *buf = rpcq_alloc(total);
	if (buf == NULL) {
		rpcq_error_set(err, result, "out of memory packing %zu stream messages for \"%s\"", n, topic);
		goto out;
	}
	uint8_t *p = put_be32(buf, 1);
	p = put_be32(p, 0);
	p = put_be32(p, 17);
	p = put_be32(p, (uint32_t)n);
	p = put_be32(p, 1);
	for (size_t i = 0; i < n; i++) {
		size_t len = protobuf_c_message_get_packed_size(msgs[i]);
		p = put_be32(p, (uint32_t)len);
		p += protobuf_c_message_pack(msgs[i], p);
	}
	const char *values[3] = {topic, msgs[0]->descriptor->name, (const char *)buf};
	const int lengths[3] = {0, 0, (int)total};
	const int formats[3] = {0, 0, 1};
	result = db_exec_params(c, &stmt_append_batch, values, lengths, formats, 0, &res, err);
	if (result != RPCQ_OK)
		goto out;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		result = rpcq_error_set(err, RPCQ_INTERNAL, "stream batch append to \"%s\" returned no seq", topic);
		goto out;
	}
	if (last_seq != NULL)
		*last_seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	result = RPCQ_OK;
out:
	PQclear(res);
	rpcq_free(buf);
	return result;
}

int stream_topic_valid(const char *topic)
{
	return topic != NULL && frame_topic_valid(topic, strlen(topic));
}

rpcq_status stream_append(dbconn *c, const char *topic, const ProtobufCMessage *msg, uint64_t *seq, rpcq_error *err)
{
	if (!stream_topic_valid(topic))
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "stream topic \"%.64s\" is not 1..%d bytes of [A-Za-z0-9_.-]",
				      topic ? topic : "(null)", FRAME_TOPIC_MAX);
	size_t len = protobuf_c_message_get_packed_size(msg);
	if (len > STREAM_MAX_PAYLOAD)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "stream message %s for \"%s\" has %zu bytes; the limit is %d",
				      msg->descriptor->name, topic, len, STREAM_MAX_PAYLOAD);

	rpcq_status result = RPCQ_RESOURCE_EXHAUSTED;
	PGresult *res = NULL;
	uint8_t *buf = rpcq_alloc(len);
	if (buf == NULL) {
		rpcq_error_set(err, result, "out of memory packing a stream message for \"%s\"", topic);
		goto out;
	}
	protobuf_c_message_pack(msg, buf);

	const char *values[3] = {topic, msg->descriptor->name, (const char *)buf};
	const int lengths[3] = {0, 0, (int)len};
	const int formats[3] = {0, 0, 1};
	result = db_exec_params(c, &stmt_append, values, lengths, formats, 0, &res, err);
	if (result != RPCQ_OK)
		goto out;
	if (PQntuples(res) != 1) {
		result = rpcq_error_set(err, RPCQ_INTERNAL, "stream append to \"%s\" returned no seq", topic);
		goto out;
	}
	if (seq != NULL) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(PQgetvalue(res, 0, 0), &end, 10);
		if (errno != 0 || *end != '\0' || v == 0) {
			result =
				rpcq_error_set(err, RPCQ_INTERNAL, "stream append to \"%s\" returned a bad seq", topic);
			goto out;
		}
		*seq = (uint64_t)v;
	}
	result = RPCQ_OK;
out:
	PQclear(res);
	rpcq_free(buf);
	return result;
}
