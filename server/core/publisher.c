/*
 * The stream publisher of one rpcqd process (see publisher.h).
 *
 * Design. The persisted log (stream_topics, stream_log) is the truth; the
 * publisher only follows it. It keeps, per topic, the last seq it published
 * (in memory; at start-up the topics' current last_seq, so a process
 * publishes what is committed after it started). Each cycle asks which
 * topics changed, reads their new messages in seq order and sends each one
 * once on the PUB socket. Every rpcqd sharing the database does the same, so
 * a change made through any process is published by all of them, each on
 * its own sockets, whichever process made it.
 *
 * Which topics changed: stream_append stamps the topic row with the
 * appending transaction's xid. A cycle reads the topics whose xid is at
 * least the xmin of the previous cycle's snapshot: every transaction that had
 * not finished when the previous cycle looked has an xid at or above that
 * xmin, however long it ran, so no commit is missed and the topics that did
 * not change are not read. After a reconnect one cycle reads every topic.
 *
 * When: each committing append NOTIFYs rpcq_stream (once per transaction);
 * the thread waits on its connection's socket for a notification, at most
 * PUBLISHER_POLL_MS, then runs a cycle. A lost notification therefore delays
 * a message by at most one poll period and never loses it. Appends that
 * commit without a NOTIFY (IssueVouchers: see publisher_kick) kick this
 * process's thread instead, which runs a cycle and then sends one NOTIFY
 * for all the kicks since its previous cycle, for the other processes.
 *
 * The thread owns its libpq connection (not from the pool: a LISTEN belongs
 * to a session, and the publisher must not compete with calls for pooled
 * connections). libpq is used without blocking: every wait also watches a
 * pipe that publisher_destroy writes, so stopping never waits out a query.
 * If the database goes away the thread reconnects with backoff, re-LISTENs
 * and reads every topic once, publishing what it missed meanwhile.
 *
 * Sending never blocks: nng's PUB drops a message for a subscriber whose
 * queue is full, and the send itself is non-blocking. A subscriber that
 * stalls loses messages (it repairs them with Replay) and slows no one.
 *
 * Retention runs here too: every PUBLISHER_TRIM_MS (and once at start) one
 * process (the one that wins a transaction-level advisory lock) deletes
 * messages past the retention age or count and raises first_retained_seq.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/alloc.h>

#include "db/db.h"
#include "db/pool.h"
#include "frame.h"
#include "log.h"
#include "publisher.h"
#include "tls.h"
#include "topic_map.h"

/* Longest wait for a notification before looking anyway. */
#define PUBLISHER_POLL_MS 500
/* Retention trim period. */
#define PUBLISHER_TRIM_MS 60000
/* Longest a statement of the publisher may take before it is cancelled. */
#define PUBLISHER_QUERY_MS 30000
#define PUBLISHER_CONNECT_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* Topics read by one statement, messages per topic per statement, and the
 * payload bytes one statement returns (at least one message). */
#define FETCH_TOPICS 64
#define FETCH_PER_TOPIC 256
#define FETCH_BYTES (8L * 1024 * 1024)
/* Per-subscriber send queue of the PUB socket, in messages: bursts up to
 * this size reach a subscriber that reads steadily. */
#define PUB_SENDBUF 1024
/* How long publisher_create waits for the first look at the topics. */
#define PUBLISHER_START_WAIT_MS 5000
/* Two processes trimming at once would only wait on each other. */
#define TRIM_LOCK_KEY "7401001"

/* Per topic: the last seq published, and the last seq known to exist. */
struct cursor {
	uint64_t published;
	uint64_t target;
	int pending; /* target > published, listed for fetching */
};

struct publisher {
	nng_socket sock;
	int sock_open;
	nng_listener listeners[CONFIG_MAX_URLS];
	int nlisteners;
	nng_tls_config *tls;
	char *urls[CONFIG_MAX_URLS + 1];
	int nurls;
	char *conninfo;
	int retention_days;
	long retention_count;

	pthread_t thread;
	int thread_started;
	int wake[2]; /* publisher_destroy and publisher_kick write to wake[1] */
	atomic_int stopping;
	atomic_int kicked; /* publisher_kick since the last cycle began */

