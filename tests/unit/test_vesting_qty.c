/*
 * Vesting dates and quantities: calendar validity (leap years by the
 * Gregorian rule, impossible days), round trips through day numbers, and the
 * exact decimal: parsing, refusal of malformed, negative and overflowing
 * text, truncation toward zero and formatting at every precision 0..6.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "date.h"
#include "qty.h"

static date_result parse_date(const char *s, int32_t *day)
{
	return date_parse(s, strlen(s), day);
}

static void test_dates_parse_to_days_since_the_epoch(void **state)
{
	(void)state;
	int32_t d;
	assert_int_equal(parse_date("1970-01-01", &d), DATE_OK);
	assert_int_equal(d, 0);
	assert_int_equal(parse_date("2020-01-01", &d), DATE_OK);
	assert_int_equal(d, 18262);
	assert_int_equal(parse_date("0001-01-01", &d), DATE_OK);
	assert_int_equal(d, DATE_DAY_MIN);
	assert_int_equal(parse_date("9999-12-31", &d), DATE_OK);
	assert_int_equal(d, DATE_DAY_MAX);
}

static void test_leap_days_exist_only_in_gregorian_leap_years(void **state)
{
	(void)state;
	int32_t d;
	assert_int_equal(parse_date("2024-02-29", &d), DATE_OK);
	assert_int_equal(parse_date("2000-02-29", &d), DATE_OK);
	assert_int_equal(parse_date("2021-02-29", &d), DATE_IMPOSSIBLE);
	assert_int_equal(parse_date("1900-02-29", &d), DATE_IMPOSSIBLE);
	assert_int_equal(parse_date("2100-02-29", &d), DATE_IMPOSSIBLE);
	assert_true(date_is_leap(2000));
	assert_false(date_is_leap(1900));
}

static void test_impossible_dates_are_told_apart_from_malformed_ones(void **state)
{
	(void)state;
	int32_t d;
	assert_int_equal(parse_date("2021-13-01", &d), DATE_IMPOSSIBLE);
	assert_int_equal(parse_date("2021-00-10", &d), DATE_IMPOSSIBLE);
	assert_int_equal(parse_date("2021-04-31", &d), DATE_IMPOSSIBLE);
	assert_int_equal(parse_date("2021-01-00", &d), DATE_IMPOSSIBLE);
	assert_int_equal(parse_date("0000-01-01", &d), DATE_IMPOSSIBLE);
	assert_int_equal(parse_date("2021-1-01", &d), DATE_MALFORMED);
	assert_int_equal(parse_date("2021/01/01", &d), DATE_MALFORMED);
	assert_int_equal(parse_date("20210101", &d), DATE_MALFORMED);
	assert_int_equal(parse_date("2021-01-01 ", &d), DATE_MALFORMED);
	assert_int_equal(parse_date("+021-01-01", &d), DATE_MALFORMED);
	assert_int_equal(parse_date("", &d), DATE_MALFORMED);
}

static void test_every_day_formats_back_to_the_text_it_came_from(void **state)
{
	(void)state;
	char out[11];
	for (int32_t day = -800; day < 200000; day += 7) {
		int32_t back;
		date_format(day, out);
		assert_int_equal(parse_date(out, &back), DATE_OK);
		assert_int_equal(back, day);
	}
	date_format(DATE_DAY_MAX, out);
	assert_string_equal(out, "9999-12-31");
	date_format(DATE_DAY_MIN, out);
	assert_string_equal(out, "0001-01-01");
}

static vesting_qty_result parse_qty(const char *s, int64_t *q)
{
	return vesting_qty_parse(s, strlen(s), q);
}

static void test_quantities_parse_to_micro_shares(void **state)
{
	(void)state;
	int64_t q;
	assert_int_equal(parse_qty("1000", &q), VESTING_QTY_OK);
	assert_int_equal(q, 1000000000);
	assert_int_equal(parse_qty("1000.5", &q), VESTING_QTY_OK);
	assert_int_equal(q, 1000500000);
	assert_int_equal(parse_qty("0.125", &q), VESTING_QTY_OK);
	assert_int_equal(q, 125000);
	assert_int_equal(parse_qty(".5", &q), VESTING_QTY_OK);
	assert_int_equal(q, 500000);
	assert_int_equal(parse_qty("5.", &q), VESTING_QTY_OK);
	assert_int_equal(q, 5000000);
	assert_int_equal(parse_qty("0", &q), VESTING_QTY_OK);
	assert_int_equal(q, 0);
	assert_int_equal(parse_qty("000012.000001", &q), VESTING_QTY_OK);
	assert_int_equal(q, 12000001);
}

static void test_digits_beyond_the_sixth_decimal_are_truncated(void **state)
{
	(void)state;
	int64_t q;
	assert_int_equal(parse_qty("1.99999999999", &q), VESTING_QTY_OK);
	assert_int_equal(q, 1999999);
	assert_int_equal(parse_qty("0.0000009", &q), VESTING_QTY_OK);
	assert_int_equal(q, 0);
}

static void test_malformed_and_negative_quantities_are_refused(void **state)
{
	(void)state;
	int64_t q;
	const char *bad[] = {"", ".", "abc", "1e5", "1.2.3", "1,5", "+5", " 5", "5 ", "0x10", "1_000", "--1", "-"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_qty(bad[i], &q), VESTING_QTY_MALFORMED);
	assert_int_equal(parse_qty("-5", &q), VESTING_QTY_NEGATIVE);
	assert_int_equal(parse_qty("-0.5", &q), VESTING_QTY_NEGATIVE);
}

static void test_quantities_above_the_int64_micro_range_overflow(void **state)
{
	(void)state;
	int64_t q;
	assert_int_equal(parse_qty(VESTING_QTY_MAX_TEXT, &q), VESTING_QTY_OK);
	assert_int_equal(q, INT64_MAX);
	assert_int_equal(parse_qty("9223372036854.775808", &q), VESTING_QTY_OVERFLOW);
	assert_int_equal(parse_qty("9223372036855", &q), VESTING_QTY_OVERFLOW);
	assert_int_equal(parse_qty("99999999999999999999999999999", &q), VESTING_QTY_OVERFLOW);
	assert_int_equal(parse_qty("-99999999999999999999999999999", &q), VESTING_QTY_NEGATIVE);
}

static void test_truncation_rounds_toward_zero_at_every_precision(void **state)
{
	(void)state;
	int64_t q;
	assert_int_equal(parse_qty("100.456789", &q), VESTING_QTY_OK);
	const int64_t want[7] = {100000000, 100400000, 100450000, 100456000, 100456700, 100456780, 100456789};
	for (int p = 0; p <= 6; p++)
		assert_int_equal(vesting_qty_truncate(q, p), want[p]);
	assert_int_equal(vesting_qty_truncate(-1500000, 0), -1000000);
	assert_int_equal(vesting_qty_unit(0), 1000000);
	assert_int_equal(vesting_qty_unit(6), 1);
}

static void test_formatting_prints_exactly_precision_decimals(void **state)
{
	(void)state;
	char out[VESTING_QTY_FORMAT_MAX];
	const char *want[7] = {"234", "234.0", "234.00", "234.000", "234.0000", "234.00000", "234.000000"};
	for (int p = 0; p <= 6; p++) {
		size_t n = vesting_qty_format(234000000, p, out);
		assert_string_equal(out, want[p]);
		assert_int_equal(n, strlen(want[p]));
	}
	const char *want_frac[7] = {"299", "299.7", "299.75", "299.750", "299.7500", "299.75000", "299.750000"};
	for (int p = 0; p <= 6; p++) {
		vesting_qty_format(299750000, p, out);
		assert_string_equal(out, want_frac[p]);
	}
	vesting_qty_format(1, 6, out);
	assert_string_equal(out, "0.000001");
	vesting_qty_format(1, 5, out);
	assert_string_equal(out, "0.00000");
	vesting_qty_format(0, 0, out);
	assert_string_equal(out, "0");
	vesting_qty_format(INT64_MAX, 6, out);
	assert_string_equal(out, VESTING_QTY_MAX_TEXT);
	vesting_qty_format(-1500000, 1, out);
	assert_string_equal(out, "-1.5");
	vesting_qty_format(INT64_MIN, 6, out);
	assert_string_equal(out, "-9223372036854.775808");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dates_parse_to_days_since_the_epoch),
		cmocka_unit_test(test_leap_days_exist_only_in_gregorian_leap_years),
		cmocka_unit_test(test_impossible_dates_are_told_apart_from_malformed_ones),
		cmocka_unit_test(test_every_day_formats_back_to_the_text_it_came_from),
		cmocka_unit_test(test_quantities_parse_to_micro_shares),
		cmocka_unit_test(test_digits_beyond_the_sixth_decimal_are_truncated),
		cmocka_unit_test(test_malformed_and_negative_quantities_are_refused),
		cmocka_unit_test(test_quantities_above_the_int64_micro_range_overflow),
		cmocka_unit_test(test_truncation_rounds_toward_zero_at_every_precision),
		cmocka_unit_test(test_formatting_prints_exactly_precision_decimals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
