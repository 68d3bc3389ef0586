/*
 * Statements on a pooled connection. Only parameterized statements; each
 * db_stmt is prepared once per connection on first use (the connection keeps
 * the set of names it has prepared). Every wait is bounded by the connection's
 * deadline: on expiry the statement is cancelled and DEADLINE_EXCEEDED
 * returned. libpq errors are translated here, by SQLSTATE, and nowhere else:
 *   class 08 and lost connections -> UNAVAILABLE (connection discarded)
 *   57014 query_canceled           -> DEADLINE_EXCEEDED
 *   23505 unique_violation          -> ALREADY_EXISTS
 *   40001, 40P01                    -> ABORTED
 *   22xxx, 23xxx (other)            -> INVALID_ARGUMENT / FAILED_PRECONDITION
 *   anything else                   -> INTERNAL (the SQL error is logged, not returned)
 */
#ifndef RPCQ_DB_H
#define RPCQ_DB_H

#include <libpq-fe.h>

#include "pool.h"

/* A statement: a static struct per query, usually in the service's sql.c. */
typedef struct db_stmt {
	const char *name;            /* unique per process, e.g. "vesting_schedule" */
	const char *sql;
	int nparams;
} db_stmt;

/* Runs stmt with text parameters (values[i] NULL = SQL NULL). On success
 * *out (if not NULL) holds the result, which the caller frees with PQclear;
 * a command that returns no rows may pass out = NULL. */
rpcq_status db_exec(dbconn *c, const db_stmt *stmt, const char *const *values, PGresult **out,
		    rpcq_error *err) RPCQ_NODISCARD;

/* Same with explicit lengths and formats (binary parameters). */
rpcq_status db_exec_params(dbconn *c, const db_stmt *stmt, const char *const *values,
			   const int *lengths, const int *formats, int result_format, PGresult **out,
			   rpcq_error *err) RPCQ_NODISCARD;

/* A plain SQL command without parameters (BEGIN, COMMIT, DDL). */
rpcq_status db_command(dbconn *c, const char *sql, rpcq_error *err) RPCQ_NODISCARD;

/* Transactions: BEGIN / COMMIT / ROLLBACK. Rollback never fails from the
 * caller's point of view (a failure discards the connection). */
rpcq_status db_begin(dbconn *c, rpcq_error *err) RPCQ_NODISCARD;
rpcq_status db_commit(dbconn *c, rpcq_error *err) RPCQ_NODISCARD;
void db_rollback(dbconn *c);

/* COPY ... FROM STDIN: db_copy_begin(sql), any number of db_copy_put, then
 * db_copy_end (which reports constraint errors of the whole COPY). */
rpcq_status db_copy_begin(dbconn *c, const char *sql, rpcq_error *err) RPCQ_NODISCARD;
rpcq_status db_copy_put(dbconn *c, const char *data, size_t len, rpcq_error *err) RPCQ_NODISCARD;
rpcq_status db_copy_end(dbconn *c, rpcq_error *err) RPCQ_NODISCARD;

/* The status for a failed result (by SQLSTATE, see above). */
rpcq_status db_status_from_result(const PGresult *res);

#endif