	/* The thread's own, below. */
	PGconn *pg;
	unsigned prepared; /* PREPARED_* statements prepared on pg */
	topic_map *cursors;
	char xmin[32];	 /* previous cycle's snapshot xmin; "0": read every topic */
	int initialized; /* cursors hold the start-up last_seqs */
	nng_time next_trim;
	int backoff_ms;
	int outage_logged;
	char **pending; /* topics with target > published */
	size_t npending, cap_pending;
	atomic_ullong published;
	uint64_t dropped;
	atomic_uint subscribers; /* SUB connections */
	atomic_int started;	 /* the first cycle found the topics, or the database was not there */

	/* In-process listeners (publisher_add_listener), under listeners_lock. */
	pthread_mutex_t listeners_lock;
	struct {
		publisher_listener_fn fn;
		void *arg;
	} listeners_[PUBLISHER_MAX_LISTENERS];
	int nlisteners_;
};

/* Outcome of a wait: ready, timed out, or the publisher is stopping. */
/* Bits of publisher.prepared. */
enum { PREPARED_CHANGED = 1, PREPARED_FETCH = 2 };

enum { W_KICK = 2, W_READY = 1, W_TIMEOUT = 0, W_STOP = -1 };

/* Waits until fd has events, `until` passes, or publisher_destroy wakes us;
 * with `kickable`, a publisher_kick also ends the wait (W_KICK). Kicks that
 * come while a statement runs wait for the cycle after it. */
static int wait_fd_for(publisher *p, int fd, short events, nng_time until, int kickable)
{
	for (;;) {
		if (atomic_load(&p->stopping))
			return W_STOP;
		if (kickable && atomic_load(&p->kicked))
			return W_KICK;
		nng_time now = nng_clock();
		if (now >= until)
			return W_TIMEOUT;
		struct pollfd pfd[2] = {{.fd = p->wake[0], .events = POLLIN}, {.fd = fd, .events = events}};
		int r = poll(pfd, fd >= 0 ? 2 : 1, (int)(until - now));
		if (r < 0 && errno != EINTR)
			return W_STOP;
		if (pfd[0].revents) {
			/* A stop or a kick: the flags say which; empty the pipe. */
			char buf[64];
			while (read(p->wake[0], buf, sizeof(buf)) > 0)
				;
			continue;
		}
		if (r > 0 && pfd[1].revents)
			return W_READY;
	}
}

static int wait_fd(publisher *p, int fd, short events, nng_time until)
{
	return wait_fd_for(p, fd, events, until, 0);
}

static void db_drop(publisher *p, const char *why)
{
	if (p->pg == NULL)
		return;
	if (!atomic_load(&p->stopping)) {
		char line[512];
		pool_message_line(line, sizeof(line), why ? why : PQerrorMessage(p->pg));
		log_warn("stream publisher: lost its database connection (%s); reconnecting", line);
	}
	PQfinish(p->pg);
	p->pg = NULL;
	p->prepared = 0;
}

/* Runs one statement without blocking the thread past PUBLISHER_QUERY_MS or
 * a stop. Returns the result of a successful statement (PQclear it), or NULL
 * after logging why; on a connection failure the connection is dropped. */
static PGresult *collect_result(publisher *p);

static PGresult *query(publisher *p, const char *sql, int nparams, const char *const *values, int binary)
{
	if (!PQsendQueryParams(p->pg, sql, nparams, NULL, values, NULL, NULL, binary)) {
		db_drop(p, NULL);
		return NULL;
	}
	return collect_result(p);
}

/* The same for the statements of every cycle, prepared once per connection
 * (bit: the statement's bit in p->prepared): parsing and planning them on
 * every cycle was half of the publisher's database time, with a cycle per
 * committed issue. */
static PGresult *query_prepared(publisher *p, unsigned bit, const char *name, const char *sql, int nparams,
				const char *const *values, int binary)
{
	if (!(p->prepared & bit)) {
		if (!PQsendPrepare(p->pg, name, sql, nparams, NULL)) {
			db_drop(p, NULL);
			return NULL;
		}
		PGresult *res = collect_result(p);
		if (res == NULL)
			return NULL;
		PQclear(res);
		p->prepared |= bit;
	}
	if (!PQsendQueryPrepared(p->pg, name, nparams, values, NULL, NULL, binary)) {
		db_drop(p, NULL);
		return NULL;
	}
	return collect_result(p);
}

