/*
 * Query strings and percent-encoding (server/gateway/query.h) as the gateway
 * uses them on GET calls: a value found by its name however it is encoded,
 * bad encodings refused rather than guessed at, and encode/decode inverse of
 * each other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "query.h"

static void test_query_decode_turns_escapes_into_bytes(void **state)
{
	(void)state;
	char out[32];
	assert_int_equal(query_decode("a%20b%2Fc%c3%A9", 15, out, sizeof out, 0), 7);
	assert_string_equal(out, "a b/c\xc3\xa9");
	assert_int_equal(query_decode("", 0, out, sizeof out, 0), 0);
	assert_string_equal(out, "");
	/* Only len bytes are read. */
	assert_int_equal(query_decode("abc%zz", 3, out, sizeof out, 0), 3);
	assert_string_equal(out, "abc");
}

static void test_query_decode_turns_plus_into_space_only_when_asked(void **state)
{
	(void)state;
	char out[32];
	assert_int_equal(query_decode("a+b%2B", 6, out, sizeof out, 1), 4);
	assert_string_equal(out, "a b+");
	assert_int_equal(query_decode("a+b%2B", 6, out, sizeof out, 0), 4);
	assert_string_equal(out, "a+b+");
}

static void test_query_decode_refuses_bad_escapes_nul_bytes_and_overflow(void **state)
{
	(void)state;
	char out[8];
	assert_int_equal(query_decode("%", 1, out, sizeof out, 0), -1);
	assert_int_equal(query_decode("%4", 2, out, sizeof out, 0), -1);
	assert_int_equal(query_decode("%4g", 3, out, sizeof out, 0), -1);
	assert_int_equal(query_decode("%g4", 3, out, sizeof out, 0), -1);
	assert_int_equal(query_decode("a%00", 4, out, sizeof out, 0), -1);
	assert_int_equal(query_decode("a\0b", 3, out, sizeof out, 0), -1);
	/* Seven bytes and the NUL fit in eight; eight do not. */
	assert_int_equal(query_decode("1234567", 7, out, sizeof out, 0), 7);
	assert_int_equal(query_decode("12345678", 8, out, sizeof out, 0), -1);
	assert_int_equal(query_decode("%41%41%41%41%41%41%41", 21, out, sizeof out, 0), 7);
	assert_int_equal(query_decode("", 0, out, 0, 0), -1);
}

static void test_query_get_finds_a_value_by_its_decoded_name(void **state)
{
	(void)state;
	char v[64];
	assert_int_equal(query_get("message=aGk%3D&encoding=json", "message", v, sizeof v), 1);
	assert_string_equal(v, "aGk=");
	assert_int_equal(query_get("message=aGk%3D&encoding=json", "encoding", v, sizeof v), 1);
	assert_string_equal(v, "json");
	assert_int_equal(query_get("m%65ssage=x", "message", v, sizeof v), 1);
	assert_string_equal(v, "x");
	assert_int_equal(query_get("a+b=c+d", "a b", v, sizeof v), 1);
	assert_string_equal(v, "c d");
	assert_int_equal(query_get("a=1=2", "a", v, sizeof v), 1);
	assert_string_equal(v, "1=2");
}

static void test_query_get_takes_the_first_of_repeated_names(void **state)
{
	(void)state;
	char v[16];
	assert_int_equal(query_get("a=1&b=2&a=3", "a", v, sizeof v), 1);
	assert_string_equal(v, "1");
}

static void test_query_count_counts_a_decoded_name_and_refuses_a_bad_one(void **state)
{
	(void)state;
	assert_int_equal(query_count(NULL, "a"), 0);
	assert_int_equal(query_count("", "a"), 0);
	assert_int_equal(query_count("b=1", "a"), 0);
	assert_int_equal(query_count("a=1&b=2", "a"), 1);
	assert_int_equal(query_count("a=1&b=2&%61=3&a", "a"), 3);
	assert_int_equal(query_count("a=1&%zz=2", "a"), -1);
}

