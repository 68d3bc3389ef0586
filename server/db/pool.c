/*
 * The PostgreSQL connection pool (see pool.h for the contract).
 *
 * Locking: one mutex guards the lists, the counters and the database state;
 * libpq is never called with it held except for the non-blocking liveness
 * probe of idle connections (a poll of zero timeout and PQconsumeInput on an
 * already readable socket). A connection on the active list belongs to the
 * thread that acquired it, which uses it without the lock. Connecting, which
 * blocks, happens unlocked on a connection of the connecting list, whose slot
 * counts against max_conns so that the pool never opens more than its size.
 *
 * Outages: a failed connection attempt marks the database down. While it is
 * down, one caller at a time probes it with a connection attempt of its own
 * (refused at once while the server is gone, and the first call after it is
 * back succeeds), and every other caller is refused at once with UNAVAILABLE
 * and the reason libpq gave, instead of queueing behind attempts that will
 * fail. When no calls come, the janitor probes, with exponential backoff
 * (100 ms up to 2 s); the first success brings the pool back for everyone.
 * Idle connections are probed before they are handed out (a restarted server
 * has closed their sockets), so after a restart the first call already gets
 * a fresh connection. Statements are prepared per connection (dbconn keeps
 * the names), so a replaced connection simply prepares them again.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "log.h"
#include "pool.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
/* The janitor's period when nothing wakes it earlier. */
#define JANITOR_TICK_MS 1000

typedef enum conn_state {
	CONN_NONE, /* on no list: being created or closed */
	CONN_CONNECTING,
	CONN_IDLE,
	CONN_ACTIVE,
} conn_state;

/* An intrusive doubly linked list; the head is the most recently added. */
typedef struct conn_list {
	dbconn *head;
	unsigned count;
} conn_list;

struct dbconn {
	pool *owner;
	PGconn *pg;
	conn_state state;
	dbconn *prev, *next;
	nng_time idle_since;
	nng_time deadline;
	int broken;
	int in_doubt; /* db.c: the last statement sent got no answer */
	/* Names of the statements prepared on this connection: an open-addressing
	 * hash set (a service has a few dozen statements; lookups are per call). */
	char **prepared;
	unsigned prepared_cap;
	unsigned prepared_count;
};

struct pool {
	nng_mtx *mtx;
	nng_cv *cv_conn;    /* waiters in pool_acquire: a connection, a slot or an outage */
	nng_cv *cv_janitor; /* the janitor: work to do or stop */
	nng_thread *janitor;
	int stopping;

	char *conninfo;
	char *application_name;
	int min_conns, max_conns;
	int acquire_timeout_ms, connect_timeout_ms, idle_timeout_ms;

	conn_list connecting, idle, active;

	int db_down;
	int probing; /* a caller's connection attempt while down is under way */
	char down_reason[384];
	nng_duration backoff_ms;
	nng_time next_probe;

	unsigned waiting;
	uint64_t acquires, waits, timeouts, connect_failures, broken, unavailable;
};

static conn_list *list_of(pool *p, conn_state s)
{
	switch (s) {
	case CONN_CONNECTING:
		return &p->connecting;
	case CONN_IDLE:
		return &p->idle;
	case CONN_ACTIVE:
		return &p->active;
	default:
		return NULL;
	}
}

/* The only place where a connection changes state. Lock held. Moving to IDLE
 * pushes on the head, so the head is the most recently used (LIFO reuse) and
 * the tail the one idle longest. */
static void pool_move(pool *p, dbconn *c, conn_state to)
{
	conn_list *from = list_of(p, c->state);
	if (from != NULL) {
		if (c->prev)
			c->prev->next = c->next;
		else
			from->head = c->next;
		if (c->next)
			c->next->prev = c->prev;
		from->count--;
	}
	c->prev = c->next = NULL;
	c->state = to;
	conn_list *dst = list_of(p, to);
	if (dst != NULL) {
		c->next = dst->head;
		if (dst->head)
			dst->head->prev = c;
		dst->head = c;
		dst->count++;
	}
	if (to == CONN_IDLE)
		c->idle_since = nng_clock();
}

static unsigned pool_size(const pool *p)
{
	return p->connecting.count + p->idle.count + p->active.count;
}