/* Waits for the statement sent and returns its result (see query). */
static PGresult *collect_result(publisher *p)
{
	nng_time until = nng_clock() + PUBLISHER_QUERY_MS;
	for (;;) {
		int f = PQflush(p->pg);
		if (f < 0) {
			db_drop(p, NULL);
			return NULL;
		}
		if (f == 0 && !PQisBusy(p->pg))
			break;
		int w = wait_fd(p, PQsocket(p->pg), f ? POLLIN | POLLOUT : POLLIN, until);
		if (w != W_READY) {
			/* Cancel, then drop the connection: waiting for the
			 * cancelled statement could take as long again. */
			db_drop(p, w == W_STOP ? "stopping" : "a statement timed out");
			return NULL;
		}
		if (!PQconsumeInput(p->pg)) {
			db_drop(p, NULL);
			return NULL;
		}
	}
	PGresult *res = NULL, *r;
	while ((r = PQgetResult(p->pg)) != NULL) {
		if (res == NULL)
			res = r;
		else
			PQclear(r);
	}
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	if (PQstatus(p->pg) != CONNECTION_OK) {
		PQclear(res);
		db_drop(p, NULL);
		return NULL;
	}
	char line[512];
	pool_message_line(line, sizeof(line), res ? PQresultErrorMessage(res) : PQerrorMessage(p->pg));
	log_error("stream publisher: statement failed: %s", line);
	PQclear(res);
	return NULL;
}

/* A command whose result is not needed; 0 on success. */
static int command(publisher *p, const char *sql)
{
	PGresult *res = query(p, sql, 0, NULL, 0);
	PQclear(res);
	return res ? 0 : -1;
}

static void db_connect(publisher *p)
{
	const char *const keys[] = {"fallback_application_name", "dbname", NULL};
	const char *const vals[] = {"rpcqd-publisher", p->conninfo, NULL};
	PGconn *conn = PQconnectStartParams(keys, vals, 1);
	if (conn == NULL)
		return;
	nng_time until = nng_clock() + PUBLISHER_CONNECT_MS;
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	while (PQstatus(conn) != CONNECTION_BAD && ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
		int w = wait_fd(p, PQsocket(conn), ps == PGRES_POLLING_READING ? POLLIN : POLLOUT, until);
		if (w != W_READY)
			break;
		ps = PQconnectPoll(conn);
	}
	if (PQstatus(conn) != CONNECTION_OK || PQsetnonblocking(conn, 1) != 0) {
		if (!p->outage_logged && !atomic_load(&p->stopping)) {
			char line[512];
			pool_message_line(line, sizeof(line), PQerrorMessage(conn));
			log_warn("stream publisher: cannot connect to the database (%s); retrying", line);
			p->outage_logged = 1;
		}
		PQfinish(conn);
		return;
	}
	p->pg = conn;
	p->prepared = 0;
	if (command(p, "LISTEN rpcq_stream") != 0) {
		PQfinish(p->pg);
		p->pg = NULL;
		return;
	}
	/* Read every topic once: whatever happened while disconnected. */
	snprintf(p->xmin, sizeof(p->xmin), "0");
	if (p->outage_logged)
		log_info("stream publisher: connected to the database again");
	p->outage_logged = 0;
	p->backoff_ms = 0;
}

static int pending_add(publisher *p, const char *topic)
{
	if (p->npending == p->cap_pending) {
		size_t cap = p->cap_pending ? p->cap_pending * 2 : 64;
		char **n = rpcq_realloc(p->pending, cap * sizeof(*n));
		if (n == NULL)
			return -1;
		p->pending = n;
		p->cap_pending = cap;
	}
	p->pending[p->npending++] = (char *)topic;
	return 0;
}

static const char sql_changed[] = "SELECT x.xmin::text, s.topic, s.last_seq"
				  " FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) x"
				  " LEFT JOIN stream_topics s ON s.xid >= $1::xid8";

/* Reads the topics changed since the previous cycle and lists those with
 * messages not yet published. 0 on success. */
