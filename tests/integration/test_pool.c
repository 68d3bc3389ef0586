/*
 * The connection pool and statements against a real PostgreSQL (a throwaway
 * cluster of the harness): more threads than connections, acquire deadlines,
 * statement deadlines, SQLSTATEs as statuses, transactions, COPY, and the
 * database going away and coming back under a live pool. Also run under
 * ThreadSanitizer (label concurrency).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <signal.h>

#include <cmocka.h>

#include "db/db.h"
#include "harness.h"

static harness_pg pg;

static int setup_cluster(void **state)
{
	(void)state;
	harness_pg_start(&pg);
	return 0;
}

/* Also stops whatever a failed test left running (an rpcqd, say). */
static int teardown_cluster(void **state)
{
	harness_pg_stop(&pg);
	return harness_teardown(state);
}

static nng_time in_ms(int ms)
{
	return nng_clock() + (nng_time)ms;
}

static pool *make_pool(int min, int max, int idle_timeout_ms)
{
	pool_config cfg = {
		.conninfo = pg.conninfo,
		.min_conns = min,
		.max_conns = max,
		.acquire_timeout_ms = 5000,
		.connect_timeout_ms = 2000,
		.idle_timeout_ms = idle_timeout_ms,
		.application_name = "test_pool",
	};
	pool *p = NULL;
	rpcq_error err;
	if (pool_create(&p, &cfg, &err) != RPCQ_OK)
		fail_msg("pool_create: %s", err.message);
	return p;
}

/* Every connection back: none in use, every open one idle. */
static void assert_no_leaks(pool *p)
{
	pool_stats s;
	pool_get_stats(p, &s);
	assert_int_equal(s.in_use, 0);
	assert_int_equal(s.idle, s.total);
	assert_int_equal(s.waiting, 0);
}

/* One value from the database, on a connection outside any pool. */
static int to_int(const char *s)
{
	return (int)strtol(s, NULL, 10);
}

static const db_stmt stmt_add_one = {"test_add_one", "SELECT $1::int + 1, pg_sleep(0.002)", 1};
static const db_stmt stmt_double = {"test_double", "SELECT $1::int * 2", 1};

/* A whole call as a handler makes it: acquire, one statement, release. */
static rpcq_status call_double(pool *p, int x, int timeout_ms, int *result, rpcq_error *err)
{
	dbconn *c;
	rpcq_status st = pool_acquire(p, in_ms(timeout_ms), &c, err);
	if (st != RPCQ_OK)
		return st;
	char arg[16];
	snprintf(arg, sizeof(arg), "%d", x);
	const char *values[] = {arg};
	PGresult *res = NULL;
	st = db_exec(c, &stmt_double, values, &res, err);
	if (st == RPCQ_OK && result)
		*result = to_int(PQgetvalue(res, 0, 0));
	PQclear(res);
	pool_release(p, c);
	return st;
}

struct worker {
	pool *p;
	int index;
	int iterations;
	atomic_int *failures;
	char first_error[600];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < w->iterations; i++) {
		dbconn *c;
		rpcq_error err;
		if (pool_acquire(w->p, in_ms(20000), &c, &err) != RPCQ_OK) {
			if (atomic_fetch_add(w->failures, 1) == 0)
				snprintf(w->first_error, sizeof(w->first_error), "acquire: %s", err.message);
			continue;
		}
		char number[16];
		snprintf(number, sizeof(number), "%d", w->index * 1000 + i);
		const char *values[] = {number};
		PGresult *res = NULL;
		if (db_exec(c, &stmt_add_one, values, &res, &err) != RPCQ_OK) {
			if (atomic_fetch_add(w->failures, 1) == 0)
				snprintf(w->first_error, sizeof(w->first_error), "exec: %s", err.message);
		} else if (to_int(PQgetvalue(res, 0, 0)) != w->index * 1000 + i + 1) {
			if (atomic_fetch_add(w->failures, 1) == 0)
				snprintf(w->first_error, sizeof(w->first_error), "wrong answer %s to %s",
					 PQgetvalue(res, 0, 0), number);
		}
		PQclear(res);
		pool_release(w->p, c);
	}
	return NULL;
}

