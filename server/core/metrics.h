/*
 * Counters of one rpcqd process and their Prometheus text exposition
 * (GET /metrics). Counting is on the path of every call, so it takes no
 * lock and makes no system call: relaxed atomic adds on counters laid out
 * per method (the dispatch table's order), each method's block on cache
 * lines of its own. Rendering reads them without stopping anyone; a scrape
 * may see a call counted in calls_total a moment before its histogram.
 */
#ifndef RPCQ_METRICS_H
#define RPCQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>
#include <rpcq/status.h>

#include "dispatch.h"

typedef struct metrics metrics;

/* The HTTP routes of the gateway, for rpcq_http_requests_total{route,code}. */
typedef enum metrics_route {
	METRICS_ROUTE_RPC,     /* /rpc/<service>/<method> */
	METRICS_ROUTE_STREAMS, /* /streams/<topic> */
	METRICS_ROUTE_HEALTHZ,
	METRICS_ROUTE_READYZ,
	METRICS_ROUTE_METRICS,
	METRICS_ROUTE_SEARCH, /* /search (events) */
	METRICS_ROUTE_OTHER,  /* anything else: 404s, bad requests */
	METRICS_ROUTE_COUNT
} metrics_route;

/* Gauges and counters kept elsewhere, read by the caller at scrape time. */
typedef struct metrics_gauges {
	unsigned calls_in_flight;
	uint64_t replies_dropped;
	/* pool */
	unsigned pool_idle, pool_active, pool_connecting;
	uint64_t pool_acquire_waits;	/* acquires that had to wait */
	uint64_t pool_acquire_timeouts; /* acquires that gave up */
	/* streams */
	uint64_t stream_published;   /* messages sent by this process's publisher */
	unsigned stream_subscribers; /* nng SUB connections */
	unsigned sse_subscribers;    /* GET /streams connections */
	unsigned http_connections;   /* open HTTP connections */
	double start_time_seconds;   /* Unix time the process started */
} metrics_gauges;

/* One block of counters per entry of d (by dispatch_entry.index), plus one
 * for calls to unknown methods. Sets *out only on success. */
rpcq_status metrics_create(metrics **out, const dispatch *d, rpcq_error *err) RPCQ_NODISCARD;
void metrics_destroy(metrics *m);

/* A call answered: e is NULL for a method not in the table (counted as
 * method="unknown"); duration_ns from receipt to reply. Any thread; no
 * lock, no system call. */
void metrics_call(metrics *m, const dispatch_entry *e, rpcq_status status, uint64_t duration_ns);

/* An HTTP request answered with code (100..599; others count as 500).
 * Any thread; no lock, no system call. */
void metrics_http(metrics *m, metrics_route route, int code);

/* The whole exposition (text format 0.0.4) into a malloc'd NUL-terminated
 * buffer (*len without the NUL), or NULL when out of memory. Families, each
 * with # HELP and # TYPE:
 *   rpcq_calls_total{method,code}               counter (code: "OK", "INVALID_ARGUMENT", ...)
 *   rpcq_call_duration_seconds{method}          histogram (_bucket{le}, _sum, _count)
 *   rpcq_calls_in_flight                        gauge
 *   rpcq_replies_dropped_total                  counter
 *   rpcq_http_requests_total{route,code}        counter (route: rpc, streams, healthz, ...)
 *   rpcq_pool_connections{state}                gauge (idle, active, connecting)
 *   rpcq_pool_acquire_waits_total               counter
 *   rpcq_pool_acquire_timeouts_total            counter
 *   rpcq_stream_messages_published_total        counter
 *   rpcq_stream_subscribers{transport}          gauge (nng, sse)
 *   rpcq_http_connections                       gauge
 *   rpcq_build_info{version}                    gauge, 1
 *   process_start_time_seconds                  gauge
 * Only series that have counted something are written for the labelled
 * counters (a method never called has no rpcq_calls_total line), except
 * that every method has its histogram. Thread-safe. */
char *metrics_render(metrics *m, const metrics_gauges *g, const char *version, size_t *len);

#endif
