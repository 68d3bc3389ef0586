/*
 * The in-memory index of events (server/services/events/index.h): upserts
 * keyed by id, searches in (starts_at, id) order with optional bounds,
 * paging and limits, out of memory, a randomized run against a linear scan
 * of a plain array, a large index moved around (splits and merges on every
 * level), and readers searching while a writer upserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rpcq/alloc.h>

#include "index.h"

/* A deterministic xorshift generator, one state per thread. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static unsigned rnd_below(uint64_t *s, unsigned n)
{
	return (unsigned)(rnd(s) % n);
}

/* "2024-01-DDTHH:00:00" for hour h of January 2024 (h may run into
 * February: the text is only compared, never parsed). */
static void hour_text(int h, char out[20])
{
	unsigned u = (unsigned)h;
	snprintf(out, 20, "2024-%02u-%02uT%02u:00:00", 1 + u / (31 * 24) % 12, 1 + u / 24 % 31, u % 24);
}

static void make_rec(event_rec *r, const char *id, const char *start, const char *end, const char *title)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->starts_at, sizeof(r->starts_at), "%s", start);
	snprintf(r->ends_at, sizeof(r->ends_at), "%s", end);
	r->base_id = "b";
	r->event_id = (char *)id;
	r->title = (char *)title;
}

static void put(event_index *ix, const char *id, const char *start, const char *end)
{
	event_rec r;
	make_rec(&r, id, start, end, id);
	assert_int_equal(event_index_upsert(ix, &r), 0);
}

/* What a search passed to its callback. */
typedef struct got {
	size_t n;
	size_t stop_at; /* return nonzero on the stop_at-th event (0: never) */
	char id[64][37];
	char start[64][20];
} got;

static int collect(void *arg, const event_rec *r)
{
	got *g = arg;
	if (g->n < 64) {
		snprintf(g->id[g->n], sizeof(g->id[0]), "%s", r->id);
		snprintf(g->start[g->n], sizeof(g->start[0]), "%s", r->starts_at);
	}
	g->n++;
	return g->stop_at != 0 && g->n >= g->stop_at;
}

