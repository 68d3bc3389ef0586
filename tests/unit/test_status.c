/*
 * Status codes: the C table agrees with rpc.proto's StatusCode (names and
 * numbers, through protoc-c's enum descriptor), names parse back, and
 * anything outside the table reads as UNKNOWN rather than crashing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <rpcq/status.h>

#include "rpcq/rpc.pb-c.h"

static void test_every_status_matches_the_proto_enum_by_name_and_number(void **state)
{
	(void)state;
	const ProtobufCEnumDescriptor *d = &rpcq__status_code__descriptor;
	assert_int_equal(d->n_values, RPCQ_STATUS_COUNT);
	for (unsigned i = 0; i < d->n_values; i++) {
		const ProtobufCEnumValue *v = &d->values[i];
		assert_string_equal(rpcq_status_name((rpcq_status)v->value), v->name);
	}
}

static void test_names_and_numbers_parse_back(void **state)
{
	(void)state;
	for (int i = 0; i < RPCQ_STATUS_COUNT; i++) {
		rpcq_status st;
		assert_int_equal(rpcq_status_parse(rpcq_status_name((rpcq_status)i), &st), 0);
		assert_int_equal(st, i);
		assert_true(strlen(rpcq_status_describe((rpcq_status)i)) > 0);
	}
	rpcq_status st;
	assert_int_equal(rpcq_status_parse("14", &st), 0);
	assert_int_equal(st, RPCQ_UNAVAILABLE);
	assert_int_equal(rpcq_status_parse("17", &st), -1);
	assert_int_equal(rpcq_status_parse("-1", &st), -1);
	assert_int_equal(rpcq_status_parse("not_found", &st), -1);
	assert_int_equal(rpcq_status_parse("", &st), -1);
	assert_int_equal(rpcq_status_parse(NULL, &st), -1);
}

static void test_codes_outside_the_table_read_as_unknown(void **state)
{
	(void)state;
	assert_string_equal(rpcq_status_name((rpcq_status)99), "UNKNOWN");
	assert_string_equal(rpcq_status_name((rpcq_status)-3), "UNKNOWN");
	assert_string_equal(rpcq_status_describe((rpcq_status)99), rpcq_status_describe(RPCQ_UNKNOWN));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_status_matches_the_proto_enum_by_name_and_number),
		cmocka_unit_test(test_names_and_numbers_parse_back),
		cmocka_unit_test(test_codes_outside_the_table_read_as_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