/* PostgreSQL notices (RAISE NOTICE, and the FATAL a server sends before it
 * closes a connection) go to our log instead of libpq's stderr printing. */
static void notice_to_log(void *arg, const char *message)
{
	(void)arg;
	size_t n = strlen(message);
	while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == ' '))
		n--;
	if (strncmp(message, "NOTICE", 6) == 0 || strncmp(message, "INFO", 4) == 0 ||
	    strncmp(message, "DEBUG", 5) == 0 || strncmp(message, "LOG", 3) == 0)
		log_debug("database: %.*s", (int)n, message);
	else
		log_warn("database: %.*s", (int)n, message);
}

/* Copies a libpq message into buf as one line: newlines and runs of blanks
 * become one space, trailing blanks go. */
void pool_message_line(char *buf, size_t len, const char *msg)
{
	size_t o = 0;
	int space = 0;
	if (len == 0)
		return;
	for (const char *s = msg ? msg : ""; *s != '\0' && o + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
			space = o > 0;
			continue;
		}
		if (space && o + 2 < len)
			buf[o++] = ' ';
		space = 0;
		buf[o++] = (char)ch;
	}
	buf[o] = '\0';
}

/* Opens one connection, bounded by `until` (absolute nng_clock ms), with
 * libpq's non-blocking connect so that neither connect_timeout's whole
 * seconds nor a silent host can hold the caller past its deadline. The name
 * lookup inside PQconnectStartParams is the one step that is not bounded.
 * On failure *pg is NULL, reason says why and *timed_out tells whether time
 * ran out (rather than the server refusing). */