/* Searches and checks the ids passed, given as one space-separated string. */
static void expect_search(event_index *ix, const char *from, const char *to, const char *after_start,
			  const char *after_id, size_t limit, const char *ids)
{
	got g = {0};
	size_t n = event_index_search(ix, from, to, after_start, after_id, limit, collect, &g);
	assert_int_equal(n, g.n);
	char line[64 * 38] = "";
	size_t len = 0;
	for (size_t i = 0; i < g.n && i < 64; i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s", i > 0 ? " " : "", g.id[i]);
	assert_string_equal(line, ids);
}

static void test_an_empty_index_finds_nothing(void **state)
{
	(void)state;
	event_index *ix = event_index_create();
	assert_non_null(ix);
	assert_int_equal(event_index_count(ix), 0);
	expect_search(ix, NULL, NULL, NULL, NULL, 0, "");
	expect_search(ix, "2024-01-01T00:00:00", "2024-12-31T00:00:00", NULL, NULL, 0, "");
	expect_search(ix, NULL, NULL, "2024-01-01T00:00:00", "a", 10, "");
	assert_int_equal(event_index_get(ix, "nope", NULL, NULL), 0);
	event_index_destroy(ix);
	event_index_destroy(NULL);
}

static void copy_rec(void *arg, const event_rec *r)
{
	event_rec *out = arg;
	*out = *r;
	out->title = out->base_id = out->event_id = NULL; /* not valid after the call */
	assert_string_equal(r->base_id, "291");
	assert_string_equal(r->event_id, "1642");
	assert_string_equal(r->title, "Camela en concierto");
}

static void test_an_inserted_event_is_found_by_id_with_every_field_copied(void **state)
{
	(void)state;
	event_index *ix = event_index_create();
	assert_non_null(ix);
	char base[] = "291", ev[] = "1642", title[] = "Camela en concierto";
	event_rec r;
	make_rec(&r, "3f1c0a4e-0000-5000-8000-000000000001", "2021-06-30T21:00:00", "2021-06-30T22:00:00", title);
	r.base_id = base;
	r.event_id = ev;
	snprintf(r.sell_from, sizeof(r.sell_from), "2020-07-01T00:00:00");
	snprintf(r.min_price, sizeof(r.min_price), "15.00");
	snprintf(r.max_price, sizeof(r.max_price), "30.00");
	r.sold_out = 1;
	r.seq = 42;
	assert_int_equal(event_index_upsert(ix, &r), 0);
	/* The index holds copies: the caller's strings may change. */
	memset(base, 'x', 3);
	memset(title, 'x', 5);
	event_rec out;
	assert_int_equal(event_index_get(ix, "3f1c0a4e-0000-5000-8000-000000000001", copy_rec, &out), 1);
	assert_string_equal(out.starts_at, "2021-06-30T21:00:00");
	assert_string_equal(out.ends_at, "2021-06-30T22:00:00");
	assert_string_equal(out.sell_from, "2020-07-01T00:00:00");
	assert_string_equal(out.sell_to, "");
	assert_string_equal(out.min_price, "15.00");
	assert_string_equal(out.max_price, "30.00");
	assert_int_equal(out.sold_out, 1);
	assert_int_equal(out.seq, 42);
	assert_int_equal(event_index_count(ix), 1);
	assert_int_equal(event_index_get(ix, "3f1c0a4e-0000-5000-8000-000000000002", copy_rec, &out), 0);
	event_index_destroy(ix);
}

static void title_of(void *arg, const event_rec *r)
{
	snprintf(arg, 64, "%s", r->title);
}

static void test_an_upsert_of_the_same_id_replaces_its_values(void **state)
{
	(void)state;
	event_index *ix = event_index_create();
	assert_non_null(ix);
	event_rec r;
	make_rec(&r, "a", "2024-01-01T10:00:00", "2024-01-01T11:00:00", "first");
	assert_int_equal(event_index_upsert(ix, &r), 0);
	make_rec(&r, "a", "2024-01-01T10:00:00", "2024-01-01T12:00:00", "second");
	assert_int_equal(event_index_upsert(ix, &r), 0);
	assert_int_equal(event_index_count(ix), 1);
	char title[64];
	assert_int_equal(event_index_get(ix, "a", title_of, title), 1);
	assert_string_equal(title, "second");
	expect_search(ix, NULL, "2024-01-01T11:00:00", NULL, NULL, 0, "");
	expect_search(ix, NULL, "2024-01-01T12:00:00", NULL, NULL, 0, "a");
	event_index_destroy(ix);
}

static void test_a_change_not_newer_than_the_held_one_is_ignored(void **state)
{
	(void)state;
	event_index *ix = event_index_create();
	assert_non_null(ix);
	event_rec r;
	char title[64];
	make_rec(&r, "a", "2024-01-01T10:00:00", "2024-01-01T11:00:00", "seq 5");
	r.seq = 5;
	assert_int_equal(event_index_upsert_newer(ix, &r), 1);
	/* The same change again (the log bringing what the fetch applied). */
	assert_int_equal(event_index_upsert_newer(ix, &r), 0);
	/* An older one after it: moved start, other title; nothing changes. */
	make_rec(&r, "a", "2024-01-02T10:00:00", "2024-01-02T11:00:00", "seq 3");
	r.seq = 3;
	assert_int_equal(event_index_upsert_newer(ix, &r), 0);
	assert_int_equal(event_index_get(ix, "a", title_of, title), 1);
	assert_string_equal(title, "seq 5");
	expect_search(ix, "2024-01-02T00:00:00", NULL, NULL, NULL, 0, "");
	expect_search(ix, "2024-01-01T00:00:00", NULL, NULL, NULL, 0, "a");
	/* A newer one moves it; a record taken over does the same. */
	make_rec(&r, "a", "2024-01-03T10:00:00", "2024-01-03T11:00:00", "seq 6");
	r.seq = 6;
	assert_int_equal(event_index_upsert_newer(ix, &r), 1);
	expect_search(ix, "2024-01-02T00:00:00", NULL, NULL, NULL, 0, "a");
	make_rec(&r, "a", "2024-01-04T10:00:00", "2024-01-04T11:00:00", "seq 6 again");
	r.seq = 6;
	event_rec *own = event_rec_dup(&r);
	assert_non_null(own);
	assert_int_equal(event_index_put_newer(ix, own), 0); /* freed: ASan checks */
	make_rec(&r, "b", "2024-01-04T10:00:00", "2024-01-04T11:00:00", "b at 7");
	r.seq = 7;
	own = event_rec_dup(&r);
	assert_non_null(own);
	assert_int_equal(event_index_put_newer(ix, own), 1);
	assert_int_equal(event_index_count(ix), 2);
	assert_int_equal(event_index_get(ix, "a", title_of, title), 1);
	assert_string_equal(title, "seq 6");
	assert_int_equal(event_index_get(ix, "b", title_of, title), 1);
	assert_string_equal(title, "b at 7");
	event_index_destroy(ix);
}

static void test_an_upsert_that_changes_starts_at_moves_the_event(void **state)
{
	(void)state;
	event_index *ix = event_index_create();
	assert_non_null(ix);
	put(ix, "a", "2024-01-01T10:00:00", "2024-01-01T11:00:00");
	put(ix, "b", "2024-01-01T11:00:00", "2024-01-01T12:00:00");
	put(ix, "c", "2024-01-01T12:00:00", "2024-01-01T13:00:00");
	expect_search(ix, NULL, NULL, NULL, NULL, 0, "a b c");
	put(ix, "a", "2024-01-01T13:00:00", "2024-01-01T14:00:00");
	expect_search(ix, NULL, NULL, NULL, NULL, 0, "b c a");
	put(ix, "c", "2024-01-01T09:00:00", "2024-01-01T10:00:00");
	expect_search(ix, NULL, NULL, NULL, NULL, 0, "c b a");
	expect_search(ix, "2024-01-01T10:00:00", NULL, NULL, NULL, 0, "b a");
	assert_int_equal(event_index_count(ix), 3);
	event_index_destroy(ix);
}

static void test_events_are_ordered_by_start_then_id(void **state)
{
	(void)state;
	event_index *ix = event_index_create();
	assert_non_null(ix);
	put(ix, "m", "2024-01-01T10:00:00", "2024-01-01T11:00:00");
	put(ix, "z", "2024-01-01T09:00:00", "2024-01-01T11:00:00");
	put(ix, "c", "2024-01-01T10:00:00", "2024-01-01T11:00:00");
	put(ix, "a", "2024-01-01T11:00:00", "2024-01-01T12:00:00");
	put(ix, "k", "2024-01-01T10:00:00", "2024-01-01T10:30:00");
	put(ix, "ca", "2024-01-01T10:00:00", "2024-01-01T11:00:00");
	expect_search(ix, NULL, NULL, NULL, NULL, 0, "z c ca k m a");
	event_index_destroy(ix);
}

/* Events of one day: a 09-10, b 10-12, c 11-12, d 12-14, e 13-15. */
static event_index *day(void)
{
	event_index *ix = event_index_create();
	assert_non_null(ix);
	put(ix, "d", "2024-01-01T12:00:00", "2024-01-01T14:00:00");
	put(ix, "a", "2024-01-01T09:00:00", "2024-01-01T10:00:00");
	put(ix, "e", "2024-01-01T13:00:00", "2024-01-01T15:00:00");
	put(ix, "c", "2024-01-01T11:00:00", "2024-01-01T12:00:00");
	put(ix, "b", "2024-01-01T10:00:00", "2024-01-01T12:00:00");
	return ix;
}

static void test_from_alone_passes_events_starting_at_or_after_it(void **state)
{
	(void)state;
	event_index *ix = day();
	expect_search(ix, "2024-01-01T10:00:00", NULL, NULL, NULL, 0, "b c d e");
	expect_search(ix, "2024-01-01T10:00:01", "", NULL, NULL, 0, "c d e");
	expect_search(ix, "2024-01-01T13:00:01", NULL, NULL, NULL, 0, "");
	expect_search(ix, "2023", NULL, NULL, NULL, 0, "a b c d e");
	event_index_destroy(ix);
}

static void test_to_alone_passes_events_ending_at_or_before_it(void **state)
{
	(void)state;
	event_index *ix = day();
	expect_search(ix, NULL, "2024-01-01T12:00:00", NULL, NULL, 0, "a b c");
	/* d starts before 13:00 but ends after it. */
	expect_search(ix, "", "2024-01-01T13:00:00", NULL, NULL, 0, "a b c");
	expect_search(ix, NULL, "2024-01-01T09:59:59", NULL, NULL, 0, "");
	expect_search(ix, NULL, "2025", NULL, NULL, 0, "a b c d e");
	event_index_destroy(ix);
}

static void test_both_bounds_pass_events_inside_the_window(void **state)
{
	(void)state;
	event_index *ix = day();
	expect_search(ix, "2024-01-01T10:00:00", "2024-01-01T14:00:00", NULL, NULL, 0, "b c d");
	expect_search(ix, "2024-01-01T11:00:00", "2024-01-01T12:00:00", NULL, NULL, 0, "c");
	expect_search(ix, "2024-01-01T12:00:00", "2024-01-01T13:00:00", NULL, NULL, 0, "");
	/* A window that ends before it starts holds nothing. */
	expect_search(ix, "2024-01-01T14:00:00", "2024-01-01T10:00:00", NULL, NULL, 0, "");
	event_index_destroy(ix);
}

static void test_no_bounds_pass_every_event(void **state)
{
	(void)state;
	event_index *ix = day();
	expect_search(ix, NULL, NULL, NULL, NULL, 0, "a b c d e");
	expect_search(ix, "", "", "", "", 0, "a b c d e");
	event_index_destroy(ix);
}

static void test_paging_resumes_after_the_last_event_across_equal_starts(void **state)
{
	(void)state;
	event_index *ix = event_index_create();
	assert_non_null(ix);
	put(ix, "p0", "2024-01-01T09:00:00", "2024-01-01T10:00:00");
	for (int i = 9; i >= 1; i--) {
		char id[16];
		snprintf(id, sizeof(id), "q%d", i);
		put(ix, id, "2024-01-01T10:00:00", "2024-01-01T11:00:00");
	}
	put(ix, "r0", "2024-01-01T11:00:00", "2024-01-01T12:00:00");
	expect_search(ix, NULL, NULL, NULL, NULL, 0, "p0 q1 q2 q3 q4 q5 q6 q7 q8 q9 r0");

	char all[512] = "", last_start[20] = "", last_id[37] = "";
	size_t len = 0, pages = 0;
	for (;;) {
		got g = {0};
		size_t n = event_index_search(ix, NULL, NULL, last_start, last_id, 3, collect, &g);
		if (n == 0)
			break;
		assert_true(n <= 3);
		assert_true(pages < 4);
		for (size_t i = 0; i < n; i++)
			len += (size_t)snprintf(all + len, sizeof(all) - len, "%s%s", len > 0 ? " " : "", g.id[i]);
		snprintf(last_start, sizeof(last_start), "%s", g.start[n - 1]);
		snprintf(last_id, sizeof(last_id), "%s", g.id[n - 1]);
		pages++;
	}
	assert_string_equal(all, "p0 q1 q2 q3 q4 q5 q6 q7 q8 q9 r0");
	assert_int_equal(pages, 4);

	/* After an event, whether or not it is still there, and with bounds. */
	expect_search(ix, NULL, NULL, "2024-01-01T10:00:00", "q45", 0, "q5 q6 q7 q8 q9 r0");
	expect_search(ix, NULL, "2024-01-01T11:00:00", "2024-01-01T10:00:00", "q8", 0, "q9");
	/* A position before `from` starts at `from`; one after it wins. */
	expect_search(ix, "2024-01-01T10:00:00", NULL, "2024-01-01T09:00:00", "p0", 2, "q1 q2");
	expect_search(ix, "2024-01-01T10:00:00", NULL, "2024-01-01T10:00:00", "q7", 0, "q8 q9 r0");
	/* No after_start: the position is before every start. */
	expect_search(ix, NULL, NULL, NULL, "p0", 0, "p0 q1 q2 q3 q4 q5 q6 q7 q8 q9 r0");
	event_index_destroy(ix);
}

static void test_a_limit_stops_after_that_many_events(void **state)
{
	(void)state;
	event_index *ix = day();
	expect_search(ix, NULL, NULL, NULL, NULL, 2, "a b");
	expect_search(ix, "2024-01-01T10:30:00", NULL, NULL, NULL, 1, "c");
	expect_search(ix, NULL, NULL, NULL, NULL, 5, "a b c d e");
	expect_search(ix, NULL, NULL, NULL, NULL, 50, "a b c d e");
	/* Events passed over by the bounds do not count. */
	expect_search(ix, NULL, "2024-01-01T12:00:00", NULL, NULL, 3, "a b c");
	event_index_destroy(ix);
}

static void test_a_callback_returning_nonzero_stops_the_search(void **state)
{
	(void)state;
	event_index *ix = day();
	got g = {0};
	g.stop_at = 2;
	assert_int_equal(event_index_search(ix, NULL, NULL, NULL, NULL, 0, collect, &g), 2);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.id[1], "b");
	got h = {0};
	h.stop_at = 1;
	assert_int_equal(event_index_search(ix, "2024-01-01T12:00:00", NULL, NULL, NULL, 10, collect, &h), 1);
	assert_string_equal(h.id[0], "d");
	event_index_destroy(ix);
}

