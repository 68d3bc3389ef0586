/*
 * Fetching the provider's feed and writing what changed: the ingest thread
 * every --provider-interval-s (events_fetch_scheduled), or Sync now.
 *
 * One fetch runs at a time across every rpcqd on the database: the fetch's
 * transaction takes an advisory lock, and a scheduled fetch also claims the
 * interval in events_fetch_state (so two processes fetch once per interval
 * between them, not once each). A fetch that fails rolls back to a
 * savepoint after its claim and commits the claim with the failure
 * (last_error, consecutive_failures): the next due time then follows the
 * shared count of failures, so the processes retry a failing provider on
 * one backoff between them, not on one each. The feed is parsed as it downloads
 * (feed.c); each event is compared with the in-memory index, which first
 * catches up with the log as it stands under the lock, so the comparison is
 * with what is stored. Changed events are written in batches inside the
 * fetch's one transaction — one stream_append_batch of their
 * events.changed messages, one upsert of the batch as arrays — and the whole
 * transaction commits only when the response was HTTP 200, well-formed and
 * complete in time: otherwise nothing is applied. Once it has committed,
 * the fetch applies its changes to this process's index itself
 * (events_follow_apply_own), so that Sync's reply (read your writes) does
 * not wait for 50,000 messages to come back through the publisher; other
 * processes get them from the log, and this one's follower ignores them
 * when they arrive. Memory: one batch of the feed, plus the records of the
 * changes written, which the index takes over at the commit (the new
 * records it would allocate anyway).
 */
#include <pthread.h>
#include <stddef.h>
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
 * log and the events: every process's publisher pages the new messages
 * right after, and with stale statistics its page statement scanned the
 * rest of the log for every page (11 ms a page instead of 0.9 ms at 50,000
 * new messages, bench/README.md). It runs after the commit, as a job of
 * its own on a worker (analyze_run): inside the fetch's transaction it was
 * a third of a second of every large Sync. */
#define ANALYZE_AFTER 10000
#define ANALYZE_DEADLINE_MS 60000
/* Sync's reply lists at most this many changed events (all are on the stream). */
#define SYNC_REPLY_MAX 1000
#define INDEX_WAIT_MS 5000
/* Of a call's deadline, what is kept from the provider's timeout to roll
 * back, record the failure and answer: a Sync reports why the provider did
 * not answer rather than run out of time itself. */
#define REPLY_MARGIN_MS 250
/* At most this many changes of one fetch go to this process's index
 * straight from the fetch (events_follow_apply_own); past it, all of them
 * come through the log as other processes' do. The records are what the
 * index holds anyway (taken over, not copied), so this bounds only how
 * long the old records of updated events are held beside the new. */
#define OWN_MAX 200000

static void analyze_soon(events_state *st);

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

/* One column of a batch as a PostgreSQL text[] in binary array format:
 * ndim 1, a has-null flag, element type text (25), the length and lower
 * bound of the dimension, then each element as its length (-1: NULL) and
 * bytes. Kept between batches. */
struct textarr {
	char *buf;
	size_t len, cap;
};

/* A batch of changed events: filled by the parse, then written. */
struct batch {
	struct pending *p; /* BATCH of them */
	size_t n;
	uint64_t last; /* once written: the seq of p[n - 1] */
};

/* The batch writer: a thread of the fetch's own that writes one batch
 * while the parse fills the next, so that rpcqd's parse and PostgreSQL's
 * writes overlap instead of taking turns (on two cores they were about
 * equal halves of a first ingest). It alone uses the connection while it
 * runs; the parse hands it a batch and takes it back under lock. */
struct writer {
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct batch *job; /* being written; NULL: idle */
	int quit;
	rpcq_status status; /* of the writes so far: the first failure */
	rpcq_error err;
	struct textarr cols[EVENTS_UPSERT_COLUMNS]; /* the upsert's arrays */
};