static void connect_until(const pool *p, nng_time until, PGconn **pg, char *reason, size_t reason_len, int *timed_out)
{
	/* Defaults that the conninfo (expanded from dbname, last) overrides:
	 * our name; TCP keepalives, so that a pooled connection to a host
	 * that vanished without a word is found dead in about a minute rather
	 * than the system's two hours; and no JIT compilation: our statements
	 * run for milliseconds, and compiling one whose estimate passed
	 * jit_above_cost took 20 ms or more (a chunk merge went from 65 to
	 * 110 ms; README, "Design notes"). */
	const char *const keys[] = {"fallback_application_name",
				    "keepalives_idle",
				    "keepalives_interval",
				    "keepalives_count",
				    "options",
				    "dbname",
				    NULL};
	const char *const vals[] = {p->application_name, "30", "10", "3", "-c jit=off", p->conninfo, NULL};
	*pg = NULL;
	*timed_out = 0;
	PGconn *conn = PQconnectStartParams(keys, vals, 1);
	if (conn == NULL) {
		snprintf(reason, reason_len, "out of memory starting a connection");
		return;
	}
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	while (PQstatus(conn) != CONNECTION_BAD && ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
		nng_time now = nng_clock();
		if (now >= until) {
			*timed_out = 1;
			snprintf(reason, reason_len, "no connection to the database within %d ms",
				 p->connect_timeout_ms);
			PQfinish(conn);
			return;
		}
		struct pollfd pfd = {.fd = PQsocket(conn), .events = ps == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		/* No socket yet (between hosts of a list): let libpq go on. */
		int r = pfd.fd < 0 ? 1 : poll(&pfd, 1, (int)(until - now));
		if (r < 0 && errno != EINTR) {
			snprintf(reason, reason_len, "poll: %s", strerror(errno));
			PQfinish(conn);
			return;
		}
		if (r > 0)
			ps = PQconnectPoll(conn);
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		pool_message_line(reason, reason_len, PQerrorMessage(conn));
		if (reason[0] == '\0')
			snprintf(reason, reason_len, "connection failed");
		PQfinish(conn);
		return;
	}
	/* Non-blocking: db.c bounds every send and receive by the deadline. */
	if (PQsetnonblocking(conn, 1) != 0) {
		pool_message_line(reason, reason_len, PQerrorMessage(conn));
		PQfinish(conn);
		return;
	}
	PQsetNoticeProcessor(conn, notice_to_log, NULL);
	*pg = conn;
}

/* Whether an idle connection still looks usable, without blocking: an idle
 * connection has nothing to read unless the server has closed it (after
 * sending a FATAL, which libpq hands to the notice processor) or sent a
 * notification. Called with the pool lock held or on an owned connection. */
static int conn_alive(PGconn *pg)
{
	for (int i = 0; i < 8; i++) {
		if (PQstatus(pg) != CONNECTION_OK)
			return 0;
		struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
		int r = poll(&pfd, 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return 0;
		if (r == 0)
			break;
		if (!PQconsumeInput(pg))
			return 0;
		/* Parses what came (a notice, a notification) without waiting. */
		(void)PQisBusy(pg);
		PGnotify *n;
		while ((n = PQnotifies(pg)) != NULL)
			PQfreemem(n);
	}
	return PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) == PQTRANS_IDLE;
}

static void conn_free(dbconn *c)
{
	if (c == NULL)
		return;
	if (c->pg)
		PQfinish(c->pg);
	for (unsigned i = 0; i < c->prepared_cap; i++)
		rpcq_free(c->prepared[i]);
	rpcq_free(c->prepared);
	rpcq_free(c);
}

/* Records a failed attempt: the database is down until an attempt succeeds.
 * Lock held. */
static void mark_down(pool *p, const char *reason)
{
	p->connect_failures++;
	if (!p->db_down) {
		log_warn("database unavailable: %s", reason);
		p->db_down = 1;
		p->backoff_ms = BACKOFF_MIN_MS;
		/* Waiters would only wait out their deadlines: let them fail now. */
		nng_cv_wake(p->cv_conn);
	} else if (p->backoff_ms < BACKOFF_MAX_MS) {
		p->backoff_ms *= 2;
		if (p->backoff_ms > BACKOFF_MAX_MS)
			p->backoff_ms = BACKOFF_MAX_MS;
	}
	snprintf(p->down_reason, sizeof(p->down_reason), "%s", reason);
	p->next_probe = nng_clock() + (nng_time)p->backoff_ms;
	nng_cv_wake(p->cv_janitor);
}

/* Lock held. */
static void mark_up(pool *p)
{
	if (p->db_down) {
		log_info("database available again");
		p->db_down = 0;
		p->backoff_ms = BACKOFF_MIN_MS;
	}
}

/* Takes a connecting slot, connects unlocked, and files the result: on
 * success the connection is left in state `to` (ACTIVE for a caller, IDLE for
 * the janitor). Lock held on entry and exit. Returns the connection or NULL
 * (reason filled, *timed_out set when time, not the server, said no). */
static dbconn *open_conn(pool *p, nng_time until, conn_state to, char *reason, size_t reason_len, int *timed_out)
{
	*timed_out = 0;
	dbconn *c = rpcq_calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(reason, reason_len, "out of memory");
		return NULL;
	}
	c->owner = p;
	pool_move(p, c, CONN_CONNECTING);
	nng_mtx_unlock(p->mtx);
	PGconn *pg;
	connect_until(p, until, &pg, reason, reason_len, timed_out);
	nng_mtx_lock(p->mtx);
	if (pg == NULL) {
		pool_move(p, c, CONN_NONE);
		conn_free(c);
		/* A slot came free: a waiter may use it. */
		nng_cv_wake(p->cv_conn);
		return NULL;
	}
	c->pg = pg;
	mark_up(p);
	pool_move(p, c, to);
	if (to == CONN_IDLE)
		nng_cv_wake(p->cv_conn);
	return c;
}

/* Closes the connections on a local chain (linked by next) without the lock. */
static void close_chain(dbconn *chain)
{
	while (chain != NULL) {
		dbconn *next = chain->next;
		conn_free(chain);
		chain = next;
	}
}

/* Opens one idle connection; a failure marks the database down. Lock held.
 * It does not take the callers' probing turn: a caller arriving meanwhile
 * probes too rather than being refused because of the janitor. */
static int janitor_connect(pool *p)
{
	char reason[sizeof(p->down_reason)];
	int timed_out;
	nng_time until = nng_clock() + (nng_time)p->connect_timeout_ms;
	dbconn *c = open_conn(p, until, CONN_IDLE, reason, sizeof(reason), &timed_out);
	if (c == NULL)
		mark_down(p, reason);
	return c != NULL;
}