static void test_events_ending_before_they_start_follow_the_same_rule(void **state)
{
	(void)state;
	event_index *ix = day();
	/* x starts at 14:00 and ends at 11:00: start >= from and end <= to
	 * hold for windows that end before it starts. */
	put(ix, "x", "2024-01-01T14:00:00", "2024-01-01T11:00:00");
	put(ix, "w", "2024-01-01T10:00:00", "2024-01-01T09:30:00");
	expect_search(ix, NULL, NULL, NULL, NULL, 0, "a b w c d e x");
	expect_search(ix, "2024-01-01T10:00:00", "2024-01-01T12:00:00", NULL, NULL, 0, "b w c x");
	expect_search(ix, NULL, "2024-01-01T11:00:00", NULL, NULL, 0, "a w x");
	expect_search(ix, NULL, "2024-01-01T10:59:59", NULL, NULL, 0, "a w");
	expect_search(ix, "2024-01-01T14:00:01", "2024-01-01T11:00:00", NULL, NULL, 0, "");
	expect_search(ix, NULL, NULL, "2024-01-01T10:00:00", "b", 2, "w c");
	expect_search(ix, NULL, "2024-01-01T12:00:00", "2024-01-01T11:00:00", "c", 0, "x");
	/* Moving between the orders of start and end. */
	put(ix, "x", "2024-01-01T14:00:00", "2024-01-01T16:00:00");
	expect_search(ix, NULL, "2024-01-01T12:00:00", NULL, NULL, 0, "a b w c");
	put(ix, "a", "2024-01-01T09:00:00", "2024-01-01T08:00:00");
	expect_search(ix, NULL, "2024-01-01T08:00:00", NULL, NULL, 0, "a");
	assert_int_equal(event_index_count(ix), 7);
	event_index_destroy(ix);
}