struct fetch {
	events_state *st;
	dbconn *db;
	feed_parser *parser;
	struct batch bufs[2];
	struct batch *cur;     /* being filled */
	struct batch *written; /* handed to the writer, not yet taken back */
	struct writer w;
	uint16_t slots[BATCH_SLOTS]; /* cur index + 1 by id hash; 0: empty */
	rpcq_status failed;	     /* a write failed: stop, roll back */
	rpcq_error err;
	char xml_error[200];
	int malformed;
	int savepoint; /* set once the claim is made: a failure is recorded */
	/* The records of every change written, in seq order, for this
	 * process's index once the transaction commits; own_off once past
	 * OWN_MAX or out of memory (then the log brings them). The writer's
	 * while it runs, the fetch's once it has stopped. */
	event_rec **own;
	size_t n_own, cap_own;
	int own_off;
	uint64_t own_first; /* seq of own[0] */
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

static int arr_room(struct textarr *a, size_t more)
{
	if (a->len + more <= a->cap)
		return 0;
	size_t n = a->cap ? a->cap * 2 : 16384;
	while (n < a->len + more)
		n *= 2;
	char *p = rpcq_realloc(a->buf, n);
	if (p == NULL)
		return -1;
	a->buf = p;
	a->cap = n;
	return 0;
}

static void put_be32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

static int arr_begin(struct textarr *a, size_t n)
{
	a->len = 0;
	if (arr_room(a, 20) != 0)
		return -1;
	const uint32_t head[5] = {1, 1, 25, (uint32_t)n, 1};
	for (int i = 0; i < 5; i++)
		put_be32(a->buf + 4 * i, head[i]);
	a->len = 20;
	return 0;
}

/* s, or NULL when null_if_empty and s is "". */
static int arr_put(struct textarr *a, const char *s, int null_if_empty)
{
	size_t n = strlen(s);
	if (arr_room(a, 4 + n) != 0)
		return -1;
	if (n == 0 && null_if_empty) {
		put_be32(a->buf + a->len, UINT32_MAX); /* -1 */
		a->len += 4;
		return 0;
	}
	put_be32(a->buf + a->len, (uint32_t)n);
	memcpy(a->buf + a->len + 4, s, n);
	a->len += 4 + n;
	return 0;
}

static void own_drop(struct fetch *f)
{
	for (size_t i = 0; i < f->n_own; i++)
		rpcq_free(f->own[i]);
	rpcq_free(f->own);
	f->own = NULL;
	f->n_own = f->cap_own = 0;
}

/* Keeps a copy of the batch's records, seqs first..first + n - 1, for the
 * index after the commit; gives up (the log brings them) past OWN_MAX,
 * when out of memory, or when the seqs do not follow the previous batch's
 * (never while the fetch holds the lock: nothing else appends there). */
static void own_keep(struct fetch *f, const struct batch *b)
{
	uint64_t first = b->last - b->n + 1;
	if (f->own_off)
		return;
	if (f->n_own == 0)
		f->own_first = first;
	if (first != f->own_first + f->n_own || f->n_own + b->n > OWN_MAX)
		goto give_up;
	if (f->n_own + b->n > f->cap_own) {
		size_t cap = f->cap_own ? f->cap_own * 2 : 4 * BATCH;
		while (cap < f->n_own + b->n)
			cap *= 2;
		event_rec **p = rpcq_realloc(f->own, cap * sizeof(*p));
		if (p == NULL)
			goto give_up;
		f->own = p;
		f->cap_own = cap;
	}
	for (size_t i = 0; i < b->n; i++) {
		event_rec r;
		if (events_rec_of(&b->p[i].event, &r) != 0 || (f->own[f->n_own] = event_rec_dup(&r)) == NULL)
			goto give_up;
		f->n_own++;
	}
	return;
give_up:
	own_drop(f);
	f->own_off = 1;
}

/* Writes batch b: its stream messages (one statement), then the rows (one
 * upsert of the batch as arrays). On the writer's thread. */
static rpcq_status write_batch(dbconn *db, struct writer *w, struct batch *b, rpcq_error *err)
{
	rpcq_status s;
	const ProtobufCMessage **msgs = rpcq_alloc(b->n * sizeof(*msgs));
	if (msgs == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < b->n; i++)
		msgs[i] = &b->p[i].change.base;
	uint64_t last = 0;
	if ((s = stream_append_batch(db, EVENTS_TOPIC, msgs, b->n, &last, err)) != RPCQ_OK)
		goto out;
	if (last != b->p[0].event.seq + b->n - 1) {
		/* The messages carry the seqs flush() gave them: only a fetch,
		 * under the lock this one holds, appends to the topic. */
		s = rpcq_error_set(err, RPCQ_ABORTED, "%s took changes %llu to %llu, where this fetch expected %llu",
				   EVENTS_TOPIC, (unsigned long long)(last - b->n + 1), (unsigned long long)last,
				   (unsigned long long)b->p[0].event.seq);
		goto out;
	}
	b->last = last;
	struct textarr *c = w->cols;
	for (int k = 0; k < EVENTS_UPSERT_COLUMNS; k++) {
		if (arr_begin(&c[k], b->n) != 0)
			goto nomem;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct pending *p = &b->p[i];
		if (arr_put(&c[0], p->id, 0) || arr_put(&c[1], p->base_id, 0) || arr_put(&c[2], p->event_id, 0) ||
		    arr_put(&c[3], p->title, 0) || arr_put(&c[4], p->starts_at, 0) || arr_put(&c[5], p->ends_at, 0) ||
		    arr_put(&c[6], p->sell_from, 1) || arr_put(&c[7], p->sell_to, 1) ||
		    arr_put(&c[8], p->min_price, 1) || arr_put(&c[9], p->max_price, 1) ||
		    arr_put(&c[10], p->event.sold_out ? "t" : "f", 0))
			goto nomem;
	}
	char before[24];
	snprintf(before, sizeof(before), "%llu", (unsigned long long)(last - b->n));
	const char *values[EVENTS_UPSERT_COLUMNS + 1];
	int lengths[EVENTS_UPSERT_COLUMNS + 1], formats[EVENTS_UPSERT_COLUMNS + 1];
	for (int k = 0; k < EVENTS_UPSERT_COLUMNS; k++) {
		if (c[k].len > INT32_MAX) {
			s = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "a batch of events is too large");
			goto out;
		}
		values[k] = c[k].buf;
		lengths[k] = (int)c[k].len;
		formats[k] = 1;
	}
	values[EVENTS_UPSERT_COLUMNS] = before;
	lengths[EVENTS_UPSERT_COLUMNS] = 0;
	formats[EVENTS_UPSERT_COLUMNS] = 0;
	PGresult *res = NULL;
	s = db_exec_params(db, &events_sql_upsert, values, lengths, formats, 0, &res, err);
	PQclear(res);
	goto out;
nomem:
	s = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
out:
	rpcq_free(msgs);
	return s;
}

