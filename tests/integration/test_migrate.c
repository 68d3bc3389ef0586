/*
 * Schema migrations against a real PostgreSQL: the migrations embedded in this
 * build (db/migrations) applied to fresh databases once, again (nothing to
 * do), concurrently from threads and from two `rpcqd migrate` processes; and
 * the schema check that makes `rpcqd serve` refuse an older schema and accept
 * a newer one. Each test has a database of its own in one cluster.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include <cmocka.h>

#include "db/migrate.h"
#include "harness.h"

#define RPCQD_TIMEOUT_MS 30000

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

/* A new empty database in the cluster; its conninfo goes to buf (a later
 * dbname overrides the harness's). */
static const char *fresh_database(const char *name, char *buf, size_t len)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	harness_sql(pg.conninfo, sql);
	int n = snprintf(buf, len, "%s dbname=%s", pg.conninfo, name);
	assert_true(n > 0 && (size_t)n < len);
	return buf;
}

static const char *rpcqd_path(void)
{
	const char *path = getenv("RPCQD");
	if (path == NULL || access(path, X_OK) != 0)
		fail_msg("RPCQD (%s) is not an executable rpcqd: build the rpcqd target", path ? path : "unset");
	return path;
}

static void test_embedded_migrations_are_numbered_in_order(void **state)
{
	(void)state;
	int last = 0;
	for (int i = 0; i < migrations_count; i++) {
		char prefix[8];
		snprintf(prefix, sizeof(prefix), "%04d_", migrations[i].version);
		assert_true(migrations[i].version > last);
		assert_memory_equal(migrations[i].name, prefix, 5);
		assert_true(strlen(migrations[i].sql) > 0);
		last = migrations[i].version;
	}
	assert_int_equal(migrate_latest_version(), last);
}

static void test_fresh_database_gets_every_migration_once(void **state)
{
	(void)state;
	char conninfo[sizeof(pg.conninfo)];
	fresh_database("m_fresh", conninfo, sizeof(conninfo));
	rpcq_error err;
	int applied = -1, current = -1;

	/* An empty database is behind any code that has migrations. */
	if (migrations_count > 0)
		assert_int_equal(migrate_check(conninfo, &current, &err), RPCQ_FAILED_PRECONDITION);

	if (migrate_apply(conninfo, &applied, &err) != RPCQ_OK)
		fail_msg("migrate_apply: %s", err.message);
	assert_int_equal(applied, migrations_count);
	assert_int_equal(harness_sql_scalar(conninfo, "SELECT count(*) FROM schema_migrations"), migrations_count);
	for (int i = 0; i < migrations_count; i++) {
		char sql[160];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM schema_migrations WHERE version = %d AND name = '%s'",
			 migrations[i].version, migrations[i].name);
		assert_int_equal(harness_sql_scalar(conninfo, sql), 1);
	}
	assert_int_equal(migrate_check(conninfo, &current, &err), RPCQ_OK);
	assert_int_equal(current, migrate_latest_version());

	/* Again: nothing to do, nothing recorded twice. */
	long long stamp =
		harness_sql_scalar(conninfo, "SELECT coalesce(extract(epoch FROM max(applied_at)) * 1000000, 0)"
					     "::bigint FROM schema_migrations");
	assert_int_equal(migrate_apply(conninfo, &applied, &err), RPCQ_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(harness_sql_scalar(conninfo, "SELECT count(*) FROM schema_migrations"), migrations_count);
	assert_int_equal(harness_sql_scalar(conninfo,
					    "SELECT coalesce(extract(epoch FROM max(applied_at)) * 1000000, 0)"
					    "::bigint FROM schema_migrations"),
			 stamp);
}

struct migrator {
	const char *conninfo;
	int applied;
	rpcq_status status;
	rpcq_error err;
};

static void *migrate_main(void *arg)
{
	struct migrator *m = arg;
	m->status = migrate_apply(m->conninfo, &m->applied, &m->err);
	return NULL;
}

