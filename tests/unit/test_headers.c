/*
 * HTTP headers to call metadata (server/gateway/headers.h): application
 * headers pass, protocol headers do not, Connect-Timeout-Ms becomes the
 * deadline when it is what the Connect protocol allows, and a value a
 * handler should never see is refused with the header's name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "headers.h"
#include "http_parse.h"

/* A request holding the NULL-terminated name/value pairs kv. */
static http_request request_of(const char *const *kv)
{
	http_request req;
	memset(&req, 0, sizeof req);
	for (int i = 0; kv[2 * i] != NULL; i++) {
		assert_true(i < HTTP_MAX_HEADERS);
		req.headers[i].name = kv[2 * i];
		req.headers[i].value = kv[2 * i + 1];
		req.nheaders = i + 1;
	}
	return req;
}

static void expect_refused(const char *const *kv, const char *words)
{
	http_request req = request_of(kv);
	headers_metadata md;
	char err[128];
	assert_int_equal(headers_to_metadata(&req, &md, err, sizeof err), -1);
	if (strstr(err, words) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, words);
}

static void test_application_headers_become_metadata_in_order(void **state)
{
	(void)state;
	static const char *const kv[] = {"authorization", "Bearer t", "x-request-id", "abc-1", "x-empty", "", NULL};
	http_request req = request_of(kv);
	headers_metadata md;
	char err[128];
	assert_int_equal(headers_to_metadata(&req, &md, err, sizeof err), 0);
	assert_int_equal(md.n, 3);
	assert_string_equal(md.key[0], "authorization");
	assert_string_equal(md.value[0], "Bearer t");
	assert_string_equal(md.key[1], "x-request-id");
	assert_string_equal(md.value[1], "abc-1");
	assert_string_equal(md.key[2], "x-empty");
	assert_string_equal(md.value[2], "");
	assert_true(md.timeout_ms == 0);
	/* The pairs point into the request. */
	assert_ptr_equal(md.value[0], kv[1]);
}

static void test_protocol_headers_do_not_become_metadata(void **state)
{
	(void)state;
	static const char *const protocol[] = {
		"host",
		"content-type",
		"content-length",
		"content-encoding",
		"connect-protocol-version",
		"accept",
		"accept-encoding",
		"user-agent",
		"connection",
		"transfer-encoding",
		"te",
		"expect",
		"keep-alive",
		"upgrade",
		"connect-content-encoding",
		"grpc-timeout",
		/* What browsers add. */
		"origin",
		"referer",
		"sec-fetch-mode",
		"sec-ch-ua",
		"access-control-request-method",
		"priority",
	};
	const char *kv[2 * (sizeof protocol / sizeof protocol[0]) + 3];
	size_t n = 0;
	for (size_t i = 0; i < sizeof protocol / sizeof protocol[0]; i++) {
		assert_true(headers_is_protocol(protocol[i]));
		kv[n++] = protocol[i];
		kv[n++] = "v";
	}
	kv[n++] = "x-app";
	kv[n++] = "1";
	kv[n] = NULL;
	http_request req = request_of(kv);
	headers_metadata md;
	assert_int_equal(headers_to_metadata(&req, &md, NULL, 0), 0);
	assert_int_equal(md.n, 1);
	assert_string_equal(md.key[0], "x-app");
}

static void test_headers_is_protocol_says_no_to_application_headers(void **state)
{
	(void)state;
	assert_false(headers_is_protocol("authorization"));
	assert_false(headers_is_protocol("x-request-id"));
	assert_false(headers_is_protocol("cookie"));
	assert_false(headers_is_protocol("hostname"));
	assert_false(headers_is_protocol("connected"));
	assert_false(headers_is_protocol("tenant"));
}

static void test_connect_timeout_ms_becomes_the_deadline_and_not_metadata(void **state)
{
	(void)state;
	static const char *const kv[] = {"connect-timeout-ms", "1500", "x-a", "b", NULL};
	http_request req = request_of(kv);
	headers_metadata md;
	assert_int_equal(headers_to_metadata(&req, &md, NULL, 0), 0);
	assert_true(md.timeout_ms == 1500);
	assert_int_equal(md.n, 1);

	static const char *const ten[] = {"connect-timeout-ms", "9999999999", NULL};
	req = request_of(ten);
	assert_int_equal(headers_to_metadata(&req, &md, NULL, 0), 0);
	assert_true(md.timeout_ms == 9999999999ULL);

	static const char *const lead[] = {"connect-timeout-ms", "0000000001", NULL};
	req = request_of(lead);
	assert_int_equal(headers_to_metadata(&req, &md, NULL, 0), 0);
	assert_true(md.timeout_ms == 1);
}

