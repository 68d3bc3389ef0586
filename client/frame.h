/*
 * The stream frame: what rpcqd's publisher sends on its PUB sockets and a
 * subscription receives, "<topic> 0x00 <packed rpcq.StreamMessage>". The
 * topic comes first, in clear, so nng SUB prefix filters select topics; the
 * message repeats it and must agree. One encoder and one decoder for both
 * sides (rpcqd links librpcq's internals), and the decoder is the one fuzzed:
 * a frame is input from the network.
 */
#ifndef RPCQ_FRAME_H
#define RPCQ_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>
#include <rpcq/stream.h>

#include "rpcq/stream.pb-c.h"

/* Longest topic, in bytes. */
#define FRAME_TOPIC_MAX 200

/* 1 if topic[0..len) is a topic name: 1..FRAME_TOPIC_MAX bytes of
 * [A-Za-z0-9_.-]; else 0. */
int frame_topic_valid(const char *topic, size_t len);

/* 1 if prefix[0..len) can begin a topic name: 0..FRAME_TOPIC_MAX bytes of
 * the same characters; else 0. */
int frame_prefix_valid(const char *prefix, size_t len);

/* Bytes frame_encode writes for m. */
size_t frame_size(const Rpcq__StreamMessage *m);

/* Writes the frame of m (whose topic must be valid) into buf, which has
 * frame_size(m) bytes. */
void frame_encode(const Rpcq__StreamMessage *m, uint8_t *buf);

/* Decodes a frame into a new message (free with rpcq_stream_message_free).
 * INVALID_ARGUMENT, naming what is wrong, for anything but a well-formed
 * frame: no NUL within FRAME_TOPIC_MAX + 1 bytes, a bad topic, a message that
 * does not decode, a topic that differs from the frame's, seq 0, a type that
 * is not a message name. RESOURCE_EXHAUSTED when out of memory. Sets *out
 * only on OK. Thread-safe. */
rpcq_status frame_decode(const void *data, size_t len, rpcq_stream_message **out, rpcq_error *err) RPCQ_NODISCARD;

/* A new message from its parts, copied into one block (NULL when out of
 * memory). Also used for messages that come from Replay. */
rpcq_stream_message *frame_message_new(const char *topic, uint64_t seq, const char *type, const uint8_t *payload,
				       size_t payload_len, int64_t published_at_ms);

#endif
