/*
 * The stream frame codec (client/frame.h) as publisher and subscriber see
 * it: a frame rpcqd encodes decodes to the same message, topic names follow
 * their rules, and bytes that are not a well-formed frame are refused with a
 * message saying why. Also the topic map both sides keep their per-topic
 * seqs in (client/topic_map.h). No server, no network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rpcq/alloc.h>
#include <rpcq/registry.h>
#include <rpcq/stream.h>

#include "frame.h"
#include "rpcq/health.pb-c.h"
#include "topic_map.h"

/* Encodes a StreamMessage into a malloc'd frame. */
static uint8_t *encode(const char *topic, uint64_t seq, const char *type, const void *payload, size_t len, int64_t ms,
		       size_t *out_len)
{
	Rpcq__StreamMessage m = RPCQ__STREAM_MESSAGE__INIT;
	m.topic = (char *)topic;
	m.seq = seq;
	m.type = (char *)type;
	m.payload.data = (uint8_t *)payload;
	m.payload.len = len;
	m.published_at_ms = ms;
	*out_len = frame_size(&m);
	uint8_t *buf = malloc(*out_len);
	assert_non_null(buf);
	frame_encode(&m, buf);
	return buf;
}

static void expect_invalid(const void *data, size_t len, const char *words)
{
	rpcq_stream_message *m = NULL;
	rpcq_error err;
	assert_int_equal(frame_decode(data, len, &m, &err), RPCQ_INVALID_ARGUMENT);
	assert_null(m);
	if (strstr(err.message, words) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err.message, words);
}

static void test_a_frame_starts_with_its_topic_and_a_nul(void **state)
{
	(void)state;
	size_t len;
	uint8_t *f = encode("events.changed", 7, "rpcq.EchoMessage", "x", 1, 5, &len);
	assert_true(len > 15);
	assert_memory_equal(f, "events.changed", 14);
	assert_int_equal(f[14], 0);
	free(f);
}

static void test_an_encoded_frame_decodes_to_the_same_message(void **state)
{
	(void)state;
	uint8_t payload[300];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)i;
	size_t len;
	uint8_t *f = encode("billing.imports.42", 123456789012ULL, "rpcq.EchoMessage", payload, sizeof(payload),
			    1795429708871LL, &len);
	rpcq_stream_message *m = NULL;
	rpcq_error err;
	assert_int_equal(frame_decode(f, len, &m, &err), RPCQ_OK);
	assert_string_equal(m->topic, "billing.imports.42");
	assert_true(m->seq == 123456789012ULL);
	assert_string_equal(m->type, "rpcq.EchoMessage");
	assert_int_equal(m->payload_len, sizeof(payload));
	assert_memory_equal(m->payload, payload, sizeof(payload));
	assert_true(m->published_at_ms == 1795429708871LL);
	rpcq_stream_message_free(m);
	free(f);
}

static void test_an_empty_payload_decodes_to_an_empty_payload(void **state)
{
	(void)state;
	size_t len;
	uint8_t *f = encode("t", 1, "rpcq.EchoMessage", NULL, 0, 0, &len);
	rpcq_stream_message *m = NULL;
	rpcq_error err;
	assert_int_equal(frame_decode(f, len, &m, &err), RPCQ_OK);
	assert_int_equal(m->payload_len, 0);
	assert_int_equal(m->published_at_ms, 0);
	rpcq_stream_message_free(m);
	free(f);
}

static void test_a_known_payload_unpacks_as_its_type(void **state)
{
	(void)state;
	Rpcq__EchoMessage echo = RPCQ__ECHO_MESSAGE__INIT;
	echo.payload.data = (uint8_t *)"hello";
	echo.payload.len = 5;
	echo.delay_ms = 9;
	uint8_t packed[64];
	size_t plen = rpcq__echo_message__pack(&echo, packed);
	rpcq_stream_message *m = frame_message_new("t.a", 3, "rpcq.EchoMessage", packed, plen, 1);
	assert_non_null(m);
	ProtobufCMessage *out = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_stream_message_unpack(m, NULL, &out, &err), RPCQ_OK);
	Rpcq__EchoMessage *e = (Rpcq__EchoMessage *)out;
	assert_int_equal(e->payload.len, 5);
	assert_memory_equal(e->payload.data, "hello", 5);
	assert_int_equal(e->delay_ms, 9);
	protobuf_c_message_free_unpacked(out, NULL);
	rpcq_stream_message_free(m);
}

