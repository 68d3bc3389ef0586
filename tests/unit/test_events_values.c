/*
 * The small values of the events service: exact decimals (decimal.h), the
 * feed's local date-times and the search bounds (datetime.h), the query of
 * GET /search (search_query.h) and the public ids of events (public_id.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "datetime.h"
#include "decimal.h"
#include "public_id.h"
#include "search_query.h"

static void assert_normalized(const char *in, const char *want)
{
	char out[32];
	assert_int_equal(decimal_normalize(in, out, sizeof out), 0);
	assert_string_equal(out, want);
}

static void assert_not_decimal(const char *in)
{
	char out[32] = "untouched";
	assert_int_equal(decimal_normalize(in, out, sizeof out), -1);
}

static void test_decimals_lose_leading_zeros_and_keep_their_fraction_digits(void **state)
{
	(void)state;
	assert_normalized("20.00", "20.00");
	assert_normalized("20", "20");
	assert_normalized("007.50", "7.50");
	assert_normalized("0.5", "0.5");
	assert_normalized("000", "0");
	assert_normalized("00.000000", "0.000000");
	assert_normalized("123456789012345678.123456", "123456789012345678.123456");
}

static void test_anything_but_a_plain_non_negative_decimal_is_refused(void **state)
{
	(void)state;
	assert_not_decimal("");
	assert_not_decimal(".5");
	assert_not_decimal("20.");
	assert_not_decimal("-1");
	assert_not_decimal("+1");
	assert_not_decimal("1e3");
	assert_not_decimal(" 1");
	assert_not_decimal("1 ");
	assert_not_decimal("1,5");
	assert_not_decimal("1.5.0");
	assert_not_decimal("0x10");
	assert_not_decimal("NaN");
	assert_not_decimal("1234567890123456789"); /* 19 integer digits */
	assert_not_decimal("1.1234567");	   /* 7 fraction digits */
	assert_not_decimal("\xd9\xa3");		   /* an Arabic-Indic digit */
	char small[4];
	assert_int_equal(decimal_normalize("12.5", small, sizeof small), -1);
	assert_int_equal(decimal_normalize("12.", small, sizeof small), -1);
	assert_int_equal(decimal_normalize("012", small, sizeof small), 0);
	assert_string_equal(small, "12");
}

static void test_decimals_compare_by_value_not_by_text(void **state)
{
	(void)state;
	assert_int_equal(decimal_cmp("7.5", "7.50"), 0);
	assert_int_equal(decimal_cmp("7", "7.000"), 0);
	assert_true(decimal_cmp("15.00", "20.00") < 0);
	assert_true(decimal_cmp("100", "99.99") > 0);
	assert_true(decimal_cmp("9", "10") < 0);
	assert_true(decimal_cmp("0.05", "0.5") < 0);
	assert_true(decimal_cmp("1.000001", "1") > 0);
	assert_true(decimal_cmp("0", "0.000001") < 0);
}

/* The feed's zones are compared as they stand in the feed, leading zeros
 * and all, and only a new lowest or highest is written out. */
static void test_decimals_compare_unnormalized_and_write_their_normal_form(void **state)
{
	(void)state;
	decimal a, b;
	assert_int_equal(decimal_parse("007.50", &a), 0);
	assert_int_equal(decimal_parse("7.5", &b), 0);
	assert_int_equal(decimal_compare(&a, &b), 0);
	assert_int_equal(decimal_parse("0010", &b), 0);
	assert_true(decimal_compare(&a, &b) < 0);
	assert_true(decimal_compare(&b, &a) > 0);
	assert_int_equal(decimal_parse("000", &b), 0);
	assert_true(decimal_compare(&b, &a) < 0);
	assert_int_equal(decimal_parse("7.", &b), -1);
	assert_int_equal(decimal_parse("", &b), -1);

	char out[DECIMAL_TEXT_MAX];
	assert_int_equal(decimal_write(&a, out, sizeof out), 0);
	assert_string_equal(out, "7.50");
	/* a now points into out, and still compares by value. */
	assert_ptr_equal(a.intp, out);
	assert_int_equal(decimal_parse("7.500", &b), 0);
	assert_int_equal(decimal_compare(&a, &b), 0);
	char longest[DECIMAL_TEXT_MAX];
	assert_int_equal(decimal_parse("123456789012345678.123456", &b), 0);
	assert_int_equal(decimal_write(&b, longest, sizeof longest), 0);
	assert_string_equal(longest, "123456789012345678.123456");
	assert_int_equal(decimal_write(&b, out, DECIMAL_TEXT_MAX - 1), -1);
}

