/*
 * The vesting computation without a server: rows validated with their line
 * numbers, totals at a target date with truncation at the precision, the
 * CANCEL rule (net of earlier cancels, checked at the cancel's own date, at
 * the requested precision), overflow, output order and quoting, and names
 * taken from the first row naming an employee.
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

#include "date.h"
#include "events.h"
#include "schedule.h"

/* Computes text at target/precision; on success returns the output lines
 * joined by '\n' (malloc'd), on failure NULL with err set. */
static char *compute(const char *text, const char *target, int precision, rpcq_error *err)
{
	char *result = NULL;
	vesting_events *ev = NULL;
	vesting_plan *plan = NULL;
	int64_t *totals = NULL;
	strbuf b = STRBUF_INIT;
	char *copy = strdup(text);
	int32_t day;
	assert_non_null(copy);
	assert_int_equal(date_parse(target, strlen(target), &day), DATE_OK);
	if (vesting_events_create(&ev, err) != RPCQ_OK ||
	    vesting_events_add_csv(ev, copy, strlen(copy), 1, err) != RPCQ_OK ||
	    vesting_plan_create(&plan, ev, err) != RPCQ_OK)
		goto out;
	totals = calloc(ev->naward + 1, sizeof(*totals));
	assert_non_null(totals);
	if (vesting_plan_compute(plan, precision, &day, totals, err) != RPCQ_OK)
		goto out;
	size_t n;
	const uint32_t *order = vesting_plan_order(plan, &n);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_putc(&b, '\n');
		vesting_write_line(&b, ev, order[i], totals[order[i]], precision);
	}
	strbuf_putc(&b, '\0');
	if (b.failed) {
		rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the output");
		goto out;
	}
	result = strdup(b.data);
out:
	strbuf_fini(&b);
	free(totals);
	vesting_plan_destroy(plan);
	vesting_events_destroy(ev);
	free(copy);
	return result;
}

static void assert_output(const char *text, const char *target, int precision, const char *want)
{
	rpcq_error err = {0};
	char *got = compute(text, target, precision, &err);
	if (got == NULL)
		fail_msg("unexpected error: %s", err.message);
	assert_string_equal(got, want);
	free(got);
}

static void assert_error(const char *text, const char *target, int precision, const char *want)
{
	rpcq_error err = {0};
	char *got = compute(text, target, precision, &err);
	if (got != NULL)
		fail_msg("expected an error, got output: %s", got);
	assert_int_equal(err.code, RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, want);
}

static const char example1[] = "VEST,E001,Alice Smith,ISO-001,2020-01-01,1000\n"
			       "VEST,E001,Alice Smith,ISO-001,2021-01-01,1000\n"
			       "VEST,E001,Alice Smith,ISO-002,2020-03-01,300\n"
			       "VEST,E001,Alice Smith,ISO-002,2020-04-01,500\n"
			       "VEST,E002,Bobby Jones,NSO-001,2020-01-02,100\n"
			       "VEST,E002,Bobby Jones,NSO-001,2020-02-02,200\n"
			       "VEST,E002,Bobby Jones,NSO-001,2020-03-02,300\n"
			       "VEST,E003,Cat Helms,NSO-002,2024-01-01,100";

static void test_the_first_example_gives_its_expected_output(void **state)
{
	(void)state;
	assert_output(example1, "2020-04-01", 0,
		      "E001,Alice Smith,ISO-001,1000\nE001,Alice Smith,ISO-002,800\n"
		      "E002,Bobby Jones,NSO-001,600\nE003,Cat Helms,NSO-002,0");
}

static void test_a_cancel_is_subtracted_on_and_after_its_date(void **state)
{
	(void)state;
	const char *text = "VEST,E001,Alice Smith,ISO-001,2020-01-01,1000\n"
			   "CANCEL,E001,Alice Smith,ISO-001,2021-01-01,700\n";
	assert_output(text, "2021-01-01", 0, "E001,Alice Smith,ISO-001,300");
	assert_output(text, "2020-12-31", 0, "E001,Alice Smith,ISO-001,1000");
	assert_output(text, "2019-12-31", 0, "E001,Alice Smith,ISO-001,0");
}