static void test_query_get_says_0_for_a_missing_name(void **state)
{
	(void)state;
	char v[16] = "junk";
	assert_int_equal(query_get("a=1&b=2", "c", v, sizeof v), 0);
	assert_string_equal(v, "");
	assert_int_equal(query_get("", "a", v, sizeof v), 0);
	assert_int_equal(query_get(NULL, "a", v, sizeof v), 0);
	assert_int_equal(query_get("ab=1", "a", v, sizeof v), 0);
	assert_int_equal(query_get("a=1", "ab", v, sizeof v), 0);
}

static void test_query_get_gives_an_empty_value_for_a_name_without_one(void **state)
{
	(void)state;
	char v[16];
	assert_int_equal(query_get("a&b=2", "a", v, sizeof v), 1);
	assert_string_equal(v, "");
	assert_int_equal(query_get("a=&b=2", "a", v, sizeof v), 1);
	assert_string_equal(v, "");
	assert_int_equal(query_get("&&a=1&&", "a", v, sizeof v), 1);
	assert_string_equal(v, "1");
}

static void test_query_get_refuses_bad_percent_encoding(void **state)
{
	(void)state;
	char v[16];
	assert_int_equal(query_get("a=%zz", "a", v, sizeof v), -1);
	assert_string_equal(v, "");
	assert_int_equal(query_get("a=%00", "a", v, sizeof v), -1);
	/* A bad name makes the query malformed, whichever name is asked for. */
	assert_int_equal(query_get("%zz=1&a=2", "a", v, sizeof v), -1);
	assert_int_equal(query_get("a=2&%4=1", "a", v, sizeof v), -1);
	assert_string_equal(v, "");
	/* The values of other names are not looked at. */
	assert_int_equal(query_get("b=%zz&a=2", "a", v, sizeof v), 1);
	assert_string_equal(v, "2");
}

static void test_query_get_refuses_a_value_longer_than_the_buffer(void **state)
{
	(void)state;
	char v[4];
	assert_int_equal(query_get("a=123", "a", v, sizeof v), 1);
	assert_string_equal(v, "123");
	assert_int_equal(query_get("a=1234", "a", v, sizeof v), -1);
}

static const char *const allowed[] = {"message", "encoding", "base64", "connect", NULL};

static void test_query_check_names_accepts_allowed_names_once_each(void **state)
{
	(void)state;
	char bad[16];
	assert_int_equal(query_check_names("message=x&encoding=json&base64=1", allowed, bad, sizeof bad), 0);
	assert_int_equal(query_check_names("", allowed, bad, sizeof bad), 0);
	assert_int_equal(query_check_names("m%65ssage=x&&", allowed, bad, sizeof bad), 0);
	assert_int_equal(query_check_names(NULL, allowed, bad, sizeof bad), 0);
}

static void test_query_check_names_names_an_unknown_name(void **state)
{
	(void)state;
	char bad[16];
	assert_int_equal(query_check_names("message=x&colour=red", allowed, bad, sizeof bad), -1);
	assert_string_equal(bad, "colour");
	assert_int_equal(query_check_names("a+b%21=1", allowed, bad, sizeof bad), -1);
	assert_string_equal(bad, "a b!");
	assert_int_equal(query_check_names("=1", allowed, bad, sizeof bad), -1);
	assert_string_equal(bad, "");
	/* Cut to fit. */
	assert_int_equal(query_check_names("averyveryverylongname=1", allowed, bad, 6), -1);
	assert_string_equal(bad, "avery");
	/* A prefix of an allowed name is not that name. */
	assert_int_equal(query_check_names("mess=1", allowed, bad, sizeof bad), -1);
	assert_string_equal(bad, "mess");
}

static void test_query_check_names_refuses_a_repeated_name(void **state)
{
	(void)state;
	char bad[16];
	assert_int_equal(query_check_names("message=x&encoding=json&message=y", allowed, bad, sizeof bad), -1);
	assert_string_equal(bad, "message");
	assert_int_equal(query_check_names("base64&b%61se64=1", allowed, bad, sizeof bad), -1);
	assert_string_equal(bad, "base64");
}

static void test_query_check_names_refuses_a_name_with_bad_encoding(void **state)
{
	(void)state;
	char bad[16];
	assert_int_equal(query_check_names("message=x&a%zzb=1", allowed, bad, sizeof bad), -1);
	assert_string_equal(bad, "a%zzb");
	assert_int_equal(query_check_names("message=x&a%zzb=1", allowed, NULL, 0), -1);
}