static void assert_local(const char *s, int ok)
{
	char out[20] = "";
	assert_int_equal(datetime_local_parse(s, out), ok ? 0 : -1);
	if (ok)
		assert_string_equal(out, s);
}

static void test_local_times_follow_the_real_calendar(void **state)
{
	(void)state;
	assert_local("2021-06-30T21:00:00", 1);
	assert_local("2021-09-31T20:00:00", 0);
	assert_local("2021-02-29T00:00:00", 0);
	assert_local("2020-02-29T00:00:00", 1);
	assert_local("2000-02-29T00:00:00", 1);
	assert_local("1900-02-29T00:00:00", 0);
	assert_local("2100-02-29T00:00:00", 0);
	assert_local("2021-12-31T23:59:59", 1);
	assert_local("2021-13-01T00:00:00", 0);
	assert_local("2021-00-01T00:00:00", 0);
	assert_local("2021-01-00T00:00:00", 0);
	assert_local("0000-01-01T00:00:00", 0);
	assert_local("0001-01-01T00:00:00", 1);
	assert_local("9999-12-31T23:59:59", 1);
	assert_local("2021-06-30T24:00:00", 0);
	assert_local("2021-06-30T23:60:00", 0);
	assert_local("2021-06-30T23:59:60", 0);
}

static void test_local_times_have_exactly_one_form(void **state)
{
	(void)state;
	assert_local("", 0);
	assert_local("2021-06-30", 0);
	assert_local("2021-06-30T21:00", 0);
	assert_local("2021-06-30T21:00:00Z", 0);
	assert_local("2021-06-30T21:00:00.000", 0);
	assert_local("2021-06-30 21:00:00", 0);
	assert_local("2021-06-30t21:00:00", 0);
	assert_local("2021-6-30T21:00:00", 0);
	assert_local("+021-06-30T21:00:00", 0);
	assert_local(" 2021-06-30T21:00:0", 0);
	assert_local("2021/06/30T21:00:00", 0);
}

static void assert_bound(const char *s, const char *want)
{
	char out[20], why[128];
	assert_int_equal(datetime_bound_parse(s, out, why, sizeof why), 0);
	assert_string_equal(out, want);
}

static void assert_bad_bound(const char *s, const char *want_why)
{
	char out[20], why[128];
	assert_int_equal(datetime_bound_parse(s, out, why, sizeof why), -1);
	assert_string_equal(why, want_why);
}

static void test_search_bounds_keep_the_wall_clock_and_drop_zone_and_fraction(void **state)
{
	(void)state;
	assert_bound("2017-07-21T17:32:28Z", "2017-07-21T17:32:28");
	assert_bound("2017-07-21T17:32:28", "2017-07-21T17:32:28");
	assert_bound("2017-07-21t17:32:28z", "2017-07-21T17:32:28");
	assert_bound("2017-07-21 17:32:28+02:00", "2017-07-21T17:32:28");
	assert_bound("2017-07-21T17:32:28-0530", "2017-07-21T17:32:28");
	assert_bound("2017-07-21T17:32:28+02", "2017-07-21T17:32:28");
	assert_bound("2017-07-21T17:32:28.123456Z", "2017-07-21T17:32:28");
	assert_bound("2017-07-21T17:32", "2017-07-21T17:32:00");
	assert_bound("2017-07-21T17:32Z", "2017-07-21T17:32:00");
	assert_bound("2017-07-21", "2017-07-21T00:00:00");
	assert_bound("2024-02-29T00:00:00", "2024-02-29T00:00:00");
	/* An unencoded '+' in a query string arrives as a space. */
	assert_bound("2017-07-21T17:32:28 02:00", "2017-07-21T17:32:28");
	assert_bound("2017-07-21 17:32:28 0200", "2017-07-21T17:32:28");
}