static void test_an_unknown_type_or_a_bad_payload_does_not_unpack(void **state)
{
	(void)state;
	ProtobufCMessage *out = NULL;
	rpcq_error err;
	rpcq_stream_message *m = frame_message_new("t.a", 3, "no.such.Type", (const uint8_t *)"", 0, 1);
	assert_int_equal(rpcq_stream_message_unpack(m, NULL, &out, &err), RPCQ_NOT_FOUND);
	assert_non_null(strstr(err.message, "no.such.Type"));
	rpcq_stream_message_free(m);
	/* Field 1 (bytes) announcing 100 bytes that are not there. */
	m = frame_message_new("t.a", 4, "rpcq.EchoMessage", (const uint8_t *)"\x0a\x64", 2, 1);
	assert_int_equal(rpcq_stream_message_unpack(m, NULL, &out, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "does not decode"));
	assert_null(out);
	rpcq_stream_message_free(m);
}

static void test_topic_names_are_1_to_200_bytes_of_the_allowed_characters(void **state)
{
	(void)state;
	char longest[FRAME_TOPIC_MAX + 2];
	memset(longest, 'a', sizeof(longest));
	assert_true(frame_topic_valid("events.changed", 14));
	assert_true(frame_topic_valid("A-z_0.9", 7));
	assert_true(frame_topic_valid(longest, FRAME_TOPIC_MAX));
	assert_false(frame_topic_valid(longest, FRAME_TOPIC_MAX + 1));
	assert_false(frame_topic_valid("", 0));
	assert_false(frame_topic_valid("a b", 3));
	assert_false(frame_topic_valid("a/b", 3));
	assert_false(frame_topic_valid("caf\xc3\xa9", 5));
	assert_false(frame_topic_valid("a\0b", 3));
	/* A prefix may be empty (every topic). */
	assert_true(frame_prefix_valid("", 0));
	assert_true(frame_prefix_valid("billing.imports.", 16));
	assert_false(frame_prefix_valid("billing imports", 15));
	assert_false(frame_prefix_valid(longest, FRAME_TOPIC_MAX + 1));
}

static void test_bytes_without_a_topic_terminator_are_refused(void **state)
{
	(void)state;
	expect_invalid("", 0, "no topic terminator");
	expect_invalid("events.changed", 14, "no topic terminator");
	uint8_t big[FRAME_TOPIC_MAX + 10];
	memset(big, 'a', sizeof(big));
	big[FRAME_TOPIC_MAX + 5] = 0;
	expect_invalid(big, sizeof(big), "no topic terminator");
}

static void test_a_bad_topic_is_refused(void **state)
{
	(void)state;
	expect_invalid("\0rest", 5, "topic is not");
	expect_invalid("a b\0rest", 8, "topic is not");
}

static void test_a_message_that_does_not_decode_is_refused(void **state)
{
	(void)state;
	/* Field 1 (topic, length-delimited) claiming 50 bytes. */
	expect_invalid("t\0\x0a\x32xx", 6, "does not decode");
	/* A wire type that does not exist. */
	expect_invalid("t\0\x0f", 3, "does not decode");
}

static void test_a_message_naming_another_topic_is_refused(void **state)
{
	(void)state;
	size_t len;
	uint8_t *f = encode("aaa", 1, "rpcq.EchoMessage", "x", 1, 5, &len);
	f[0] = 'b';
	expect_invalid(f, len, "names another topic");
	free(f);
}

