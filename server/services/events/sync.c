/*
 * Fetching the provider's feed and writing what changed: the ingest thread
 * every --provider-interval-s (events_fetch_scheduled), or Sync now.
 *
 * One fetch runs at a time across every rpcqd on the database: the fetch's
 * transaction takes an advisory lock, and a scheduled fetch also claims the
 * interval in events_fetch_state (so two processes fetch once per interval
 * between them, not once each). The feed is parsed as it downloads
 * (feed.c); each event is compared with the in-memory index, which first
 * catches up with the log as it stands under the lock, so the comparison is
 * with what is stored. Changed events are written in batches inside the
 * fetch's one transaction — COPY into a staging table, one upsert, one
 * stream_append_batch of their events.changed messages — and the whole
 * transaction commits only when the response was HTTP 200, well-formed and
 * complete in time: otherwise nothing is applied. Memory: one batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "db/db.h"
#include "db/pool.h"
#include "decimal.h"
#include "events_service.h"
#include "feed.h"
#include "log.h"
#include "public_id.h"
#include "sql.h"
#include "stream.h"

#define BATCH 1000
/* Slots of the batch's id table: a power of two over twice BATCH. */
#define BATCH_SLOTS 2048
/* A fetch that writes this many changes refreshes the statistics of the
 * log and the events (in its transaction, before the commit): the
 * publisher pages the new messages right after, and with stale statistics
 * its page statement scanned the rest of the log for every page (11 ms a
 * page instead of 0.9 ms at 50,000 new messages, bench/README.md). */
#define ANALYZE_AFTER 10000
/* Sync's reply lists at most this many changed events (all are on the stream). */
#define SYNC_REPLY_MAX 1000
#define INDEX_WAIT_MS 5000

/* One changed event of the batch, with copies of its strings. */
struct pending {
	Rpcq__Events__EventChanged change;
	Rpcq__Events__Event event;
	char id[37];
	char base_id[FEED_ID_MAX + 1], event_id[FEED_ID_MAX + 1];
	char *title;
	char starts_at[20], ends_at[20], sell_from[20], sell_to[20];
	char min_price[FEED_PRICE_MAX], max_price[FEED_PRICE_MAX];
};

struct fetch {
	events_state *st;
	dbconn *db;
	feed_parser *parser;
	struct pending *batch;
	size_t n;
	uint16_t slots[BATCH_SLOTS]; /* batch index + 1 by id hash; 0: empty */
	rpcq_status failed;	     /* a write failed: stop, roll back */
	rpcq_error err;
	char xml_error[200];
	int malformed;
	/* result */
	unsigned created, updated, unchanged, skipped;
	uint64_t last_seq;
	Rpcq__Events__SyncResponse *reply; /* Sync only: changed events go here */
	call *c;
};

struct compare {
	const feed_event *ev;
	int same;
};

static int same_text(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static void compare_one(void *arg, const event_rec *r)
{
	struct compare *k = arg;
	const feed_event *e = k->ev;
	k->same = same_text(r->title, e->title) && same_text(r->starts_at, e->starts_at) &&
		  same_text(r->ends_at, e->ends_at) && same_text(r->sell_from, e->sell_from) &&
		  same_text(r->sell_to, e->sell_to) && same_text(r->min_price, e->min_price) &&
		  same_text(r->max_price, e->max_price) && r->sold_out == e->sold_out;
}

/* COPY text format: backslash, tab, newline and carriage return escaped. */
static int copy_text(char **buf, size_t *len, size_t *cap, const char *s, int last)
{
	size_t need = *len + 2 * strlen(s) + 4;
	if (need > *cap) {
		size_t n = *cap ? *cap * 2 : 65536;
		while (n < need)
			n *= 2;
		char *p = rpcq_realloc(*buf, n);
		if (p == NULL)
			return -1;
		*buf = p;
		*cap = n;
	}
	char *o = *buf + *len;
	for (; *s; s++) {
		char ch = *s;
		if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
			*o++ = '\\';
			ch = ch == '\t' ? 't' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : '\\';
		}
		*o++ = ch;
	}
	*o++ = last ? '\n' : '\t';
	*len = (size_t)(o - *buf);
	return 0;
}