static void test_count_counts_distinct_ids(void **state)
{
	(void)state;
	event_index *ix = day();
	assert_int_equal(event_index_count(ix), 5);
	put(ix, "a", "2024-02-01T09:00:00", "2024-02-01T10:00:00");
	put(ix, "f", "2024-02-01T09:00:00", "2024-02-01T10:00:00");
	assert_int_equal(event_index_count(ix), 6);
	event_index_destroy(ix);
}

/* The index's events in order as "id@start" words, for comparing states. */
static void dump(event_index *ix, char *out, size_t cap)
{
	got g = {0};
	size_t n = event_index_search(ix, NULL, NULL, NULL, NULL, 0, collect, &g);
	assert_true(n <= 64);
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s@%s ", g.id[i], g.start[i]);
}

static void test_an_upsert_out_of_memory_leaves_the_index_unchanged(void **state)
{
	(void)state;
	event_index *ix = event_index_create();
	assert_non_null(ix);
	uint64_t s = 7;
	/* 60 distinct ids: the hash map grows, leaves and the root split;
	 * then moves. Each upsert first fails at every allocation it makes. */
	for (int op = 0; op < 120; op++) {
		char id[16], start[20], end[20], before[64 * 48], after[64 * 48];
		snprintf(id, sizeof(id), "i%02d", op < 60 ? op : (int)rnd_below(&s, 60));
		int h = (int)rnd_below(&s, 100);
		hour_text(h, start);
		hour_text(h + 1, end);
		event_rec r;
		make_rec(&r, id, start, end, "t");
		for (long fail = 0;; fail++) {
			size_t n = event_index_count(ix);
			dump(ix, before, sizeof(before));
			rpcq_alloc_fail_after(fail);
			int rc = event_index_upsert(ix, &r);
			rpcq_alloc_fail_after(-1);
			if (rc == 0)
				break;
			assert_int_equal(rc, -1);
			assert_int_equal(event_index_count(ix), n);
			dump(ix, after, sizeof(after));
			assert_string_equal(after, before);
			assert_true(fail < 10);
		}
	}
	assert_int_equal(event_index_count(ix), 60);
	event_index_destroy(ix);
}

