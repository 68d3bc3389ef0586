/*
 * Schema migrations (see migrate.h): `rpcqd migrate` applies the embedded
 * db/migrations in order, and `rpcqd serve` checks the schema first.
 *
 * Apply runs on a connection of its own, outside the pool, under a
 * session-level advisory lock, so that two processes migrating at once take
 * turns: the second waits, then finds nothing left to do. Each migration runs
 * in its own transaction together with the row that records it in
 * schema_migrations, so a migration is either applied and recorded or
 * neither, and a failed one stops the run with the migrations before it kept.
 * A migration therefore must not contain transaction control, nor statements
 * that refuse to run in a transaction (CREATE INDEX CONCURRENTLY).
 *
 * Check refuses a schema older than the code (a missing migration would mean
 * a missing table or column at the first call), but accepts a newer one with
 * a warning: migrations are additive, and during a rolling upgrade the old
 * rpcqd processes keep serving against the schema the new ones migrated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "log.h"
#include "migrate.h"
#include "db.h"

/* The advisory lock of migrations: "rpcq" in ASCII. Other advisory locks of
 * rpcqd use other keys. */
#define MIGRATE_LOCK_KEY "1919968113"

int migrate_latest_version(void)
{
	int latest = 0;
	for (int i = 0; i < migrations_count; i++)
		if (migrations[i].version > latest)
			latest = migrations[i].version;
	return latest;
}

/* Notices (CREATE TABLE IF NOT EXISTS says it skipped) are not news. */
static void notice_quiet(void *arg, const char *message)
{
	(void)arg;
	char line[512];
	pool_message_line(line, sizeof(line), message);
	log_debug("migrate: database: %s", line);
}

