/*
 * Array parameters in PostgreSQL's text form (db_array in server/db): what
 * the literal looks like for text with every character the array syntax
 * gives a meaning to, NULL elements, bytea, and no elements. That
 * PostgreSQL reads them back as sent is test_vouchers' business (customer
 * ids of every kind through IssueVouchers' batches).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "db/db.h"

static void test_text_elements_are_quoted_and_escaped(void **state)
{
	(void)state;
	db_array a = {0};
	db_array_text(&a, "plain");
	db_array_text(&a, "a \"quoted\", {braced} \\ one");
	db_array_text(&a, "");
	db_array_text(&a, "NULL");
	db_array_text(&a, NULL);
	assert_string_equal(db_array_end(&a), "{\"plain\",\"a \\\"quoted\\\", {braced} \\\\ one\",\"\",\"NULL\",NULL}");
	db_array_free(&a);
}

static void test_bytea_elements_are_hex_inside_quotes(void **state)
{
	(void)state;
	db_array a = {0};
	const uint8_t bytes[] = {0x00, 0x12, 0xab, 0xff};
	db_array_bytea(&a, bytes, sizeof(bytes));
	db_array_bytea(&a, bytes, 0);
	assert_string_equal(db_array_end(&a), "{\"\\\\x0012abff\",\"\\\\x\"}");
	db_array_free(&a);
}

static void test_no_elements_is_the_empty_array(void **state)
{
	(void)state;
	db_array a = {0};
	assert_string_equal(db_array_end(&a), "{}");
	db_array_free(&a);
}

static void test_long_arrays_grow(void **state)
{
	(void)state;
	db_array a = {0};
	for (int i = 0; i < 10000; i++)
		db_array_text(&a, "0123456789");
	const char *s = db_array_end(&a);
	assert_non_null(s);
	assert_int_equal(strlen(s), 10000 * 13 + 1); /* each "..." and its separator, and "}" */
	db_array_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_elements_are_quoted_and_escaped),
		cmocka_unit_test(test_bytea_elements_are_hex_inside_quotes),
		cmocka_unit_test(test_no_elements_is_the_empty_array),
		cmocka_unit_test(test_long_arrays_grow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