static void assert_lower_bound(const char *s, const char *want)
{
	char out[20], why[128];
	assert_int_equal(datetime_lower_bound_parse(s, out, why, sizeof why), 0);
	assert_string_equal(out, want);
}

/* starts_at admits what is at or after it: a fraction of a second rounds
 * up to the next whole second (stored times are whole seconds), carrying
 * into minutes, hours, days, months and years. */
static void test_a_lower_bound_with_a_fraction_rounds_up_to_the_next_second(void **state)
{
	(void)state;
	assert_lower_bound("2021-01-01T17:00:00.5Z", "2021-01-01T17:00:01");
	assert_lower_bound("2021-01-01T17:00:00.000Z", "2021-01-01T17:00:00");
	assert_lower_bound("2021-01-01T17:00:00.0001+02:00", "2021-01-01T17:00:01");
	assert_lower_bound("2021-01-01T17:00:00Z", "2021-01-01T17:00:00");
	assert_lower_bound("2021-01-01T17:00Z", "2021-01-01T17:00:00");
	assert_lower_bound("2021-01-01", "2021-01-01T00:00:00");
	assert_lower_bound("2021-02-28T23:59:59.9", "2021-03-01T00:00:00");
	assert_lower_bound("2024-02-28T23:59:59.9", "2024-02-29T00:00:00");
	assert_lower_bound("2021-12-31T23:59:59.1", "2022-01-01T00:00:00");
	assert_lower_bound("9999-12-31T23:59:59.1", "9999-12-31T23:59:59");
	assert_bound("2021-01-01T17:00:00.5Z", "2021-01-01T17:00:00"); /* ends_at: the second it falls in */
	char out[20], why[128];
	assert_int_equal(datetime_lower_bound_parse("2021-01-01T17:00:00.", out, why, sizeof why), -1);
}

/* ends_at given as a bare date is the whole day: events ending on it are
 * in; a time is taken as it is. */
static void test_an_upper_bound_that_is_a_date_takes_the_whole_day(void **state)
{
	(void)state;
	char out[20], why[128];
	assert_int_equal(datetime_upper_bound_parse("2021-06-30", out, why, sizeof why), 0);
	assert_string_equal(out, "2021-06-30T23:59:59");
	assert_int_equal(datetime_upper_bound_parse("2021-06-30T00:00:00Z", out, why, sizeof why), 0);
	assert_string_equal(out, "2021-06-30T00:00:00");
	assert_int_equal(datetime_upper_bound_parse("2021-06-31", out, why, sizeof why), -1);
	assert_string_equal(why, "day 31 is out of range in 2021-06");
}