static void test_sixteen_threads_are_served_by_four_connections(void **state)
{
	(void)state;
	enum { THREADS = 16, ITERATIONS = 25 };
	pool *p = make_pool(1, 4, 60000);
	atomic_int failures = 0;
	struct worker workers[THREADS];
	pthread_t threads[THREADS];
	for (int i = 0; i < THREADS; i++) {
		workers[i] = (struct worker){.p = p, .index = i, .iterations = ITERATIONS, .failures = &failures};
		assert_int_equal(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	for (int i = 0; i < THREADS; i++)
		if (workers[i].first_error[0])
			print_error("worker %d: %s\n", i, workers[i].first_error);
	assert_int_equal(atomic_load(&failures), 0);

	pool_stats s;
	pool_get_stats(p, &s);
	assert_true(s.acquires >= THREADS * ITERATIONS);
	assert_true(s.total >= 1 && s.total <= 4);
	assert_true(s.waits > 0);
	assert_int_equal(s.timeouts, 0);
	assert_no_leaks(p);
	/* The server agrees: never more than max_conns sessions of ours. */
	assert_true(harness_sql_scalar(pg.conninfo,
				       "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'test_pool'") <=
		    4);
	pool_destroy(p);
}

static void test_acquire_times_out_at_deadline_when_all_connections_are_in_use(void **state)
{
	(void)state;
	pool *p = make_pool(0, 2, 60000);
	dbconn *a, *b, *c;
	rpcq_error err;
	assert_int_equal(pool_acquire(p, in_ms(5000), &a, &err), RPCQ_OK);
	assert_int_equal(pool_acquire(p, in_ms(5000), &b, &err), RPCQ_OK);

	nng_time t0 = nng_clock();
	assert_int_equal(pool_acquire(p, in_ms(300), &c, &err), RPCQ_DEADLINE_EXCEEDED);
	nng_time took = nng_clock() - t0;
	assert_true(took >= 290 && took < 1500);
	assert_non_null(strstr(err.message, "deadline"));

	pool_stats s;
	pool_get_stats(p, &s);
	assert_int_equal(s.timeouts, 1);
	assert_int_equal(s.waits, 1);
	assert_int_equal(s.in_use, 2);

	/* A release hands the connection to the next caller at once. */
	pool_release(p, a);
	assert_int_equal(pool_acquire(p, in_ms(1000), &c, &err), RPCQ_OK);
	pool_release(p, b);
	pool_release(p, c);
	assert_no_leaks(p);
	pool_destroy(p);
}

struct releaser {
	pool *p;
	dbconn *c;
	int after_ms;
};

static void *release_later(void *arg)
{
	struct releaser *r = arg;
	nng_msleep(r->after_ms);
	pool_release(r->p, r->c);
	return NULL;
}

static void test_a_waiting_acquire_gets_the_connection_released_before_its_deadline(void **state)
{
	(void)state;
	pool *p = make_pool(1, 1, 60000);
	dbconn *a, *b;
	rpcq_error err;
	assert_int_equal(pool_acquire(p, in_ms(5000), &a, &err), RPCQ_OK);
	struct releaser r = {p, a, 200};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, release_later, &r), 0);
	nng_time t0 = nng_clock();
	assert_int_equal(pool_acquire(p, in_ms(5000), &b, &err), RPCQ_OK);
	assert_true(nng_clock() - t0 >= 150);
	pthread_join(t, NULL);
	/* The same connection, reused. */
	assert_ptr_equal(a, b);
	pool_release(p, b);
	assert_no_leaks(p);
	pool_destroy(p);
}

