/*
 * Statements on a pooled connection (see db.h for the contract).
 *
 * Every statement goes through libpq's asynchronous interface on a
 * non-blocking connection: send, then poll the socket with whatever is left of
 * the connection's deadline, so that no wait outlives the call it serves. At
 * the deadline the statement is cancelled (PQcancel, then up to a second for
 * the server to acknowledge) and DEADLINE_EXCEEDED returned; a connection
 * whose cancel is not acknowledged, or that breaks mid-statement, is marked
 * for discarding and the caller gets UNAVAILABLE. A statement is never
 * retried here: whether it took effect is unknown once the connection is
 * lost, and only its caller knows whether running it twice is safe.
 *
 * This is the one place where SQLSTATEs become rpcq statuses.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "db.h"
#include "log.h"

/* How long a cancelled statement, or a rollback after the deadline, may take
 * before its connection is given up. */
#define GRACE_MS 1000
/* COPY data goes to libpq in pieces of at most this size. */
#define COPY_CHUNK (1 << 20)

rpcq_status db_status_from_sqlstate(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return RPCQ_UNAVAILABLE;
	if (strcmp(s, "00000") == 0)
		return RPCQ_OK;
	/* Exact codes first, then classes. */
	static const struct {
		const char *code;
		rpcq_status status;
	} exact[] = {
		{"57014", RPCQ_DEADLINE_EXCEEDED}, /* query_canceled */
		{"57P01", RPCQ_UNAVAILABLE},	   /* admin_shutdown */
		{"57P02", RPCQ_UNAVAILABLE},	   /* crash_shutdown */
		{"57P03", RPCQ_UNAVAILABLE},	   /* cannot_connect_now */
		{"53300", RPCQ_UNAVAILABLE},	   /* too_many_connections */
		{"25006", RPCQ_UNAVAILABLE},	   /* read_only_sql_transaction: a standby */
		{"23505", RPCQ_ALREADY_EXISTS},	   /* unique_violation */
		{"23502", RPCQ_INVALID_ARGUMENT},  /* not_null_violation */
		{"23514", RPCQ_INVALID_ARGUMENT},  /* check_violation */
		{"40001", RPCQ_ABORTED},	   /* serialization_failure */
		{"40P01", RPCQ_ABORTED},	   /* deadlock_detected */
		{"55P03", RPCQ_ABORTED},	   /* lock_not_available */
	};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strcmp(s, exact[i].code) == 0)
			return exact[i].status;
	if (strncmp(s, "08", 2) == 0)
		return RPCQ_UNAVAILABLE; /* connection_exception */
	if (strncmp(s, "22", 2) == 0)
		return RPCQ_INVALID_ARGUMENT; /* data_exception */
	if (strncmp(s, "23", 2) == 0)
		return RPCQ_FAILED_PRECONDITION; /* integrity_constraint_violation */
	if (strncmp(s, "53", 2) == 0 || strncmp(s, "54", 2) == 0)
		return RPCQ_RESOURCE_EXHAUSTED; /* insufficient_resources, program_limit_exceeded */
	return RPCQ_INTERNAL;
}

static int result_failed(const PGresult *res)
{
	ExecStatusType t = PQresultStatus(res);
	return t == PGRES_FATAL_ERROR || t == PGRES_BAD_RESPONSE || t == PGRES_NONFATAL_ERROR;
}

rpcq_status db_status_from_result(const PGresult *res)
{
	if (res == NULL)
		return RPCQ_UNAVAILABLE;
	if (!result_failed(res))
		return RPCQ_OK;
	return db_status_from_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
}

/* The connection is gone (or unusable): discard it and say so. */
static rpcq_status lost(dbconn *c, rpcq_error *err)
{
	char why[384];
	dbconn_discard(c);
	pool_message_line(why, sizeof(why), PQerrorMessage(dbconn_pg(c)));
	return rpcq_error_set(err, RPCQ_UNAVAILABLE, "database unavailable: %s",
			      why[0] ? why : "the connection was lost");
}

/* Waits until a result can be read without blocking, flushing what is still
 * queued to send. 0: ready; 1: the deadline (0 = none) passed; -1: lost. */