static void test_bad_search_bounds_say_what_is_wrong(void **state)
{
	(void)state;
	const char *shape = "expected a date-time such as 2021-07-21T17:32:28Z";
	assert_bad_bound("2021-13-01T00:00:00", "month 13 is out of range");
	assert_bad_bound("2021-09-31", "day 31 is out of range in 2021-09");
	assert_bad_bound("2023-02-29T00:00:00Z", "day 29 is out of range in 2023-02");
	assert_bad_bound("0000-01-01", "year 0000 is out of range");
	assert_bad_bound("2021-01-01T24:00:00", "hour 24 is out of range");
	assert_bad_bound("2021-01-01T23:60", "minute 60 is out of range");
	assert_bad_bound("2021-01-01T23:59:60Z", "second 60 is out of range");
	assert_bad_bound("2021-01-01T10:00:00+24:00", "zone offset +24:00 is out of range");
	assert_bad_bound("2021-01-01T10:00:00 24:00", "zone offset +24:00 is out of range");
	assert_bad_bound("2021-01-01T10:00:00-05:60", "zone offset -05:60 is out of range");
	assert_bad_bound("", shape);
	assert_bad_bound("yesterday", shape);
	assert_bad_bound("1500000000", shape);
	assert_bad_bound("2021-01-01T", shape);
	assert_bad_bound("2021-01-01T10", shape);
	assert_bad_bound("2021-01-01T10:00:", shape);
	assert_bad_bound("2021-01-01T10:00:00.", shape);
	assert_bad_bound("2021-01-01T10:00:00.5.5", shape);
	assert_bad_bound("2021-01-01T10:00:00+02:", shape);
	assert_bad_bound("2021-01-01T10:00:00+2", shape);
	assert_bad_bound("2021-01-01T10:00:00 Z", shape);
	assert_bad_bound("2021-01-01T10:00:00ZZ", shape);
	assert_bad_bound("2021-01-01Z", shape);
	assert_bad_bound("2021-1-1", shape);
	assert_bad_bound("2021-01-01T10:00.5", shape);
}

static void assert_query(const char *query, const char *starts_at, const char *ends_at)
{
	search_bounds b;
	char why[256];
	assert_int_equal(search_query_parse(query, &b, why, sizeof why), 0);
	assert_string_equal(b.starts_at, starts_at);
	assert_string_equal(b.ends_at, ends_at);
}

static void assert_bad_query(const char *query, const char *want_why)
{
	search_bounds b;
	char why[256];
	assert_int_equal(search_query_parse(query, &b, why, sizeof why), -1);
	assert_string_equal(why, want_why);
}

static void test_the_search_query_gives_both_bounds_or_none(void **state)
{
	(void)state;
	assert_query("", "", "");
	assert_query("starts_at=2017-07-21T17:32:28Z&ends_at=2021-07-21T17:32:28Z", "2017-07-21T17:32:28",
		     "2021-07-21T17:32:28");
	assert_query("ends_at=2021-07-21", "", "2021-07-21T23:59:59"); /* the whole day */
	assert_query("starts_at=2017-07-21T17%3A32%3A28%2B02%3A00", "2017-07-21T17:32:28", "");
	assert_query("starts_at=2017-07-21+17:32:28", "2017-07-21T17:32:28", "");
	assert_query("start%73_at=2017-07-21", "2017-07-21T00:00:00", "");
	assert_query("_=123&starts_at=2017-07-21&&other=%zz-in-a-value-is-not-ours", "2017-07-21T00:00:00", "");
	assert_query("Starts_at=garbage&starts_atx=1", "", "");
}

static void test_search_query_errors_name_the_parameter(void **state)
{
	(void)state;
	assert_bad_query("starts_at=2021-13-01T00:00:00",
			 "starts_at \"2021-13-01T00:00:00\": month 13 is out of range");
	assert_bad_query("starts_at=2021-01-01&ends_at=2021-09-31T00:00:00",
			 "ends_at \"2021-09-31T00:00:00\": day 31 is out of range in 2021-09");
	assert_bad_query("ends_at=soon", "ends_at \"soon\": expected a date-time such as 2021-07-21T17:32:28Z");
	assert_bad_query("starts_at=2021-01-01&starts_at=2021-01-02", "starts_at is given more than once");
	assert_bad_query("ends_at=2021-01-01&ends%5fat=2021-01-01", "ends_at is given more than once");
	assert_bad_query("starts_at=", "starts_at is empty");
	assert_bad_query("ends_at", "ends_at is empty");
	assert_bad_query("starts_at=2021-01-01%2", "starts_at is not well percent-encoded");
	assert_bad_query("starts_at=2021-01-01%00", "starts_at is not well percent-encoded");
	assert_bad_query("a%zz=1", "the query is not well percent-encoded");
	assert_bad_query("starts_at=2021-01-01T00:00:00.00000000000000000000000000000000000000000000000000000Z",
			 "starts_at is longer than 63 bytes");
}

