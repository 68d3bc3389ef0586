/*
 * The gateway's status mapping: each rpcq status to Connect's error code and
 * the HTTP status of Connect and gRPC's HTTP mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gateway_internal.h"

static const struct {
	rpcq_status st;
	const char *code;
	int http;
} table[] = {
	{RPCQ_OK, "ok", 200},
	{RPCQ_CANCELLED, "canceled", 499},
	{RPCQ_UNKNOWN, "unknown", 500},
	{RPCQ_INVALID_ARGUMENT, "invalid_argument", 400},
	{RPCQ_DEADLINE_EXCEEDED, "deadline_exceeded", 504},
	{RPCQ_NOT_FOUND, "not_found", 404},
	{RPCQ_ALREADY_EXISTS, "already_exists", 409},
	{RPCQ_PERMISSION_DENIED, "permission_denied", 403},
	{RPCQ_RESOURCE_EXHAUSTED, "resource_exhausted", 429},
	{RPCQ_FAILED_PRECONDITION, "failed_precondition", 400},
	{RPCQ_ABORTED, "aborted", 409},
	{RPCQ_OUT_OF_RANGE, "out_of_range", 400},
	{RPCQ_UNIMPLEMENTED, "unimplemented", 501},
	{RPCQ_INTERNAL, "internal", 500},
	{RPCQ_UNAVAILABLE, "unavailable", 503},
	{RPCQ_DATA_LOSS, "data_loss", 500},
	{RPCQ_UNAUTHENTICATED, "unauthenticated", 401},
};

static void test_every_status_has_its_connect_code_and_http_status(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		assert_string_equal(gateway_connect_code(table[i].st), table[i].code);
		assert_int_equal(gateway_http_status(table[i].st), table[i].http);
	}
}

static void test_a_status_outside_the_table_is_unknown_and_500(void **state)
{
	(void)state;
	assert_string_equal(gateway_connect_code((rpcq_status)99), "unknown");
	assert_int_equal(gateway_http_status((rpcq_status)99), 500);
}

static void test_json_escape_escapes_quotes_backslashes_and_control_characters(void **state)
{
	(void)state;
	char buf[64];
	size_t n = gw_json_escape(buf, sizeof(buf), "a\"b\\c\nd\x01");
	assert_string_equal(buf, "a\\\"b\\\\c\\u000ad\\u0001");
	assert_int_equal(n, 20);
	/* Too small: truncated, NUL-terminated, the full length returned. */
	n = gw_json_escape(buf, 4, "abcdef");
	assert_string_equal(buf, "abc");
	assert_int_equal(n, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_status_has_its_connect_code_and_http_status),
		cmocka_unit_test(test_a_status_outside_the_table_is_unknown_and_500),
		cmocka_unit_test(test_json_escape_escapes_quotes_backslashes_and_control_characters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