static int wait_until(PGconn *pg, nng_time deadline)
{
	for (;;) {
		int pending = PQflush(pg);
		if (pending < 0)
			return -1;
		if (pending == 0 && !PQisBusy(pg))
			return 0;
		if (PQstatus(pg) != CONNECTION_OK)
			return -1;
		int timeout = -1;
		if (deadline != 0) {
			nng_time now = nng_clock();
			if (now >= deadline)
				return 1;
			timeout = deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
		}
		struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN | (pending ? POLLOUT : 0)};
		int r = poll(&pfd, 1, timeout);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(pg))
			return -1;
	}
}

/* A cancel request on its own thread: PQcancel opens a connection of its
 * own and then waits, with no timeout, for the server to close it, which a
 * reachable server does in well under a millisecond, and a frozen one (a
 * paused VM, a stopped postmaster) never does. libpq 15 has no bounded
 * cancel (PQcancelPoll comes with PostgreSQL 17), so the caller waits for
 * the thread CANCEL_WAIT_MS at most and then leaves it behind, with the
 * PGcancel it owns (independent of the connection, which the caller then
 * discards). At most MAX_CANCELS are left waiting at once; past that no
 * cancel is tried, the connection is just discarded. */
#define CANCEL_WAIT_MS 500
#define MAX_CANCELS 32

typedef struct cancel_job {
	PGcancel *cancel;
	nng_mtx *lock;
	nng_cv *cv;
	int done, sent, abandoned;
} cancel_job;

static atomic_int cancels_running;

static void cancel_job_free(cancel_job *j)
{
	nng_cv_free(j->cv);
	nng_mtx_free(j->lock);
	rpcq_free(j);
}

static void *cancel_main(void *arg)
{
	cancel_job *j = arg;
	char buf[256];
	int sent = PQcancel(j->cancel, buf, sizeof(buf));
	PQfreeCancel(j->cancel);
	nng_mtx_lock(j->lock);
	j->done = 1;
	j->sent = sent;
	int abandoned = j->abandoned;
	nng_cv_wake(j->cv);
	nng_mtx_unlock(j->lock);
	if (abandoned)
		cancel_job_free(j);
	atomic_fetch_sub(&cancels_running, 1);
	return NULL;
}

/* The deadline passed with a statement running: asks the server to cancel
 * it; 1 when the request was sent within CANCEL_WAIT_MS. */
static int send_cancel(PGconn *pg)
{
	cancel_job *j = rpcq_calloc(1, sizeof(*j));
	if (j == NULL)
		return 0;
	if (nng_mtx_alloc(&j->lock) != 0 || nng_cv_alloc(&j->cv, j->lock) != 0 ||
	    (j->cancel = PQgetCancel(pg)) == NULL) {
		cancel_job_free(j);
		return 0;
	}
	pthread_attr_t attr;
	pthread_t t;
	int started = 0;
	if (atomic_fetch_add(&cancels_running, 1) < MAX_CANCELS && pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&t, &attr, cancel_main, j) == 0;
		pthread_attr_destroy(&attr);
	}
	if (!started) {
		atomic_fetch_sub(&cancels_running, 1);
		log_warn("database: %d cancel requests still unanswered; the statement's connection is dropped instead",
			 MAX_CANCELS);
		PQfreeCancel(j->cancel);
		cancel_job_free(j);
		return 0;
	}
	nng_time until = nng_clock() + CANCEL_WAIT_MS;
	nng_mtx_lock(j->lock);
	while (!j->done && nng_cv_until(j->cv, until) != NNG_ETIMEDOUT)
		;
	int done = j->done, sent = j->sent;
	j->abandoned = !done;
	nng_mtx_unlock(j->lock);
	if (done)
		cancel_job_free(j);
	else
		log_warn("database: the server did not answer a cancel request within %d ms; its connection is dropped",
			 CANCEL_WAIT_MS);
	return sent;
}

static rpcq_status deadline_expired(const char *what, rpcq_error *err)
{
	return rpcq_error_set(err, RPCQ_DEADLINE_EXCEEDED, "%s cancelled: the call's deadline expired", what);
}