static void test_statement_past_its_deadline_is_cancelled(void **state)
{
	(void)state;
	static const db_stmt stmt_sleep = {"test_sleep", "SELECT pg_sleep($1::float8)", 1};
	pool *p = make_pool(1, 1, 60000);
	dbconn *c;
	rpcq_error err;
	pool_stats before, after;
	pool_get_stats(p, &before);

	assert_int_equal(pool_acquire(p, in_ms(300), &c, &err), RPCQ_OK);
	const char *values[] = {"30"};
	PGresult *res = NULL;
	nng_time t0 = nng_clock();
	assert_int_equal(db_exec(c, &stmt_sleep, values, &res, &err), RPCQ_DEADLINE_EXCEEDED);
	nng_time took = nng_clock() - t0;
	assert_null(res);
	assert_true(took < 2000);
	assert_non_null(strstr(err.message, "deadline"));
	assert_non_null(strstr(err.message, "test_sleep"));
	pool_release(p, c);

	/* The server stopped sleeping, and the connection was kept. */
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM pg_stat_activity"
							 " WHERE application_name = 'test_pool' AND state = 'active'"),
			 0);
	pool_get_stats(p, &after);
	assert_int_equal(after.broken, before.broken);
	int doubled = 0;
	assert_int_equal(call_double(p, 21, 2000, &doubled, &err), RPCQ_OK);
	assert_int_equal(doubled, 42);
	assert_no_leaks(p);
	pool_destroy(p);
}

struct frozen_call {
	pool *p;
	dbconn *c;
	rpcq_status st;
	nng_time took;
	atomic_int done;
	char message[sizeof(((rpcq_error *)0)->message)];
};

static void *frozen_call_main(void *arg)
{
	struct frozen_call *f = arg;
	static const db_stmt stmt_sleep = {"test_frozen_sleep", "SELECT pg_sleep($1::float8)", 1};
	const char *values[] = {"30"};
	rpcq_error err;
	nng_time t0 = nng_clock();
	dbconn_set_deadline(f->c, t0 + 400);
	f->st = db_exec(f->c, &stmt_sleep, values, NULL, &err);
	f->took = nng_clock() - t0;
	snprintf(f->message, sizeof(f->message), "%s", err.message);
	atomic_store(&f->done, 1);
	return NULL;
}

/* A server that stops answering altogether (a paused machine: here its
 * postmaster and the statement's backend are stopped with SIGSTOP) gives
 * the statement back soon after its deadline: the cancel request, which
 * would wait for that server for ever, is left behind after a bounded wait
 * and the connection dropped. Before, the caller's thread waited as long
 * as the server was frozen. */
static void test_a_frozen_server_gives_the_statement_back_soon_after_its_deadline(void **state)
{
	(void)state;
	static const db_stmt stmt_pid = {"test_backend_pid", "SELECT pg_backend_pid()", 0};
	pool *p = make_pool(1, 1, 60000);
	struct frozen_call f = {.p = p};
	rpcq_error err;
	assert_int_equal(pool_acquire(p, in_ms(5000), &f.c, &err), RPCQ_OK);
	PGresult *res = NULL;
	assert_int_equal(db_exec(f.c, &stmt_pid, NULL, &res, &err), RPCQ_OK);
	pid_t backend = (pid_t)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	char path[300];
	snprintf(path, sizeof(path), "%s/data/postmaster.pid", pg.dir);
	char *pidfile = harness_read_file(path, NULL);
	pid_t postmaster = (pid_t)strtol(pidfile, NULL, 10);
	free(pidfile);
	assert_true(backend > 0 && postmaster > 0);

	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, frozen_call_main, &f), 0);
	harness_sleep_ms(100); /* the statement is running */
	kill(postmaster, SIGSTOP);
	kill(backend, SIGSTOP);
	int64_t until = harness_now_ms() + 8000;
	while (!atomic_load(&f.done) && harness_now_ms() < until)
		harness_sleep_ms(20);
	int returned_frozen = atomic_load(&f.done);
	/* Thawed before any assertion, so that a failure leaves no cluster stopped. */
	kill(backend, SIGCONT);
	kill(postmaster, SIGCONT);
	pthread_join(t, NULL);
	if (!returned_frozen)
		fail_msg("the statement did not come back while the server was frozen (%lld ms)", (long long)f.took);
	assert_int_equal(f.st, RPCQ_DEADLINE_EXCEEDED);
	if (f.took > 3000)
		fail_msg("the statement came back %lld ms after it began (deadline 400 ms): %s", (long long)f.took,
			 f.message);
	pool_release(p, f.c);
	/* The pool goes on with a new connection. */
	int doubled = 0;
	assert_int_equal(call_double(p, 21, 10000, &doubled, &err), RPCQ_OK);
	assert_int_equal(doubled, 42);
	pool_destroy(p);
}

