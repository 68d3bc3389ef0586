/*
 * The rpcq/1 envelope codec (client/envelope.h) as its two users see it: the
 * client packs a Request and parses a Response, rpcqd parses a Request and
 * packs a Response. Round trips of every field, method-name rules, bytes that
 * are not an envelope (truncated, garbage, wrong wire types) and the request
 * size limit. No server, no network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nng/nng.h>

#include <rpcq/error.h>

#include "arena.h"
#include "envelope.h"

/* A payload of n bytes that is not text: every byte value, zeros included. */
static uint8_t *make_payload(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	return p;
}

/* Packs a request and returns a malloc'd copy of its bytes (and length). */
static uint8_t *packed_request(const char *method, const void *payload, size_t len, uint32_t deadline_ms,
			       const char *const *metadata, size_t *out_len)
{
	nng_msg *msg = NULL;
	rpcq_error err;
	assert_int_equal(envelope_pack_request(&msg, method, payload, len, deadline_ms, metadata, 0, &err), RPCQ_OK);
	*out_len = nng_msg_len(msg);
	uint8_t *copy = malloc(*out_len ? *out_len : 1);
	assert_non_null(copy);
	memcpy(copy, nng_msg_body(msg), *out_len);
	nng_msg_free(msg);
	return copy;
}

static void test_method_names_are_normalized_to_the_full_form(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(envelope_method_name("rpcq.Health/Echo", buf, sizeof buf), 0);
	assert_string_equal(buf, "/rpcq.Health/Echo");
	assert_int_equal(envelope_method_name("/rpcq.Health/Echo", buf, sizeof buf), 0);
	assert_string_equal(buf, "/rpcq.Health/Echo");
	assert_int_equal(envelope_method_name("/rpcq.vesting.VestingService/Compute", buf, sizeof buf), 0);
	assert_string_equal(buf, "/rpcq.vesting.VestingService/Compute");
}

static void test_method_names_without_package_service_and_method_are_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",		 /* nothing */
		"Echo",		 /* no service */
		"/Echo",	 /* no service */
		"Health/Echo",	 /* service without a package */
		"rpcq.Health",	 /* no method */
		"rpcq.Health/",	 /* empty method */
		"/rpcq.Health/", /* empty method */
		"//rpcq.Health/Echo",
		"/rpcq.Health/Echo/More",
		"/",
		"/.",
	};
	char buf[64];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(buf, 'x', sizeof buf);
		if (envelope_method_name(bad[i], buf, sizeof buf) != -1)
			fail_msg("method name \"%s\" was accepted as \"%s\"", bad[i], buf);
	}
	assert_int_equal(envelope_method_name(NULL, buf, sizeof buf), -1);
}

static void test_method_name_that_does_not_fit_the_buffer_is_refused(void **state)
{
	(void)state;
	char buf[17];
	/* "/rpcq.Health/Echo" needs 18 bytes with its terminator. */
	assert_int_equal(envelope_method_name("rpcq.Health/Echo", buf, sizeof buf), -1);
	char exact[18];
	assert_int_equal(envelope_method_name("rpcq.Health/Echo", exact, sizeof exact), 0);
	assert_string_equal(exact, "/rpcq.Health/Echo");
}

static void test_request_round_trips_method_payload_deadline_and_metadata(void **state)
{
	(void)state;
	uint8_t *payload = make_payload(200);
	const char *const md[] = {"x-request-id", "req-42", "authorization", "Bearer t,o=k\"en", NULL};
	nng_msg *msg = NULL;
	rpcq_error err;
	assert_int_equal(envelope_pack_request(&msg, "/rpcq.Health/Echo", payload, 200, 2500, md, 0, &err), RPCQ_OK);
	assert_non_null(msg);

	arena *a = arena_create(0);
	assert_non_null(a);
	Rpcq__Request *req = NULL;
	assert_int_equal(envelope_parse_request(a, nng_msg_body(msg), nng_msg_len(msg), &req, &err), RPCQ_OK);
	assert_string_equal(req->method, "/rpcq.Health/Echo");
	assert_int_equal(req->payload.len, 200);
	assert_memory_equal(req->payload.data, payload, 200);
	assert_int_equal(req->deadline_ms, 2500);
	assert_int_equal(req->n_metadata, 2);
	assert_string_equal(req->metadata[0]->key, "x-request-id");
	assert_string_equal(req->metadata[0]->value, "req-42");
	assert_string_equal(req->metadata[1]->key, "authorization");
	assert_string_equal(req->metadata[1]->value, "Bearer t,o=k\"en");

	arena_destroy(a);
	nng_msg_free(msg);
	free(payload);
}