/* A blocking connection of our own; UNAVAILABLE when it cannot be had. */
static rpcq_status connect_db(const char *conninfo, const char *app, PGconn **out, rpcq_error *err)
{
	/* Later keys override earlier ones, and the conninfo (expanded from
	 * dbname) overrides both defaults. */
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *const vals[] = {"10", app, conninfo ? conninfo : "", NULL};
	PGconn *pg = PQconnectdbParams(keys, vals, 1);
	if (pg == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory connecting to the database");
	if (PQstatus(pg) != CONNECTION_OK) {
		char why[400];
		pool_message_line(why, sizeof(why), PQerrorMessage(pg));
		PQfinish(pg);
		return rpcq_error_set(err, RPCQ_UNAVAILABLE, "database unavailable: %s", why);
	}
	PQsetNoticeProcessor(pg, notice_quiet, NULL);
	*out = pg;
	return RPCQ_OK;
}

/* The 1-based line of a 1-based character position in sql, for errors. */
static int line_of(const char *sql, const char *position)
{
	long pos = position ? strtol(position, NULL, 10) : 0;
	int line = 1;
	/* The position counts characters; counting UTF-8 lead bytes matches it. */
	for (long chars = 0; *sql != '\0'; sql++) {
		if (((unsigned char)*sql & 0xC0) != 0x80 && ++chars >= pos)
			break;
		if (*sql == '\n')
			line++;
	}
	return line;
}

/* A failed result as an error naming what failed. Lost connections are
 * UNAVAILABLE; anything else is INTERNAL, with PostgreSQL's own words (this
 * is an operator's command, not a reply to a client). */
static rpcq_status sql_error(PGconn *pg, PGresult *res, const char *what, const char *sql, rpcq_error *err)
{
	char why[400];
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	pool_message_line(why, sizeof(why), primary ? primary : PQerrorMessage(pg));
	if (PQstatus(pg) != CONNECTION_OK || db_status_from_result(res) == RPCQ_UNAVAILABLE)
		return rpcq_error_set(err, RPCQ_UNAVAILABLE, "database unavailable during %s: %s", what, why);
	const char *position = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
	if (sql != NULL && position != NULL)
		return rpcq_error_set(err, RPCQ_INTERNAL, "%s failed at line %d: %s", what, line_of(sql, position),
				      why);
	return rpcq_error_set(err, RPCQ_INTERNAL, "%s failed: %s", what, why);
}

/* Runs sql (parameters optional) and expects `want`; the result goes to *out
 * if wanted, else is freed. PGRES_COMMAND_OK accepts any success, as the
 * last statement of a migration may be a SELECT (setval) or a comment. */
static rpcq_status run(PGconn *pg, const char *what, const char *sql, int nparams, const char *const *params,
		       ExecStatusType want, PGresult **out, rpcq_error *err)
{
	PGresult *res = nparams > 0 ? PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(pg, sql);
	ExecStatusType got = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int ok = got == want || (want == PGRES_COMMAND_OK && (got == PGRES_TUPLES_OK || got == PGRES_EMPTY_QUERY));
	if (!ok) {
		rpcq_status st = sql_error(pg, res, what, nparams > 0 ? NULL : sql, err);
		PQclear(res);
		return st;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return RPCQ_OK;
}

/* The versions recorded in schema_migrations, ascending; none when the
 * table does not exist yet. *versions is rpcq_alloc'd (or NULL). */
static rpcq_status applied_versions(PGconn *pg, int **versions, int *count, rpcq_error *err)
{
	*versions = NULL;
	*count = 0;
	PGresult *res = PQexec(pg, "SELECT version FROM schema_migrations ORDER BY version");
	if (res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42P01") == 0) { /* undefined_table: a fresh database */
			PQclear(res);
			return RPCQ_OK;
		}
	}
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		rpcq_status st = sql_error(pg, res, "reading schema_migrations", NULL, err);
		PQclear(res);
		return st;
	}
	int n = PQntuples(res);
	int *v = rpcq_calloc(n > 0 ? (size_t)n : 1, sizeof(*v));
	if (v == NULL) {
		PQclear(res);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory reading schema_migrations");
	}
	for (int i = 0; i < n; i++)
		v[i] = (int)strtol(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	*versions = v;
	*count = n;
	return RPCQ_OK;
}

static int has_version(const int *versions, int count, int version)
{
	for (int i = 0; i < count; i++)
		if (versions[i] == version)
			return 1;
	return 0;
}

/* Applies one migration and records it, in one transaction. */
static rpcq_status apply_one(PGconn *pg, const migration *m, rpcq_error *err)
{
	char what[128];
	char version[16];
	snprintf(what, sizeof(what), "migration %s", m->name);
	snprintf(version, sizeof(version), "%d", m->version);
	const char *const params[] = {version, m->name};
	rpcq_status st;
	if ((st = run(pg, what, "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL, err)) != RPCQ_OK)
		return st;
	if ((st = run(pg, what, m->sql, 0, NULL, PGRES_COMMAND_OK, NULL, err)) != RPCQ_OK ||
	    (st = run(pg, what, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", 2, params,
		      PGRES_COMMAND_OK, NULL, err)) != RPCQ_OK ||
	    (st = run(pg, what, "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, err)) != RPCQ_OK) {
		PQclear(PQexec(pg, "ROLLBACK"));
		return st;
	}
	return RPCQ_OK;
}

rpcq_status migrate_apply(const char *conninfo, int *applied, rpcq_error *err)
{
	rpcq_status result;
	PGconn *pg = NULL;
	int *versions = NULL, nversions = 0, done = 0, locked = 0;
	PGresult *res = NULL;

	if (applied)
		*applied = 0;
	if ((result = connect_db(conninfo, "rpcqd migrate", &pg, err)) != RPCQ_OK)
		goto out;
	result = run(pg, "taking the migration lock", "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL,
		     PGRES_TUPLES_OK, &res, err);
	if (result != RPCQ_OK)
		goto out;
	locked = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	res = NULL;
	if (!locked) {
		log_info("migrate: another process is migrating this database; waiting for it");
		result = run(pg, "taking the migration lock", "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL,
			     PGRES_TUPLES_OK, NULL, err);
		if (result != RPCQ_OK)
			goto out;
		locked = 1;
	}
	result = run(pg, "creating schema_migrations",
		     "CREATE TABLE IF NOT EXISTS schema_migrations ("
		     " version integer PRIMARY KEY,"
		     " name text NOT NULL,"
		     " applied_at timestamptz NOT NULL DEFAULT now())",
		     0, NULL, PGRES_COMMAND_OK, NULL, err);
	if (result != RPCQ_OK)
		goto out;
	if ((result = applied_versions(pg, &versions, &nversions, err)) != RPCQ_OK)
		goto out;
	for (int i = 0; i < nversions; i++) {
		int known = 0;
		for (int j = 0; j < migrations_count && !known; j++)
			known = migrations[j].version == versions[i];
		if (!known)
			log_warn("migrate: the database has migration %d, which this rpcqd does not know: "
				 "it is older than the schema",
				 versions[i]);
	}
	for (int i = 0; i < migrations_count; i++) {
		const migration *m = &migrations[i];
		if (has_version(versions, nversions, m->version))
			continue;
		if ((result = apply_one(pg, m, err)) != RPCQ_OK)
			goto out;
		log_info("migrate: applied %s", m->name);
		done++;
	}
	result = RPCQ_OK;
out:
	/* Closing the session would release the lock too; unlocking says so. */
	if (locked && PQstatus(pg) == CONNECTION_OK)
		PQclear(PQexec(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
	PQclear(res);
	rpcq_free(versions);
	if (pg)
		PQfinish(pg);
	if (applied)
		*applied = done;
	return result;
}

rpcq_status migrate_check(const char *conninfo, int *current, rpcq_error *err)
{
	rpcq_status result;
	PGconn *pg = NULL;
	int *versions = NULL, nversions = 0;

	if ((result = connect_db(conninfo, "rpcqd", &pg, err)) != RPCQ_OK)
		goto out;
	if ((result = applied_versions(pg, &versions, &nversions, err)) != RPCQ_OK)
		goto out;
	int have = nversions > 0 ? versions[nversions - 1] : 0;
	int need = migrate_latest_version();
	if (current)
		*current = have;
	for (int i = 0; i < migrations_count; i++) {
		if (has_version(versions, nversions, migrations[i].version))
			continue;
		if (have < need)
			result = rpcq_error_set(err, RPCQ_FAILED_PRECONDITION,
						"database schema is at version %d, this rpcqd needs %d: "
						"run `rpcqd migrate`",
						have, need);
		else
			result = rpcq_error_set(err, RPCQ_FAILED_PRECONDITION,
						"database schema lacks migration %s, which this rpcqd needs: "
						"run `rpcqd migrate`",
						migrations[i].name);
		goto out;
	}
	if (have > need)
		log_warn("database schema is at version %d, newer than this rpcqd (which knows up to %d): "
			 "serving anyway, as migrations only add; upgrade rpcqd",
			 have, need);
	result = RPCQ_OK;
out:
	rpcq_free(versions);
	if (pg)
		PQfinish(pg);
	return result;
}