/* A statement that has committed when its deadline's cancel reaches the
 * server keeps its result: saying it was cancelled would have the caller
 * do it again. Here the commit waits for a synchronous standby that does
 * not exist; the cancel ends the wait, the transaction committed already
 * (PostgreSQL says so in a warning), and the insert answers OK. */
static void test_a_statement_that_committed_before_its_cancel_keeps_its_result(void **state)
{
	(void)state;
	static const db_stmt stmt_insert = {"test_insert_late", "INSERT INTO t_late VALUES ($1::int4)", 1};
	harness_sql(pg.conninfo, "CREATE TABLE t_late (x int4)");
	harness_sql(pg.conninfo, "ALTER SYSTEM SET synchronous_standby_names = 'nosuch'");
	(void)harness_sql_scalar(pg.conninfo, "SELECT pg_reload_conf()::int");
	pool *p = make_pool(1, 1, 60000);
	dbconn *c;
	rpcq_error err;
	assert_int_equal(pool_acquire(p, in_ms(5000), &c, &err), RPCQ_OK);
	/* The reload reaches this backend before its next command. */
	PGresult *res = NULL;
	static const db_stmt stmt_show = {"test_show_standby", "SHOW synchronous_standby_names", 0};
	for (int i = 0; i < 100; i++) {
		assert_int_equal(db_exec(c, &stmt_show, NULL, &res, &err), RPCQ_OK);
		int set = strcmp(PQgetvalue(res, 0, 0), "nosuch") == 0;
		PQclear(res);
		if (set)
			break;
		nng_msleep(20);
	}
	assert_int_equal(db_command(c, "SET synchronous_commit = on", &err), RPCQ_OK);
	dbconn_set_deadline(c, in_ms(300));
	const char *values[] = {"7"};
	rpcq_status st = db_exec(c, &stmt_insert, values, &res, &err);
	PQclear(res);
	harness_sql(pg.conninfo, "ALTER SYSTEM RESET synchronous_standby_names");
	(void)harness_sql_scalar(pg.conninfo, "SELECT pg_reload_conf()::int");
	if (st != RPCQ_OK)
		fail_msg("the insert that committed answered %s: %s", rpcq_status_name(st), err.message);
	pool_release(p, c);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM t_late WHERE x = 7"), 1);
	pool_destroy(p);
	harness_sql(pg.conninfo, "DROP TABLE t_late");
}

static void *terminate_backends_later(void *arg)
{
	(void)arg;
	nng_msleep(300);
	(void)harness_sql_scalar(pg.conninfo, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
					      " WHERE application_name = 'test_pool' AND state = 'active'");
	return NULL;
}

static void test_connection_lost_mid_statement_is_unavailable_and_discarded(void **state)
{
	(void)state;
	static const db_stmt stmt_sleep = {"test_sleep_lost", "SELECT pg_sleep($1::float8)", 1};
	pool *p = make_pool(1, 2, 60000);
	dbconn *c;
	rpcq_error err;
	pool_stats before, after;
	pool_get_stats(p, &before);
	assert_int_equal(pool_acquire(p, in_ms(10000), &c, &err), RPCQ_OK);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, terminate_backends_later, NULL), 0);
	const char *values[] = {"5"};
	nng_time t0 = nng_clock();
	assert_int_equal(db_exec(c, &stmt_sleep, values, NULL, &err), RPCQ_UNAVAILABLE);
	assert_true(nng_clock() - t0 < 4000);
	pthread_join(t, NULL);
	print_message("%s\n", err.message);
	assert_memory_equal(err.message, "database unavailable: ", 22);
	assert_true(dbconn_is_broken(c));
	/* The rest of the call gets the same answer without touching it. */
	assert_int_equal(db_exec(c, &stmt_sleep, values, NULL, &err), RPCQ_UNAVAILABLE);
	pool_release(p, c);
	pool_get_stats(p, &after);
	assert_int_equal(after.broken, before.broken + 1);

	/* The database itself is fine: the next call gets a new connection. */
	int v = 0;
	assert_int_equal(call_double(p, 4, 5000, &v, &err), RPCQ_OK);
	assert_int_equal(v, 8);
	assert_no_leaks(p);
	pool_destroy(p);
}