static void test_fractional_quantities_are_truncated_before_summing(void **state)
{
	(void)state;
	const char *text = "VEST,E001,Alice Smith,ISO-001,2020-01-01,1000.5\n"
			   "CANCEL,E001,Alice Smith,ISO-001,2021-01-01,700.75\n"
			   "VEST,E002,Bobby Jones,ISO-002,2020-01-01,234\n";
	assert_output(text, "2021-01-01", 0, "E001,Alice Smith,ISO-001,300\nE002,Bobby Jones,ISO-002,234");
	assert_output(text, "2021-01-01", 1, "E001,Alice Smith,ISO-001,299.8\nE002,Bobby Jones,ISO-002,234.0");
	assert_output(text, "2021-01-01", 2, "E001,Alice Smith,ISO-001,299.75\nE002,Bobby Jones,ISO-002,234.00");
	assert_output(text, "2021-01-01", 6,
		      "E001,Alice Smith,ISO-001,299.750000\nE002,Bobby Jones,ISO-002,234.000000");
	/* 100.4567 at precision 2 counts as 100.45: three of them make 301.35, not 301.37. */
	assert_output("VEST,E,N,A,2020-01-01,100.4567\nVEST,E,N,A,2020-01-01,100.4567\n"
		      "VEST,E,N,A,2020-01-01,100.4567\n",
		      "2020-01-01", 2, "E,N,A,301.35");
}

static void test_output_is_ordered_by_employee_then_award_in_byte_order(void **state)
{
	(void)state;
	const char *text = "VEST,b,B,z,2020-01-01,1\n"
			   "VEST,a,A,y,2020-01-01,2\n"
			   "VEST,B,Bee,x,2020-01-01,3\n"
			   "VEST,a,A,Y,2020-01-01,4\n"
			   "VEST,ab,AB,a,2020-01-01,5\n";
	assert_output(text, "2020-01-01", 0, "B,Bee,x,3\na,A,Y,4\na,A,y,2\nab,AB,a,5\nb,B,z,1");
}

static void test_the_same_award_id_under_two_employees_is_two_awards(void **state)
{
	(void)state;
	assert_output("VEST,E1,One,A,2020-01-01,10\nVEST,E2,Two,A,2020-01-01,20\nCANCEL,E2,Two,A,2020-01-02,5\n",
		      "2020-12-31", 0, "E1,One,A,10\nE2,Two,A,15");
}

static void test_the_name_comes_from_the_first_row_naming_the_employee(void **state)
{
	(void)state;
	assert_output("VEST,E1,,A,2020-01-01,1\nVEST,E1,First,B,2020-01-01,2\nVEST,E1,Second,A,2020-01-01,3\n",
		      "2020-01-01", 0, "E1,First,A,4\nE1,First,B,2");
}

static void test_fields_with_commas_and_quotes_are_quoted_in_the_output(void **state)
{
	(void)state;
	assert_output("VEST,E010,\"Doe, Jane\",ISO-7,2020-01-01,5\nVEST,E011,\"Say \"\"Hi\"\"\",X,2020-01-01,1\n",
		      "2020-01-01", 0, "E010,\"Doe, Jane\",ISO-7,5\nE011,\"Say \"\"Hi\"\"\",X,1");
}

