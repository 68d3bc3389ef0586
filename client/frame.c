/*
 * Stream frames, "<topic> 0x00 <packed rpcq.StreamMessage>": encoding for
 * rpcqd's publisher, decoding for subscriptions, and the delivered message
 * (rpcq_stream_message) that a decoded frame or a replayed message becomes.
 * A delivered message is one allocation: the struct, then topic, type and
 * payload bytes, so freeing it is one call and it cannot half-exist.
 */
#include <string.h>

#include <rpcq/alloc.h>
#include <rpcq/registry.h>

#include "frame.h"

/* Longest message type name accepted in a frame. */
#define FRAME_TYPE_MAX 255

static void *pb_alloc(void *data, size_t size)
{
	(void)data;
	return rpcq_alloc(size);
}

static void pb_free(void *data, void *ptr)
{
	(void)data;
	rpcq_free(ptr);
}

/* protobuf-c's allocations through the project's allocation seam. */
static ProtobufCAllocator frame_allocator = {pb_alloc, pb_free, NULL};

static int topic_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '.' || ch == '-';
}

int frame_prefix_valid(const char *prefix, size_t len)
{
	if (len > FRAME_TOPIC_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!topic_char((unsigned char)prefix[i]))
			return 0;
	}
	return 1;
}

int frame_topic_valid(const char *topic, size_t len)
{
	return len > 0 && frame_prefix_valid(topic, len);
}

/* A full message name: "pkg.sub.Name", letters, digits, '_' and '.'. */
static int type_valid(const char *type)
{
	size_t len = strlen(type);
	if (len == 0 || len > FRAME_TYPE_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)type[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		      ch == '.'))
			return 0;
	}
	return 1;
}

size_t frame_size(const Rpcq__StreamMessage *m)
{
	return strlen(m->topic) + 1 + rpcq__stream_message__get_packed_size(m);
}

void frame_encode(const Rpcq__StreamMessage *m, uint8_t *buf)
{
	size_t tlen = strlen(m->topic);
	memcpy(buf, m->topic, tlen);
	buf[tlen] = 0;
	rpcq__stream_message__pack(m, buf + tlen + 1);
}

rpcq_stream_message *frame_message_new(const char *topic, uint64_t seq, const char *type, const uint8_t *payload,
				       size_t payload_len, int64_t published_at_ms)
{
	size_t tlen = strlen(topic), ylen = strlen(type);
	size_t head = sizeof(rpcq_stream_message);
	if (payload_len > SIZE_MAX - head - tlen - ylen - 2)
		return NULL;
	rpcq_stream_message *m = rpcq_alloc(head + tlen + 1 + ylen + 1 + payload_len);
	if (m == NULL)
		return NULL;
	char *p = (char *)(m + 1);
	memcpy(p, topic, tlen + 1);
	m->topic = p;
	p += tlen + 1;
	memcpy(p, type, ylen + 1);
	m->type = p;
	p += ylen + 1;
	if (payload_len > 0)
		memcpy(p, payload, payload_len);
	m->payload = (const uint8_t *)p;
	m->payload_len = payload_len;
	m->seq = seq;
	m->published_at_ms = published_at_ms;
	return m;
}

rpcq_status frame_decode(const void *data, size_t len, rpcq_stream_message **out, rpcq_error *err)
{
	const uint8_t *bytes = data;
	size_t scan = len < FRAME_TOPIC_MAX + 1 ? len : FRAME_TOPIC_MAX + 1;
	const uint8_t *nul = scan > 0 ? memchr(bytes, 0, scan) : NULL;
	if (nul == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "stream frame: no topic terminator within the first %d bytes",
				      FRAME_TOPIC_MAX + 1);
	size_t tlen = (size_t)(nul - bytes);
	if (!frame_topic_valid((const char *)bytes, tlen))
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "stream frame: topic is not 1..%d bytes of [A-Za-z0-9_.-]", FRAME_TOPIC_MAX);

	Rpcq__StreamMessage *sm = rpcq__stream_message__unpack(&frame_allocator, len - tlen - 1, nul + 1);
	if (sm == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "stream frame for \"%.*s\": message does not decode",
				      (int)tlen, (const char *)bytes);

	rpcq_status result = RPCQ_INVALID_ARGUMENT;
	if (strlen(sm->topic) != tlen || memcmp(sm->topic, bytes, tlen) != 0) {
		rpcq_error_set(err, result, "stream frame for \"%.*s\": message names another topic", (int)tlen,
			       (const char *)bytes);
		goto out;
	}
	if (sm->seq == 0) {
		rpcq_error_set(err, result, "stream frame for \"%s\": seq 0", sm->topic);
		goto out;
	}
	if (!type_valid(sm->type)) {
		rpcq_error_set(err, result, "stream frame for \"%s\" seq %llu: bad message type name", sm->topic,
			       (unsigned long long)sm->seq);
		goto out;
	}
	rpcq_stream_message *m =
		frame_message_new(sm->topic, sm->seq, sm->type, sm->payload.data, sm->payload.len, sm->published_at_ms);
	if (m == NULL) {
		result = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory decoding a stream frame");
		goto out;
	}
	*out = m;
	result = RPCQ_OK;
out:
	rpcq__stream_message__free_unpacked(sm, &frame_allocator);
	return result;
}

void rpcq_stream_message_free(rpcq_stream_message *m)
{
	rpcq_free(m);
}

rpcq_status rpcq_stream_message_unpack(const rpcq_stream_message *m, ProtobufCAllocator *alloc, ProtobufCMessage **out,
				       rpcq_error *err)
{
	const ProtobufCMessageDescriptor *desc = rpcq_message_find(m->type);
	if (desc == NULL)
		return rpcq_error_set(err, RPCQ_NOT_FOUND, "%s seq %llu: message type \"%s\" is not known to librpcq",
				      m->topic, (unsigned long long)m->seq, m->type);
	ProtobufCMessage *msg = protobuf_c_message_unpack(desc, alloc, m->payload_len, m->payload);
	if (msg == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "%s seq %llu: payload does not decode as %s",
				      m->topic, (unsigned long long)m->seq, m->type);
	*out = msg;
	return RPCQ_OK;
}
