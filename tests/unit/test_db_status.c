/*
 * How PostgreSQL errors reach a caller: the SQLSTATE -> rpcq status table of
 * server/db (db_status_from_sqlstate, db_status_from_result). Pure: no
 * database, results are made with PQmakeEmptyPGresult.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "db/db.h"

static void test_unique_violation_is_already_exists(void **state)
{
	(void)state;
	assert_int_equal(db_status_from_sqlstate("23505"), RPCQ_ALREADY_EXISTS);
}

static void test_connection_errors_are_unavailable(void **state)
{
	(void)state;
	/* Class 08, server shutdown and crash, too many connections, a standby. */
	const char *codes[] = {"08000", "08003", "08006", "08001", "08004", "08P01",
			       "57P01", "57P02", "57P03", "53300", "25006"};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		print_message("SQLSTATE %s\n", codes[i]);
		assert_int_equal(db_status_from_sqlstate(codes[i]), RPCQ_UNAVAILABLE);
	}
}

static void test_missing_sqlstate_means_the_connection_is_gone(void **state)
{
	(void)state;
	/* libpq's own errors (lost connection, out of memory) carry none. */
	assert_int_equal(db_status_from_sqlstate(NULL), RPCQ_UNAVAILABLE);
	assert_int_equal(db_status_from_sqlstate(""), RPCQ_UNAVAILABLE);
}

static void test_query_canceled_is_deadline_exceeded(void **state)
{
	(void)state;
	assert_int_equal(db_status_from_sqlstate("57014"), RPCQ_DEADLINE_EXCEEDED);
	/* The rest of class 57 (operator intervention) is not ours to explain. */
	assert_int_equal(db_status_from_sqlstate("57000"), RPCQ_INTERNAL);
}

static void test_conflicts_are_aborted_so_the_caller_retries(void **state)
{
	(void)state;
	assert_int_equal(db_status_from_sqlstate("40001"), RPCQ_ABORTED);
	assert_int_equal(db_status_from_sqlstate("40P01"), RPCQ_ABORTED);
	assert_int_equal(db_status_from_sqlstate("55P03"), RPCQ_ABORTED);
}

static void test_values_the_schema_refuses_are_invalid_arguments(void **state)
{
	(void)state;
	assert_int_equal(db_status_from_sqlstate("22001"), RPCQ_INVALID_ARGUMENT); /* string too long */
	assert_int_equal(db_status_from_sqlstate("22012"), RPCQ_INVALID_ARGUMENT); /* division by zero */
	assert_int_equal(db_status_from_sqlstate("22P02"), RPCQ_INVALID_ARGUMENT); /* bad text representation */
	assert_int_equal(db_status_from_sqlstate("23502"), RPCQ_INVALID_ARGUMENT); /* not null */
	assert_int_equal(db_status_from_sqlstate("23514"), RPCQ_INVALID_ARGUMENT); /* check */
}

static void test_missing_or_conflicting_rows_are_failed_preconditions(void **state)
{
	(void)state;
	assert_int_equal(db_status_from_sqlstate("23503"), RPCQ_FAILED_PRECONDITION); /* foreign key */
	assert_int_equal(db_status_from_sqlstate("23P01"), RPCQ_FAILED_PRECONDITION); /* exclusion */
	assert_int_equal(db_status_from_sqlstate("23001"), RPCQ_FAILED_PRECONDITION); /* restrict */
}

static void test_exhausted_resources_are_resource_exhausted(void **state)
{
	(void)state;
	assert_int_equal(db_status_from_sqlstate("53100"), RPCQ_RESOURCE_EXHAUSTED); /* disk full */
	assert_int_equal(db_status_from_sqlstate("53200"), RPCQ_RESOURCE_EXHAUSTED); /* out of memory */
	assert_int_equal(db_status_from_sqlstate("54000"), RPCQ_RESOURCE_EXHAUSTED); /* program limit */
}

static void test_programming_errors_are_internal(void **state)
{
	(void)state;
	const char *codes[] = {"42601", "42P01", "42703", "42501", "0A000", "XX000", "P0001", "26000"};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		print_message("SQLSTATE %s\n", codes[i]);
		assert_int_equal(db_status_from_sqlstate(codes[i]), RPCQ_INTERNAL);
	}
}

static void test_successful_completion_is_ok(void **state)
{
	(void)state;
	assert_int_equal(db_status_from_sqlstate("00000"), RPCQ_OK);
}

static void test_successful_results_are_ok(void **state)
{
	(void)state;
	ExecStatusType ok[] = {PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_IN};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		PGresult *res = PQmakeEmptyPGresult(NULL, ok[i]);
		assert_non_null(res);
		assert_int_equal(db_status_from_result(res), RPCQ_OK);
		PQclear(res);
	}
}

static void test_results_without_sqlstate_or_without_result_are_unavailable(void **state)
{
	(void)state;
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
	assert_non_null(res);
	assert_int_equal(db_status_from_result(res), RPCQ_UNAVAILABLE);
	PQclear(res);
	assert_int_equal(db_status_from_result(NULL), RPCQ_UNAVAILABLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unique_violation_is_already_exists),
		cmocka_unit_test(test_connection_errors_are_unavailable),
		cmocka_unit_test(test_missing_sqlstate_means_the_connection_is_gone),
		cmocka_unit_test(test_query_canceled_is_deadline_exceeded),
		cmocka_unit_test(test_conflicts_are_aborted_so_the_caller_retries),
		cmocka_unit_test(test_values_the_schema_refuses_are_invalid_arguments),
		cmocka_unit_test(test_missing_or_conflicting_rows_are_failed_preconditions),
		cmocka_unit_test(test_exhausted_resources_are_resource_exhausted),
		cmocka_unit_test(test_programming_errors_are_internal),
		cmocka_unit_test(test_successful_completion_is_ok),
		cmocka_unit_test(test_successful_results_are_ok),
		cmocka_unit_test(test_results_without_sqlstate_or_without_result_are_unavailable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