static void test_concurrent_migrations_apply_each_migration_once(void **state)
{
	(void)state;
	enum { MIGRATORS = 4 };
	char conninfo[sizeof(pg.conninfo)];
	fresh_database("m_threads", conninfo, sizeof(conninfo));
	struct migrator m[MIGRATORS];
	pthread_t t[MIGRATORS];
	for (int i = 0; i < MIGRATORS; i++) {
		m[i] = (struct migrator){.conninfo = conninfo};
		assert_int_equal(pthread_create(&t[i], NULL, migrate_main, &m[i]), 0);
	}
	int total = 0;
	for (int i = 0; i < MIGRATORS; i++) {
		pthread_join(t[i], NULL);
		if (m[i].status != RPCQ_OK)
			fail_msg("migrator %d: %s", i, m[i].err.message);
		total += m[i].applied;
	}
	assert_int_equal(total, migrations_count);
	assert_int_equal(harness_sql_scalar(conninfo, "SELECT count(*) FROM schema_migrations"), migrations_count);
	int current = -1;
	rpcq_error err;
	assert_int_equal(migrate_check(conninfo, &current, &err), RPCQ_OK);
	assert_int_equal(current, migrate_latest_version());
}

struct process {
	const char *conninfo;
	int rc;
	char *out, *err;
};

static void *rpcqd_migrate_main(void *arg)
{
	struct process *p = arg;
	const char *argv[] = {rpcqd_path(), "migrate", "--database", p->conninfo, NULL};
	p->rc = harness_run(argv, NULL, &p->out, &p->err, RPCQD_TIMEOUT_MS);
	return NULL;
}

/* N of the "N migration(s) applied" line that rpcqd migrate logs. */
static int applied_in_log(const char *log)
{
	const char *hit = strstr(log, " migration(s) applied");
	if (hit == NULL)
		fail_msg("rpcqd migrate did not say how many migrations it applied:\n%s", log);
	const char *start = hit;
	while (start > log && start[-1] >= '0' && start[-1] <= '9')
		start--;
	return (int)strtol(start, NULL, 10);
}