/* One round of upkeep. Lock held; released while connecting or closing. */
static void janitor_step(pool *p)
{
	nng_time now = nng_clock();
	dbconn *doomed = NULL;

	/* Idle connections that died (server restart, terminated backend) or
	 * outstayed idle_timeout while more than min_conns are open. */
	for (dbconn *c = p->idle.head, *next; c != NULL; c = next) {
		next = c->next;
		int dead = !conn_alive(c->pg);
		int surplus = (int)(p->idle.count + p->active.count) > p->min_conns &&
			      now - c->idle_since >= (nng_time)p->idle_timeout_ms;
		if (dead || surplus) {
			if (dead)
				p->broken++;
			pool_move(p, c, CONN_NONE);
			c->next = doomed;
			doomed = c;
		}
	}
	if (doomed != NULL) {
		nng_cv_wake(p->cv_conn);
		nng_mtx_unlock(p->mtx);
		close_chain(doomed);
		nng_mtx_lock(p->mtx);
	}

	/* Reconnect (with backoff while down) and keep min_conns open. */
	while (!p->stopping && (int)pool_size(p) < p->min_conns) {
		if (p->db_down && (p->probing || nng_clock() < p->next_probe))
			break;
		if (!janitor_connect(p))
			break;
	}
	/* min_conns may be 0: an outage is still probed, so that it ends. */
	if (p->db_down && !p->probing && !p->stopping && nng_clock() >= p->next_probe &&
	    (int)pool_size(p) < p->max_conns)
		(void)janitor_connect(p);
}

static void janitor_main(void *arg)
{
	pool *p = arg;
	nng_thread_set_name(NULL, "rpcqd:pool");
	nng_mtx_lock(p->mtx);
	while (!p->stopping) {
		janitor_step(p);
		if (p->stopping)
			break;
		/* While down, wake for the next probe; but not in a loop when
		 * that probe could not run (a caller's probe under way, every
		 * slot taken). */
		nng_time now = nng_clock();
		nng_time wake = now + JANITOR_TICK_MS;
		if (p->db_down && p->next_probe < wake)
			wake = p->next_probe > now ? p->next_probe : now + BACKOFF_MIN_MS;
		(void)nng_cv_until(p->cv_janitor, wake);
	}
	nng_mtx_unlock(p->mtx);
}

rpcq_status pool_create(pool **out, const pool_config *cfg, rpcq_error *err)
{
	rpcq_status result = RPCQ_RESOURCE_EXHAUSTED;
	const char *conninfo = cfg->conninfo ? cfg->conninfo : "";
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	if (opts == NULL) {
		char why[256];
		pool_message_line(why, sizeof(why), perr ? perr : "out of memory");
		PQfreemem(perr);
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "database connection string: %s", why);
	}
	PQconninfoFree(opts);

	int max = cfg->max_conns > 0 ? cfg->max_conns : 8;
	int min = cfg->min_conns >= 0 ? cfg->min_conns : 1;
	if (min > max)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "database pool: min connections (%d) exceeds max connections (%d)", min, max);

	pool *p = rpcq_calloc(1, sizeof(*p));
	if (p == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory creating the database pool");
	p->min_conns = min;
	p->max_conns = max;
	p->acquire_timeout_ms = cfg->acquire_timeout_ms > 0 ? cfg->acquire_timeout_ms : 5000;
	p->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 3000;
	p->idle_timeout_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : 60000;
	p->backoff_ms = BACKOFF_MIN_MS;
	p->conninfo = rpcq_strdup(conninfo);
	p->application_name = rpcq_strdup(cfg->application_name ? cfg->application_name : "rpcqd");
	if (p->conninfo == NULL || p->application_name == NULL)
		goto out;
	if (nng_mtx_alloc(&p->mtx) != 0 || nng_cv_alloc(&p->cv_conn, p->mtx) != 0 ||
	    nng_cv_alloc(&p->cv_janitor, p->mtx) != 0)
		goto out;

	/* The first connections are opened here, so that a server starts warm
	 * and a wrong password shows in its first log lines. */
	nng_mtx_lock(p->mtx);
	while ((int)pool_size(p) < p->min_conns && janitor_connect(p))
		;
	nng_mtx_unlock(p->mtx);

	if (nng_thread_create(&p->janitor, janitor_main, p) != 0) {
		p->janitor = NULL;
		goto out;
	}
	*out = p;
	return RPCQ_OK;
out:
	pool_destroy(p);
	return rpcq_error_set(err, result, "out of memory creating the database pool");
}