/* s, or COPY's NULL (\N, written as is) when s is empty. */
static int copy_null_or(char **buf, size_t *len, size_t *cap, const char *s, int last)
{
	if (s[0])
		return copy_text(buf, len, cap, s, last);
	if (copy_text(buf, len, cap, "", last) != 0)
		return -1;
	/* Room was made for at least four more bytes: put \N before the separator. */
	char sep = (*buf)[*len - 1];
	(*buf)[*len - 1] = '\\';
	(*buf)[(*len)++] = 'N';
	(*buf)[(*len)++] = sep;
	return 0;
}

/* Writes the batch: its stream messages (one statement), then the rows
 * (COPY into the staging table, one upsert). */
static rpcq_status flush(struct fetch *f)
{
	if (f->n == 0)
		return RPCQ_OK;
	rpcq_status s;
	const ProtobufCMessage **msgs = rpcq_alloc(f->n * sizeof(*msgs));
	char *buf = NULL;
	size_t len = 0, cap = 0;
	if (msgs == NULL)
		return rpcq_error_set(&f->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < f->n; i++)
		msgs[i] = &f->batch[i].change.base;
	uint64_t last = 0;
	if ((s = stream_append_batch(f->db, EVENTS_TOPIC, msgs, f->n, &last, &f->err)) != RPCQ_OK)
		goto out;
	f->last_seq = last;
	for (size_t i = 0; i < f->n; i++) {
		struct pending *p = &f->batch[i];
		char seq[24], *sold = p->event.sold_out ? "t" : "f";
		snprintf(seq, sizeof(seq), "%llu", (unsigned long long)(last - f->n + 1 + i));
		p->event.seq = last - f->n + 1 + i;
		if (copy_text(&buf, &len, &cap, p->id, 0) || copy_text(&buf, &len, &cap, p->base_id, 0) ||
		    copy_text(&buf, &len, &cap, p->event_id, 0) || copy_text(&buf, &len, &cap, p->title, 0) ||
		    copy_text(&buf, &len, &cap, p->starts_at, 0) || copy_text(&buf, &len, &cap, p->ends_at, 0) ||
		    copy_null_or(&buf, &len, &cap, p->sell_from, 0) || copy_null_or(&buf, &len, &cap, p->sell_to, 0) ||
		    copy_null_or(&buf, &len, &cap, p->min_price, 0) ||
		    copy_null_or(&buf, &len, &cap, p->max_price, 0) || copy_text(&buf, &len, &cap, sold, 0) ||
		    copy_text(&buf, &len, &cap, seq, 1)) {
			s = rpcq_error_set(&f->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
			goto out;
		}
	}
	if ((s = db_copy_begin(f->db, events_sql_stage_copy, &f->err)) != RPCQ_OK ||
	    (s = db_copy_put(f->db, buf, len, &f->err)) != RPCQ_OK || (s = db_copy_end(f->db, &f->err)) != RPCQ_OK)
		goto out;
	PGresult *res = NULL;
	s = db_exec(f->db, &events_sql_upsert, NULL, &res, &f->err);
	PQclear(res);
	if (s != RPCQ_OK)
		goto out;
	if ((s = db_command(f->db, events_sql_stage_clear, &f->err)) != RPCQ_OK)
		goto out;
	if (f->reply && f->c) {
		arena *a = call_arena(f->c);
		for (size_t i = 0; i < f->n && f->reply->n_changed < SYNC_REPLY_MAX; i++) {
			struct pending *p = &f->batch[i];
			event_rec r;
			if (events_rec_of(&p->event, &r) != 0)
				continue;
			Rpcq__Events__Event *m = events_message_of(a, &r);
			if (m == NULL) {
				s = rpcq_error_set(&f->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
				goto out;
			}
			f->reply->changed[f->reply->n_changed++] = m;
		}
	}
out:
	for (size_t i = 0; i < f->n; i++)
		rpcq_free(f->batch[i].title);
	f->n = 0;
	memset(f->slots, 0, sizeof(f->slots));
	rpcq_free(msgs);
	rpcq_free(buf);
	return s;
}

/* The slot of id in the batch's table: where it is, or the empty one
 * where it goes. */
static uint16_t *slot_of(struct fetch *f, const char *id)
{
	uint32_t h = 2166136261u;
	for (const char *p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	for (uint32_t i = h & (BATCH_SLOTS - 1);; i = (i + 1) & (BATCH_SLOTS - 1)) {
		uint16_t v = f->slots[i];
		if (v == 0 || strcmp(f->batch[v - 1].id, id) == 0)
			return &f->slots[i];
	}
}

static int on_event(void *arg, const feed_event *ev)
{
	struct fetch *f = arg;
	char id[37];
	event_public_id(ev->base_id, ev->event_id, id);
	struct compare k = {.ev = ev, .same = 0};
	int known = event_index_get(f->st->index, id, compare_one, &k);
	if (known && k.same) {
		f->unchanged++;
		return 0;
	}
	/* The same event twice in one batch: the later values win. */
	struct pending *p;
	uint16_t *slot = slot_of(f, id);
	if (*slot != 0) {
		p = &f->batch[*slot - 1];
		rpcq_free(p->title);
	} else {
		p = &f->batch[f->n++];
		*slot = (uint16_t)f->n;
	}
	memset(p, 0, sizeof(*p));
	snprintf(p->id, sizeof(p->id), "%s", id);
	snprintf(p->base_id, sizeof(p->base_id), "%s", ev->base_id);
	snprintf(p->event_id, sizeof(p->event_id), "%s", ev->event_id);
	p->title = rpcq_strdup(ev->title);
	snprintf(p->starts_at, sizeof(p->starts_at), "%s", ev->starts_at);
	snprintf(p->ends_at, sizeof(p->ends_at), "%s", ev->ends_at);
	snprintf(p->sell_from, sizeof(p->sell_from), "%s", ev->sell_from);
	snprintf(p->sell_to, sizeof(p->sell_to), "%s", ev->sell_to);
	snprintf(p->min_price, sizeof(p->min_price), "%s", ev->min_price);
	snprintf(p->max_price, sizeof(p->max_price), "%s", ev->max_price);
	if (p->title == NULL) {
		f->failed = rpcq_error_set(&f->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		return 1;
	}
	rpcq__events__event__init(&p->event);
	p->event.id = p->id;
	p->event.base_id = p->base_id;
	p->event.event_id = p->event_id;
	p->event.title = p->title;
	p->event.starts_at = p->starts_at;
	p->event.ends_at = p->ends_at;
	p->event.sell_from = p->sell_from;
	p->event.sell_to = p->sell_to;
	p->event.min_price = p->min_price;
	p->event.max_price = p->max_price;
	p->event.sold_out = ev->sold_out;
	rpcq__events__event_changed__init(&p->change);
	p->change.kind = known ? RPCQ__EVENTS__CHANGE_KIND__UPDATED : RPCQ__EVENTS__CHANGE_KIND__CREATED;
	p->change.event = &p->event;
	if (known)
		f->updated++;
	else
		f->created++;
	if (f->n == BATCH && (f->failed = flush(f)) != RPCQ_OK)
		return 1;
	return 0;
}

static void on_skip(void *arg, const char *base_id, const char *event_id, unsigned long line, const char *reason)
{
	struct fetch *f = arg;
	f->skipped++;
	log_warn("provider feed: event (base %s, event %s) at line %lu skipped: %s", base_id[0] ? base_id : "?",
		 event_id[0] ? event_id : "?", line, reason);
	if (f->reply && f->c && f->reply->n_skipped_reasons < 100) {
		char *r = arena_printf(call_arena(f->c), "line %lu (base %s, event %s): %s", line, base_id, event_id,
				       reason);
		if (r)
			f->reply->skipped_reasons[f->reply->n_skipped_reasons++] = r;
	}
}

static int sink(void *arg, const char *data, size_t len)
{
	struct fetch *f = arg;
	int rc = feed_parser_feed(f->parser, data, len, 0, f->xml_error, sizeof(f->xml_error));
	if (rc == FEED_MALFORMED)
		f->malformed = 1;
	return rc != FEED_OK;
}

/* One fetch. scheduled: skip it (OK) when another process holds the lock
 * or fetched within the interval. deadline bounds the database work. */
static rpcq_status fetch(events_state *st, int scheduled, nng_time deadline, const atomic_int *stop, struct fetch *f,
			 rpcq_error *err)
{
	const rpcq_config *cfg = st->cfg;
	if (cfg->provider_url == NULL || cfg->provider_url[0] == '\0')
		return rpcq_error_set(err, RPCQ_FAILED_PRECONDITION, "no provider: rpcqd runs without --provider-url");
	f->st = st;
	PGresult *res = NULL;
	rpcq_status s = pool_acquire(server_pool(st->srv), deadline, &f->db, err);
	if (s != RPCQ_OK)
		return s;
	dbconn_set_deadline(f->db, deadline);
	f->batch = rpcq_calloc(BATCH, sizeof(*f->batch));
	f->parser = feed_parser_create(on_event, on_skip, f);
	if (f->batch == NULL || f->parser == NULL) {
		s = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	if ((s = db_command(f->db, events_sql_stage_create, err)) != RPCQ_OK || (s = db_begin(f->db, err)) != RPCQ_OK)
		goto out;
	if (scheduled) {
		if ((s = db_exec(f->db, &events_sql_try_lock, NULL, &res, err)) != RPCQ_OK)
			goto out;
		int got = PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		res = NULL;
		if (!got)
			goto out; /* another process is fetching */
		char interval[16];
		snprintf(interval, sizeof(interval), "%d", cfg->provider_interval_s);
		const char *v[1] = {interval};
		if ((s = db_exec(f->db, &events_sql_claim_due, v, &res, err)) != RPCQ_OK)
			goto out;
		int due = PQntuples(res) == 1;
		PQclear(res);
		res = NULL;
		if (!due)
			goto out; /* another process fetched within the interval */
	} else {
		if ((s = db_exec(f->db, &events_sql_lock, NULL, &res, err)) != RPCQ_OK)
			goto out;
		PQclear(res);
		res = NULL;
		if ((s = db_exec(f->db, &events_sql_claim_now, NULL, &res, err)) != RPCQ_OK)
			goto out;
		PQclear(res);
		res = NULL;
	}
	/* Compare with what is stored: the index must hold the log as it
	 * stands now that no other fetch can write. */
	if ((s = db_exec(f->db, &events_sql_last_seq, NULL, &res, err)) != RPCQ_OK)
		goto out;
	uint64_t stored = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	nng_time wait = nng_clock() + INDEX_WAIT_MS;
	if (!events_follow_wait(st, stored, wait < deadline ? wait : deadline)) {
		s = rpcq_error_set(err, RPCQ_UNAVAILABLE, "the events index has not caught up with change %llu yet",
				   (unsigned long long)stored);
		goto out;
	}
	f->last_seq = stored;

	nng_time started = nng_clock();
	s = ingest_http_get(cfg->provider_url, cfg->provider_timeout_ms, sink, f, stop, err);
	if (f->failed != RPCQ_OK) {
		s = f->failed;
		*err = f->err;
		goto out;
	}
	if (f->malformed) {
		s = rpcq_error_set(err, RPCQ_FAILED_PRECONDITION, "provider feed is not well-formed XML: %s",
				   f->xml_error);
		goto out;
	}
	if (s != RPCQ_OK)
		goto out;
	if (feed_parser_feed(f->parser, "", 0, 1, f->xml_error, sizeof(f->xml_error)) != FEED_OK) {
		s = rpcq_error_set(err, RPCQ_FAILED_PRECONDITION, "provider feed is not well-formed XML: %s",
				   f->xml_error);
		goto out;
	}
	if (f->failed != RPCQ_OK || (f->failed = flush(f)) != RPCQ_OK) {
		s = f->failed;
		*err = f->err;
		goto out;
	}
	if ((s = db_exec(f->db, &events_sql_fetched, NULL, &res, err)) != RPCQ_OK)
		goto out;
	PQclear(res);
	res = NULL;
	if (f->created + f->updated >= ANALYZE_AFTER &&
	    (s = db_command(f->db, "ANALYZE stream_log, events", err)) != RPCQ_OK)
		goto out;
	if ((s = db_commit(f->db, err)) != RPCQ_OK)
		goto out;
	feed_stats fs;
	feed_parser_stats(f->parser, &fs);
	log_info("provider feed: %lu event(s) in %llu ms: %u new, %u changed, %u unchanged, %u skipped", fs.events,
		 (unsigned long long)(nng_clock() - started), f->created, f->updated, f->unchanged, f->skipped);
out:
	PQclear(res);
	db_rollback(f->db); /* a no-op after the commit */
	pool_release(server_pool(st->srv), f->db);
	f->db = NULL;
	if (f->batch) {
		for (size_t i = 0; i < f->n; i++)
			rpcq_free(f->batch[i].title);
		rpcq_free(f->batch);
		f->batch = NULL;
	}
	feed_parser_destroy(f->parser);
	f->parser = NULL;
	return s;
}

rpcq_status events_fetch_scheduled(void *arg, const atomic_int *stop, rpcq_error *err)
{
	events_state *st = arg;
	struct fetch f = {0};
	nng_mtx_lock(st->fetch_lock);
	nng_time deadline = nng_clock() + (nng_time)st->cfg->provider_timeout_ms + 30000;
	rpcq_status s = fetch(st, 1, deadline, stop, &f, err);
	nng_mtx_unlock(st->fetch_lock);
	return s;
}

rpcq_status events_sync(call *c, const ProtobufCMessage *in, ProtobufCMessage **out)
{
	(void)in;
	events_state *st = call_service_state(c);
	arena *a = call_arena(c);
	Rpcq__Events__SyncResponse *r = arena_alloc(a, sizeof(*r));
	Rpcq__Events__Event **changed = arena_alloc(a, SYNC_REPLY_MAX * sizeof(*changed));
	char **reasons = arena_alloc(a, 100 * sizeof(*reasons));
	if (r == NULL || changed == NULL || reasons == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__events__sync_response__init(r);
	r->changed = changed;
	r->skipped_reasons = reasons;
	struct fetch f = {.reply = r, .c = c};
	rpcq_error err;
	nng_mtx_lock(st->fetch_lock);
	rpcq_status s = fetch(st, 0, call_deadline(c), NULL, &f, &err);
	nng_mtx_unlock(st->fetch_lock);
	if (s != RPCQ_OK)
		return call_fail_err(c, s, &err);
	/* Read your writes: reply once this process's index holds what the
	 * fetch wrote, so a Search right after Sync sees it. */
	nng_time wait = nng_clock() + INDEX_WAIT_MS;
	(void)events_follow_wait(st, f.last_seq, wait < call_deadline(c) ? wait : call_deadline(c));
	r->created = f.created;
	r->updated = f.updated;
	r->unchanged = f.unchanged;
	r->skipped = f.skipped;
	r->events_seen = f.created + f.updated + f.unchanged;
	r->last_seq = f.last_seq;
	*out = &r->base;
	return RPCQ_OK;
}