static void test_a_connect_timeout_ms_of_0_is_refused(void **state)
{
	(void)state;
	static const char *const kv[] = {"connect-timeout-ms", "0", NULL};
	expect_refused(kv, "connect-timeout-ms: must not be 0");
}

static void test_a_connect_timeout_ms_of_11_digits_is_refused(void **state)
{
	(void)state;
	static const char *const kv[] = {"connect-timeout-ms", "10000000000", NULL};
	expect_refused(kv, "connect-timeout-ms");
}

static void test_a_connect_timeout_ms_that_is_not_digits_is_refused(void **state)
{
	(void)state;
	static const char *const values[] = {"", "-1", "+1", "1.5", "1e3", "12a", " 12", "0x10"};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		const char *kv[] = {"connect-timeout-ms", values[i], NULL};
		expect_refused(kv, "connect-timeout-ms: must be 1 to 10 digits");
	}
}

static void test_a_value_with_a_control_character_is_refused_with_its_name(void **state)
{
	(void)state;
	static const char *const values[] = {"a\tb", "a\rb", "a\nb", "\x01", "a\x7f"};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		const char *kv[] = {"x-ok", "fine", "x-bad", values[i], NULL};
		expect_refused(kv, "x-bad: control character");
	}
	/* Bytes above ASCII (UTF-8) are not control characters. */
	static const char *const utf8[] = {"x-name", "J\xc3\xa9r\xc3\xb4me", NULL};
	http_request req = request_of(utf8);
	headers_metadata md;
	assert_int_equal(headers_to_metadata(&req, &md, NULL, 0), 0);
	assert_int_equal(md.n, 1);
}

static void test_64_metadata_pairs_fit(void **state)
{
	(void)state;
	/* HTTP_MAX_HEADERS caps a request at 64 headers, so no request from
	 * http_reader can give more than HEADERS_MAX_METADATA pairs; the check
	 * in headers_to_metadata is a backstop should either number change. */
	assert_true(HTTP_MAX_HEADERS <= HEADERS_MAX_METADATA);
	static char names[HTTP_MAX_HEADERS][16];
	const char *kv[2 * HTTP_MAX_HEADERS + 1];
	for (int i = 0; i < HTTP_MAX_HEADERS; i++) {
		snprintf(names[i], sizeof names[i], "x-%d", i);
		kv[2 * i] = names[i];
		kv[2 * i + 1] = "v";
	}
	kv[2 * HTTP_MAX_HEADERS] = NULL;
	http_request req = request_of(kv);
	headers_metadata md;
	assert_int_equal(headers_to_metadata(&req, &md, NULL, 0), 0);
	assert_int_equal(md.n, HEADERS_MAX_METADATA);
	assert_string_equal(md.key[63], "x-63");
}

static void test_headers_of_a_parsed_request_map_the_same_way(void **state)
{
	(void)state;
	static const char s[] = "POST /rpc/x HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
				"Authorization: Basic eA==\r\nConnect-Timeout-Ms: 250\r\nX-Request-Id:  r1 \r\n"
				"Content-Length: 0\r\n\r\n";
	http_limits lim = {.max_head_bytes = 4096, .max_body_bytes = 4096};
	http_reader r;
	size_t used;
	http_reader_init(&r, &lim);
	assert_int_equal(http_reader_feed(&r, s, strlen(s), &used), HTTP_READ_DONE);
	headers_metadata md;
	char err[64];
	assert_int_equal(headers_to_metadata(http_reader_request(&r), &md, err, sizeof err), 0);
	assert_int_equal(md.n, 2);
	assert_string_equal(md.key[0], "authorization");
	assert_string_equal(md.key[1], "x-request-id");
	assert_string_equal(md.value[1], "r1");
	assert_true(md.timeout_ms == 250);
	http_reader_fini(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_application_headers_become_metadata_in_order),
		cmocka_unit_test(test_protocol_headers_do_not_become_metadata),
		cmocka_unit_test(test_headers_is_protocol_says_no_to_application_headers),
		cmocka_unit_test(test_connect_timeout_ms_becomes_the_deadline_and_not_metadata),
		cmocka_unit_test(test_a_connect_timeout_ms_of_0_is_refused),
		cmocka_unit_test(test_a_connect_timeout_ms_of_11_digits_is_refused),
		cmocka_unit_test(test_a_connect_timeout_ms_that_is_not_digits_is_refused),
		cmocka_unit_test(test_a_value_with_a_control_character_is_refused_with_its_name),
		cmocka_unit_test(test_64_metadata_pairs_fit),
		cmocka_unit_test(test_headers_of_a_parsed_request_map_the_same_way),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
