/*
 * libFuzzer target for JSON transcoding (include/rpcq/json.h), the decoder
 * behind `rpcq call` and the HTTP gateway's generic route. The first byte
 * picks the message type (the test schemas with every field type, and some
 * real rpcq messages found by name in the registry) and the output flags;
 * the rest is parsed as JSON. Whatever parses is printed, parsed again and
 * printed again: the second parse must succeed and both prints must be the
 * same text; the message and its reparse must serialize to the same bytes
 * (unless printing defaults made proto2 fields present); and the serialized
 * message must print to that text again through rpcq_payload_to_json. Run
 * under ASan+UBSan: crashes, leaks and undefined behaviour are the findings,
 * a broken round trip aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>
#include <rpcq/json.h>
#include <rpcq/registry.h>

#include "jsontest.pb-c.h"
#include "jsontest2.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Eight types, so that the low three bits of the first byte pick one. */
static const char *const registry_types[] = {
	"rpcq.EchoMessage",
	"rpcq.vesting.ComputeRequest",
	"rpcq.vesting.AppendEventsRequest",
	"rpcq.vesting.ListLedgersResponse",
	"rpcq.CheckResponse",
};

static const ProtobufCMessageDescriptor *type_of(unsigned i)
{
	switch (i) {
	case 0:
		return &rpcq__test__all__descriptor;
	case 1:
		return &rpcq__test2__legacy__descriptor;
	case 2:
		return &rpcq__test__inner__descriptor;
	default: {
		const ProtobufCMessageDescriptor *d = rpcq_message_find(registry_types[i - 3]);
		if (d == NULL) {
			fprintf(stderr, "fuzz_json: %s is not in the registry\n", registry_types[i - 3]);
			abort();
		}
		return d;
	}
	}
}

static void broken(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "fuzz_json: %s\n--- first:\n%s\n--- second:\n%s\n", what, a, b != NULL ? b : "(none)");
	abort();
}

static uint8_t *packed(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(*len ? *len : 1);
	if (buf == NULL)
		abort();
	protobuf_c_message_pack(m, buf);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const ProtobufCMessageDescriptor *desc = type_of(data[0] & 7u);
	int flags = 0;
	if (data[0] & 0x08)
		flags |= RPCQ_JSON_PRETTY;
	if (data[0] & 0x10)
		flags |= RPCQ_JSON_EMIT_DEFAULTS;
	if (data[0] & 0x20)
		flags |= RPCQ_JSON_ORIGINAL_NAMES;
	const char *json = (const char *)data + 1;
	size_t len = size - 1;

	ProtobufCMessage *first = NULL, *second = NULL;
	char *text = NULL, *again = NULL, *from_wire = NULL;
	uint8_t *wire1 = NULL, *wire2 = NULL;
	rpcq_error err;
	if (rpcq_json_to_message(desc, json, len, NULL, &first, &err) != RPCQ_OK)
		return 0;
	text = rpcq_message_to_json(first, flags);
	if (text == NULL)
		broken("a parsed message does not print", json, NULL);
	if (rpcq_json_to_message(desc, text, strlen(text), NULL, &second, &err) != RPCQ_OK)
		broken(err.message, text, NULL);
	again = rpcq_message_to_json(second, flags);
	if (again == NULL || strcmp(text, again) != 0)
		broken("printed, parsed and printed again, the text changed", text, again);

	size_t len1, len2;
	wire1 = packed(first, &len1);
	wire2 = packed(second, &len2);
	int proto2 = desc == &rpcq__test2__legacy__descriptor;
	if (!(proto2 && (flags & RPCQ_JSON_EMIT_DEFAULTS)) && (len1 != len2 || memcmp(wire1, wire2, len1) != 0))
		broken("the reparsed message serializes differently", text, again);
	if (rpcq_payload_to_json(desc, wire1, len1, flags, &from_wire, &err) != RPCQ_OK)
		broken(err.message, text, NULL);
	if (strcmp(text, from_wire) != 0)
		broken("the serialized message prints differently", text, from_wire);

	rpcq_free(from_wire);
	free(wire2);
	free(wire1);
	rpcq_free(again);
	rpcq_free(text);
	protobuf_c_message_free_unpacked(second, NULL);
	protobuf_c_message_free_unpacked(first, NULL);
	return 0;
}