/* The model of the randomized test: a plain array in (start, id) order,
 * scanned. Times are whole hours (hour_text's order is theirs), so the
 * model compares integers, which keeps it cheap under TSan. */
enum { MODEL_IDS = 1500, MODEL_OPS = 20000, MODEL_HOURS = 240 };

typedef struct model_ev {
	int present, sh, eh; /* start and end hours */
	uint64_t seq;
	char id[37], start[20], end[20], title[32];
} model_ev;

static model_ev model[MODEL_IDS];
static model_ev *sorted[MODEL_IDS]; /* the present events in order */
static size_t n_sorted;

/* Whether e is after (hour h, id). */
static int model_after(const model_ev *e, int h, const char *id)
{
	return e->sh != h ? e->sh > h : strcmp(e->id, id) > 0;
}

/* Sets e's values, keeping sorted in order. */
static void model_put(model_ev *e, int sh, int eh, uint64_t seq)
{
	size_t i = 0;
	if (e->present) {
		while (sorted[i] != e)
			i++;
		memmove(&sorted[i], &sorted[i + 1], (n_sorted - i - 1) * sizeof(sorted[0]));
		n_sorted--;
	}
	e->present = 1;
	e->sh = sh;
	e->eh = eh;
	e->seq = seq;
	hour_text(sh, e->start);
	hour_text(eh, e->end);
	snprintf(e->title, sizeof(e->title), "op %llu", (unsigned long long)seq);
	for (i = 0; i < n_sorted && model_after(e, sorted[i]->sh, sorted[i]->id); i++)
		;
	memmove(&sorted[i + 1], &sorted[i], (n_sorted - i) * sizeof(sorted[0]));
	sorted[i] = e;
	n_sorted++;
}