static void *writer_run(void *arg)
{
	struct fetch *f = arg;
	struct writer *w = &f->w;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->job == NULL && !w->quit)
			pthread_cond_wait(&w->cv, &w->lock);
		if (w->job == NULL)
			break;
		struct batch *b = w->job;
		pthread_mutex_unlock(&w->lock);
		rpcq_error err;
		rpcq_status s = write_batch(f->db, w, b, &err);
		if (s == RPCQ_OK)
			own_keep(f, b); /* here, not on the parse's thread: this one waits on the database */
		pthread_mutex_lock(&w->lock);
		if (s != RPCQ_OK && w->status == RPCQ_OK) {
			w->status = s;
			w->err = err;
		}
		w->job = NULL;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static rpcq_status writer_start(struct fetch *f, rpcq_error *err)
{
	struct writer *w = &f->w;
	if (pthread_mutex_init(&w->lock, NULL) != 0)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "cannot make the batch writer's lock");
	if (pthread_cond_init(&w->cv, NULL) != 0) {
		pthread_mutex_destroy(&w->lock);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "cannot make the batch writer's lock");
	}
	w->status = RPCQ_OK;
	if (pthread_create(&w->thread, NULL, writer_run, f) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->lock);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "cannot start the batch writer");
	}
	w->started = 1;
	return RPCQ_OK;
}

/* Waits for the batch under way (if any) and ends the thread: the
 * connection is the fetch's again. Safe to call twice. */
static void writer_stop(struct fetch *f)
{
	struct writer *w = &f->w;
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->quit = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->lock);
	w->started = 0;
}

static void batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		rpcq_free(b->p[i].title);
	b->n = 0;
}

