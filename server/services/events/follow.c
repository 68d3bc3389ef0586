/*
 * The in-memory index against the change log. Every rpcqd loads the stored
 * events at start (one REPEATABLE READ snapshot of the events table and the
 * events.changed seq it corresponds to), then applies each events.changed
 * message this process's publisher sees, in seq order: the index converges
 * on the database whichever process made the change. A jump in seq (a
 * message the publisher delivered before the load finished, or after a
 * failed Replay) is filled with rpcq.Streams/Replay through call_run on a
 * worker; messages trimmed away before they were applied make it load again.
 *
 * A fetch of this process also applies its own changes right after its
 * transaction commits (events_follow_apply_own: it has the new values in
 * hand), so that Sync need not wait for them to come back through the log.
 * Both paths apply by the same rule under st->lock: the change of seq
 * applied + 1 is applied and becomes `applied`; one at or below `applied`
 * is ignored (it came the other way first); a later one is a gap, which
 * the log fills. So each seq is applied once and in order, whichever path
 * brings it first, and the index is the log's state up to `applied`. The
 * index also ignores a change not newer than the one it holds for that
 * event (event_index_upsert_newer), which keeps it so under any order.
 *
 * Threads: the publisher thread delivers (events_on_message); one job at a
 * time on the worker pool loads or catches up; searches only read the index.
 * st->lock guards the follower's state, never held while a search runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "call_internal.h"
#include "db/db.h"
#include "db/pool.h"
#include "events_service.h"
#include "log.h"
#include "publisher.h"
#include "sql.h"

#define REPLAY_DEADLINE_MS 10000
#define RETRY_MS 1000
/* events_follow_apply_own takes st->lock for this many records at a time,
 * so that the publisher's listener never waits long for it. */
#define OWN_CHUNK 512

static void follow_run(server_job *job, arena *ar);