static void test_metadata_keys_are_read_lowercase(void **state)
{
	(void)state;
	const char *const md[] = {"X-Request-Id", "Req-42", "Authorization", "Bearer K", NULL};
	nng_msg *msg = NULL;
	rpcq_error err;
	assert_int_equal(envelope_pack_request(&msg, "/rpcq.Health/Echo", NULL, 0, 0, md, 0, &err), RPCQ_OK);
	arena *a = arena_create(0);
	assert_non_null(a);
	Rpcq__Request *req = NULL;
	assert_int_equal(envelope_parse_request(a, nng_msg_body(msg), nng_msg_len(msg), &req, &err), RPCQ_OK);
	assert_int_equal(req->n_metadata, 2);
	assert_string_equal(req->metadata[0]->key, "x-request-id");
	assert_string_equal(req->metadata[0]->value, "Req-42"); /* values as sent */
	assert_string_equal(req->metadata[1]->key, "authorization");
	assert_string_equal(req->metadata[1]->value, "Bearer K");
	arena_destroy(a);
	nng_msg_free(msg);
}

static void test_request_without_payload_or_metadata_round_trips(void **state)
{
	(void)state;
	nng_msg *msg = NULL;
	assert_int_equal(envelope_pack_request(&msg, "/rpcq.Health/Check", NULL, 0, 0, NULL, 0, NULL), RPCQ_OK);
	arena *a = arena_create(0);
	assert_non_null(a);
	Rpcq__Request *req = NULL;
	assert_int_equal(envelope_parse_request(a, nng_msg_body(msg), nng_msg_len(msg), &req, NULL), RPCQ_OK);
	assert_string_equal(req->method, "/rpcq.Health/Check");
	assert_int_equal(req->payload.len, 0);
	assert_int_equal(req->deadline_ms, 0);
	assert_int_equal(req->n_metadata, 0);
	arena_destroy(a);
	nng_msg_free(msg);
}

static void test_metadata_list_ends_at_the_first_missing_value(void **state)
{
	(void)state;
	/* An odd list: the dangling key has no value and is not sent. */
	const char *const md[] = {"a", "1", "dangling", NULL};
	nng_msg *msg = NULL;
	assert_int_equal(envelope_pack_request(&msg, "/p.S/M", "x", 1, 0, md, 0, NULL), RPCQ_OK);
	arena *a = arena_create(0);
	assert_non_null(a);
	Rpcq__Request *req = NULL;
	assert_int_equal(envelope_parse_request(a, nng_msg_body(msg), nng_msg_len(msg), &req, NULL), RPCQ_OK);
	assert_int_equal(req->n_metadata, 1);
	assert_string_equal(req->metadata[0]->key, "a");
	assert_string_equal(req->metadata[0]->value, "1");
	arena_destroy(a);
	nng_msg_free(msg);
}

static void test_parsed_request_does_not_point_into_the_input_bytes(void **state)
{
	(void)state;
	uint8_t *payload = make_payload(64);
	const char *const md[] = {"k", "v", NULL};
	size_t len;
	uint8_t *bytes = packed_request("/p.S/M", payload, 64, 7, md, &len);
	arena *a = arena_create(0);
	assert_non_null(a);
	Rpcq__Request *req = NULL;
	assert_int_equal(envelope_parse_request(a, bytes, len, &req, NULL), RPCQ_OK);
	/* The nng message is freed right after parsing in rpcqd: overwrite the input. */
	memset(bytes, 0xee, len);
	free(bytes);
	assert_string_equal(req->method, "/p.S/M");
	assert_memory_equal(req->payload.data, payload, 64);
	assert_string_equal(req->metadata[0]->key, "k");
	assert_string_equal(req->metadata[0]->value, "v");
	arena_destroy(a);
	free(payload);
}