typedef struct found {
	size_t n;
	const model_ev *ev[MODEL_IDS];
	int stale; /* records whose seq is not the model's */
} found;

static int record(void *arg, const event_rec *r)
{
	found *f = arg;
	assert_true(f->n < MODEL_IDS);
	int k = (r->id[2] - '0') * 1000 + (r->id[3] - '0') * 100 + (r->id[4] - '0') * 10 + (r->id[5] - '0');
	assert_true(k >= 0 && k < MODEL_IDS);
	if (model[k].seq != r->seq)
		f->stale++;
	f->ev[f->n++] = &model[k];
	return 0;
}

/* A search; each bound is an hour, or -1 for none. after_id pages after
 * (after_h, after_id) when not NULL. */
static void check_model_search(event_index *ix, int from_h, int to_h, int after_h, const char *after_id, size_t limit)
{
	static const model_ev *want[MODEL_IDS];
	size_t nw = 0;
	for (size_t k = 0; k < n_sorted && (limit == 0 || nw < limit); k++) {
		const model_ev *e = sorted[k];
		if ((from_h >= 0 && e->sh < from_h) || (to_h >= 0 && e->eh > to_h) ||
		    (after_id != NULL && !model_after(e, after_h, after_id)))
			continue;
		want[nw++] = e;
	}
	char from[20], to[20], as[20];
	hour_text(from_h, from);
	hour_text(to_h, to);
	hour_text(after_h, as);
	static found f;
	f.n = 0;
	f.stale = 0;
	size_t n = event_index_search(ix, from_h >= 0 ? from : NULL, to_h >= 0 ? to : NULL,
				      after_id != NULL ? as : NULL, after_id, limit, record, &f);
	assert_int_equal(n, nw);
	assert_int_equal(f.n, nw);
	assert_int_equal(f.stale, 0);
	for (size_t i = 0; i < nw; i++)
		if (f.ev[i] != want[i])
			fail_msg("search %d..%d after %d/%s limit %zu: #%zu is %s, not %s", from_h, to_h, after_h,
				 after_id ? after_id : "-", limit, i, f.ev[i]->id, want[i]->id);
}

static void check_get(void *arg, const event_rec *r)
{
	const model_ev *e = arg;
	assert_string_equal(r->id, e->id);
	assert_string_equal(r->starts_at, e->start);
	assert_string_equal(r->ends_at, e->end);
	assert_string_equal(r->title, e->title);
	assert_int_equal(r->seq, e->seq);
}

static void test_random_operations_agree_with_a_linear_scan(void **state)
{
	(void)state;
	memset(model, 0, sizeof(model));
	n_sorted = 0;
	for (int k = 0; k < MODEL_IDS; k++)
		snprintf(model[k].id, sizeof(model[k].id), "id%04d", k);
	event_index *ix = event_index_create();
	assert_non_null(ix);
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	size_t present = 0, searches = 0;
	for (int op = 1; op <= MODEL_OPS; op++) {
		unsigned what = rnd_below(&s, 100);
		if (what < 50) {
			/* Starts on the hour over ten days: many equal starts. One
			 * in ten events ends before it starts. */
			model_ev *e = &model[rnd_below(&s, MODEL_IDS)];
			int sh = (int)rnd_below(&s, MODEL_HOURS);
			int eh = sh + (rnd_below(&s, 10) == 0 ? -1 - (int)rnd_below(&s, 3) : (int)rnd_below(&s, 6));
			if (!e->present)
				present++;
			model_put(e, sh, eh < 0 ? 0 : eh, (uint64_t)op);
			event_rec r;
			make_rec(&r, e->id, e->start, e->end, e->title);
			r.seq = e->seq;
			assert_int_equal(event_index_upsert(ix, &r), 0);
		} else if (what < 88) {
			int from_h = (int)rnd_below(&s, MODEL_HOURS + 10) - 5;
			int to_h = from_h + (int)rnd_below(&s, 48) - 4;
			unsigned bounds = rnd_below(&s, 4);
			int after_h = -1;
			const char *after_id = NULL;
			if (rnd_below(&s, 3) == 0) {
				/* Page after an event, or after a position no event has. */
				const model_ev *e = &model[rnd_below(&s, MODEL_IDS)];
				if (e->present && rnd_below(&s, 2) == 0) {
					after_h = e->sh;
					after_id = e->id;
				} else {
					after_h = (int)rnd_below(&s, MODEL_HOURS);
					after_id = rnd_below(&s, 2) ? "id0750x" : "id";
				}
			}
			size_t limit = rnd_below(&s, 3) == 0 ? 1 + rnd_below(&s, 40) : 0;
			check_model_search(ix, bounds & 1 ? (from_h < 0 ? 0 : from_h) : -1,
					   bounds & 2 ? (to_h < 0 ? 0 : to_h) : -1, after_h, after_id, limit);
			searches++;
		} else if (what < 98) {
			model_ev *e = &model[rnd_below(&s, MODEL_IDS)];
			assert_int_equal(event_index_get(ix, e->id, check_get, e), e->present);
		} else {
			assert_int_equal(event_index_count(ix), present);
		}
	}
	check_model_search(ix, -1, -1, -1, NULL, 0);
	assert_int_equal(n_sorted, present);
	assert_true(present > 1000);
	assert_true(searches > 5000);
	event_index_destroy(ix);
}