/* Turns a failed result into a status and a message that names `what`. */
static rpcq_status result_error(dbconn *c, const char *what, const PGresult *res, rpcq_error *err)
{
	rpcq_status st = db_status_from_result(res);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	char msg[384];

	if (st == RPCQ_UNAVAILABLE || PQstatus(dbconn_pg(c)) != CONNECTION_OK) {
		dbconn_discard(c);
		pool_message_line(msg, sizeof(msg), primary ? primary : PQresultErrorMessage(res));
		if (msg[0] == '\0')
			pool_message_line(msg, sizeof(msg), PQerrorMessage(dbconn_pg(c)));
		return rpcq_error_set(err, RPCQ_UNAVAILABLE, "database unavailable: %s",
				      msg[0] ? msg : "the connection was lost");
	}
	if (st == RPCQ_INTERNAL) {
		/* Not the caller's doing: the details (which may quote SQL) go to
		 * the log, the caller gets where to look. */
		pool_message_line(msg, sizeof(msg), PQresultErrorMessage(res));
		log_error("database error in %s: SQLSTATE %s: %s", what, state ? state : "?", msg);
		return rpcq_error_set(err, RPCQ_INTERNAL, "database error in %s (SQLSTATE %s; see the server log)",
				      what, state ? state : "?");
	}
	if (st == RPCQ_DEADLINE_EXCEEDED)
		return rpcq_error_set(err, st, "%s cancelled: %s", what, primary ? primary : "query canceled");
	pool_message_line(msg, sizeof(msg), primary ? primary : "error");
	if (detail != NULL) {
		char d[256];
		pool_message_line(d, sizeof(d), detail);
		return rpcq_error_set(err, st, "%s: %s", msg, d);
	}
	return rpcq_error_set(err, st, "%s", msg);
}

/* Collects the results of what was sent: the first result, or the first
 * failed one. A failure whose SQLSTATE is `tolerate` counts as success.
 * With copy set, a COPY IN result ends the collection (the caller streams
 * the data); otherwise a COPY state is a misuse and the connection goes.
 *
 * At the deadline the statement is cancelled and the server has GRACE_MS
 * to answer, so that the connection can be reused. A statement that ended
 * before the cancel reached it keeps its result: an autocommitted one has
 * committed, and calling it cancelled would have the caller do it again. */
static rpcq_status collect(dbconn *c, const char *what, const char *tolerate, int copy, PGresult **out, rpcq_error *err)
{
	PGconn *pg = dbconn_pg(c);
	PGresult *keep = NULL;
	rpcq_status st;
	nng_time deadline = dbconn_deadline(c);
	int cancelled = 0;
	*out = NULL;
	for (;;) {
		int w = wait_until(pg, deadline);
		if (w > 0 && !cancelled && send_cancel(pg)) {
			cancelled = 1;
			deadline = nng_clock() + GRACE_MS;
			continue;
		}
		if (w != 0) {
			PQclear(keep);
			if (w < 0)
				return lost(c, err);
			dbconn_discard(c);
			return deadline_expired(what, err);
		}
		PGresult *res = PQgetResult(pg);
		if (res == NULL)
			break;
		ExecStatusType t = PQresultStatus(res);
		if (t == PGRES_COPY_IN || t == PGRES_COPY_OUT || t == PGRES_COPY_BOTH) {
			if (copy && t == PGRES_COPY_IN && keep == NULL) {
				*out = res;
				return RPCQ_OK;
			}
			PQclear(res);
			PQclear(keep);
			dbconn_discard(c);
			return rpcq_error_set(err, RPCQ_INTERNAL, "%s started an unexpected COPY", what);
		}
		if (keep == NULL) {
			keep = res;
		} else if (result_failed(res) && !result_failed(keep)) {
			PQclear(keep);
			keep = res;
		} else {
			PQclear(res);
		}
	}
	if (keep == NULL)
		return lost(c, err);
	if (copy) {
		PQclear(keep);
		return rpcq_error_set(err, RPCQ_INTERNAL, "%s is not a COPY ... FROM STDIN", what);
	}
	if (result_failed(keep)) {
		const char *state = PQresultErrorField(keep, PG_DIAG_SQLSTATE);
		if (tolerate != NULL && state != NULL && strcmp(state, tolerate) == 0) {
			*out = keep;
			return RPCQ_OK;
		}
		if (cancelled && state != NULL && strcmp(state, "57014") == 0) {
			PQclear(keep);
			return deadline_expired(what, err);
		}
		st = result_error(c, what, keep, err);
		PQclear(keep);
		return st;
	}
	*out = keep;
	return RPCQ_OK;
}

