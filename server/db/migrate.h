/*
 * Schema migrations: db/migrations/NNNN_name.sql, embedded in the binary at
 * build time (cmake/EmbedMigrations.cmake), applied in order, each once, each
 * in its own transaction, recorded in schema_migrations. Two processes
 * migrating at once serialise on a PostgreSQL advisory lock.
 */
#ifndef RPCQ_MIGRATE_H
#define RPCQ_MIGRATE_H

#include <libpq-fe.h>

#include <rpcq/status.h>

#include <rpcq/error.h>

typedef struct migration {
	int version;
	const char *name; /* "0001_core.sql" */
	const char *sql;
} migration;

extern const migration migrations[];
extern const int migrations_count;

/* The newest version this code needs (0 if there are none). */
int migrate_latest_version(void);

/* Applies every pending migration; *applied (optional) gets how many.
 * Blocks; uses its own connection to conninfo. */
rpcq_status migrate_apply(const char *conninfo, int *applied, rpcq_error *err) RPCQ_NODISCARD;

/* OK when the database has every migration this code needs; otherwise
 * FAILED_PRECONDITION with a message telling to run `rpcqd migrate`
 * (or UNAVAILABLE if the database cannot be reached). *current (optional)
 * gets the database's version (the highest applied, 0 for none). A database
 * newer than the code is accepted with a warning in the log: migrations only
 * add, and old processes keep serving during a rolling upgrade. Blocks. */
rpcq_status migrate_check(const char *conninfo, int *current, rpcq_error *err) RPCQ_NODISCARD;

#endif