static int find_changed(publisher *p)
{
	const char *values[1] = {p->xmin};
	PGresult *res = query_prepared(p, PREPARED_CHANGED, "publisher_changed", sql_changed, 1, values, 0);
	if (res == NULL)
		return -1;
	int result = -1;
	int n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		if (PQgetisnull(res, i, 1))
			continue;
		const char *topic = PQgetvalue(res, i, 1);
		uint64_t last = strtoull(PQgetvalue(res, i, 2), NULL, 10);
		int inserted;
		struct cursor *c = topic_map_put(p->cursors, topic, strlen(topic), &inserted);
		if (c == NULL) {
			log_error("stream publisher: out of memory tracking topic %s", topic);
			goto out;
		}
		/* A topic met at start-up is published from its current end; one
		 * that appeared later, from its beginning. */
		if (inserted && !p->initialized)
			c->published = last;
		/* A log that went backwards was recreated: follow it. */
		if (last < c->published)
			c->published = last;
		c->target = last;
		if (c->target > c->published && !c->pending) {
			if (pending_add(p, topic_map_key(p->cursors, c)) != 0)
				goto out;
			c->pending = 1;
		}
	}
	if (n > 0) {
		const char *x = PQgetvalue(res, 0, 0);
		if (strlen(x) < sizeof(p->xmin))
			memcpy(p->xmin, x, strlen(x) + 1);
	}
	p->initialized = 1;
	result = 0;
out:
	PQclear(res);
	return result;
}

static const char sql_fetch[] =
	"SELECT topic, seq, type, payload, (extract(epoch FROM published_at) * 1000)::int8, total FROM ("
	" SELECT l.topic, l.seq, l.type, l.payload, l.published_at,"
	" sum(octet_length(l.payload)) OVER (ORDER BY l.topic, l.seq) AS run, count(*) OVER () AS total"
	" FROM unnest($1::text[], $2::int8[]) AS c(topic, after)"
	" CROSS JOIN LATERAL (SELECT s.topic, s.seq, s.type, s.payload, s.published_at FROM stream_log s"
	" WHERE s.topic = c.topic AND s.seq > c.after ORDER BY s.seq LIMIT $3) l) v"
	" WHERE run - octet_length(payload) < $4 ORDER BY topic, seq";

/* Sends one message on the PUB socket. Never blocks: a full queue drops it
 * for that subscriber inside nng, and a failed send drops it for everyone
 * (subscribers repair either loss with Replay). */
static void publish(publisher *p, const char *topic, uint64_t seq, const char *type, const uint8_t *payload, size_t len,
		    int64_t ms)
{
	Rpcq__StreamMessage m = RPCQ__STREAM_MESSAGE__INIT;
	m.topic = (char *)topic;
	m.seq = seq;
	m.type = (char *)type;
	m.payload.data = (uint8_t *)payload;
	m.payload.len = len;
	m.published_at_ms = ms;
	pthread_mutex_lock(&p->listeners_lock);
	for (int i = 0; i < p->nlisteners_; i++)
		p->listeners_[i].fn(p->listeners_[i].arg, &m);
	pthread_mutex_unlock(&p->listeners_lock);
	nng_msg *msg;
	if (nng_msg_alloc(&msg, frame_size(&m)) != 0) {
		p->dropped++;
		return;
	}
	frame_encode(&m, nng_msg_body(msg));
	if (nng_sendmsg(p->sock, msg, NNG_FLAG_NONBLOCK) != 0) {
		nng_msg_free(msg);
		p->dropped++;
		return;
	}
	atomic_fetch_add_explicit(&p->published, 1, memory_order_relaxed);
}

/* Publishes the messages of up to FETCH_TOPICS pending topics, read with one
 * statement, and takes the topics that have caught up off the list.
 * 0 on success. */