/* Checks that a statement may start on c now. */
static rpcq_status ready_to_send(dbconn *c, const char *what, rpcq_error *err)
{
	if (dbconn_is_broken(c))
		return rpcq_error_set(err, RPCQ_UNAVAILABLE,
				      "database unavailable: the connection was lost earlier in this call");
	nng_time deadline = dbconn_deadline(c);
	if (deadline != 0 && nng_clock() >= deadline)
		return rpcq_error_set(err, RPCQ_DEADLINE_EXCEEDED, "the call's deadline expired before %s", what);
	dbconn_set_in_doubt(c, 0);
	return RPCQ_OK;
}

/* collect for a statement that was sent: when it fails with the connection
 * gone (lost, or its cancel unanswered), the statement is in doubt. */
static rpcq_status collect_sent(dbconn *c, const char *what, PGresult **out, rpcq_error *err)
{
	rpcq_status st = collect(c, what, NULL, 0, out, err);
	if (st != RPCQ_OK && dbconn_is_broken(c))
		dbconn_set_in_doubt(c, 1);
	return st;
}

/* A PQsend* call returned 0: the connection is gone, or this is a misuse. */
static rpcq_status send_failed(dbconn *c, const char *what, rpcq_error *err)
{
	PGconn *pg = dbconn_pg(c);
	if (PQstatus(pg) != CONNECTION_OK)
		return lost(c, err);
	char why[256];
	pool_message_line(why, sizeof(why), PQerrorMessage(pg));
	log_error("database: cannot send %s: %s", what, why);
	dbconn_discard(c);
	return rpcq_error_set(err, RPCQ_INTERNAL, "database error sending %s (see the server log)", what);
}

static rpcq_status exec_params(dbconn *c, const db_stmt *stmt, int prepare, const char *const *values,
			       const int *lengths, const int *formats, int result_format, PGresult **out,
			       rpcq_error *err)
{
	PGconn *pg = dbconn_pg(c);
	PGresult *res = NULL;
	rpcq_status st;
	if (out)
		*out = NULL;
	if ((st = ready_to_send(c, stmt->name, err)) != RPCQ_OK)
		return st;
	if (!prepare) {
		if (!PQsendQueryParams(pg, stmt->sql, stmt->nparams, NULL, values, lengths, formats, result_format))
			return send_failed(c, stmt->name, err);
	} else if (!dbconn_is_prepared(c, stmt->name)) {
		if (!PQsendPrepare(pg, stmt->name, stmt->sql, stmt->nparams, NULL))
			return send_failed(c, stmt->name, err);
		/* 42P05: prepared already, though the name could not be recorded. */
		if ((st = collect(c, stmt->name, "42P05", 0, &res, err)) != RPCQ_OK)
			return st;
		PQclear(res);
		res = NULL;
		if (dbconn_set_prepared(c, stmt->name) != 0)
			log_debug("database: out of memory recording statement %s; it will be prepared again",
				  stmt->name);
	}
	if (prepare && !PQsendQueryPrepared(pg, stmt->name, stmt->nparams, values, lengths, formats, result_format))
		return send_failed(c, stmt->name, err);
	if ((st = collect_sent(c, stmt->name, &res, err)) != RPCQ_OK)
		return st;
	if (out)
		*out = res;
	else
		PQclear(res);
	return RPCQ_OK;
}

rpcq_status db_exec_params(dbconn *c, const db_stmt *stmt, const char *const *values, const int *lengths,
			   const int *formats, int result_format, PGresult **out, rpcq_error *err)
{
	return exec_params(c, stmt, 1, values, lengths, formats, result_format, out, err);
}

rpcq_status db_exec(dbconn *c, const db_stmt *stmt, const char *const *values, PGresult **out, rpcq_error *err)
{
	return exec_params(c, stmt, 1, values, NULL, NULL, 0, out, err);
}

rpcq_status db_exec_fresh(dbconn *c, const db_stmt *stmt, const char *const *values, PGresult **out, rpcq_error *err)
{
	return exec_params(c, stmt, 0, values, NULL, NULL, 0, out, err);
}

