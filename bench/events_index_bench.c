/*
 * rpcq-events-index-bench: the in-memory index of events
 * (server/services/events/index.h) at the size the events service expects.
 * Builds N events (100,000) with random starts over two years and durations
 * of one to four hours, then measures:
 *   search      windows of W minutes (360: about 20 events each), random
 *               over the two years, with 1 and 2 threads; searches per second
 *               and the mean number of events a search passed
 *   burst       B upserts (50,000) in a row, as the change follower applies
 *               an ingest: events whose start moved (delete and insert),
 *               events whose values changed in place, and new events
 *   contended   the moving burst again while one thread searches: how fast
 *               each side goes when they share the writer-preferring lock
 *
 *   rpcq-events-index-bench [-n EVENTS] [-b BURST] [-s SEARCHES] [-w MINUTES]
 *
 * Prints one markdown row per measurement; exit 0 unless something failed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index.h"

#define SPAN_S (730L * 86400) /* two years of starts */
#define EPOCH_2024 1704067200L

static long n_events = 100000, n_burst = 50000, n_searches = 1000000, window_min = 360;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Seconds since 2024-01-01 as "YYYY-MM-DDTHH:MM:SS". */
static void time_text(long s, char out[20])
{
	time_t t = (time_t)(EPOCH_2024 + s);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 20, "%Y-%m-%dT%H:%M:%S", &tm);
}

/* One event as the applier would hand it over, with its own strings. */
typedef struct bench_ev {
	event_rec r;
	char base[24], ev[24], title[40];
} bench_ev;

/* Event k: id, a start on a whole minute and a duration of 1-4 hours. */
static void make_event(bench_ev *e, long k, uint64_t *seed, uint64_t seq)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->r.id, sizeof(e->r.id), "6ba7b810-9dad-51d1-80b4-%012ld", k);
	long start = (long)(rnd(seed) % (SPAN_S / 60)) * 60;
	long dur = 3600 + (long)(rnd(seed) % (3 * 60 + 1)) * 60;
	time_text(start, e->r.starts_at);
	time_text(start + dur, e->r.ends_at);
	time_text(start - 90L * 86400, e->r.sell_from);
	time_text(start - 3600, e->r.sell_to);
	snprintf(e->r.min_price, sizeof(e->r.min_price), "%ld.00", 10 + (long)(rnd(seed) % 40));
	snprintf(e->r.max_price, sizeof(e->r.max_price), "%ld.50", 50 + (long)(rnd(seed) % 100));
	e->r.seq = seq;
	snprintf(e->base, sizeof(e->base), "%ld", k / 3);
	snprintf(e->ev, sizeof(e->ev), "%ld", k);
	snprintf(e->title, sizeof(e->title), "Event number %ld", k);
	e->r.base_id = e->base;
	e->r.event_id = e->ev;
	e->r.title = e->title;
}

/* Windows of window_min minutes, precomputed so that searching is all
 * that is timed. */
enum { N_WINDOWS = 1 << 16 };
static char win_from[N_WINDOWS][20], win_to[N_WINDOWS][20];

typedef struct searcher {
	event_index *ix;
	long searches; /* to do; or, with stop, until stop is set */
	atomic_int *stop;
	uint64_t seed;
	long done;
	unsigned long passed;
	uint64_t ns;
} searcher;

static int count_one(void *arg, const event_rec *r)
{
	unsigned long *n = arg;
	*n += (unsigned char)r->title[0] != 0; /* touch the record, as a reply would */
	return 0;
}

static void *searcher_main(void *arg)
{
	searcher *s = arg;
	uint64_t t0 = now_ns();
	for (s->done = 0; s->stop != NULL ? !atomic_load(s->stop) : s->done < s->searches; s->done++) {
		size_t w = (size_t)(rnd(&s->seed) % N_WINDOWS);
		event_index_search(s->ix, win_from[w], win_to[w], NULL, NULL, 0, count_one, &s->passed);
	}
	s->ns = now_ns() - t0;
	return NULL;
}

static int run_searches(event_index *ix, int threads)
{
	searcher s[8];
	pthread_t th[8];
	uint64_t t0 = now_ns();
	for (int i = 0; i < threads; i++) {
		s[i] = (searcher){.ix = ix, .searches = n_searches, .seed = 77 + (uint64_t)i};
		if (pthread_create(&th[i], NULL, searcher_main, &s[i]) != 0)
			return -1;
	}
	long total = 0;
	unsigned long passed = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		total += s[i].done;
		passed += s[i].passed;
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	printf("| search, %d thread%s | %.0f searches/s (%.0f per thread) | %.1f events per search | %.2f us per "
	       "search |\n",
	       threads, threads > 1 ? "s" : "", (double)total / secs, (double)total / secs / threads,
	       (double)passed / (double)total, secs * 1e6 / ((double)total / threads));
	return 0;
}

