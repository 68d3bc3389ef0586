/*
 * Metrics: one block of relaxed atomic counters per method of the dispatch
 * table (plus one for unknown methods) and one row per HTTP route, written by
 * every call and read by a scrape. Every call of every worker counts, so the
 * blocks are cache-line aligned and padded: two methods never share a line,
 * and a busy method's counters do not slow the others down. Counting is one
 * status counter, one bucket and the sum; a histogram's _count is the sum of
 * its buckets, read at render time, so it always equals its +Inf bucket.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "metrics.h"

#define CACHE_LINE 64
#define HTTP_CODE_MIN 100
#define HTTP_CODE_MAX 599
#define HTTP_CODES (HTTP_CODE_MAX - HTTP_CODE_MIN + 1)

/* Upper bounds of the duration buckets, in nanoseconds for counting and as
 * Prometheus writes them for the le label; the last bucket is +Inf. */
static const struct {
	uint64_t ns;
	const char *le;
} bucket_bounds[] = {
	{100000, "0.0001"},  {250000, "0.00025"},    {500000, "0.0005"},   {1000000, "0.001"},
	{2500000, "0.0025"}, {5000000, "0.005"},     {10000000, "0.01"},   {25000000, "0.025"},
	{50000000, "0.05"},  {100000000, "0.1"},     {250000000, "0.25"},  {500000000, "0.5"},
	{1000000000, "1"},   {2500000000ULL, "2.5"}, {5000000000ULL, "5"}, {10000000000ULL, "10"},
};

#define NBOUNDS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))
#define NBUCKETS (NBOUNDS + 1)

/* One method's counters. The alignment of the first member makes the size a
 * multiple of a cache line, so consecutive blocks never share one. Buckets
 * hold non-cumulative counts: a call increments exactly one. */
typedef struct method_block {
	_Alignas(CACHE_LINE) _Atomic uint64_t calls[RPCQ_STATUS_COUNT];
	_Atomic uint64_t buckets[NBUCKETS];
	_Atomic uint64_t sum_ns;
} method_block;

_Static_assert(sizeof(method_block) % CACHE_LINE == 0, "a method's counters fill whole cache lines");

/* One route's counters by status code, on lines of their own too. */
typedef struct http_row {
	_Alignas(CACHE_LINE) _Atomic uint64_t codes[HTTP_CODES];
} http_row;

struct metrics {
	size_t nmethods;      /* entries of the dispatch table; blocks has one more */
	char **names;	      /* nmethods label values: "rpcq.Health/Echo" */
	method_block *blocks; /* aligned within blocks_mem */
	void *blocks_mem;
	http_row *http; /* METRICS_ROUTE_COUNT rows, aligned within http_mem */
	void *http_mem;
};

static const char *const route_names[METRICS_ROUTE_COUNT] = {
	[METRICS_ROUTE_RPC] = "rpc",	   [METRICS_ROUTE_STREAMS] = "streams", [METRICS_ROUTE_HEALTHZ] = "healthz",
	[METRICS_ROUTE_READYZ] = "readyz", [METRICS_ROUTE_METRICS] = "metrics", [METRICS_ROUTE_SEARCH] = "search",
	[METRICS_ROUTE_OTHER] = "other",
};

/* Zeroed memory for n objects of size bytes starting on a cache line; the
 * pointer to free goes to *mem. rpcq_calloc (the one allocation seam) makes
 * no promise beyond max_align_t, so the block is over-allocated by a line. */
static void *calloc_aligned(size_t n, size_t size, void **mem)
{
	if (size != 0 && n > (SIZE_MAX - CACHE_LINE) / size)
		return NULL;
	char *p = rpcq_calloc(1, n * size + CACHE_LINE);
	*mem = p;
	if (p == NULL)
		return NULL;
	uintptr_t addr = ((uintptr_t)p + CACHE_LINE - 1) & ~(uintptr_t)(CACHE_LINE - 1);
	return p + (addr - (uintptr_t)p);
}

rpcq_status metrics_create(metrics **out, const dispatch *d, rpcq_error *err)
{
	rpcq_status st = RPCQ_RESOURCE_EXHAUSTED;
	size_t n;
	const dispatch_entry *e = dispatch_entries(d, &n);
	metrics *m = rpcq_calloc(1, sizeof(*m));
	if (m == NULL)
		return rpcq_error_set(err, st, "out of memory");
	m->names = rpcq_calloc(n ? n : 1, sizeof(*m->names));
	if (m->names == NULL)
		goto fail;
	m->nmethods = n;
	for (size_t i = 0; i < n; i++) {
		assert(e[i].index == i);
		/* The label is the name without its leading slash, as gRPC exporters write it. */
		const char *name = e[i].full_name[0] == '/' ? e[i].full_name + 1 : e[i].full_name;
		m->names[i] = rpcq_strdup(name);
		if (m->names[i] == NULL)
			goto fail;
	}
	m->blocks = calloc_aligned(n + 1, sizeof(*m->blocks), &m->blocks_mem);
	m->http = calloc_aligned(METRICS_ROUTE_COUNT, sizeof(*m->http), &m->http_mem);
	if (m->blocks == NULL || m->http == NULL)
		goto fail;
	*out = m;
	return RPCQ_OK;
fail:
	metrics_destroy(m);
	return rpcq_error_set(err, st, "out of memory");
}