/* The first word of a command ("BEGIN", "CREATE"): what messages name,
 * rather than SQL text. */
static void command_name(char *buf, size_t len, const char *sql)
{
	size_t o = 0;
	while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '\r')
		sql++;
	while (*sql != '\0' && *sql != ' ' && *sql != '\n' && *sql != '\t' && *sql != ';' && o + 1 < len && o < 24)
		buf[o++] = *sql++;
	buf[o] = '\0';
	if (o == 0)
		snprintf(buf, len, "empty command");
}

/* Runs a parameterless command and hands back its result. */
static rpcq_status command(dbconn *c, const char *sql, PGresult **out, rpcq_error *err)
{
	char what[32];
	rpcq_status st;
	command_name(what, sizeof(what), sql);
	*out = NULL;
	if ((st = ready_to_send(c, what, err)) != RPCQ_OK)
		return st;
	if (!PQsendQuery(dbconn_pg(c), sql))
		return send_failed(c, what, err);
	return collect_sent(c, what, out, err);
}

rpcq_status db_command(dbconn *c, const char *sql, rpcq_error *err)
{
	PGresult *res;
	rpcq_status st = command(c, sql, &res, err);
	PQclear(res);
	return st;
}

rpcq_status db_begin(dbconn *c, rpcq_error *err)
{
	return db_command(c, "BEGIN", err);
}

rpcq_status db_commit(dbconn *c, rpcq_error *err)
{
	PGresult *res;
	rpcq_status st = command(c, "COMMIT", &res, err);
	/* COMMIT of a transaction that had failed succeeds, as a ROLLBACK. */
	if (st == RPCQ_OK && strcmp(PQcmdStatus(res), "ROLLBACK") == 0)
		st = rpcq_error_set(err, RPCQ_ABORTED, "the transaction had failed and was rolled back");
	PQclear(res);
	return st;
}

void db_rollback(dbconn *c)
{
	PGconn *pg = dbconn_pg(c);
	if (dbconn_is_broken(c) || PQstatus(pg) != CONNECTION_OK) {
		dbconn_discard(c);
		return;
	}
	if (PQtransactionStatus(pg) == PQTRANS_IDLE)
		return;
	/* A rollback is often what follows a missed deadline: it gets a grace
	 * period of its own, and if that is not enough, closing the connection
	 * rolls back just as well. */
	nng_time saved = dbconn_deadline(c);
	dbconn_set_deadline(c, nng_clock() + GRACE_MS);
	rpcq_error err;
	if (db_command(c, "ROLLBACK", &err) != RPCQ_OK)
		dbconn_discard(c);
	dbconn_set_deadline(c, saved);
}

/* Waits until libpq can take more output, for COPY in non-blocking mode. */
static rpcq_status wait_writable(dbconn *c, rpcq_error *err)
{
	PGconn *pg = dbconn_pg(c);
	nng_time deadline = dbconn_deadline(c);
	for (;;) {
		int pending = PQflush(pg);
		if (pending < 0)
			return lost(c, err);
		if (pending == 0)
			return RPCQ_OK;
		int timeout = -1;
		if (deadline != 0) {
			nng_time now = nng_clock();
			if (now >= deadline) {
				/* Mid-COPY there is no cheap way back to a clean
				 * protocol state: the connection goes. */
				dbconn_discard(c);
				return rpcq_error_set(err, RPCQ_DEADLINE_EXCEEDED,
						      "COPY stopped: the call's deadline expired");
			}
			timeout = deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
		}
		struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN | POLLOUT};
		int r = poll(&pfd, 1, timeout);
		if (r < 0 && errno != EINTR)
			return lost(c, err);
		if (r > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(pg))
			return lost(c, err);
	}
}

rpcq_status db_copy_begin(dbconn *c, const char *sql, rpcq_error *err)
{
	rpcq_status st;
	PGresult *res;
	if ((st = ready_to_send(c, "COPY", err)) != RPCQ_OK)
		return st;
	if (!PQsendQuery(dbconn_pg(c), sql))
		return send_failed(c, "COPY", err);
	st = collect(c, "COPY", NULL, 1, &res, err);
	PQclear(res);
	return st;
}

