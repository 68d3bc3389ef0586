/*
 * Browser origins (server/gateway/cors.h): what --http-allow-origin takes,
 * when an Origin is the gateway's own, which origins may call, and which
 * requested header lists are echoed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cors.h"

static void test_an_allowed_origin_is_a_scheme_a_host_and_a_port_at_most(void **state)
{
	(void)state;
	const char *good[] = {"*",
			      "null",
			      "http://app.example",
			      "https://app.example:8443",
			      "HTTP://App.Example:80",
			      "http://127.0.0.1:7480",
			      "http://[::1]:7480",
			      "https://[2001:db8::1]"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(cors_origin_valid(good[i]), 1);
	const char *bad[] = {"",
			     "app.example",
			     "ftp://app.example",
			     "http://",
			     "http://app.example/",
			     "http://app.example/x",
			     "http://app.example?q",
			     "http://user@app.example",
			     "http://app.example:",
			     "http://app.example:99999",
			     "http://app.example:80x",
			     "http://a b",
			     "http://[::1",
			     "http://[]",
			     "http://a:1:2",
			     "**"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cors_origin_valid(bad[i]))
			fail_msg("\"%s\" was taken for an origin", bad[i]);
	}
}

static void test_an_origin_is_the_gateways_own_when_host_and_port_match(void **state)
{
	(void)state;
	assert_int_equal(cors_same_origin("http://127.0.0.1:7480", "127.0.0.1:7480"), 1);
	assert_int_equal(cors_same_origin("http://Gateway.Example", "gateway.example:80"), 1);
	assert_int_equal(cors_same_origin("http://gateway.example:80", "gateway.example"), 1);
	assert_int_equal(cors_same_origin("https://gateway.example", "gateway.example:443"), 1);
	assert_int_equal(cors_same_origin("http://[::1]:7480", "[::1]:7480"), 1);
	assert_int_equal(cors_same_origin("http://127.0.0.1:7480", "127.0.0.1:7481"), 0);
	assert_int_equal(cors_same_origin("http://localhost:7480", "127.0.0.1:7480"), 0);
	assert_int_equal(cors_same_origin("https://gateway.example", "gateway.example"), 1);
	assert_int_equal(cors_same_origin("https://gateway.example", "gateway.example:80"), 0);
	assert_int_equal(cors_same_origin("http://gateway.example", NULL), 0);
	assert_int_equal(cors_same_origin("null", "null"), 0);
	assert_int_equal(cors_same_origin("http://a.example", "a.example/x"), 0);
	assert_int_equal(cors_same_origin("http://a.example.evil", "a.example"), 0);
}

static void test_an_origin_may_call_when_its_own_listed_or_any_is_allowed(void **state)
{
	(void)state;
	const char *none[] = {NULL};
	assert_int_equal(cors_allowed(none, 0, "http://127.0.0.1:7480", "127.0.0.1:7480"), 1);
	assert_int_equal(cors_allowed(none, 0, "http://evil.example", "127.0.0.1:7480"), 0);
	const char *listed[] = {"https://app.example", "null"};
	assert_int_equal(cors_allowed(listed, 2, "https://APP.example", "127.0.0.1:7480"), 1);
	assert_int_equal(cors_allowed(listed, 2, "null", "127.0.0.1:7480"), 1);
	assert_int_equal(cors_allowed(listed, 2, "http://app.example", "127.0.0.1:7480"), 0);
	assert_int_equal(cors_allowed(listed, 2, "https://app.example:444", "127.0.0.1:7480"), 0);
	const char *any[] = {"*"};
	assert_int_equal(cors_allowed(any, 1, "http://whoever.example", "127.0.0.1:7480"), 1);
}

static void test_a_requested_header_list_is_echoed_only_when_it_is_tokens(void **state)
{
	(void)state;
	assert_int_equal(cors_header_list_valid("content-type"), 1);
	assert_int_equal(cors_header_list_valid("Content-Type, Authorization,connect-protocol-version"), 1);
	assert_int_equal(cors_header_list_valid(""), 0);
	assert_int_equal(cors_header_list_valid("content-type\r\nX-Evil: 1"), 0);
	assert_int_equal(cors_header_list_valid("a:b"), 0);
	assert_int_equal(cors_header_list_valid("a;b"), 0);
	char longer[1100];
	for (size_t i = 0; i < sizeof(longer) - 1; i++)
		longer[i] = 'a';
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(cors_header_list_valid(longer), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_an_allowed_origin_is_a_scheme_a_host_and_a_port_at_most),
		cmocka_unit_test(test_an_origin_is_the_gateways_own_when_host_and_port_match),
		cmocka_unit_test(test_an_origin_may_call_when_its_own_listed_or_any_is_allowed),
		cmocka_unit_test(test_a_requested_header_list_is_echoed_only_when_it_is_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