/* Runs stmt with values on a fresh acquisition; returns the status. */
static rpcq_status exec_once(pool *p, const db_stmt *stmt, const char *const *values, rpcq_error *err)
{
	dbconn *c;
	rpcq_status st = pool_acquire(p, in_ms(5000), &c, err);
	if (st != RPCQ_OK)
		return st;
	st = db_exec(c, stmt, values, NULL, err);
	pool_release(p, c);
	return st;
}

static void test_sqlstates_reach_the_caller_as_statuses(void **state)
{
	(void)state;
	harness_sql(pg.conninfo, "CREATE TABLE pool_items (id int PRIMARY KEY, v int NOT NULL CHECK (v > 0),"
				 " parent int REFERENCES pool_items (id))");
	static const db_stmt insert = {"test_insert_item", "INSERT INTO pool_items (id, v, parent) VALUES ($1, $2, $3)",
				       3};
	static const db_stmt divide = {"test_divide", "SELECT 100 / $1::int", 1};
	static const db_stmt broken_sql = {"test_broken_sql", "SELEC secret_column FROM nowhere", 0};
	pool *p = make_pool(1, 2, 60000);
	rpcq_error err;
	pool_stats before, after;
	pool_get_stats(p, &before);

	const char *first[] = {"1", "1", NULL};
	assert_int_equal(exec_once(p, &insert, first, &err), RPCQ_OK);
	assert_int_equal(exec_once(p, &insert, first, &err), RPCQ_ALREADY_EXISTS);
	assert_non_null(strstr(err.message, "already exists"));
	assert_null(strstr(err.message, "INSERT"));

	const char *zero_v[] = {"2", "0", NULL};
	assert_int_equal(exec_once(p, &insert, zero_v, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "check constraint"));
	const char *null_v[] = {"3", NULL, NULL};
	assert_int_equal(exec_once(p, &insert, null_v, &err), RPCQ_INVALID_ARGUMENT);
	const char *orphan[] = {"4", "1", "99"};
	assert_int_equal(exec_once(p, &insert, orphan, &err), RPCQ_FAILED_PRECONDITION);
	assert_non_null(strstr(err.message, "foreign key"));
	const char *not_a_number[] = {"4", "one", NULL};
	assert_int_equal(exec_once(p, &insert, not_a_number, &err), RPCQ_INVALID_ARGUMENT);

	const char *by_zero[] = {"0"};
	assert_int_equal(exec_once(p, &divide, by_zero, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "division by zero"));

	/* Our own mistake: INTERNAL, and the reply does not quote the SQL. */
	assert_int_equal(exec_once(p, &broken_sql, NULL, &err), RPCQ_INTERNAL);
	assert_non_null(strstr(err.message, "test_broken_sql"));
	assert_non_null(strstr(err.message, "42601"));
	assert_null(strstr(err.message, "secret_column"));
	assert_null(strstr(err.message, "SELEC"));

	/* None of that broke a connection. */
	pool_get_stats(p, &after);
	assert_int_equal(after.broken, before.broken);
	assert_no_leaks(p);
	pool_destroy(p);
}

/* db_exec_fresh plans the statement at each call: it sees a table created
 * after its first run, and its errors reach the caller as db_exec's do. */