static int fetch_batch(publisher *p)
{
	size_t k = p->npending < FETCH_TOPICS ? p->npending : FETCH_TOPICS;
	char **batch = p->pending + p->npending - k;
	db_array topic_list = {0}, after_list = {0};
	PGresult *res = NULL;
	int result = -1;
	char num[32];
	for (size_t i = 0; i < k; i++) {
		struct cursor *c = topic_map_get(p->cursors, batch[i], strlen(batch[i]));
		c->target = c->target > c->published ? c->target : c->published;
		snprintf(num, sizeof(num), "%llu", (unsigned long long)c->published);
		db_array_text(&topic_list, batch[i]);
		db_array_text(&after_list, num);
	}
	const char *topics = db_array_end(&topic_list), *afters = db_array_end(&after_list);
	if (topics == NULL || afters == NULL)
		goto out;
	char limit[16], bytes[24];
	snprintf(limit, sizeof(limit), "%d", FETCH_PER_TOPIC);
	snprintf(bytes, sizeof(bytes), "%ld", FETCH_BYTES);
	const char *values[4] = {topics, afters, limit, bytes};
	res = query_prepared(p, PREPARED_FETCH, "publisher_fetch", sql_fetch, 4, values, 1);
	if (res == NULL)
		goto out;

	int n = PQntuples(res);
	uint64_t total = n > 0 ? (uint64_t)db_int8(res, 0, 5) : 0;
	int truncated = (uint64_t)n < total;
	struct cursor *c = NULL;
	const char *ctopic = NULL;
	uint64_t fetched = 0;
	for (int i = 0; i <= n; i++) {
		const char *topic = i < n ? PQgetvalue(res, i, 0) : NULL;
		if (ctopic != NULL && (topic == NULL || strcmp(topic, ctopic) != 0)) {
			/* Topic ctopic is done for this statement. */
			if (!truncated && fetched < FETCH_PER_TOPIC && c->published < c->target) {
				log_info("stream publisher: %s seq %llu..%llu were trimmed before being published",
					 ctopic, (unsigned long long)c->published + 1, (unsigned long long)c->target);
				c->published = c->target;
			}
			ctopic = NULL;
		}
		if (topic == NULL)
			break;
		if (ctopic == NULL) {
			ctopic = topic;
			c = topic_map_get(p->cursors, topic, strlen(topic));
			fetched = 0;
		}
		fetched++;
		uint64_t seq = (uint64_t)db_int8(res, i, 1);
		if (c == NULL || seq <= c->published)
			continue;
		publish(p, topic, seq, PQgetvalue(res, i, 2), (const uint8_t *)PQgetvalue(res, i, 3),
			(size_t)PQgetlength(res, i, 3), db_int8(res, i, 4));
		c->published = seq;
	}
	/* Topics that returned nothing at all in a complete result: their
	 * missing messages are trimmed (the loop above saw only topics with
	 * rows). Then drop the caught-up topics from the list. */
	size_t keep = 0;
	for (size_t i = 0; i < k; i++) {
		c = topic_map_get(p->cursors, batch[i], strlen(batch[i]));
		if (!truncated && c->published < c->target) {
			int had_rows = 0;
			for (int r = 0; r < n && !had_rows; r++)
				had_rows = strcmp(PQgetvalue(res, r, 0), batch[i]) == 0;
			if (!had_rows) {
				log_info("stream publisher: %s seq %llu..%llu were trimmed before being published",
					 batch[i], (unsigned long long)c->published + 1, (unsigned long long)c->target);
				c->published = c->target;
			}
		}
		if (c->published >= c->target)
			c->pending = 0;
		else
			batch[keep++] = batch[i];
	}
	p->npending -= k - keep;
	result = 0;
out:
	PQclear(res);
	db_array_free(&topic_list);
	db_array_free(&after_list);
	return result;
}

static void publish_pending(publisher *p)
{
	while (p->npending > 0 && p->pg != NULL && !atomic_load(&p->stopping)) {
		if (fetch_batch(p) != 0)
			return;
	}
}

static const char sql_trim_count[] =
	"WITH t AS (SELECT topic, last_seq - $1::int8 + 1 AS keep FROM stream_topics"
	" WHERE last_seq - $1::int8 + 1 > first_retained_seq FOR UPDATE SKIP LOCKED),"
	" u AS (UPDATE stream_topics s SET first_retained_seq = t.keep FROM t WHERE s.topic = t.topic"
	" RETURNING s.topic, s.first_retained_seq)"
	" DELETE FROM stream_log l USING u WHERE l.topic = u.topic AND l.seq < u.first_retained_seq";

static const char sql_trim_age[] =
	"WITH c AS (SELECT topic, max(seq) + 1 AS keep FROM stream_log"
	" WHERE published_at < now() - make_interval(days => $1::int) GROUP BY topic),"
	" t AS (SELECT s.topic, c.keep FROM stream_topics s JOIN c ON c.topic = s.topic"
	" WHERE c.keep > s.first_retained_seq FOR UPDATE OF s SKIP LOCKED),"
	" u AS (UPDATE stream_topics s SET first_retained_seq = t.keep FROM t WHERE s.topic = t.topic"
	" RETURNING s.topic, s.first_retained_seq)"
	" DELETE FROM stream_log l USING u WHERE l.topic = u.topic AND l.seq < u.first_retained_seq";

