/*
 * Publishing on update streams, for services. A change and the stream message
 * that describes it commit together: stream_append runs inside the caller's
 * open transaction, appends the message to the persisted log with the next
 * gap-free seq of its topic, and asks for a wake-up of every rpcqd's publisher
 * (one NOTIFY per transaction, without payload). After COMMIT each process
 * publishes the message once on its own PUB sockets; after ROLLBACK nothing
 * exists to publish. The log is the source of truth: a lost NOTIFY delays a
 * message, never loses it.
 */
#ifndef RPCQ_STREAM_H
#define RPCQ_STREAM_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include <rpcq/error.h>

#include "db/pool.h"

/* Largest packed payload of one stream message. A frame must pass every
 * subscriber's receive limit (4 MiB by default) and a Replay reply holds at
 * least one message, so a stream message stays well below both. */
#define STREAM_MAX_PAYLOAD (1024 * 1024)

/* Appends msg (packed; its type name is msg->descriptor->name) to topic's log
 * in the transaction open on c. *seq (optional) gets its seq. Topic: 1..200
 * bytes of [A-Za-z0-9_.-]. Must be called between db_begin and db_commit.
 * INVALID_ARGUMENT for a bad topic or a payload over STREAM_MAX_PAYLOAD; the
 * database's status otherwise (the caller then rolls back). Holds the
 * topic's row lock until the transaction ends: appends to one topic from
 * concurrent transactions commit one after the other, in seq order. Blocks. */
rpcq_status stream_append(dbconn *c, const char *topic, const ProtobufCMessage *msg, uint64_t *seq,
			  rpcq_error *err) RPCQ_NODISCARD;

/* Appends n messages of one type to topic's log in one statement (seqs
 * still gap-free and in the order given), in the transaction open on c, as
 * stream_append does one. *last_seq (optional) gets the last one's seq; the
 * first is *last_seq - n + 1. For changes that come in thousands (a feed
 * ingest): one round trip and one NOTIFY per batch, not per message.
 * INVALID_ARGUMENT for a bad topic, mixed types or a payload over
 * STREAM_MAX_PAYLOAD. Blocks. */
rpcq_status stream_append_batch(dbconn *c, const char *topic, const ProtobufCMessage *const *msgs, size_t n,
				uint64_t *last_seq, rpcq_error *err) RPCQ_NODISCARD;

/* 1 if topic is a valid topic name, else 0. */
int stream_topic_valid(const char *topic);

#endif