static void test_a_fresh_statement_is_planned_at_each_call(void **state)
{
	(void)state;
	static const db_stmt count = {"test_fresh_count", "SELECT count(*) FROM pool_fresh WHERE id <= $1::int", 1};
	pool *p = make_pool(1, 1, 60000);
	rpcq_error err;
	dbconn *c;
	PGresult *res = NULL;
	const char *ten[] = {"10"};
	assert_int_equal(pool_acquire(p, in_ms(5000), &c, &err), RPCQ_OK);
	assert_int_equal(db_exec_fresh(c, &count, ten, &res, &err), RPCQ_INTERNAL);
	assert_non_null(strstr(err.message, "test_fresh_count"));
	assert_null(strstr(err.message, "pool_fresh"));
	harness_sql(pg.conninfo, "CREATE TABLE pool_fresh AS SELECT g AS id FROM generate_series(1, 100) g");
	/* The same connection: nothing prepared and cached from the failed run. */
	assert_int_equal(db_exec_fresh(c, &count, ten, &res, &err), RPCQ_OK);
	assert_string_equal(PQgetvalue(res, 0, 0), "10");
	PQclear(res);
	pool_release(p, c);
	assert_no_leaks(p);
	pool_destroy(p);
}

static long long item_count(int id)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM tx_items WHERE id = %d", id);
	return harness_sql_scalar(pg.conninfo, sql);
}

static void test_transactions_commit_roll_back_and_a_dirty_release_closes(void **state)
{
	(void)state;
	harness_sql(pg.conninfo, "CREATE TABLE tx_items (id int PRIMARY KEY)");
	static const db_stmt insert = {"test_insert_tx", "INSERT INTO tx_items (id) VALUES ($1)", 1};
	pool *p = make_pool(1, 2, 60000);
	dbconn *c;
	rpcq_error err;

	assert_int_equal(pool_acquire(p, in_ms(5000), &c, &err), RPCQ_OK);
	const char *ten[] = {"10"}, *eleven[] = {"11"}, *twelve[] = {"12"};
	assert_int_equal(db_begin(c, &err), RPCQ_OK);
	assert_int_equal(db_exec(c, &insert, ten, NULL, &err), RPCQ_OK);
	db_rollback(c);
	assert_int_equal(item_count(10), 0);

	assert_int_equal(db_begin(c, &err), RPCQ_OK);
	assert_int_equal(db_exec(c, &insert, eleven, NULL, &err), RPCQ_OK);
	assert_int_equal(db_commit(c, &err), RPCQ_OK);
	assert_int_equal(item_count(11), 1);

	/* A failed statement dooms the transaction: COMMIT says ABORTED. */
	assert_int_equal(db_begin(c, &err), RPCQ_OK);
	assert_int_equal(db_exec(c, &insert, eleven, NULL, &err), RPCQ_ALREADY_EXISTS);
	assert_int_equal(db_commit(c, &err), RPCQ_ABORTED);
	pool_release(p, c);
	assert_no_leaks(p);

	/* Released inside a transaction: closed, and its work rolled back. */
	pool_stats before, after;
	pool_get_stats(p, &before);
	assert_int_equal(pool_acquire(p, in_ms(5000), &c, &err), RPCQ_OK);
	assert_int_equal(db_begin(c, &err), RPCQ_OK);
	assert_int_equal(db_exec(c, &insert, twelve, NULL, &err), RPCQ_OK);
	pool_release(p, c);
	pool_get_stats(p, &after);
	assert_int_equal(after.broken, before.broken + 1);
	assert_int_equal(item_count(12), 0);
	assert_no_leaks(p);
	pool_destroy(p);
}