/* Retention: deletes messages past the age or count limit and raises the
 * topics' first_retained_seq, in one transaction, by one process at a time.
 * Topic rows locked by appends in progress are skipped (SKIP LOCKED) and
 * trimmed next time, so trimming never waits for an append nor deadlocks
 * with one. */
static void trim(publisher *p)
{
	if (p->retention_count <= 0 && p->retention_days <= 0)
		return;
	if (command(p, "BEGIN") != 0)
		return;
	PGresult *res = query(p, "SELECT pg_try_advisory_xact_lock(" TRIM_LOCK_KEY ")", 0, NULL, 0);
	if (res == NULL || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		goto out;
	long deleted = 0;
	char arg[24];
	if (p->retention_count > 0) {
		snprintf(arg, sizeof(arg), "%ld", p->retention_count);
		const char *values[1] = {arg};
		PQclear(res);
		if ((res = query(p, sql_trim_count, 1, values, 0)) == NULL)
			goto out;
		deleted += strtol(PQcmdTuples(res), NULL, 10);
	}
	if (p->retention_days > 0) {
		snprintf(arg, sizeof(arg), "%d", p->retention_days);
		const char *values[1] = {arg};
		PQclear(res);
		if ((res = query(p, sql_trim_age, 1, values, 0)) == NULL)
			goto out;
		deleted += strtol(PQcmdTuples(res), NULL, 10);
	}
	PQclear(res);
	res = NULL;
	if (command(p, "COMMIT") == 0 && deleted > 0)
		log_info("stream retention: trimmed %ld message(s)", deleted);
	return;
out:
	PQclear(res);
	if (p->pg != NULL && command(p, "ROLLBACK") != 0)
		db_drop(p, "rollback failed");
}

/* Drops the notifications received so far: 1 if one came from another
 * session than the publisher's own. */
static int foreign_notification(publisher *p)
{
	int own = PQbackendPID(p->pg), foreign = 0;
	PGnotify *nt;
	while ((nt = PQnotifies(p->pg)) != NULL) {
		foreign |= nt->be_pid != own;
		PQfreemem(nt);
	}
	return foreign;
}

static void *run(void *arg)
{
	publisher *p = arg;
	while (!atomic_load(&p->stopping)) {
		if (p->pg == NULL) {
			db_connect(p);
			if (p->pg == NULL) {
				atomic_store(&p->started, 1);
				p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
				if (p->backoff_ms > BACKOFF_MAX_MS)
					p->backoff_ms = BACKOFF_MAX_MS;
				if (wait_fd(p, -1, 0, nng_clock() + (nng_time)p->backoff_ms) == W_STOP)
					break;
				continue;
			}
		}
		/* Notifications only say "look": drop them before looking, so
		 * that one arriving during the cycle triggers another. */
		PGnotify *nt;
		while ((nt = PQnotifies(p->pg)) != NULL)
			PQfreemem(nt);
		int kicked = atomic_exchange(&p->kicked, 0);
		if (find_changed(p) == 0)
			publish_pending(p);
		/* A commit of this process appended without notifying (see
		 * publisher_kick): now that this cycle has read it, wake the
		 * other processes' publishers, once for every kick since the
		 * last cycle. */
		if (kicked && p->pg != NULL && command(p, "NOTIFY rpcq_stream") != 0)
			atomic_store(&p->kicked, 1); /* the connection went: notify after the reconnect */
		atomic_store(&p->started, 1);
		if (p->pg != NULL && nng_clock() >= p->next_trim) {
			trim(p);
			p->next_trim = nng_clock() + PUBLISHER_TRIM_MS;
		}
		if (p->pg == NULL)
			continue;
		/* Until a reason to look again: another session's notification
		 * (libpq may have read one already, during the cycle's
		 * statements: those come first), a kick, or the poll. Our own
		 * NOTIFY comes back to our LISTEN; that one is no reason (this
		 * cycle read what it announces). */
		nng_time until = nng_clock() + PUBLISHER_POLL_MS;
		int w = W_READY;
		while (!foreign_notification(p)) {
			if ((w = wait_fd_for(p, PQsocket(p->pg), POLLIN, until, 1)) != W_READY)
				break;
			if (!PQconsumeInput(p->pg)) {
				db_drop(p, NULL);
				break;
			}
		}
		if (w == W_STOP)
			break;
	}
	return NULL;
}

/* The URL subscribers dial for listener l bound to url: the port the
 * system chose when url asked for port 0. NULL when out of memory. */
static char *resolve_url(const char *url, nng_listener l)
{
	int port;
	nng_url *u;
	if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0 || nng_url_parse(&u, url) != 0)
		return rpcq_strdup(url);
	size_t n = strlen(url) + 16;
	char *s = rpcq_alloc(n);
	if (s != NULL) {
		int v6 = strchr(u->u_hostname, ':') != NULL;
		snprintf(s, n, "%s://%s%s%s:%d%s", u->u_scheme, v6 ? "[" : "", u->u_hostname, v6 ? "]" : "", port,
			 u->u_path ? u->u_path : "");
	}
	nng_url_free(u);
	return s;
}