void pool_destroy(pool *p)
{
	if (p == NULL)
		return;
	if (p->janitor != NULL) {
		nng_mtx_lock(p->mtx);
		p->stopping = 1;
		nng_cv_wake(p->cv_janitor);
		nng_mtx_unlock(p->mtx);
		nng_thread_destroy(p->janitor);
	}
	assert(p->active.count == 0 && p->connecting.count == 0);
	while (p->idle.head != NULL) {
		dbconn *c = p->idle.head;
		pool_move(p, c, CONN_NONE);
		conn_free(c);
	}
	if (p->cv_janitor)
		nng_cv_free(p->cv_janitor);
	if (p->cv_conn)
		nng_cv_free(p->cv_conn);
	if (p->mtx)
		nng_mtx_free(p->mtx);
	rpcq_free(p->conninfo);
	rpcq_free(p->application_name);
	rpcq_free(p);
}

rpcq_status pool_acquire(pool *p, nng_time deadline, dbconn **out, rpcq_error *err)
{
	rpcq_status st;
	int waited = 0;
	if (deadline == 0)
		deadline = nng_clock() + (nng_time)p->acquire_timeout_ms;

	nng_mtx_lock(p->mtx);
	p->acquires++;
	for (;;) {
		/* 1. The most recently used idle connection, if it is still alive. */
		if (p->idle.head != NULL) {
			dbconn *c = p->idle.head;
			if (conn_alive(c->pg)) {
				pool_move(p, c, CONN_ACTIVE);
				c->deadline = deadline;
				c->broken = 0;
				nng_mtx_unlock(p->mtx);
				*out = c;
				return RPCQ_OK;
			}
			p->broken++;
			pool_move(p, c, CONN_NONE);
			nng_mtx_unlock(p->mtx);
			conn_free(c);
			nng_mtx_lock(p->mtx);
			continue;
		}
		/* Past the deadline only an idle connection was worth having. */
		if (nng_clock() >= deadline) {
			p->timeouts++;
			st = rpcq_error_set(err, RPCQ_DEADLINE_EXCEEDED,
					    "no database connection came free before the deadline (%u of %d in use)",
					    p->active.count, p->max_conns);
			break;
		}
		/* 2. Known outage: one caller probes, the others fail fast. */
		int probe = 0;
		if (p->db_down) {
			if (p->probing || (int)pool_size(p) >= p->max_conns) {
				p->unavailable++;
				st = rpcq_error_set(err, RPCQ_UNAVAILABLE, "database unavailable: %s", p->down_reason);
				break;
			}
			p->probing = probe = 1;
		}
		/* 3. Room for one more connection: open it for this caller. */
		if ((int)pool_size(p) < p->max_conns) {
			char reason[sizeof(p->down_reason)];
			int timed_out;
			nng_time until = nng_clock() + (nng_time)p->connect_timeout_ms;
			if (until > deadline)
				until = deadline;
			dbconn *c = open_conn(p, until, CONN_ACTIVE, reason, sizeof(reason), &timed_out);
			if (probe)
				p->probing = 0;
			if (c != NULL) {
				c->deadline = deadline;
				nng_mtx_unlock(p->mtx);
				*out = c;
				return RPCQ_OK;
			}
			if (timed_out && until == deadline) {
				/* The caller's time ran out, which says nothing of the database. */
				p->timeouts++;
				st = rpcq_error_set(err, RPCQ_DEADLINE_EXCEEDED,
						    "deadline expired while connecting to the database");
				break;
			}
			mark_down(p, reason);
			p->unavailable++;
			st = rpcq_error_set(err, RPCQ_UNAVAILABLE, "database unavailable: %s", reason);
			break;
		}
		/* 4. Wait for a release, a free slot or an outage, until the deadline. */
		if (!waited) {
			waited = 1;
			p->waits++;
		}
		p->waiting++;
		(void)nng_cv_until(p->cv_conn, deadline);
		p->waiting--;
	}
	nng_mtx_unlock(p->mtx);
	return st;
}