static void test_copy_loads_rows_and_reports_constraint_errors_at_the_end(void **state)
{
	(void)state;
	harness_sql(pg.conninfo, "CREATE TABLE copy_items (id int PRIMARY KEY, name text NOT NULL)");
	pool *p = make_pool(1, 1, 60000);
	dbconn *c;
	rpcq_error err;
	assert_int_equal(pool_acquire(p, in_ms(10000), &c, &err), RPCQ_OK);

	assert_int_equal(db_copy_begin(c, "COPY copy_items (id, name) FROM STDIN", &err), RPCQ_OK);
	/* Enough rows to fill libpq's output buffer more than once. */
	char line[64];
	for (int i = 1; i <= 20000; i++) {
		int n = snprintf(line, sizeof(line), "%d\titem number %d\n", i, i);
		assert_int_equal(db_copy_put(c, line, (size_t)n, &err), RPCQ_OK);
	}
	assert_int_equal(db_copy_end(c, &err), RPCQ_OK);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM copy_items"), 20000);

	assert_int_equal(db_copy_begin(c, "COPY copy_items (id, name) FROM STDIN", &err), RPCQ_OK);
	const char dup[] = "20001\tnew\n5\tduplicate\n";
	assert_int_equal(db_copy_put(c, dup, sizeof(dup) - 1, &err), RPCQ_OK);
	assert_int_equal(db_copy_end(c, &err), RPCQ_ALREADY_EXISTS);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM copy_items"), 20000);

	/* Not a COPY: refused, and the connection stays usable. */
	assert_int_equal(db_copy_begin(c, "SELECT 1", &err), RPCQ_INTERNAL);
	assert_int_equal(db_command(c, "SELECT 1", &err), RPCQ_OK);
	pool_release(p, c);
	assert_no_leaks(p);
	pool_destroy(p);
}

static void test_prepared_statement_survives_a_database_restart(void **state)
{
	(void)state;
	pool *p = make_pool(2, 4, 60000);
	rpcq_error err;
	int v = 0;
	assert_int_equal(call_double(p, 5, 5000, &v, &err), RPCQ_OK);
	assert_int_equal(v, 10);

	harness_pg_restart(&pg);

	/* The first call after the restart already works: the dead idle
	 * connection is noticed before use, replaced, and the statement
	 * prepared again on the new one. */
	if (call_double(p, 6, 5000, &v, &err) != RPCQ_OK)
		fail_msg("first call after restart: %s", err.message);
	assert_int_equal(v, 12);
	pool_stats s;
	pool_get_stats(p, &s);
	assert_true(s.broken >= 1);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(call_double(p, i, 5000, &v, &err), RPCQ_OK);
		assert_int_equal(v, 2 * i);
	}
	assert_no_leaks(p);
	pool_destroy(p);
}

static void test_outage_fails_fast_with_unavailable_and_heals_without_a_new_pool(void **state)
{
	(void)state;
	pool *p = make_pool(1, 4, 60000);
	rpcq_error err;
	int v = 0;
	dbconn *held;
	assert_int_equal(call_double(p, 1, 5000, &v, &err), RPCQ_OK);
	assert_int_equal(pool_acquire(p, in_ms(5000), &held, &err), RPCQ_OK);
	const char *values[] = {"7"};
	assert_int_equal(db_exec(held, &stmt_double, values, NULL, &err), RPCQ_OK);

	harness_pg_pause(&pg);

	/* A connection held across the outage: its next statement fails, it
	 * is not retried, and the connection is closed on release. */
	nng_time t0 = nng_clock();
	assert_int_equal(db_exec(held, &stmt_double, values, NULL, &err), RPCQ_UNAVAILABLE);
	assert_true(nng_clock() - t0 < 1000);
	assert_memory_equal(err.message, "database unavailable: ", 22);
	pool_release(p, held);

	for (int i = 0; i < 5; i++) {
		t0 = nng_clock();
		assert_int_equal(call_double(p, i, 5000, &v, &err), RPCQ_UNAVAILABLE);
		nng_time took = nng_clock() - t0;
		print_message("call during outage: %d ms: %s\n", (int)took, err.message);
		assert_true(took < 1000);
		assert_memory_equal(err.message, "database unavailable: ", 22);
		/* libpq's reason, not just a code. */
		assert_true(strlen(err.message) > 30);
	}
	pool_stats s;
	pool_get_stats(p, &s);
	assert_true(s.unavailable >= 5);
	assert_true(s.connect_failures >= 1);
	assert_true(s.broken >= 1);
	assert_no_leaks(p);

	harness_pg_resume(&pg);

	/* With no calls coming, the janitor finds the database back within its
	 * backoff (2 s at most) and reopens min_conns. */
	nng_time until = in_ms(10000);
	do {
		nng_msleep(50);
		pool_get_stats(p, &s);
	} while (s.total < 1 && nng_clock() < until);
	assert_int_equal(s.total, 1);
	if (call_double(p, 3, 5000, &v, &err) != RPCQ_OK)
		fail_msg("first call after the outage: %s", err.message);
	assert_int_equal(v, 6);
	for (int i = 0; i < 10; i++)
		assert_int_equal(call_double(p, i, 5000, &v, &err), RPCQ_OK);
	assert_no_leaks(p);
	pool_destroy(p);
}