/* Checks order and completeness of a whole scan of a large index. */
typedef struct scan {
	size_t n;
	char start[20], id[37];
	int unordered;
} scan;

static int scan_one(void *arg, const event_rec *r)
{
	scan *s = arg;
	if (s->n > 0) {
		int c = strcmp(s->start, r->starts_at);
		if (c > 0 || (c == 0 && strcmp(s->id, r->id) >= 0))
			s->unordered++;
	}
	memcpy(s->start, r->starts_at, sizeof(s->start));
	memcpy(s->id, r->id, sizeof(s->id));
	s->n++;
	return 0;
}

static void expect_whole_scan(event_index *ix, size_t n)
{
	scan s = {0};
	assert_int_equal(event_index_search(ix, NULL, NULL, NULL, NULL, 0, scan_one, &s), n);
	assert_int_equal(s.unordered, 0);
	assert_int_equal(event_index_count(ix), n);
}

static void start_is(void *arg, const event_rec *r)
{
	assert_string_equal(r->starts_at, arg);
}

static void test_a_large_index_stays_ordered_as_its_events_move(void **state)
{
	(void)state;
	enum { N = 60000 };
	static int hour[N];
	event_index *ix = event_index_create();
	assert_non_null(ix);
	uint64_t s = 12345;
	char id[16], start[20], end[20];
	/* Spread over a year, then all squeezed into one week (whole regions
	 * of the tree empty: merges up to the root), then spread again in
	 * reverse id order. */
	for (int phase = 0; phase < 3; phase++) {
		for (int k = 0; k < N; k++) {
			int i = phase == 2 ? N - 1 - k : k;
			hour[i] = phase == 1 ? (int)rnd_below(&s, 7 * 24) : (int)rnd_below(&s, 365 * 24);
			snprintf(id, sizeof(id), "ev%06d", i);
			hour_text(hour[i], start);
			hour_text(hour[i] + 2, end);
			put(ix, id, start, end);
		}
		expect_whole_scan(ix, N);
		for (int i = 0; i < N; i += 997) {
			snprintf(id, sizeof(id), "ev%06d", i);
			hour_text(hour[i], start);
			assert_int_equal(event_index_get(ix, id, start_is, start), 1);
		}
	}
	event_index_destroy(ix);
}

/* One writer upserting 50,000 times while three readers search. */
enum { CONC_IDS = 10000, CONC_UPSERTS = 50000, CONC_READERS = 3 };

typedef struct conc {
	event_index *ix;
	atomic_int done;
} conc;

typedef struct reader {
	conc *c;
	uint64_t seed;
	unsigned long searches, seen, bad;
	char from[20], to[20], last_start[20], last_id[37];
	size_t n;
} reader;

/* A record is consistent when its title repeats its key and end. */
static int consistent(const event_rec *r)
{
	char want[96];
	snprintf(want, sizeof(want), "%s %s %s", r->id, r->starts_at, r->ends_at);
	return strcmp(want, r->title) == 0;
}

static int check_one(void *arg, const event_rec *r)
{
	reader *rd = arg;
	if (!consistent(r) || strcmp(r->starts_at, rd->from) < 0 || strcmp(r->ends_at, rd->to) > 0)
		rd->bad++;
	if (rd->n > 0) {
		int c = strcmp(rd->last_start, r->starts_at);
		if (c > 0 || (c == 0 && strcmp(rd->last_id, r->id) >= 0))
			rd->bad++;
	}
	memcpy(rd->last_start, r->starts_at, sizeof(rd->last_start));
	memcpy(rd->last_id, r->id, sizeof(rd->last_id));
	rd->n++;
	return 0;
}