static void test_every_bad_row_is_refused_with_its_line_number(void **state)
{
	(void)state;
	const char *ok = "VEST,E1,N,A,2020-01-01,1\n\n";
	char text[256];
	struct {
		const char *row;
		const char *message;
	} cases[] = {
		{"VESTED,E1,N,A,2020-01-01,1", "line 3: unknown action \"VESTED\" (expected VEST or CANCEL)"},
		{"vest,E1,N,A,2020-01-01,1", "line 3: unknown action \"vest\" (expected VEST or CANCEL)"},
		{"VEST,E1,N,A,2020-01-01",
		 "line 3: 5 fields, expected 6 (ACTION,EMPLOYEE_ID,EMPLOYEE_NAME,AWARD_ID,DATE,QUANTITY)"},
		{"VEST,E1,N,A,2020-01-01,1,x",
		 "line 3: 7 fields, expected 6 (ACTION,EMPLOYEE_ID,EMPLOYEE_NAME,AWARD_ID,DATE,QUANTITY)"},
		{"VEST,E1,N,A,2021-02-29,1", "line 3: impossible date \"2021-02-29\""},
		{"VEST,E1,N,A,2021-2-28,1", "line 3: malformed date \"2021-2-28\" (expected YYYY-MM-DD)"},
		{"VEST,E1,N,A,2020-01-01,-1", "line 3: negative quantity \"-1\""},
		{"VEST,E1,N,A,2020-01-01,1.2.3",
		 "line 3: malformed quantity \"1.2.3\" (expected a decimal like 1000 or 0.125)"},
		{"VEST,E1,N,A,2020-01-01,", "line 3: malformed quantity \"\" (expected a decimal like 1000 or 0.125)"},
		{"VEST,E1,N,A,2020-01-01,10000000000000",
		 "line 3: quantity \"10000000000000\" is too large (at most 9223372036854.775807)"},
		{"VEST,,N,A,2020-01-01,1", "line 3: empty employee id"},
		{"VEST,E1,N,,2020-01-01,1", "line 3: empty award id"},
		{"VEST,E1,\"N\"x,A,2020-01-01,1", "line 3: field 3: text after the closing quote"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s%s\nVEST,E1,N,A,2020-01-01,1\n", ok, cases[i].row);
		assert_error(text, "2020-01-01", 0, cases[i].message);
	}
}

static void test_a_cancel_beyond_what_had_vested_by_its_date_is_refused(void **state)
{
	(void)state;
	/* Vested later than the cancel does not count. */
	assert_error("VEST,E1,N,A,2020-01-01,100\nCANCEL,E1,N,A,2020-06-01,50\nVEST,E1,N,A,2020-07-01,100\n"
		     "CANCEL,E1,N,A,2020-06-02,60\n",
		     "2021-01-01", 0,
		     "line 4: CANCEL of 60 exceeds the 50 vested by 2020-06-02 for award \"A\" of employee \"E1\"");
	/* A vest on the cancel's own date counts, whatever the row order. */
	assert_output("CANCEL,E1,N,A,2020-01-01,100\nVEST,E1,N,A,2020-01-01,100\n", "2020-01-01", 0, "E1,N,A,0");
	/* Cancelling everything is fine; one more share is not. */
	assert_error(
		"VEST,E1,N,A,2020-01-01,100\nCANCEL,E1,N,A,2020-01-01,100.5\n", "2020-01-01", 1,
		"line 2: CANCEL of 100.5 exceeds the 100.0 vested by 2020-01-01 for award \"A\" of employee \"E1\"");
	/* The rule applies to the whole input, not only up to the target date. */
	assert_error("VEST,E1,N,A,2020-01-01,1\nCANCEL,E1,N,A,2030-01-01,2\n", "2020-01-01", 0,
		     "line 2: CANCEL of 2 exceeds the 1 vested by 2030-01-01 for award \"A\" of employee \"E1\"");
}

static void test_the_cancel_rule_is_checked_at_the_requested_precision(void **state)
{
	(void)state;
	/* 1.5 + 1.5 vested is 3 exactly but 2 at precision 0. */
	const char *text = "VEST,E1,N,A,2020-01-01,1.5\nVEST,E1,N,A,2020-01-01,1.5\nCANCEL,E1,N,A,2020-01-02,3\n";
	assert_output(text, "2020-01-02", 1, "E1,N,A,0.0");
	assert_error(text, "2020-01-02", 0,
		     "line 3: CANCEL of 3 exceeds the 2 vested by 2020-01-02 for award \"A\" of employee \"E1\"");
}

static void test_totals_beyond_the_int64_range_are_refused(void **state)
{
	(void)state;
	assert_error("VEST,E1,N,A,2020-01-01,9223372036854\nVEST,E1,N,A,2020-01-02,1\n", "2020-01-01", 0,
		     "line 2: the vested total of award \"A\" of employee \"E1\" exceeds 9223372036854.775807 shares");
	assert_output("VEST,E1,N,A,2020-01-01,9223372036854.775807\n", "2020-01-01", 6, "E1,N,A,9223372036854.775807");
}

static void test_an_input_without_rows_gives_an_empty_schedule(void **state)
{
	(void)state;
	assert_output("", "2020-01-01", 0, "");
	assert_output("\n\r\n  \n", "2020-01-01", 3, "");
}

static void test_store_lookups_find_awards_by_employee_and_id(void **state)
{
	(void)state;
	rpcq_error err;
	vesting_events *ev;
	assert_int_equal(vesting_events_create(&ev, &err), RPCQ_OK);
	char line[128];
	for (int i = 0; i < 5000; i++) {
		snprintf(line, sizeof(line), "VEST,E%d,Name %d,A%d,2020-01-01,%d\n", i % 700, i % 700, i, i);
		assert_int_equal(vesting_events_add_csv(ev, line, strlen(line), (uint64_t)i + 1, &err), RPCQ_OK);
	}
	assert_int_equal(ev->naward, 5000);
	assert_int_equal(ev->nemployee, 700);
	assert_int_equal(vesting_events_find_award(ev, "E3", 2, "A703", 4), 703);
	assert_int_equal(vesting_events_find_award(ev, "E4", 2, "A703", 4), -1);
	assert_int_equal(vesting_events_add_parsed(ev, "E3", 2, "", 0, "A703", 4, VESTING_CANCEL, 0, 1, &err), RPCQ_OK);
	assert_int_equal(ev->naward, 5000);
	assert_int_equal(ev->ev[ev->nev - 1].award, 703);
	assert_true(vesting_events_bytes(ev) > 5000 * sizeof(vesting_event));
	vesting_events_destroy(ev);
}

static void test_out_of_memory_is_reported_not_crashed(void **state)
{
	(void)state;
	for (long n = 0; n < 12; n++) {
		rpcq_error err = {0};
		rpcq_alloc_fail_after(n);
		char *got = compute(example1, "2020-04-01", 0, &err);
		rpcq_alloc_fail_after(-1);
		if (got == NULL)
			assert_int_equal(err.code, RPCQ_RESOURCE_EXHAUSTED);
		free(got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_first_example_gives_its_expected_output),
		cmocka_unit_test(test_a_cancel_is_subtracted_on_and_after_its_date),
		cmocka_unit_test(test_fractional_quantities_are_truncated_before_summing),
		cmocka_unit_test(test_output_is_ordered_by_employee_then_award_in_byte_order),
		cmocka_unit_test(test_the_same_award_id_under_two_employees_is_two_awards),
		cmocka_unit_test(test_the_name_comes_from_the_first_row_naming_the_employee),
		cmocka_unit_test(test_fields_with_commas_and_quotes_are_quoted_in_the_output),
		cmocka_unit_test(test_every_bad_row_is_refused_with_its_line_number),
		cmocka_unit_test(test_a_cancel_beyond_what_had_vested_by_its_date_is_refused),
		cmocka_unit_test(test_the_cancel_rule_is_checked_at_the_requested_precision),
		cmocka_unit_test(test_totals_beyond_the_int64_range_are_refused),
		cmocka_unit_test(test_an_input_without_rows_gives_an_empty_schedule),
		cmocka_unit_test(test_store_lookups_find_awards_by_employee_and_id),
		cmocka_unit_test(test_out_of_memory_is_reported_not_crashed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