static void test_pool_starts_while_the_database_is_down_and_refuses_a_bad_conninfo(void **state)
{
	(void)state;
	char conninfo[128];
	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d dbname=rpcq user=rpcq", harness_free_port());
	pool_config cfg = {.conninfo = conninfo, .min_conns = 1, .max_conns = 2, .application_name = "test_pool"};
	pool *p = NULL;
	rpcq_error err;
	assert_int_equal(pool_create(&p, &cfg, &err), RPCQ_OK);
	nng_time t0 = nng_clock();
	dbconn *c;
	assert_int_equal(pool_acquire(p, in_ms(5000), &c, &err), RPCQ_UNAVAILABLE);
	assert_true(nng_clock() - t0 < 1000);
	assert_memory_equal(err.message, "database unavailable: ", 22);
	assert_non_null(strstr(err.message, "127.0.0.1"));
	pool_destroy(p);

	pool *q = NULL;
	cfg.conninfo = "this is not a conninfo";
	assert_int_equal(pool_create(&q, &cfg, &err), RPCQ_INVALID_ARGUMENT);
	assert_null(q);
	assert_non_null(strstr(err.message, "database connection string"));
}

static void test_idle_connections_beyond_the_minimum_are_closed(void **state)
{
	(void)state;
	pool *p = make_pool(1, 4, 200);
	dbconn *c[3];
	rpcq_error err;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pool_acquire(p, in_ms(5000), &c[i], &err), RPCQ_OK);
	for (int i = 0; i < 3; i++)
		pool_release(p, c[i]);
	pool_stats s;
	pool_get_stats(p, &s);
	assert_int_equal(s.total, 3);
	nng_time until = in_ms(5000);
	do {
		nng_msleep(50);
		pool_get_stats(p, &s);
	} while (s.total > 1 && nng_clock() < until);
	assert_int_equal(s.total, 1);
	assert_no_leaks(p);
	pool_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sixteen_threads_are_served_by_four_connections),
		cmocka_unit_test(test_acquire_times_out_at_deadline_when_all_connections_are_in_use),
		cmocka_unit_test(test_a_waiting_acquire_gets_the_connection_released_before_its_deadline),
		cmocka_unit_test(test_statement_past_its_deadline_is_cancelled),
		cmocka_unit_test(test_a_statement_that_committed_before_its_cancel_keeps_its_result),
		cmocka_unit_test(test_connection_lost_mid_statement_is_unavailable_and_discarded),
		cmocka_unit_test(test_a_frozen_server_gives_the_statement_back_soon_after_its_deadline),
		cmocka_unit_test(test_sqlstates_reach_the_caller_as_statuses),
		cmocka_unit_test(test_a_fresh_statement_is_planned_at_each_call),
		cmocka_unit_test(test_transactions_commit_roll_back_and_a_dirty_release_closes),
		cmocka_unit_test(test_copy_loads_rows_and_reports_constraint_errors_at_the_end),
		cmocka_unit_test(test_prepared_statement_survives_a_database_restart),
		cmocka_unit_test(test_outage_fails_fast_with_unavailable_and_heals_without_a_new_pool),
		cmocka_unit_test(test_pool_starts_while_the_database_is_down_and_refuses_a_bad_conninfo),
		cmocka_unit_test(test_idle_connections_beyond_the_minimum_are_closed),
	};
	return cmocka_run_group_tests(tests, setup_cluster, teardown_cluster);
}