/* What is left of a batch once written, on the parse's thread: its events
 * for Sync's reply (the call's arena is this thread's). */
static rpcq_status after_batch(struct fetch *f, struct batch *b)
{
	rpcq_status s = RPCQ_OK;
	f->last_seq = b->last;
	if (f->reply && f->c) {
		arena *a = call_arena(f->c);
		for (size_t i = 0; i < b->n && f->reply->n_changed < SYNC_REPLY_MAX; i++) {
			event_rec r;
			if (events_rec_of(&b->p[i].event, &r) != 0)
				continue;
			Rpcq__Events__Event *m = events_message_of(a, &r);
			if (m == NULL) {
				s = rpcq_error_set(&f->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
				break;
			}
			f->reply->changed[f->reply->n_changed++] = m;
		}
	}
	batch_clear(b);
	return s;
}

/* Waits until the writer is idle and takes back the batch it wrote: the
 * first failure of any write, or of what follows it. */
static rpcq_status take_back(struct fetch *f)
{
	struct writer *w = &f->w;
	pthread_mutex_lock(&w->lock);
	while (w->job != NULL)
		pthread_cond_wait(&w->cv, &w->lock);
	rpcq_status s = w->status;
	if (s != RPCQ_OK)
		f->err = w->err;
	pthread_mutex_unlock(&w->lock);
	if (f->written != NULL) {
		if (s == RPCQ_OK)
			s = after_batch(f, f->written);
		else
			batch_clear(f->written);
		f->written = NULL;
	}
	return s;
}

/* Hands the batch being filled to the writer (once it has finished the
 * one before) and starts filling the other. */
static rpcq_status flush(struct fetch *f)
{
	if (f->cur->n == 0)
		return RPCQ_OK;
	rpcq_status s = take_back(f);
	if (s != RPCQ_OK)
		return s;
	/* The seqs its messages will take (write_batch checks them), in the
	 * events they carry: the topic's changes are this fetch's alone. */
	for (size_t i = 0; i < f->cur->n; i++)
		f->cur->p[i].event.seq = f->last_seq + 1 + i;
	struct writer *w = &f->w;
	f->written = f->cur;
	f->cur = f->cur == &f->bufs[0] ? &f->bufs[1] : &f->bufs[0];
	memset(f->slots, 0, sizeof(f->slots));
	pthread_mutex_lock(&w->lock);
	w->job = f->written;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->lock);
	return RPCQ_OK;
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
		if (v == 0 || strcmp(f->cur->p[v - 1].id, id) == 0)
			return &f->slots[i];
	}
}

/* snprintf(dst, cap, "%s", src) without the format machinery (snprintf
 * was 3% of rpcqd's samples in a first ingest). */
static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Points p's messages at p's own strings (again, after p has moved). */
static void pending_link(struct pending *p)
{
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
	p->change.event = &p->event;
}

/* Takes entry i out of the batch being filled (its event came back to the
 * values stored): the last entry moves into its place, and the id table is
 * built again (a rare path: an event listed twice in one feed). */
static void batch_drop(struct fetch *f, size_t i)
{
	struct batch *b = f->cur;
	rpcq_free(b->p[i].title);
	b->n--;
	if (i != b->n) {
		b->p[i] = b->p[b->n];
		pending_link(&b->p[i]);
	}
	memset(f->slots, 0, sizeof(f->slots));
	for (size_t k = 0; k < b->n; k++)
		*slot_of(f, b->p[k].id) = (uint16_t)(k + 1);
}