rpcq_status db_copy_put(dbconn *c, const char *data, size_t len, rpcq_error *err)
{
	PGconn *pg = dbconn_pg(c);
	rpcq_status st;
	if (dbconn_is_broken(c))
		return rpcq_error_set(err, RPCQ_UNAVAILABLE,
				      "database unavailable: the connection was lost earlier in this call");
	while (len > 0) {
		int n = len > COPY_CHUNK ? COPY_CHUNK : (int)len;
		int r = PQputCopyData(pg, data, n);
		if (r < 0)
			return lost(c, err);
		if (r == 0) {
			/* libpq's buffer is full: wait for the socket, then retry. */
			if ((st = wait_writable(c, err)) != RPCQ_OK)
				return st;
			continue;
		}
		data += n;
		len -= (size_t)n;
	}
	return RPCQ_OK;
}

rpcq_status db_copy_end(dbconn *c, rpcq_error *err)
{
	PGconn *pg = dbconn_pg(c);
	rpcq_status st;
	PGresult *res;
	if (dbconn_is_broken(c))
		return rpcq_error_set(err, RPCQ_UNAVAILABLE,
				      "database unavailable: the connection was lost earlier in this call");
	for (;;) {
		int r = PQputCopyEnd(pg, NULL);
		if (r < 0)
			return lost(c, err);
		if (r == 1)
			break;
		if ((st = wait_writable(c, err)) != RPCQ_OK)
			return st;
	}
	st = collect(c, "COPY", NULL, 0, &res, err);
	PQclear(res);
	return st;
}

static uint64_t big_endian(const PGresult *res, int row, int col, int bytes)
{
	const unsigned char *b = (const unsigned char *)PQgetvalue(res, row, col);
	uint64_t x = 0;
	for (int i = 0; i < bytes; i++)
		x = x << 8 | b[i];
	return x;
}

int64_t db_int8(const PGresult *res, int row, int col)
{
	return (int64_t)big_endian(res, row, col, 8);
}

int32_t db_int4(const PGresult *res, int row, int col)
{
	return (int32_t)(uint32_t)big_endian(res, row, col, 4);
}

/* Room for n more bytes (and the closing brace and NUL); 0 when out of memory. */
static int array_room(db_array *a, size_t n)
{
	if (a->failed)
		return 0;
	if (a->len + n + 2 > a->cap) {
		size_t cap = (a->cap ? a->cap * 2 : 256) + n + 2;
		char *b = rpcq_realloc(a->buf, cap);
		if (b == NULL) {
			a->failed = 1;
			return 0;
		}
		a->buf = b;
		a->cap = cap;
	}
	return 1;
}

/* The separator before the next element ("{" for the first). */
static void array_next(db_array *a)
{
	a->buf[a->len++] = a->n++ ? ',' : '{';
}

void db_array_text(db_array *a, const char *s)
{
	if (s == NULL) {
		if (array_room(a, 5)) {
			array_next(a);
			memcpy(a->buf + a->len, "NULL", 4);
			a->len += 4;
		}
		return;
	}
	/* Worst case every byte escaped, plus the separator and the quotes. */
	size_t n = strlen(s);
	if (!array_room(a, 2 * n + 3))
		return;
	array_next(a);
	a->buf[a->len++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			a->buf[a->len++] = '\\';
		a->buf[a->len++] = s[i];
	}
	a->buf[a->len++] = '"';
}

void db_array_bytea(db_array *a, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	/* "\\x" and two digits a byte, inside quotes, after the separator. */
	if (!array_room(a, 2 * n + 6))
		return;
	array_next(a);
	memcpy(a->buf + a->len, "\"\\\\x", 4);
	a->len += 4;
	for (size_t i = 0; i < n; i++) {
		a->buf[a->len++] = hex[p[i] >> 4];
		a->buf[a->len++] = hex[p[i] & 15];
	}
	a->buf[a->len++] = '"';
}

const char *db_array_end(db_array *a)
{
	if (!array_room(a, 0))
		return NULL;
	if (a->n == 0)
		a->buf[a->len++] = '{';
	a->buf[a->len++] = '}';
	a->buf[a->len] = '\0';
	return a->buf;
}

void db_array_free(db_array *a)
{
	rpcq_free(a->buf);
	*a = (db_array){0};
}