void metrics_destroy(metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; m->names && i < m->nmethods; i++)
		rpcq_free(m->names[i]);
	rpcq_free(m->names);
	rpcq_free(m->blocks_mem);
	rpcq_free(m->http_mem);
	rpcq_free(m);
}

static void count(_Atomic uint64_t *counter, uint64_t n)
{
	atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *counter)
{
	return atomic_load_explicit(counter, memory_order_relaxed);
}

void metrics_call(metrics *m, const dispatch_entry *e, rpcq_status status, uint64_t duration_ns)
{
	assert(e == NULL || e->index < m->nmethods);
	method_block *b = &m->blocks[e != NULL && e->index < m->nmethods ? e->index : m->nmethods];
	/* rpcq_status_name calls any number outside the table UNKNOWN; so do we. */
	unsigned code = (unsigned)status < RPCQ_STATUS_COUNT ? (unsigned)status : (unsigned)RPCQ_UNKNOWN;
	size_t i = 0;
	/* Most calls are fast, so a linear search from the smallest bound ends early. */
	while (i < NBOUNDS && duration_ns > bucket_bounds[i].ns)
		i++;
	count(&b->calls[code], 1);
	count(&b->buckets[i], 1);
	count(&b->sum_ns, duration_ns);
}

void metrics_http(metrics *m, metrics_route route, int code)
{
	if ((unsigned)route >= METRICS_ROUTE_COUNT)
		route = METRICS_ROUTE_OTHER;
	if (code < HTTP_CODE_MIN || code > HTTP_CODE_MAX)
		code = 500;
	count(&m->http[route].codes[code - HTTP_CODE_MIN], 1);
}

/* The text being rendered: grows by doubling; once an allocation fails it
 * stays failed and every later append is a no-op. */
typedef struct outbuf {
	char *p;
	size_t len, cap;
	int failed;
} outbuf;