static int run_burst(event_index *ix, bench_ev *burst, const char *what)
{
	uint64_t t0 = now_ns();
	for (long i = 0; i < n_burst; i++) {
		if (event_index_upsert(ix, &burst[i].r) != 0) {
			fprintf(stderr, "rpcq-events-index-bench: upsert: out of memory\n");
			return -1;
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	printf("| burst of %ld, %s | %.0f upserts/s | %.1f ms in all | %zu events held |\n", n_burst, what,
	       (double)n_burst / secs, secs * 1e3, event_index_count(ix));
	return 0;
}

static int parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		long *to = NULL;
		if (strcmp(argv[i], "-n") == 0)
			to = &n_events;
		else if (strcmp(argv[i], "-b") == 0)
			to = &n_burst;
		else if (strcmp(argv[i], "-s") == 0)
			to = &n_searches;
		else if (strcmp(argv[i], "-w") == 0)
			to = &window_min;
		char *end;
		if (to == NULL || i + 1 == argc || (*to = strtol(argv[++i], &end, 10)) <= 0 || *end != '\0') {
			fprintf(stderr, "usage: rpcq-events-index-bench [-n EVENTS] [-b BURST] [-s SEARCHES] "
					"[-w MINUTES]\n");
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	int result = 1;
	event_index *ix = NULL;
	bench_ev *evs = NULL, *burst = NULL;
	if (parse_args(argc, argv) != 0)
		return 2;
	ix = event_index_create();
	evs = calloc((size_t)n_events, sizeof(*evs));
	burst = calloc((size_t)n_burst, sizeof(*burst));
	if (ix == NULL || evs == NULL || burst == NULL) {
		fprintf(stderr, "rpcq-events-index-bench: out of memory\n");
		goto out;
	}
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	for (long k = 0; k < n_events; k++)
		make_event(&evs[k], k, &seed, (uint64_t)k + 1);
	for (int w = 0; w < N_WINDOWS; w++) {
		long from = (long)(rnd(&seed) % (SPAN_S / 60)) * 60;
		time_text(from, win_from[w]);
		time_text(from + window_min * 60, win_to[w]);
	}

	printf("| %ld events over 2 years, windows of %ld min | | | |\n|---|---|---|---|\n", n_events, window_min);
	uint64_t t0 = now_ns();
	for (long k = 0; k < n_events; k++) {
		if (event_index_upsert(ix, &evs[k].r) != 0) {
			fprintf(stderr, "rpcq-events-index-bench: upsert: out of memory\n");
			goto out;
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	printf("| build, %ld inserts | %.0f upserts/s | %.1f ms in all | %zu events held |\n", n_events,
	       (double)n_events / secs, secs * 1e3, event_index_count(ix));

	if (run_searches(ix, 1) != 0 || run_searches(ix, 2) != 0)
		goto out;

	/* Bursts over existing events, chosen at random: moved starts, then
	 * the same starts with new prices, then new events. */
	for (long i = 0; i < n_burst; i++)
		make_event(&burst[i], (long)(rnd(&seed) % (uint64_t)n_events), &seed, (uint64_t)(n_events + i + 1));
	if (run_burst(ix, burst, "starts moved") != 0)
		goto out;
	for (long i = 0; i < n_burst; i++)
		snprintf(burst[i].r.min_price, sizeof(burst[i].r.min_price), "%ld.25", 5 + i % 7);
	if (run_burst(ix, burst, "values in place") != 0)
		goto out;
	for (long i = 0; i < n_burst; i++)
		make_event(&burst[i], n_events + i, &seed, (uint64_t)(2 * n_events + i + 1));
	if (run_burst(ix, burst, "new events") != 0)
		goto out;

	/* The moving burst again with one thread searching all along. */
	for (long i = 0; i < n_burst; i++)
		make_event(&burst[i], (long)(rnd(&seed) % (uint64_t)n_events), &seed, (uint64_t)(3 * n_events + i + 1));
	atomic_int stop;
	atomic_init(&stop, 0);
	searcher s = {.ix = ix, .stop = &stop, .seed = 5};
	pthread_t th;
	if (pthread_create(&th, NULL, searcher_main, &s) != 0)
		goto out;
	int rc = run_burst(ix, burst, "starts moved, 1 thread searching");
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	if (rc != 0)
		goto out;
	printf("| search during that burst, 1 thread | %.0f searches/s | %.1f events per search | |\n",
	       (double)s.done / ((double)s.ns / 1e9), s.done > 0 ? (double)s.passed / (double)s.done : 0.0);
	result = 0;
out:
	event_index_destroy(ix);
	free(burst);
	free(evs);
	return result;
}