static void pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	(void)pipe;
	publisher *p = arg;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&p->subscribers, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&p->subscribers, 1);
}

static rpcq_status open_socket(publisher *p, const rpcq_config *cfg, rpcq_error *err)
{
	int rv = nng_pub0_open(&p->sock);
	if (rv != 0)
		return rpcq_error_set(err, RPCQ_INTERNAL, "cannot open the publish socket: %s", nng_strerror(rv));
	p->sock_open = 1;
	nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, pipe_event, p);
	nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, pipe_event, p);
	/* A PUB socket receives nothing, so any frame is refused. */
	nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, 1024);
	nng_socket_set_int(p->sock, NNG_OPT_SENDBUF, PUB_SENDBUF);
	int client_certs = cfg->publish_client_ca && *cfg->publish_client_ca;
	for (int i = 0; i < cfg->npublish; i++) {
		const char *url = cfg->publish[i];
		nng_listener l;
		/* Client certificates are all a subscriber can show (nng's pub/sub
		 * carries no key): a listener without TLS would let anyone in. */
		if (client_certs && !tls_url(url))
			return rpcq_error_set(
				err, RPCQ_INVALID_ARGUMENT,
				"--publish-client-ca is set, but publish URL \"%s\" is not TLS (tls+tcp:// or "
				"wss://), so any subscriber could connect to it",
				url);
		if ((rv = nng_listener_create(&l, p->sock, url)) != 0)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "publish URL \"%s\": %s", url,
					      nng_strerror(rv));
		rpcq_status st;
		if (tls_url(url) &&
		    (st = tls_listener_setup(l, url, cfg, cfg->publish_client_ca, &p->tls, err)) != RPCQ_OK) {
			nng_listener_close(l);
			return st;
		}
		nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, 1024);
		if ((rv = nng_listener_start(l, 0)) != 0) {
			nng_listener_close(l);
			return rpcq_error_set(err, RPCQ_UNAVAILABLE, "cannot publish on %s: %s", url, nng_strerror(rv));
		}
		p->listeners[p->nlisteners++] = l;
		if ((p->urls[p->nurls] = resolve_url(url, l)) == NULL)
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		log_info("publishing streams on %s", p->urls[p->nurls]);
		p->nurls++;
	}
	return RPCQ_OK;
}

