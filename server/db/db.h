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
 *   22xxx, 23502, 23514             -> INVALID_ARGUMENT (a value the schema refuses)
 *   23503, other 23xxx              -> FAILED_PRECONDITION (a row that must, or must not, exist)
 *   57P01..57P03 (shutdown), 53300, 25006 (read-only: a standby) -> UNAVAILABLE
 *   53xxx (other), 54xxx            -> RESOURCE_EXHAUSTED
 *   55P03 lock_not_available        -> ABORTED
 *   anything else                   -> INTERNAL (the SQL error is logged, not returned)
 */
#ifndef RPCQ_DB_H
#define RPCQ_DB_H

#include <stdint.h>

#include <libpq-fe.h>

#include "pool.h"

/* A statement: a static struct per query, usually in the service's sql.c. */
typedef struct db_stmt {
	const char *name; /* unique per process, e.g. "vesting_schedule" */
	const char *sql;
	int nparams;
} db_stmt;

/* Runs stmt with text parameters (values[i] NULL = SQL NULL). On success
 * *out (if not NULL) holds the result, which the caller frees with PQclear;
 * a command that returns no rows may pass out = NULL. On failure *out is NULL.
 * Blocks at most until the connection's deadline; call it (and everything
 * below) only on the thread holding the connection. A lost connection gives
 * UNAVAILABLE and marks the connection for discarding; nothing is retried,
 * since whether the statement took effect is then unknown. */
rpcq_status db_exec(dbconn *c, const db_stmt *stmt, const char *const *values, PGresult **out,
		    rpcq_error *err) RPCQ_NODISCARD;

/* Same with explicit lengths and formats (binary parameters). */
rpcq_status db_exec_params(dbconn *c, const db_stmt *stmt, const char *const *values, const int *lengths,
			   const int *formats, int result_format, PGresult **out, rpcq_error *err) RPCQ_NODISCARD;

/* db_exec, but planned at this execution rather than prepared once per
 * connection: for a statement whose tables grow from empty to millions of
 * rows within a connection's life, where a plan cached while they were
 * small (a sequential scan) would stay. Costs a parse and a plan a call. */
rpcq_status db_exec_fresh(dbconn *c, const db_stmt *stmt, const char *const *values, PGresult **out,
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

/* The status for a result (by SQLSTATE, see above): OK for a successful one,
 * UNAVAILABLE for NULL or an error libpq made up itself (those carry no
 * SQLSTATE and mean the connection is gone). */
rpcq_status db_status_from_result(const PGresult *res);

/* Values of a result fetched in binary format (result_format 1): an int8 or
 * int4 column at (row, col), big-endian on the wire. The caller has checked
 * the column's type and that the value is not NULL. */
int64_t db_int8(const PGresult *res, int row, int col);
int32_t db_int4(const PGresult *res, int row, int col);

/* An array parameter in PostgreSQL's text form ({"a",NULL,"\\x0a"}), built
 * one element at a time: db_array_text or db_array_bytea for each element,
 * then db_array_end, which gives the literal (NULL when memory ran out on
 * the way), valid until db_array_free. Elements are quoted and escaped, so
 * any text may be one, and a text "NULL" stays a string. Every array
 * parameter rpcqd sends is built with it. */
typedef struct db_array {
	char *buf;
	size_t len, cap;
	int n, failed;
} db_array;
void db_array_text(db_array *a, const char *s); /* s NULL: a NULL element */
void db_array_bytea(db_array *a, const uint8_t *p, size_t n);
const char *db_array_end(db_array *a);
void db_array_free(db_array *a);

/* The status for a five-character SQLSTATE ("23505"); the table above, as a
 * pure function. NULL or "" (no SQLSTATE: a client-side error) is UNAVAILABLE. */
rpcq_status db_status_from_sqlstate(const char *sqlstate);

#endif
