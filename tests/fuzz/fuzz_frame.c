/*
 * libFuzzer target for stream frames (client/frame.h): any bytes a publisher,
 * or anyone able to reach a subscriber's socket, may send are decoded as a
 * subscription decodes every frame. Whatever decodes is encoded again and
 * must decode to the same message, and its payload goes through the typed
 * unpack a subscriber may call. frame.c is compiled in so that its branches
 * are coverage-instrumented. Run under ASan+UBSan: crashes, leaks and
 * undefined behaviour are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/stream.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rpcq_stream_message *m = NULL;
	rpcq_error err;
	if (frame_decode(data, size, &m, &err) != RPCQ_OK)
		return 0;

	Rpcq__StreamMessage sm = RPCQ__STREAM_MESSAGE__INIT;
	sm.topic = (char *)m->topic;
	sm.seq = m->seq;
	sm.type = (char *)m->type;
	sm.payload.data = (uint8_t *)m->payload;
	sm.payload.len = m->payload_len;
	sm.published_at_ms = m->published_at_ms;
	size_t len = frame_size(&sm);
	uint8_t *buf = malloc(len);
	if (buf == NULL)
		abort();
	frame_encode(&sm, buf);
	rpcq_stream_message *again = NULL;
	if (frame_decode(buf, len, &again, &err) != RPCQ_OK)
		abort();
	if (strcmp(again->topic, m->topic) != 0 || strcmp(again->type, m->type) != 0 || again->seq != m->seq ||
	    again->published_at_ms != m->published_at_ms || again->payload_len != m->payload_len ||
	    (m->payload_len && memcmp(again->payload, m->payload, m->payload_len) != 0))
		abort();

	ProtobufCMessage *typed = NULL;
	if (rpcq_stream_message_unpack(m, NULL, &typed, &err) == RPCQ_OK)
		protobuf_c_message_free_unpacked(typed, NULL);

	rpcq_stream_message_free(again);
	rpcq_stream_message_free(m);
	free(buf);
	return 0;
}