static void test_request_naming_no_method_is_invalid_argument(void **state)
{
	(void)state;
	arena *a = arena_create(0);
	assert_non_null(a);
	Rpcq__Request *req = NULL;
	rpcq_error err;
	/* Zero bytes decode as an empty Request: no method. */
	assert_int_equal(envelope_parse_request(a, "", 0, &req, &err), RPCQ_INVALID_ARGUMENT);
	assert_int_equal(err.code, RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "method"));
	assert_null(req);

	/* payload (field 2) and deadline (field 3) but no method. */
	static const uint8_t no_method[] = {0x12, 0x02, 'h', 'i', 0x18, 0x05};
	assert_int_equal(envelope_parse_request(a, no_method, sizeof no_method, &req, &err), RPCQ_INVALID_ARGUMENT);
	assert_null(req);

	/* An explicitly empty method string. */
	static const uint8_t empty_method[] = {0x0a, 0x00};
	assert_int_equal(envelope_parse_request(a, empty_method, sizeof empty_method, &req, &err),
			 RPCQ_INVALID_ARGUMENT);
	assert_null(req);
	arena_destroy(a);
}

static void test_garbage_bytes_are_invalid_argument(void **state)
{
	(void)state;
	static const uint8_t all_ones[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t text[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	/* Field 1 (method) sent as a varint: the wrong wire type. */
	static const uint8_t wrong_type[] = {0x08, 0x01};
	/* Field 1 claims 100 bytes and brings 3. */
	static const uint8_t overlong[] = {0x0a, 0x64, 'a', '.', 'b'};
	/* Wire type 7 does not exist. */
	static const uint8_t bad_wire_type[] = {0x0f, 0x00};
	/* A varint of eleven bytes. */
	static const uint8_t long_varint[] = {0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	struct {
		const char *what;
		const uint8_t *data;
		size_t len;
	} cases[] = {
		{"0xff bytes", all_ones, sizeof all_ones},
		{"HTTP text", text, sizeof text - 1},
		{"method as varint", wrong_type, sizeof wrong_type},
		{"overlong method", overlong, sizeof overlong},
		{"wire type 7", bad_wire_type, sizeof bad_wire_type},
		{"11-byte varint", long_varint, sizeof long_varint},
	};
	arena *a = arena_create(0);
	assert_non_null(a);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		Rpcq__Request *req = NULL;
		rpcq_error err = {.code = RPCQ_OK};
		rpcq_status st = envelope_parse_request(a, cases[i].data, cases[i].len, &req, &err);
		if (st != RPCQ_INVALID_ARGUMENT || err.code != RPCQ_INVALID_ARGUMENT || req != NULL)
			fail_msg("%s: status %d, error code %d", cases[i].what, (int)st, (int)err.code);
		assert_true(err.message[0] != '\0');
	}
	arena_destroy(a);
}

static void test_request_truncated_anywhere_inside_a_field_is_invalid_argument(void **state)
{
	(void)state;
	uint8_t *payload = make_payload(200);
	const char *const md[] = {"x-request-id", "abc", NULL};
	size_t len;
	uint8_t *bytes = packed_request("/rpcq.Health/Echo", payload, 200, 1000, md, &len);
	/* Protobuf fields may end anywhere, so a cut between two fields leaves a
	 * shorter valid message; every other cut must be refused. Fields are
	 * written in order: method, payload, deadline, metadata. */
	size_t method_end = 2 + strlen("/rpcq.Health/Echo");
	size_t payload_end = method_end + 3 + 200; /* tag, two-byte length */
	size_t deadline_end = payload_end + 3;	   /* tag, two-byte varint 1000 */
	arena *a = arena_create(0);
	assert_non_null(a);
	for (size_t cut = 0; cut < len; cut++) {
		Rpcq__Request *req = NULL;
		rpcq_status st = envelope_parse_request(a, bytes, cut, &req, NULL);
		if (cut == method_end || cut == payload_end || cut == deadline_end) {
			if (st != RPCQ_OK)
				fail_msg("cut at field boundary %zu of %zu: status %d", cut, len, (int)st);
			assert_string_equal(req->method, "/rpcq.Health/Echo");
			assert_int_equal(req->n_metadata, 0);
		} else if (st != RPCQ_INVALID_ARGUMENT) {
			fail_msg("cut at %zu of %zu: status %d, expected INVALID_ARGUMENT", cut, len, (int)st);
		}
		arena_reset(a);
	}
	Rpcq__Request *req = NULL;
	assert_int_equal(envelope_parse_request(a, bytes, len, &req, NULL), RPCQ_OK);
	assert_int_equal(req->n_metadata, 1);
	arena_destroy(a);
	free(bytes);
	free(payload);
}

static void test_request_over_the_size_limit_is_resource_exhausted(void **state)
{
	(void)state;
	uint8_t *payload = make_payload(4096);
	size_t size;
	free(packed_request("/p.S/M", payload, 4096, 0, NULL, &size));

	nng_msg *msg = NULL;
	rpcq_error err;
	assert_int_equal(envelope_pack_request(&msg, "/p.S/M", payload, 4096, 0, NULL, (long)size, &err), RPCQ_OK);
	assert_int_equal(nng_msg_len(msg), size);
	nng_msg_free(msg);

	msg = NULL;
	assert_int_equal(envelope_pack_request(&msg, "/p.S/M", payload, 4096, 0, NULL, (long)size - 1, &err),
			 RPCQ_RESOURCE_EXHAUSTED);
	assert_null(msg);
	assert_int_equal(err.code, RPCQ_RESOURCE_EXHAUSTED);
	/* The message names both sizes so that a user can act on it. */
	char expect[64];
	snprintf(expect, sizeof expect, "%zu bytes", size);
	assert_non_null(strstr(err.message, expect));
	snprintf(expect, sizeof expect, "%ld bytes", (long)size - 1);
	assert_non_null(strstr(err.message, expect));

	/* Metadata counts towards the limit too. */
	const char *const md[] = {"k", "v", NULL};
	assert_int_equal(envelope_pack_request(&msg, "/p.S/M", payload, 4096, 0, md, (long)size, NULL),
			 RPCQ_RESOURCE_EXHAUSTED);
	assert_null(msg);
	free(payload);
}

static void test_response_round_trips_code_message_payload_and_trailers(void **state)
{
	(void)state;
	uint8_t *payload = make_payload(300);
	const char *const tr[] = {"retry-after-ms", "250", "x-request-id", "r1", NULL};
	nng_msg *msg = NULL;
	rpcq_error err;
	assert_int_equal(envelope_pack_response(&msg, RPCQ_OK, "fine", payload, 300, tr, &err), RPCQ_OK);
	arena *a = arena_create(0);
	assert_non_null(a);
	Rpcq__Response *resp = NULL;
	assert_int_equal(envelope_parse_response(a, nng_msg_body(msg), nng_msg_len(msg), &resp, &err), RPCQ_OK);
	assert_int_equal(resp->code, RPCQ__STATUS_CODE__OK);
	assert_string_equal(resp->message, "fine");
	assert_int_equal(resp->payload.len, 300);
	assert_memory_equal(resp->payload.data, payload, 300);
	assert_int_equal(resp->n_trailers, 2);
	assert_string_equal(resp->trailers[0]->key, "retry-after-ms");
	assert_string_equal(resp->trailers[0]->value, "250");
	assert_string_equal(resp->trailers[1]->key, "x-request-id");
	assert_string_equal(resp->trailers[1]->value, "r1");
	arena_destroy(a);
	nng_msg_free(msg);
	free(payload);
}

static void test_every_status_code_round_trips_in_a_response(void **state)
{
	(void)state;
	for (int code = 0; code < RPCQ_STATUS_COUNT; code++) {
		nng_msg *msg = NULL;
		assert_int_equal(envelope_pack_response(&msg, (rpcq_status)code, NULL, NULL, 0, NULL, NULL), RPCQ_OK);
		Rpcq__Response *resp = NULL;
		/* Without an arena: the default allocator, freed by the caller. */
		assert_int_equal(envelope_parse_response(NULL, nng_msg_body(msg), nng_msg_len(msg), &resp, NULL),
				 RPCQ_OK);
		assert_int_equal((int)resp->code, code);
		/* A NULL message travels as the empty string. */
		assert_string_equal(resp->message, "");
		assert_int_equal(resp->payload.len, 0);
		rpcq__response__free_unpacked(resp, NULL);
		nng_msg_free(msg);
	}
}

static void test_response_that_does_not_decode_is_internal(void **state)
{
	(void)state;
	static const uint8_t all_ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	/* Field 2 (message) claims 10 bytes and brings 2. */
	static const uint8_t overlong[] = {0x08, 0x00, 0x12, 0x0a, 'o', 'k'};
	arena *a = arena_create(0);
	assert_non_null(a);
	Rpcq__Response *resp = NULL;
	rpcq_error err = {.code = RPCQ_OK};
	assert_int_equal(envelope_parse_response(a, all_ones, sizeof all_ones, &resp, &err), RPCQ_INTERNAL);
	assert_int_equal(err.code, RPCQ_INTERNAL);
	assert_non_null(strstr(err.message, "rpcq.Response"));
	assert_null(resp);
	assert_int_equal(envelope_parse_response(NULL, overlong, sizeof overlong, &resp, &err), RPCQ_INTERNAL);
	assert_null(resp);
	arena_destroy(a);
}

static void test_response_truncated_inside_the_payload_is_internal(void **state)
{
	(void)state;
	uint8_t *payload = make_payload(200);
	nng_msg *msg = NULL;
	assert_int_equal(envelope_pack_response(&msg, RPCQ_OK, NULL, payload, 200, NULL, NULL), RPCQ_OK);
	size_t len = nng_msg_len(msg);
	/* code 0 and an empty message are not written: the payload field is all. */
	assert_int_equal(len, 3 + 200);
	for (size_t cut = 1; cut < len; cut++) {
		Rpcq__Response *resp = NULL;
		if (envelope_parse_response(NULL, nng_msg_body(msg), cut, &resp, NULL) != RPCQ_INTERNAL)
			fail_msg("reply cut at %zu of %zu decoded", cut, len);
	}
	nng_msg_free(msg);
	free(payload);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_method_names_are_normalized_to_the_full_form),
		cmocka_unit_test(test_method_names_without_package_service_and_method_are_refused),
		cmocka_unit_test(test_method_name_that_does_not_fit_the_buffer_is_refused),
		cmocka_unit_test(test_request_round_trips_method_payload_deadline_and_metadata),
		cmocka_unit_test(test_metadata_keys_are_read_lowercase),
		cmocka_unit_test(test_request_without_payload_or_metadata_round_trips),
		cmocka_unit_test(test_metadata_list_ends_at_the_first_missing_value),
		cmocka_unit_test(test_parsed_request_does_not_point_into_the_input_bytes),
		cmocka_unit_test(test_request_naming_no_method_is_invalid_argument),
		cmocka_unit_test(test_garbage_bytes_are_invalid_argument),
		cmocka_unit_test(test_request_truncated_anywhere_inside_a_field_is_invalid_argument),
		cmocka_unit_test(test_request_over_the_size_limit_is_resource_exhausted),
		cmocka_unit_test(test_response_round_trips_code_message_payload_and_trailers),
		cmocka_unit_test(test_every_status_code_round_trips_in_a_response),
		cmocka_unit_test(test_response_that_does_not_decode_is_internal),
		cmocka_unit_test(test_response_truncated_inside_the_payload_is_internal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