static void test_query_encode_keeps_unreserved_characters_and_escapes_the_rest(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(query_encode("Az09-._~", out, sizeof out), 8);
	assert_string_equal(out, "Az09-._~");
	assert_int_equal(query_encode("a b+c/&=?%\xc3\xa9", out, sizeof out), 30);
	assert_string_equal(out, "a%20b%2Bc%2F%26%3D%3F%25%C3%A9");
	assert_int_equal(query_encode("", out, sizeof out), 0);
	assert_string_equal(out, "");
}

static void test_query_encode_says_how_long_it_would_be_and_cuts_only_between_escapes(void **state)
{
	(void)state;
	char out[6];
	assert_int_equal(query_encode("ab c d", out, sizeof out), 10);
	assert_string_equal(out, "ab%20");
	assert_int_equal(query_encode("abc d", out, 5), 7);
	assert_string_equal(out, "abc");
	assert_int_equal(query_encode("abc", NULL, 0), 3);
}

static void test_decoding_what_query_encode_made_gives_the_string_back(void **state)
{
	(void)state;
	char s[256], enc[800], dec[256];
	for (int i = 1; i < 256; i++)
		s[i - 1] = (char)i;
	s[255] = '\0';
	size_t n = query_encode(s, enc, sizeof enc);
	assert_true(n < sizeof enc);
	for (int plus = 0; plus <= 1; plus++) {
		assert_int_equal(query_decode(enc, n, dec, sizeof dec, plus), 255);
		assert_string_equal(dec, s);
	}
	char v[256], q[820];
	snprintf(q, sizeof q, "k=%s", enc);
	assert_int_equal(query_get(q, "k", v, sizeof v), 1);
	assert_string_equal(v, s);
}

static void test_query_uint_takes_decimal_digits_up_to_int64_max(void **state)
{
	(void)state;
	uint64_t v = 7;
	assert_int_equal(query_uint("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(query_uint("1048576", &v), 0);
	assert_int_equal(v, 1048576);
	assert_int_equal(query_uint("9223372036854775807", &v), 0);
	assert_true(v == (uint64_t)INT64_MAX);
	v = 7;
	assert_int_equal(query_uint("9223372036854775808", &v), -1);
	assert_int_equal(query_uint("10000000000000000000", &v), -1);
	assert_int_equal(query_uint("", &v), -1);
	assert_int_equal(query_uint("-1", &v), -1);
	assert_int_equal(query_uint("+1", &v), -1);
	assert_int_equal(query_uint("1 ", &v), -1);
	assert_int_equal(query_uint("0x10", &v), -1);
	assert_int_equal(v, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_decode_turns_escapes_into_bytes),
		cmocka_unit_test(test_query_decode_turns_plus_into_space_only_when_asked),
		cmocka_unit_test(test_query_decode_refuses_bad_escapes_nul_bytes_and_overflow),
		cmocka_unit_test(test_query_get_finds_a_value_by_its_decoded_name),
		cmocka_unit_test(test_query_get_takes_the_first_of_repeated_names),
		cmocka_unit_test(test_query_count_counts_a_decoded_name_and_refuses_a_bad_one),
		cmocka_unit_test(test_query_get_says_0_for_a_missing_name),
		cmocka_unit_test(test_query_get_gives_an_empty_value_for_a_name_without_one),
		cmocka_unit_test(test_query_get_refuses_bad_percent_encoding),
		cmocka_unit_test(test_query_get_refuses_a_value_longer_than_the_buffer),
		cmocka_unit_test(test_query_check_names_accepts_allowed_names_once_each),
		cmocka_unit_test(test_query_check_names_names_an_unknown_name),
		cmocka_unit_test(test_query_check_names_refuses_a_repeated_name),
		cmocka_unit_test(test_query_check_names_refuses_a_name_with_bad_encoding),
		cmocka_unit_test(test_query_encode_keeps_unreserved_characters_and_escapes_the_rest),
		cmocka_unit_test(test_query_encode_says_how_long_it_would_be_and_cuts_only_between_escapes),
		cmocka_unit_test(test_decoding_what_query_encode_made_gives_the_string_back),
		cmocka_unit_test(test_query_uint_takes_decimal_digits_up_to_int64_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