static int reserve(outbuf *o, size_t more)
{
	if (o->failed)
		return -1;
	if (o->len + more < o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 4096;
	while (o->len + more >= cap)
		cap *= 2;
	char *p = rpcq_realloc(o->p, cap);
	if (p == NULL) {
		o->failed = 1;
		return -1;
	}
	o->p = p;
	o->cap = cap;
	return 0;
}

static void put(outbuf *o, const char *s)
{
	size_t n = strlen(s);
	if (reserve(o, n) != 0)
		return;
	memcpy(o->p + o->len, s, n + 1);
	o->len += n;
}

static void putf(outbuf *o, const char *fmt, ...) RPCQ_PRINTF(2, 3);

static void putf(outbuf *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(o, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

/* A label value between its quotes: backslash, double quote and newline
 * escaped, as text format 0.0.4 requires. */
static void put_label_value(outbuf *o, const char *s)
{
	for (; *s; s++) {
		char c[2] = {*s, '\0'};
		put(o, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : c);
	}
}

/* The shortest decimal that reads back as v, Prometheus's spelling of the
 * infinities and NaN. Scrapes happen every few seconds with a handful of
 * floats each, so trying precisions in turn is cheap enough. */
static void put_float(outbuf *o, double v)
{
	if (isnan(v)) {
		put(o, "NaN");
		return;
	}
	if (isinf(v)) {
		put(o, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	char text[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(text, sizeof(text), "%.*g", prec, v);
		if (strtod(text, NULL) == v)
			break;
	}
	put(o, text);
}

static void put_family(outbuf *o, const char *name, const char *type, const char *help)
{
	putf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One unlabelled sample. */
static void put_u64(outbuf *o, const char *name, uint64_t v)
{
	putf(o, "%s %" PRIu64 "\n", name, v);
}

static void put_calls(outbuf *o, const metrics *m)
{
	put_family(o, "rpcq_calls_total", "counter", "Calls answered, by method and status code.");
	for (size_t i = 0; i <= m->nmethods; i++) {
		method_block *b = &m->blocks[i];
		for (unsigned code = 0; code < RPCQ_STATUS_COUNT; code++) {
			uint64_t n = load(&b->calls[code]);
			if (n == 0)
				continue;
			put(o, "rpcq_calls_total{method=\"");
			put_label_value(o, i < m->nmethods ? m->names[i] : "unknown");
			putf(o, "\",code=\"%s\"} %" PRIu64 "\n", rpcq_status_name((rpcq_status)code), n);
		}
	}
}

static void put_histogram(outbuf *o, const char *method, method_block *b)
{
	uint64_t total = 0;
	for (size_t i = 0; i < NBUCKETS; i++) {
		total += load(&b->buckets[i]);
		put(o, "rpcq_call_duration_seconds_bucket{method=\"");
		put_label_value(o, method);
		putf(o, "\",le=\"%s\"} %" PRIu64 "\n", i < NBOUNDS ? bucket_bounds[i].le : "+Inf", total);
	}
	put(o, "rpcq_call_duration_seconds_sum{method=\"");
	put_label_value(o, method);
	put(o, "\"} ");
	put_float(o, (double)load(&b->sum_ns) / 1e9);
	put(o, "\nrpcq_call_duration_seconds_count{method=\"");
	put_label_value(o, method);
	putf(o, "\"} %" PRIu64 "\n", total);
}

static void put_durations(outbuf *o, const metrics *m)
{
	put_family(o, "rpcq_call_duration_seconds", "histogram", "Time from receipt of a call to its reply.");
	for (size_t i = 0; i < m->nmethods; i++)
		put_histogram(o, m->names[i], &m->blocks[i]);
	/* Unknown methods are not in the table: their histogram only once one was called. */
	method_block *unknown = &m->blocks[m->nmethods];
	uint64_t called = 0;
	for (size_t i = 0; i < NBUCKETS; i++)
		called += load(&unknown->buckets[i]);
	if (called)
		put_histogram(o, "unknown", unknown);
}

static void put_http(outbuf *o, const metrics *m)
{
	put_family(o, "rpcq_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
	for (size_t r = 0; r < METRICS_ROUTE_COUNT; r++) {
		for (int i = 0; i < HTTP_CODES; i++) {
			uint64_t n = load(&m->http[r].codes[i]);
			if (n)
				putf(o, "rpcq_http_requests_total{route=\"%s\",code=\"%d\"} %" PRIu64 "\n",
				     route_names[r], i + HTTP_CODE_MIN, n);
		}
	}
}

char *metrics_render(metrics *m, const metrics_gauges *g, const char *version, size_t *len)
{
	static const metrics_gauges none;
	if (g == NULL)
		g = &none;
	outbuf o = {0};
	put_calls(&o, m);
	put_durations(&o, m);
	put_family(&o, "rpcq_calls_in_flight", "gauge", "Calls received and not yet answered.");
	put_u64(&o, "rpcq_calls_in_flight", g->calls_in_flight);
	put_family(&o, "rpcq_replies_dropped_total", "counter",
		   "Replies dropped because the caller did not read them.");
	put_u64(&o, "rpcq_replies_dropped_total", g->replies_dropped);
	put_http(&o, m);
	put_family(&o, "rpcq_pool_connections", "gauge", "Database connections of the pool, by state.");
	putf(&o, "rpcq_pool_connections{state=\"idle\"} %u\n", g->pool_idle);
	putf(&o, "rpcq_pool_connections{state=\"active\"} %u\n", g->pool_active);
	putf(&o, "rpcq_pool_connections{state=\"connecting\"} %u\n", g->pool_connecting);
	put_family(&o, "rpcq_pool_acquire_waits_total", "counter", "Database connection acquires that had to wait.");
	put_u64(&o, "rpcq_pool_acquire_waits_total", g->pool_acquire_waits);
	put_family(&o, "rpcq_pool_acquire_timeouts_total", "counter",
		   "Database connection acquires that gave up at their deadline.");
	put_u64(&o, "rpcq_pool_acquire_timeouts_total", g->pool_acquire_timeouts);
	put_family(&o, "rpcq_stream_messages_published_total", "counter",
		   "Stream messages sent by this process's publisher.");
	put_u64(&o, "rpcq_stream_messages_published_total", g->stream_published);
	put_family(&o, "rpcq_stream_subscribers", "gauge", "Stream subscribers, by transport.");
	putf(&o, "rpcq_stream_subscribers{transport=\"nng\"} %u\n", g->stream_subscribers);
	putf(&o, "rpcq_stream_subscribers{transport=\"sse\"} %u\n", g->sse_subscribers);
	put_family(&o, "rpcq_http_connections", "gauge", "Open HTTP connections.");
	put_u64(&o, "rpcq_http_connections", g->http_connections);
	put_family(&o, "rpcq_build_info", "gauge", "The version of rpcqd, as a label; the value is always 1.");
	put(&o, "rpcq_build_info{version=\"");
	put_label_value(&o, version ? version : "");
	put(&o, "\"} 1\n");
	put_family(&o, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.");
	put(&o, "process_start_time_seconds ");
	put_float(&o, g->start_time_seconds);
	put(&o, "\n");
	if (o.failed) {
		rpcq_free(o.p);
		return NULL;
	}
	if (len)
		*len = o.len;
	return o.p;
}