void pool_release(pool *p, dbconn *c)
{
	if (c == NULL)
		return;
	assert(c->owner == p && c->state == CONN_ACTIVE);
	int dirty = c->broken || PQstatus(c->pg) != CONNECTION_OK;
	if (!dirty && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		/* A handler that forgot to commit or roll back: closing the
		 * connection rolls back; reusing it would leak the transaction. */
		log_warn("database connection released inside a transaction: closed (rolled back)");
		dirty = 1;
	}
	c->deadline = 0;
	nng_mtx_lock(p->mtx);
	if (dirty) {
		p->broken++;
		pool_move(p, c, CONN_NONE);
	} else {
		pool_move(p, c, CONN_IDLE);
	}
	/* A connection or a slot came free. */
	nng_cv_wake(p->cv_conn);
	if (dirty)
		nng_cv_wake(p->cv_janitor);
	nng_mtx_unlock(p->mtx);
	if (dirty)
		conn_free(c);
}

void pool_get_stats(pool *p, pool_stats *out)
{
	nng_mtx_lock(p->mtx);
	out->total = p->idle.count + p->active.count;
	out->in_use = p->active.count;
	out->idle = p->idle.count;
	out->waiting = p->waiting;
	out->acquires = p->acquires;
	out->waits = p->waits;
	out->timeouts = p->timeouts;
	out->connect_failures = p->connect_failures;
	out->broken = p->broken;
	out->unavailable = p->unavailable;
	nng_mtx_unlock(p->mtx);
}

PGconn *dbconn_pg(dbconn *c)
{
	return c->pg;
}

void dbconn_discard(dbconn *c)
{
	c->broken = 1;
}

void dbconn_set_deadline(dbconn *c, nng_time deadline)
{
	c->deadline = deadline;
}

nng_time dbconn_deadline(const dbconn *c)
{
	return c->deadline;
}

int dbconn_is_broken(const dbconn *c)
{
	return c->broken;
}

void dbconn_set_in_doubt(dbconn *c, int in_doubt)
{
	c->in_doubt = in_doubt;
}

int dbconn_in_doubt(const dbconn *c)
{
	return c->in_doubt;
}

/* FNV-1a: short names, no adversary (statement names are compiled in). */
static unsigned name_hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

int dbconn_is_prepared(const dbconn *c, const char *name)
{
	if (c->prepared_cap == 0)
		return 0;
	unsigned mask = c->prepared_cap - 1;
	for (unsigned i = name_hash(name) & mask;; i = (i + 1) & mask) {
		if (c->prepared[i] == NULL)
			return 0;
		if (strcmp(c->prepared[i], name) == 0)
			return 1;
	}
}

/* Inserts an owned name into a table known to have room. */
static void prepared_put(char **table, unsigned cap, char *name)
{
	unsigned mask = cap - 1;
	unsigned i = name_hash(name) & mask;
	while (table[i] != NULL)
		i = (i + 1) & mask;
	table[i] = name;
}

int dbconn_set_prepared(dbconn *c, const char *name)
{
	if (dbconn_is_prepared(c, name))
		return 0;
	/* Kept at most half full, so probes stay short and always end. */
	if ((c->prepared_count + 1) * 2 > c->prepared_cap) {
		unsigned cap = c->prepared_cap ? c->prepared_cap * 2 : 32;
		char **table = rpcq_calloc(cap, sizeof(*table));
		if (table == NULL)
			return -1;
		for (unsigned i = 0; i < c->prepared_cap; i++)
			if (c->prepared[i] != NULL)
				prepared_put(table, cap, c->prepared[i]);
		rpcq_free(c->prepared);
		c->prepared = table;
		c->prepared_cap = cap;
	}
	char *copy = rpcq_strdup(name);
	if (copy == NULL)
		return -1;
	prepared_put(c->prepared, c->prepared_cap, copy);
	c->prepared_count++;
	return 0;
}