static void test_a_failed_search_query_leaves_no_half_bounds(void **state)
{
	(void)state;
	search_bounds b;
	char why[8];
	assert_int_equal(search_query_parse("starts_at=2021-01-01&ends_at=x", &b, why, sizeof why), -1);
	assert_string_equal(b.starts_at, "");
	assert_string_equal(b.ends_at, "");
	/* The message is cut to fit. */
	assert_int_equal(strlen(why), sizeof why - 1);
	assert_int_equal(search_query_parse("starts_at=x", &b, NULL, 0), -1);
}

static void test_public_ids_are_stable_uuids_of_the_pair(void **state)
{
	(void)state;
	char a[37], b[37], c[37], d[37];
	event_public_id("291", "291", a);
	event_public_id("291", "291", b);
	assert_string_equal(a, b);
	/* Fixed forever: every stored event's id depends on it. */
	assert_string_equal(a, "a4c0f2bb-bd8e-51f6-8182-1294bd783e4d");
	assert_int_equal(a[14], '5'); /* version 5 */
	assert_true(strchr("89ab", a[19]) != NULL);
	assert_true(event_public_id_valid(a));

	event_public_id("1591", "291", c);
	assert_string_not_equal(a, c);
	/* The NUL between the ids keeps ("2", "91") apart from ("29", "1"). */
	event_public_id("2", "91", c);
	event_public_id("29", "1", d);
	assert_string_not_equal(c, d);
	event_public_id("291", "", c);
	event_public_id("", "291", d);
	assert_string_not_equal(c, d);
}

static void test_only_uuid_text_is_a_valid_public_id(void **state)
{
	(void)state;
	assert_true(event_public_id_valid("A4C0F2BB-BD8E-51F6-8182-1294BD783E4D"));
	assert_false(event_public_id_valid(NULL));
	assert_false(event_public_id_valid(""));
	assert_false(event_public_id_valid("a4c0f2bb-bd8e-51f6-8182-1294bd783e4"));
	assert_false(event_public_id_valid("a4c0f2bb-bd8e-51f6-8182-1294bd783e4d0"));
	assert_false(event_public_id_valid("a4c0f2bbxbd8e-51f6-8182-1294bd783e4d"));
	assert_false(event_public_id_valid("g4c0f2bb-bd8e-51f6-8182-1294bd783e4d"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decimals_lose_leading_zeros_and_keep_their_fraction_digits),
		cmocka_unit_test(test_anything_but_a_plain_non_negative_decimal_is_refused),
		cmocka_unit_test(test_decimals_compare_by_value_not_by_text),
		cmocka_unit_test(test_decimals_compare_unnormalized_and_write_their_normal_form),
		cmocka_unit_test(test_local_times_follow_the_real_calendar),
		cmocka_unit_test(test_local_times_have_exactly_one_form),
		cmocka_unit_test(test_search_bounds_keep_the_wall_clock_and_drop_zone_and_fraction),
		cmocka_unit_test(test_a_lower_bound_with_a_fraction_rounds_up_to_the_next_second),
		cmocka_unit_test(test_bad_search_bounds_say_what_is_wrong),
		cmocka_unit_test(test_the_search_query_gives_both_bounds_or_none),
		cmocka_unit_test(test_search_query_errors_name_the_parameter),
		cmocka_unit_test(test_a_failed_search_query_leaves_no_half_bounds),
		cmocka_unit_test(test_an_upper_bound_that_is_a_date_takes_the_whole_day),
		cmocka_unit_test(test_public_ids_are_stable_uuids_of_the_pair),
		cmocka_unit_test(test_only_uuid_text_is_a_valid_public_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