static void copy_field(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

int events_rec_of(const Rpcq__Events__Event *m, event_rec *r)
{
	memset(r, 0, sizeof(*r));
	if (strlen(m->id) >= sizeof(r->id) || strlen(m->starts_at) >= sizeof(r->starts_at) ||
	    strlen(m->ends_at) >= sizeof(r->ends_at) || strlen(m->sell_from) >= sizeof(r->sell_from) ||
	    strlen(m->sell_to) >= sizeof(r->sell_to) || strlen(m->min_price) >= sizeof(r->min_price) ||
	    strlen(m->max_price) >= sizeof(r->max_price))
		return -1;
	copy_field(r->id, sizeof(r->id), m->id);
	copy_field(r->starts_at, sizeof(r->starts_at), m->starts_at);
	copy_field(r->ends_at, sizeof(r->ends_at), m->ends_at);
	copy_field(r->sell_from, sizeof(r->sell_from), m->sell_from);
	copy_field(r->sell_to, sizeof(r->sell_to), m->sell_to);
	copy_field(r->min_price, sizeof(r->min_price), m->min_price);
	copy_field(r->max_price, sizeof(r->max_price), m->max_price);
	r->sold_out = m->sold_out;
	r->seq = m->seq;
	r->base_id = m->base_id;
	r->event_id = m->event_id;
	r->title = m->title;
	return 0;
}

/* A search copies every event it returns, under the index's read lock:
 * one arena block per event (the message, then its strings), the fixed-size
 * fields copied whole, so that a twenty-event reply costs twenty
 * allocations rather than two hundred (perf: the copies were a quarter of
 * a /search request's CPU). */
Rpcq__Events__Event *events_message_of(arena *ar, const event_rec *r)
{
	size_t nb = strlen(r->base_id) + 1, ne = strlen(r->event_id) + 1, nt = strlen(r->title) + 1;
	size_t fixed = sizeof(r->id) + sizeof(r->starts_at) + sizeof(r->ends_at) + sizeof(r->min_price) +
		       sizeof(r->max_price) + sizeof(r->sell_from) + sizeof(r->sell_to);
	Rpcq__Events__Event *m = arena_alloc(ar, sizeof(*m) + fixed + nb + ne + nt);
	if (m == NULL)
		return NULL;
	rpcq__events__event__init(m);
	char *p = (char *)(m + 1);
#define COPY_FIXED(field)                              \
	do {                                           \
		memcpy(p, r->field, sizeof(r->field)); \
		m->field = p;                          \
		p += sizeof(r->field);                 \
	} while (0)
	COPY_FIXED(id);
	COPY_FIXED(starts_at);
	COPY_FIXED(ends_at);
	COPY_FIXED(min_price);
	COPY_FIXED(max_price);
	COPY_FIXED(sell_from);
	COPY_FIXED(sell_to);
#undef COPY_FIXED
	memcpy(p, r->base_id, nb);
	m->base_id = p;
	p += nb;
	memcpy(p, r->event_id, ne);
	m->event_id = p;
	p += ne;
	memcpy(p, r->title, nt);
	m->title = p;
	m->sold_out = r->sold_out;
	m->seq = r->seq;
	return m;
}

/* Applies one message of seq (the next) to the index; st->lock held. */
static void apply_locked(events_state *st, uint64_t seq, const uint8_t *payload, size_t len)
{
	Rpcq__Events__EventChanged *ch = rpcq__events__event_changed__unpack(NULL, len, payload);
	event_rec r;
	if (ch == NULL || ch->event == NULL || events_rec_of(ch->event, &r) != 0) {
		log_error("events index: change %llu does not decode; skipped", (unsigned long long)seq);
	} else {
		r.seq = seq;
		if (event_index_upsert_newer(st->index, &r) < 0)
			log_error("events index: out of memory applying change %llu", (unsigned long long)seq);
	}
	if (ch)
		rpcq__events__event_changed__free_unpacked(ch, NULL);
	st->applied = seq;
	nng_cv_wake(st->applied_cv);
}

/* Queues the load or catch-up job unless one is under way; st->lock held. */
static void catch_up_locked(events_state *st)
{
	if (st->catching_up || st->stopping)
		return;
	st->catching_up = 1;
	st->job.run = follow_run;
	if (server_submit(st->srv, &st->job) != 0)
		st->catching_up = 0; /* the workers have stopped */
}

static void retry_cb(void *arg)
{
	events_state *st = arg;
	if (nng_aio_result(st->retry) != 0)
		return;
	nng_mtx_lock(st->lock);
	catch_up_locked(st);
	nng_mtx_unlock(st->lock);
}

/* The publisher's listener: the live part of the log. Never blocks. */
static void on_message(void *arg, const Rpcq__StreamMessage *m)
{
	events_state *st = arg;
	if (strcmp(m->topic, EVENTS_TOPIC) != 0)
		return;
	nng_mtx_lock(st->lock);
	if (m->seq > st->known)
		st->known = m->seq;
	if (st->loaded && !st->catching_up) {
		if (m->seq == st->applied + 1)
			apply_locked(st, m->seq, m->payload.data, m->payload.len);
		else if (m->seq > st->applied + 1)
			catch_up_locked(st);
	}
	nng_mtx_unlock(st->lock);
}

/* Loads every stored event into the index (events are never removed, so
 * upserting a snapshot over what the index holds gives the snapshot's
 * state) and sets the position to the log's seq of that snapshot. The rows
 * are read without st->lock and applied under it: the publisher waits only
 * for the upserts, not for the database. Blocks (the database). */
static rpcq_status load(events_state *st, rpcq_error *err)
{
	dbconn *db = NULL;
	PGresult *res = NULL;
	rpcq_status result = pool_acquire(server_pool(st->srv), nng_clock() + 60000, &db, err);
	if (result != RPCQ_OK)
		return result;
	dbconn_set_deadline(db, nng_clock() + 60000);
	uint64_t seq = 0;
	if ((result = db_command(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err)) != RPCQ_OK)
		goto out;
	if ((result = db_exec(db, &events_sql_last_seq, NULL, &res, err)) != RPCQ_OK)
		goto out;
	seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	if ((result = db_exec(db, &events_sql_load, NULL, &res, err)) != RPCQ_OK)
		goto out;
	db_rollback(db); /* read only: nothing to keep */
	int n = PQntuples(res);
	nng_mtx_lock(st->lock);
	for (int i = 0; i < n; i++) {
		Rpcq__Events__Event m = RPCQ__EVENTS__EVENT__INIT;
		m.id = PQgetvalue(res, i, 0);
		m.base_id = PQgetvalue(res, i, 1);
		m.event_id = PQgetvalue(res, i, 2);
		m.title = PQgetvalue(res, i, 3);
		m.starts_at = PQgetvalue(res, i, 4);
		m.ends_at = PQgetvalue(res, i, 5);
		m.sell_from = PQgetvalue(res, i, 6);
		m.sell_to = PQgetvalue(res, i, 7);
		m.min_price = PQgetvalue(res, i, 8);
		m.max_price = PQgetvalue(res, i, 9);
		m.sold_out = PQgetvalue(res, i, 10)[0] == 't';
		m.seq = strtoull(PQgetvalue(res, i, 11), NULL, 10);
		event_rec r;
		if (events_rec_of(&m, &r) != 0 || event_index_upsert_newer(st->index, &r) < 0) {
			nng_mtx_unlock(st->lock);
			result = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory loading the events index");
			goto out;
		}
	}
	if (seq > st->applied)
		st->applied = seq;
	if (seq > st->known)
		st->known = seq;
	st->loaded = 1;
	nng_cv_wake(st->applied_cv);
	nng_mtx_unlock(st->lock);
	log_info("events index: %d event(s) loaded, at change %llu", n, (unsigned long long)seq);
	result = RPCQ_OK;
out:
	PQclear(res);
	if (result != RPCQ_OK)
		db_rollback(db);
	pool_release(server_pool(st->srv), db);
	return result;
}

/* One page of the log after st->applied, through call_run as any caller's
 * Replay. 1 when messages were trimmed before being applied (reload). */
static rpcq_status replay_page(events_state *st, arena *ar, int *trimmed, rpcq_error *err)
{
	Rpcq__ReplayRequest in = RPCQ__REPLAY_REQUEST__INIT;
	in.topic = EVENTS_TOPIC;
	nng_mtx_lock(st->lock);
	in.after_seq = st->applied;
	nng_mtx_unlock(st->lock);
	call_result res;
	call_run_message(st->srv, ar, "/rpcq.Streams/Replay", REPLAY_DEADLINE_MS, nng_clock(), call_clock_ns(),
			 &in.base, NULL, &res);
	*trimmed = 0;
	if (res.status == RPCQ_NOT_FOUND)
		return RPCQ_OK; /* no change ever */
	if (res.status != RPCQ_OK)
		return rpcq_error_set(err, res.status, "%s", res.message);
	const Rpcq__ReplayResponse *r = (const Rpcq__ReplayResponse *)res.output;
	nng_mtx_lock(st->lock);
	if (r->last_seq > st->known)
		st->known = r->last_seq;
	for (size_t i = 0; i < r->n_messages; i++) {
		const Rpcq__StreamMessage *m = r->messages[i];
		if (m->seq <= st->applied)
			continue;
		if (m->seq != st->applied + 1) {
			*trimmed = 1;
			break;
		}
		apply_locked(st, m->seq, m->payload.data, m->payload.len);
	}
	nng_mtx_unlock(st->lock);
	return RPCQ_OK;
}

/* The follower's job: load when not loaded, else catch up one page; again
 * while behind, or in a second after a failure. */
static void follow_run(server_job *job, arena *ar)
{
	events_state *st = (events_state *)((char *)job - offsetof(events_state, job));
	rpcq_error err;
	rpcq_status s = RPCQ_OK;
	nng_mtx_lock(st->lock);
	int loaded = st->loaded;
	nng_mtx_unlock(st->lock);
	if (!loaded) {
		s = load(st, &err);
	} else {
		int trimmed = 0;
		if ((s = replay_page(st, ar, &trimmed, &err)) == RPCQ_OK && trimmed) {
			log_warn("events index: changes were trimmed from the log before this process applied "
				 "them; loading again");
			nng_mtx_lock(st->lock);
			st->loaded = 0;
			nng_mtx_unlock(st->lock);
		}
	}
	nng_mtx_lock(st->lock);
	st->catching_up = 0;
	if (s != RPCQ_OK) {
		if (!st->stopping) {
			log_warn("events index: %s; retrying in %d ms", err.message, RETRY_MS);
			nng_sleep_aio(RETRY_MS, st->retry);
		}
	} else if (!st->loaded || st->known > st->applied) {
		catch_up_locked(st);
	}
	nng_mtx_unlock(st->lock);
}

rpcq_status events_follow_start(events_state *st, rpcq_error *err)
{
	if (nng_mtx_alloc(&st->lock) != 0 || nng_cv_alloc(&st->applied_cv, st->lock) != 0 ||
	    nng_aio_alloc(&st->retry, retry_cb, st) != 0 || (st->index = event_index_create()) == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	if (publisher_add_listener(server_publisher(st->srv), on_message, st) != 0)
		return rpcq_error_set(err, RPCQ_INTERNAL, "the stream publisher has no room for another listener");
	st->listening = 1;
	/* The load runs on a worker once they start: start-up never waits on
	 * the database, and searches answer UNAVAILABLE until it is done. */
	nng_mtx_lock(st->lock);
	catch_up_locked(st);
	nng_mtx_unlock(st->lock);
	return RPCQ_OK;
}

void events_follow_stop(events_state *st)
{
	if (st->listening)
		publisher_remove_listener(server_publisher(st->srv), on_message, st);
	if (st->lock) {
		nng_mtx_lock(st->lock);
		st->stopping = 1;
		nng_mtx_unlock(st->lock);
	}
	if (st->retry) {
		nng_aio_stop(st->retry);
		nng_aio_free(st->retry);
	}
	event_index_destroy(st->index);
	if (st->applied_cv)
		nng_cv_free(st->applied_cv);
	if (st->lock)
		nng_mtx_free(st->lock);
}

int events_follow_wait(events_state *st, uint64_t seq, nng_time deadline)
{
	nng_mtx_lock(st->lock);
	/* The caller read seq from the log: if the publisher never delivers
	 * it (it began following after seq was written), Replay it rather
	 * than wait for a message that is not coming. */
	if (seq > st->known)
		st->known = seq;
	if (st->loaded && st->applied < seq)
		catch_up_locked(st);
	int waiting = 0; /* between server_wait_begin and _end */
	while (!(st->loaded && st->applied >= seq)) {
		if (!waiting) {
			/* The catch-up runs on a worker, which a Sync waiting here
			 * may hold (every worker busy, or --workers 1): while it
			 * waits, a spare thread takes queued work. */
			nng_mtx_unlock(st->lock);
			server_wait_begin(st->srv);
			nng_mtx_lock(st->lock);
			waiting = 1;
			continue;
		}
		if (nng_cv_until(st->applied_cv, deadline) == NNG_ETIMEDOUT)
			break;
	}
	int ok = st->loaded && st->applied >= seq;
	nng_mtx_unlock(st->lock);
	if (waiting)
		server_wait_end(st->srv);
	return ok;
}

size_t events_follow_apply_own(events_state *st, event_rec **recs, size_t n)
{
	size_t i = 0, applied = 0;
	int stop = 0;
	while (i < n && !stop) {
		nng_mtx_lock(st->lock);
		if (!st->loaded) {
			nng_mtx_unlock(st->lock);
			break;
		}
		for (size_t end = i + OWN_CHUNK; i < n && i < end; i++) {
			event_rec *r = recs[i];
			recs[i] = NULL;
			if (r->seq <= st->applied) { /* the log brought it first */
				rpcq_free(r);
				continue;
			}
			if (r->seq != st->applied + 1) { /* a change before it is missing */
				rpcq_free(r);
				stop = 1;
				i++;
				break;
			}
			if (event_index_put_newer(st->index, r) < 0) {
				/* The follower applies it (or fails the same way). */
				stop = 1;
				i++;
				break;
			}
			st->applied = r->seq;
			applied++;
		}
		if (st->applied > st->known)
			st->known = st->applied;
		nng_cv_wake(st->applied_cv);
		nng_mtx_unlock(st->lock);
	}
	for (; i < n; i++) {
		rpcq_free(recs[i]);
		recs[i] = NULL;
	}
	return applied;
}

int events_follow_ready(events_state *st)
{
	nng_mtx_lock(st->lock);
	int ok = st->loaded;
	nng_mtx_unlock(st->lock);
	return ok;
}