static void test_seq_zero_and_bad_type_names_are_refused(void **state)
{
	(void)state;
	size_t len;
	uint8_t *f = encode("t", 0, "rpcq.EchoMessage", "x", 1, 5, &len);
	expect_invalid(f, len, "seq 0");
	free(f);
	f = encode("t", 1, "", "x", 1, 5, &len);
	expect_invalid(f, len, "bad message type name");
	free(f);
	f = encode("t", 1, "rpcq.Echo Message", "x", 1, 5, &len);
	expect_invalid(f, len, "bad message type name");
	free(f);
}

static void test_decoding_reports_out_of_memory(void **state)
{
	(void)state;
	size_t len;
	uint8_t *f = encode("t", 1, "rpcq.EchoMessage", "x", 1, 5, &len);
	/* Fail every allocation from the first on, then from the second on... */
	for (long n = 0; n < 8; n++) {
		rpcq_stream_message *m = NULL;
		rpcq_error err;
		rpcq_alloc_fail_after(n);
		rpcq_status st = frame_decode(f, len, &m, &err);
		rpcq_alloc_fail_after(-1);
		if (st == RPCQ_OK) {
			rpcq_stream_message_free(m);
			break;
		}
		assert_true(st == RPCQ_RESOURCE_EXHAUSTED || st == RPCQ_INVALID_ARGUMENT);
		assert_null(m);
	}
	free(f);
}

struct rec {
	uint64_t a;
	int b;
};

static void test_the_topic_map_keeps_one_record_per_topic(void **state)
{
	(void)state;
	topic_map *m = topic_map_create(sizeof(struct rec));
	assert_non_null(m);
	char name[32];
	/* Enough topics to grow the table several times. */
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(name, sizeof(name), "topic.%d", i);
		int inserted;
		struct rec *r = topic_map_put(m, name, (size_t)n, &inserted);
		assert_non_null(r);
		assert_true(inserted);
		assert_int_equal(r->a, 0);
		r->a = (uint64_t)i * 3;
		assert_string_equal(topic_map_key(m, r), name);
	}
	assert_int_equal(topic_map_count(m), 5000);
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(name, sizeof(name), "topic.%d", i);
		int inserted;
		struct rec *r = topic_map_put(m, name, (size_t)n, &inserted);
		assert_false(inserted);
		assert_int_equal(r->a, (uint64_t)i * 3);
		assert_ptr_equal(topic_map_get(m, name, (size_t)n), r);
	}
	assert_null(topic_map_get(m, "topic.5000", 10));
	assert_null(topic_map_get(m, "topic.1", 6));
	size_t seen = 0;
	const char *key;
	void *val;
	for (size_t i = 0; (i = topic_map_next(m, i, &key, &val)) != 0;) {
		assert_int_equal(strncmp(key, "topic.", 6), 0);
		seen++;
	}
	assert_int_equal(seen, 5000);
	topic_map_destroy(m);
	topic_map_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_frame_starts_with_its_topic_and_a_nul),
		cmocka_unit_test(test_an_encoded_frame_decodes_to_the_same_message),
		cmocka_unit_test(test_an_empty_payload_decodes_to_an_empty_payload),
		cmocka_unit_test(test_a_known_payload_unpacks_as_its_type),
		cmocka_unit_test(test_an_unknown_type_or_a_bad_payload_does_not_unpack),
		cmocka_unit_test(test_topic_names_are_1_to_200_bytes_of_the_allowed_characters),
		cmocka_unit_test(test_bytes_without_a_topic_terminator_are_refused),
		cmocka_unit_test(test_a_bad_topic_is_refused),
		cmocka_unit_test(test_a_message_that_does_not_decode_is_refused),
		cmocka_unit_test(test_a_message_naming_another_topic_is_refused),
		cmocka_unit_test(test_seq_zero_and_bad_type_names_are_refused),
		cmocka_unit_test(test_decoding_reports_out_of_memory),
		cmocka_unit_test(test_the_topic_map_keeps_one_record_per_topic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