static void test_two_rpcqd_migrate_processes_do_not_conflict(void **state)
{
	(void)state;
	char conninfo[sizeof(pg.conninfo)];
	fresh_database("m_processes", conninfo, sizeof(conninfo));
	(void)rpcqd_path();
	struct process p[2] = {{.conninfo = conninfo}, {.conninfo = conninfo}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, rpcqd_migrate_main, &p[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	int total = 0;
	for (int i = 0; i < 2; i++) {
		if (p[i].rc != 0)
			fail_msg("rpcqd migrate %d exited with %d:\n%s%s", i, p[i].rc, p[i].out, p[i].err);
		total += applied_in_log(p[i].err);
		free(p[i].out);
		free(p[i].err);
	}
	assert_int_equal(total, migrations_count);
	assert_int_equal(harness_sql_scalar(conninfo, "SELECT count(*) FROM schema_migrations"), migrations_count);
	/* And once more, as an operator would: exit 0, nothing to do. */
	struct process again = {.conninfo = conninfo};
	rpcqd_migrate_main(&again);
	assert_int_equal(again.rc, 0);
	assert_int_equal(applied_in_log(again.err), 0);
	free(again.out);
	free(again.err);
}

static void test_older_schema_is_refused_by_check_and_by_serve(void **state)
{
	(void)state;
	if (migrations_count == 0)
		skip();
	char conninfo[sizeof(pg.conninfo)], sql[128], expected[200];
	fresh_database("m_old", conninfo, sizeof(conninfo));
	rpcq_error err;
	int applied = 0, current = -1;
	assert_int_equal(migrate_apply(conninfo, &applied, &err), RPCQ_OK);
	int latest = migrate_latest_version();
	int previous = migrations_count > 1 ? migrations[migrations_count - 2].version : 0;
	snprintf(sql, sizeof(sql), "DELETE FROM schema_migrations WHERE version = %d", latest);
	harness_sql(conninfo, sql);

	snprintf(expected, sizeof(expected),
		 "database schema is at version %d, this rpcqd needs %d: run `rpcqd migrate`", previous, latest);
	assert_int_equal(migrate_check(conninfo, &current, &err), RPCQ_FAILED_PRECONDITION);
	assert_string_equal(err.message, expected);
	assert_int_equal(current, previous);

	/* rpcqd serve says the same and exits non-zero without serving. */
	char listen[64];
	snprintf(listen, sizeof(listen), "tcp://127.0.0.1:%d", harness_free_port());
	const char *argv[] = {rpcqd_path(), "serve", "--database", conninfo, "--listen", listen, NULL};
	char *out = NULL, *errtext = NULL;
	int rc = harness_run(argv, NULL, &out, &errtext, RPCQD_TIMEOUT_MS);
	print_message("rpcqd serve exited with %d:\n%s", rc, errtext);
	assert_true(rc != 0 && rc < 128);
	assert_non_null(strstr(errtext, expected));
	free(out);
	free(errtext);
}

static void test_a_missing_earlier_migration_is_named(void **state)
{
	(void)state;
	if (migrations_count < 2)
		skip();
	char conninfo[sizeof(pg.conninfo)], sql[128], expected[200];
	fresh_database("m_gap", conninfo, sizeof(conninfo));
	rpcq_error err;
	int applied = 0, current = -1;
	assert_int_equal(migrate_apply(conninfo, &applied, &err), RPCQ_OK);
	snprintf(sql, sizeof(sql), "DELETE FROM schema_migrations WHERE version = %d", migrations[0].version);
	harness_sql(conninfo, sql);
	snprintf(expected, sizeof(expected),
		 "database schema lacks migration %s, which this rpcqd needs: run `rpcqd migrate`", migrations[0].name);
	assert_int_equal(migrate_check(conninfo, &current, &err), RPCQ_FAILED_PRECONDITION);
	assert_string_equal(err.message, expected);
	assert_int_equal(current, migrate_latest_version());
}

static void test_newer_schema_is_served_with_a_warning(void **state)
{
	(void)state;
	char conninfo[sizeof(pg.conninfo)], sql[160];
	fresh_database("m_newer", conninfo, sizeof(conninfo));
	rpcq_error err;
	int applied = 0, current = -1;
	assert_int_equal(migrate_apply(conninfo, &applied, &err), RPCQ_OK);
	int newer = migrate_latest_version() + 1;
	snprintf(sql, sizeof(sql),
		 "INSERT INTO schema_migrations (version, name) VALUES (%d, '%04d_from_the_future.sql')", newer, newer);
	harness_sql(conninfo, sql);
	assert_int_equal(migrate_check(conninfo, &current, &err), RPCQ_OK);
	assert_int_equal(current, newer);

	/* An older rpcqd keeps serving (a rolling upgrade), and says why. */
	harness_pg db = pg;
	snprintf(db.conninfo, sizeof(db.conninfo), "%s", conninfo);
	harness_server s;
	harness_server_start(&s, &db, NULL);
	assert_int_equal(harness_server_stop(&s), 0);
	char *log = harness_read_file(s.log_path, NULL);
	assert_non_null(strstr(log, "newer than this rpcqd"));
	free(log);
	/* And migrate leaves the unknown version alone. */
	assert_int_equal(migrate_apply(conninfo, &applied, &err), RPCQ_OK);
	assert_int_equal(applied, 0);
}

static void test_unreachable_database_is_unavailable(void **state)
{
	(void)state;
	char conninfo[128];
	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d dbname=rpcq user=rpcq", harness_free_port());
	rpcq_error err;
	int applied = -1;
	assert_int_equal(migrate_check(conninfo, NULL, &err), RPCQ_UNAVAILABLE);
	assert_memory_equal(err.message, "database unavailable: ", 22);
	assert_int_equal(migrate_apply(conninfo, &applied, &err), RPCQ_UNAVAILABLE);
	assert_memory_equal(err.message, "database unavailable: ", 22);
	assert_int_equal(applied, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_embedded_migrations_are_numbered_in_order),
		cmocka_unit_test(test_fresh_database_gets_every_migration_once),
		cmocka_unit_test(test_concurrent_migrations_apply_each_migration_once),
		cmocka_unit_test(test_two_rpcqd_migrate_processes_do_not_conflict),
		cmocka_unit_test(test_older_schema_is_refused_by_check_and_by_serve),
		cmocka_unit_test(test_a_missing_earlier_migration_is_named),
		cmocka_unit_test(test_newer_schema_is_served_with_a_warning),
		cmocka_unit_test(test_unreachable_database_is_unavailable),
	};
	return cmocka_run_group_tests(tests, setup_cluster, teardown_cluster);
}
