/*
 * The PostgreSQL connection pool of rpcqd: one per process.
 *
 * A state machine in the manner of pgbouncer: every connection is on exactly
 * one list (connecting, idle, active), and moves between lists only in
 * pool_move() under the pool lock. Idle connections are reused last-in,
 * first-out (warm caches, and surplus ones age out). A connection returned
 * broken, or not idle in a transaction, is closed rather than reused. The
 * janitor (pool_janitor, run periodically by the pool's own thread) opens
 * connections up to min_conns, closes ones idle longer than idle_timeout, and
 * backs off reconnects while the database is down.
 *
 * Acquire waits at most until the caller's deadline; with the database down it
 * fails fast with UNAVAILABLE rather than waiting out the deadline.
 * All functions are thread-safe; pool_acquire and pool_create block.
 */
#ifndef RPCQ_POOL_H
#define RPCQ_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/status.h>

#include <rpcq/error.h>

typedef struct pool pool;
typedef struct dbconn dbconn;

typedef struct pool_config {
	const char *conninfo;	      /* libpq conninfo or URI */
	int min_conns;		      /* kept open (rpcqd's default 1; 0 opens them on demand) */
	int max_conns;		      /* never more (0: 8) */
	int acquire_timeout_ms;	      /* when the caller has no deadline (0: 5000) */
	int connect_timeout_ms;	      /* one connection attempt (0: 3000) */
	int idle_timeout_ms;	      /* surplus idle connections closed after (0: 60000) */
	const char *application_name; /* unless the conninfo sets one (NULL: "rpcqd") */
} pool_config;

typedef struct pool_stats {
	unsigned total; /* open connections */
	unsigned in_use;
	unsigned idle;
	unsigned waiting; /* callers blocked in pool_acquire now */
	uint64_t acquires;
	uint64_t waits;	   /* acquires that had to wait */
	uint64_t timeouts; /* acquires that gave up */
	uint64_t connect_failures;
	uint64_t broken;      /* connections found broken (or released dirty) and closed */
	uint64_t unavailable; /* acquires refused with UNAVAILABLE (database down) */
} pool_stats;

/* Creates the pool and tries to open min_conns connections. Succeeds even if
 * the database is down (calls then get UNAVAILABLE until it is back), but
 * fails with INVALID_ARGUMENT on an unparsable conninfo. Sets *out on success. */
rpcq_status pool_create(pool **out, const pool_config *cfg, rpcq_error *err) RPCQ_NODISCARD;

/* Closes every connection and frees the pool. All connections must have been
 * released. NULL is a no-op. */
void pool_destroy(pool *p);

/* A connection for the caller's exclusive use until pool_release.
 * deadline: absolute nng_clock() ms; 0 means now + acquire_timeout_ms.
 * DEADLINE_EXCEEDED when none frees up in time, UNAVAILABLE when the database
 * cannot be reached. */
rpcq_status pool_acquire(pool *p, nng_time deadline, dbconn **out, rpcq_error *err) RPCQ_NODISCARD;

/* Gives the connection back. A broken connection, or one left inside a
 * transaction, is closed instead of reused. NULL is a no-op. */
void pool_release(pool *p, dbconn *c);

void pool_get_stats(pool *p, pool_stats *out);

/* The libpq connection, for the duration of the acquisition. */
PGconn *dbconn_pg(dbconn *c);

/* Marks the connection broken: it will be closed on release. */
void dbconn_discard(dbconn *c);

/* The deadline (absolute nng_clock() ms, 0 = none) bounding every statement
 * run on this connection until changed; set by the call that acquired it. */
void dbconn_set_deadline(dbconn *c, nng_time deadline);

/* For db.c, on the thread holding the connection. */
nng_time dbconn_deadline(const dbconn *c);
/* Whether the connection is marked broken (dbconn_discard). */
int dbconn_is_broken(const dbconn *c);
/* Whether the last statement db.c sent on the connection may have run
 * though its answer never came: the connection was lost, or its cancel at
 * the deadline went unanswered, after it was sent. An autocommitted
 * statement in doubt may have committed; one never sent is not in doubt. */
int dbconn_in_doubt(const dbconn *c);
void dbconn_set_in_doubt(dbconn *c, int in_doubt);
/* Whether a statement of that name has been prepared on this connection. */
int dbconn_is_prepared(const dbconn *c, const char *name);
/* Records a prepared statement name (copied); -1 when out of memory, in which
 * case the statement is simply prepared again, which db.c tolerates. */
int dbconn_set_prepared(dbconn *c, const char *name) RPCQ_NODISCARD;

/* Copies a libpq message (multi-line, ending in a newline) into buf as one
 * line: line breaks and runs of blanks become one space. For db.c and
 * migrate.c, which quote libpq's words in their errors. Any thread. */
void pool_message_line(char *buf, size_t len, const char *msg);

#endif