rpcq_status publisher_create(publisher **out, const rpcq_config *cfg, rpcq_error *err)
{
	rpcq_status st = RPCQ_RESOURCE_EXHAUSTED;
	publisher *p = rpcq_calloc(1, sizeof(*p));
	if (p == NULL)
		return rpcq_error_set(err, st, "out of memory creating the stream publisher");
	p->wake[0] = p->wake[1] = -1;
	pthread_mutex_init(&p->listeners_lock, NULL);
	p->retention_days = cfg->stream_retention_days;
	p->retention_count = cfg->stream_retention_count;
	snprintf(p->xmin, sizeof(p->xmin), "0");
	p->conninfo = rpcq_strdup(cfg->database ? cfg->database : "");
	p->cursors = topic_map_create(sizeof(struct cursor));
	if (p->conninfo == NULL || p->cursors == NULL) {
		rpcq_error_set(err, st, "out of memory creating the stream publisher");
		goto fail;
	}
	if (pipe(p->wake) != 0 || fcntl(p->wake[1], F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(p->wake[0], F_SETFL, O_NONBLOCK) != 0 || fcntl(p->wake[0], F_SETFD, FD_CLOEXEC) != 0 ||
	    fcntl(p->wake[1], F_SETFD, FD_CLOEXEC) != 0) {
		st = rpcq_error_set(err, RPCQ_INTERNAL, "stream publisher: pipe: %s", strerror(errno));
		goto fail;
	}
	if ((st = open_socket(p, cfg, err)) != RPCQ_OK)
		goto fail;
	int rv = pthread_create(&p->thread, NULL, run, p);
	if (rv != 0) {
		st = rpcq_error_set(err, RPCQ_INTERNAL, "cannot start the stream publisher thread: %s", strerror(rv));
		goto fail;
	}
	p->thread_started = 1;
	/* Topics that exist when the publisher first looks are published from
	 * their end, later ones from their beginning: let that first look
	 * happen before this process serves (and its services append), or the
	 * first messages of a topic created meanwhile would count as history.
	 * Bounded: a database that is not there does not hold up the start. */
	nng_time until = nng_clock() + PUBLISHER_START_WAIT_MS;
	while (!atomic_load(&p->started) && nng_clock() < until)
		nng_msleep(2);
	*out = p;
	return RPCQ_OK;
fail:
	publisher_destroy(p);
	return st;
}

void publisher_kick(publisher *p)
{
	if (p == NULL || !p->thread_started)
		return;
	if (atomic_exchange(&p->kicked, 1))
		return; /* a wake-up is on its way already */
	char b = 0;
	if (write(p->wake[1], &b, 1) < 0 && errno != EAGAIN)
		log_error("stream publisher: cannot wake the thread: %s", strerror(errno));
}

void publisher_destroy(publisher *p)
{
	if (p == NULL)
		return;
	atomic_store(&p->stopping, 1);
	if (p->thread_started) {
		char b = 1;
		if (write(p->wake[1], &b, 1) < 0 && errno != EAGAIN)
			log_error("stream publisher: cannot wake the thread: %s", strerror(errno));
		pthread_join(p->thread, NULL);
	}
	if (p->sock_open)
		nng_close(p->sock);
	if (p->tls)
		nng_tls_config_free(p->tls);
	if (p->pg)
		PQfinish(p->pg);
	uint64_t published = atomic_load(&p->published);
	if (published || p->dropped)
		log_info("stream publisher: %llu message(s) published, %llu dropped", (unsigned long long)published,
			 (unsigned long long)p->dropped);
	for (int i = 0; i < p->nurls; i++)
		rpcq_free(p->urls[i]);
	for (int i = 0; i < 2; i++) {
		if (p->wake[i] >= 0)
			close(p->wake[i]);
	}
	topic_map_destroy(p->cursors);
	rpcq_free(p->pending);
	rpcq_free(p->conninfo);
	pthread_mutex_destroy(&p->listeners_lock);
	rpcq_free(p);
}

int publisher_add_listener(publisher *p, publisher_listener_fn fn, void *arg)
{
	int rv = -1;
	pthread_mutex_lock(&p->listeners_lock);
	if (p->nlisteners_ < PUBLISHER_MAX_LISTENERS) {
		p->listeners_[p->nlisteners_].fn = fn;
		p->listeners_[p->nlisteners_].arg = arg;
		p->nlisteners_++;
		rv = 0;
	}
	pthread_mutex_unlock(&p->listeners_lock);
	return rv;
}

void publisher_remove_listener(publisher *p, publisher_listener_fn fn, void *arg)
{
	pthread_mutex_lock(&p->listeners_lock);
	for (int i = 0; i < p->nlisteners_; i++) {
		if (p->listeners_[i].fn == fn && p->listeners_[i].arg == arg) {
			p->listeners_[i] = p->listeners_[--p->nlisteners_];
			break;
		}
	}
	pthread_mutex_unlock(&p->listeners_lock);
}

void publisher_get_stats(publisher *p, uint64_t *published, unsigned *subscribers)
{
	*published = atomic_load_explicit(&p->published, memory_order_relaxed);
	*subscribers = atomic_load_explicit(&p->subscribers, memory_order_relaxed);
}

const char *const *publisher_urls(publisher *p, int *n)
{
	*n = p->nurls;
	return (const char *const *)p->urls;
}