static int on_event(void *arg, const feed_event *ev)
{
	struct fetch *f = arg;
	char id[37];
	event_public_id(ev->base_id, ev->event_id, id);
	struct compare k = {.ev = ev, .same = 0};
	int known = event_index_get(f->st->index, id, compare_one, &k);
	/* The same event twice in one batch is one event, and the later
	 * values win: they replace the pending ones, or, when they are what
	 * is stored, leave nothing to write. It is counted once. (Twice more
	 * than a batch apart, the earlier copy is written first: the stored
	 * values end as the later ones, through two changes.) */
	uint16_t *slot = slot_of(f, id);
	struct pending *p;
	if (*slot != 0) {
		if (known && k.same) {
			batch_drop(f, (size_t)(*slot - 1));
			f->updated--;
			f->unchanged++;
			return 0;
		}
		p = &f->cur->p[*slot - 1];
		rpcq_free(p->title);
	} else if (known && k.same) {
		f->unchanged++;
		return 0;
	} else {
		p = &f->cur->p[f->cur->n++];
		*slot = (uint16_t)f->cur->n;
		if (known)
			f->updated++;
		else
			f->created++;
	}
	memset(p, 0, sizeof(*p));
	copy_str(p->id, sizeof(p->id), id);
	copy_str(p->base_id, sizeof(p->base_id), ev->base_id);
	copy_str(p->event_id, sizeof(p->event_id), ev->event_id);
	p->title = rpcq_strdup(ev->title);
	copy_str(p->starts_at, sizeof(p->starts_at), ev->starts_at);
	copy_str(p->ends_at, sizeof(p->ends_at), ev->ends_at);
	copy_str(p->sell_from, sizeof(p->sell_from), ev->sell_from);
	copy_str(p->sell_to, sizeof(p->sell_to), ev->sell_to);
	copy_str(p->min_price, sizeof(p->min_price), ev->min_price);
	copy_str(p->max_price, sizeof(p->max_price), ev->max_price);
	if (p->title == NULL) {
		f->failed = rpcq_error_set(&f->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		return 1;
	}
	rpcq__events__event__init(&p->event);
	p->event.sold_out = ev->sold_out;
	rpcq__events__event_changed__init(&p->change);
	p->change.kind = known ? RPCQ__EVENTS__CHANGE_KIND__UPDATED : RPCQ__EVENTS__CHANGE_KIND__CREATED;
	pending_link(p);
	if (f->cur->n == BATCH && (f->failed = flush(f)) != RPCQ_OK)
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

/* Undoes what the failed fetch wrote and commits its claim with why. */
static void record_failure(struct fetch *f, const rpcq_error *why)
{
	rpcq_error e;
	PGresult *res = NULL;
	const char *v[1] = {why->message};
	if (db_command(f->db, "ROLLBACK TO SAVEPOINT feed", &e) != RPCQ_OK ||
	    db_exec(f->db, &events_sql_failed, v, &res, &e) != RPCQ_OK || db_commit(f->db, &e) != RPCQ_OK)
		log_warn("events: recording a failed fetch (%s): %s", why->message, e.message);
	PQclear(res);
}

/* One fetch. scheduled: skip it (OK) when another process holds the lock
 * or fetched within the interval. deadline bounds the database work and,
 * less REPLY_MARGIN_MS, the provider's answer. */
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
	f->bufs[0].p = rpcq_calloc(BATCH, sizeof(*f->bufs[0].p));
	f->bufs[1].p = rpcq_calloc(BATCH, sizeof(*f->bufs[1].p));
	f->cur = &f->bufs[0];
	f->parser = feed_parser_create(on_event, on_skip, f);
	if (f->bufs[0].p == NULL || f->bufs[1].p == NULL || f->parser == NULL) {
		s = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	if ((s = db_begin(f->db, err)) != RPCQ_OK)
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
	if ((s = db_command(f->db, "SAVEPOINT feed", err)) != RPCQ_OK)
		goto out;
	f->savepoint = 1;
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
	if ((s = writer_start(f, err)) != RPCQ_OK)
		goto out;

	nng_time started = nng_clock();
	int64_t left = (int64_t)deadline - (int64_t)started - REPLY_MARGIN_MS;
	int timeout_ms = left < cfg->provider_timeout_ms ? (int)(left > 1 ? left : 1) : cfg->provider_timeout_ms;
	s = ingest_http_get(cfg->provider_url, timeout_ms, sink, f, stop, err);
	if (f->failed != RPCQ_OK) {
		s = f->failed;
		*err = f->err;
		goto out;
	}
	if (f->malformed) {
		s = rpcq_error_set(err, RPCQ_FAILED_PRECONDITION, "provider %s: the feed is not well-formed XML: %s",
				   cfg->provider_url, f->xml_error);
		goto out;
	}
	if (s != RPCQ_OK)
		goto out;
	if (feed_parser_feed(f->parser, "", 0, 1, f->xml_error, sizeof(f->xml_error)) != FEED_OK) {
		s = rpcq_error_set(err, RPCQ_FAILED_PRECONDITION, "provider %s: the feed is not well-formed XML: %s",
				   cfg->provider_url, f->xml_error);
		goto out;
	}
	if (f->failed != RPCQ_OK || (f->failed = flush(f)) != RPCQ_OK || (f->failed = take_back(f)) != RPCQ_OK) {
		s = f->failed;
		*err = f->err;
		goto out;
	}
	writer_stop(f);
	if ((s = db_exec(f->db, &events_sql_fetched, NULL, &res, err)) != RPCQ_OK)
		goto out;
	PQclear(res);
	res = NULL;
	if ((s = db_commit(f->db, err)) != RPCQ_OK)
		goto out;
	/* This process's index takes the changes from here rather than wait
	 * for them to come back through the log (which it then ignores). */
	size_t own = 0;
	if (!f->own_off && f->n_own != 0) {
		own = events_follow_apply_own(st, f->own, f->n_own);
		own_drop(f);
	}
	if (f->created + f->updated >= ANALYZE_AFTER)
		analyze_soon(st); /* after the index: the two would share the CPUs */
	feed_stats fs;
	feed_parser_stats(f->parser, &fs);
	log_info("provider feed: %lu event(s) in %llu ms: %u new, %u changed, %u unchanged, %u skipped (%zu applied "
		 "here)",
		 fs.events, (unsigned long long)(nng_clock() - started), f->created, f->updated, f->unchanged,
		 f->skipped, own);
out:
	PQclear(res);
	writer_stop(f); /* the connection is the fetch's again */
	if (s != RPCQ_OK && s != RPCQ_ABORTED && f->savepoint)
		record_failure(f, err);
	db_rollback(f->db); /* a no-op after the commit */
	pool_release(server_pool(st->srv), f->db);
	f->db = NULL;
	for (int i = 0; i < 2; i++) {
		if (f->bufs[i].p != NULL)
			batch_clear(&f->bufs[i]);
		rpcq_free(f->bufs[i].p);
		f->bufs[i].p = NULL;
	}
	for (int k = 0; k < EVENTS_UPSERT_COLUMNS; k++) {
		rpcq_free(f->w.cols[k].buf);
		f->w.cols[k] = (struct textarr){0};
	}
	feed_parser_destroy(f->parser);
	f->parser = NULL;
	own_drop(f);
	return s;
}

static void analyze_run(server_job *job, arena *ar)
{
	(void)ar;
	events_state *st = (events_state *)((char *)job - offsetof(events_state, analyze_job));
	for (;;) {
		dbconn *db = NULL;
		rpcq_error err;
		nng_time deadline = nng_clock() + ANALYZE_DEADLINE_MS;
		rpcq_status s = pool_acquire(server_pool(st->srv), deadline, &db, &err);
		if (s == RPCQ_OK) {
			dbconn_set_deadline(db, deadline);
			s = db_command(db, "ANALYZE stream_log, events", &err);
			pool_release(server_pool(st->srv), db);
		}
		if (s != RPCQ_OK)
			log_warn("events: refreshing the statistics after a fetch: %s", err.message);
		nng_mtx_lock(st->lock);
		int again = st->analyze_again && !st->stopping;
		st->analyze_again = 0;
		if (!again)
			st->analyzing = 0;
		nng_mtx_unlock(st->lock);
		if (!again)
			return;
	}
}

/* Queues analyze_run, or has the one under way run once more. */
static void analyze_soon(events_state *st)
{
	nng_mtx_lock(st->lock);
	if (st->analyzing) {
		st->analyze_again = 1;
	} else if (!st->stopping) {
		st->analyzing = 1;
		st->analyze_job.run = analyze_run;
		if (server_submit(st->srv, &st->analyze_job) != 0)
			st->analyzing = 0; /* the workers have stopped */
	}
	nng_mtx_unlock(st->lock);
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
	/* Waiting for this process's fetch in hand, a spare thread takes
	 * calls (server_wait_begin). */
	server_wait_begin(st->srv);
	nng_mtx_lock(st->fetch_lock);
	server_wait_end(st->srv);
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