static void check_got(void *arg, const event_rec *r)
{
	reader *rd = arg;
	if (!consistent(r))
		rd->bad++;
}

static void *reader_main(void *arg)
{
	reader *rd = arg;
	while (!atomic_load(&rd->c->done) || rd->searches < 100) {
		int h = (int)rnd_below(&rd->seed, 30 * 24);
		hour_text(h, rd->from);
		hour_text(h + 1 + (int)rnd_below(&rd->seed, 24), rd->to);
		rd->n = 0;
		size_t limit = rnd_below(&rd->seed, 2) ? 0 : 20;
		size_t n = event_index_search(rd->c->ix, rd->from, rd->to, NULL, NULL, limit, check_one, rd);
		if (n != rd->n || (limit != 0 && n > limit))
			rd->bad++;
		rd->seen += n;
		rd->searches++;
		char id[16];
		snprintf(id, sizeof(id), "c%05u", rnd_below(&rd->seed, CONC_IDS));
		event_index_get(rd->c->ix, id, check_got, rd);
		(void)event_index_count(rd->c->ix);
	}
	return NULL;
}

static void test_readers_see_sorted_consistent_results_while_a_writer_upserts(void **state)
{
	(void)state;
	conc c = {.ix = event_index_create()};
	assert_non_null(c.ix);
	atomic_init(&c.done, 0);
	reader rd[CONC_READERS];
	pthread_t th[CONC_READERS];
	memset(rd, 0, sizeof(rd));
	for (int i = 0; i < CONC_READERS; i++) {
		rd[i].c = &c;
		rd[i].seed = 1000 + (uint64_t)i;
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	}
	uint64_t s = 99;
	for (int op = 0; op < CONC_UPSERTS; op++) {
		char id[16], start[20], end[20], title[96];
		snprintf(id, sizeof(id), "c%05u", rnd_below(&s, CONC_IDS));
		int h = (int)rnd_below(&s, 30 * 24);
		hour_text(h, start);
		hour_text(h + 1 + (int)rnd_below(&s, 4), end);
		snprintf(title, sizeof(title), "%s %s %s", id, start, end);
		event_rec r;
		make_rec(&r, id, start, end, title);
		r.seq = (uint64_t)op + 1;
		assert_int_equal(event_index_upsert(c.ix, &r), 0);
	}
	atomic_store(&c.done, 1);
	unsigned long searches = 0, seen = 0;
	for (int i = 0; i < CONC_READERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(rd[i].bad, 0);
		searches += rd[i].searches;
		seen += rd[i].seen;
	}
	print_message("%lu searches, %lu events seen, %zu events\n", searches, seen, event_index_count(c.ix));
	assert_true(seen > 0);
	expect_whole_scan(c.ix, event_index_count(c.ix));
	event_index_destroy(c.ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_an_empty_index_finds_nothing),
		cmocka_unit_test(test_an_inserted_event_is_found_by_id_with_every_field_copied),
		cmocka_unit_test(test_an_upsert_of_the_same_id_replaces_its_values),
		cmocka_unit_test(test_a_change_not_newer_than_the_held_one_is_ignored),
		cmocka_unit_test(test_an_upsert_that_changes_starts_at_moves_the_event),
		cmocka_unit_test(test_events_are_ordered_by_start_then_id),
		cmocka_unit_test(test_from_alone_passes_events_starting_at_or_after_it),
		cmocka_unit_test(test_to_alone_passes_events_ending_at_or_before_it),
		cmocka_unit_test(test_both_bounds_pass_events_inside_the_window),
		cmocka_unit_test(test_no_bounds_pass_every_event),
		cmocka_unit_test(test_paging_resumes_after_the_last_event_across_equal_starts),
		cmocka_unit_test(test_a_limit_stops_after_that_many_events),
		cmocka_unit_test(test_a_callback_returning_nonzero_stops_the_search),
		cmocka_unit_test(test_events_ending_before_they_start_follow_the_same_rule),
		cmocka_unit_test(test_count_counts_distinct_ids),
		cmocka_unit_test(test_an_upsert_out_of_memory_leaves_the_index_unchanged),
		cmocka_unit_test(test_random_operations_agree_with_a_linear_scan),
		cmocka_unit_test(test_a_large_index_stays_ordered_as_its_events_move),
		cmocka_unit_test(test_readers_see_sorted_consistent_results_while_a_writer_upserts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
