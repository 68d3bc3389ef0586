/*
 * The provider fetcher of rpcqd (DESIGN.md: server/ingest/): a thread that
 * runs a service's fetch every interval, with exponential backoff and
 * jitter after failures, and the HTTP GET it streams through (libcurl), with
 * connect and total timeouts. What a fetch does with the bytes (parse,
 * compare, write, take the advisory lock that makes it happen once across
 * processes) is the service's: the events service (services/events/sync.c).
 * Nothing here touches the worker pool, so a fetch never delays a call.
 */
#ifndef RPCQ_INGEST_H
#define RPCQ_INGEST_H

#include <stdatomic.h>
#include <stddef.h>

#include <nng/nng.h>

#include <rpcq/error.h>

typedef struct ingest ingest;

/* One scheduled fetch: OK, or a failure (then backoff). Runs on the
 * ingest thread; may block up to the provider timeout and the database.
 * stop: nonzero once ingest_destroy has begun (give up early). */
typedef rpcq_status (*ingest_run_fn)(void *arg, const atomic_int *stop, rpcq_error *err);

/* Starts the thread: the first fetch at once, then every interval_s
 * seconds (0: no thread; fetches happen only on demand). Sets *out only on
 * success. */
rpcq_status ingest_create(ingest **out, int interval_s, ingest_run_fn run, void *arg, rpcq_error *err) RPCQ_NODISCARD;

/* Stops the thread (a fetch under way is cut short) and frees. NULL is a
 * no-op. Blocks until the thread has ended. */
void ingest_destroy(ingest *g);

/* The delay before the next attempt after `failures` consecutive failures
 * (1, 2, ...): 1 s doubled each time, at most max_ms, then a random part
 * of up to half taken off (jitter, so processes do not retry in step).
 * rnd: a random number in [0, 1). Pure. */
nng_duration ingest_backoff_ms(unsigned failures, nng_duration max_ms, double rnd);

/* The most bytes ingest_http_get hands its sink at once (libcurl's read
 * buffer); bench/expat_scan.c feeds expat pieces of this size too. */
#define INGEST_READ_BYTES (256L * 1024)

/* Called with the body as it arrives (only for HTTP 200), in pieces of at
 * most INGEST_READ_BYTES; returns 0 to go on, nonzero to abort the
 * transfer. */
typedef int (*ingest_sink_fn)(void *arg, const char *data, size_t len);

/* GET url, streaming a 200 body to sink. timeout_ms bounds the whole
 * transfer (connecting: at most 5 s of it). OK when the whole body arrived
 * with HTTP 200; UNAVAILABLE naming the reason otherwise (connection
 * refused, "HTTP 500", "timed out after N ms"); ABORTED when sink or stop
 * asked to stop. Blocks. Thread-safe (one curl handle per call). */
rpcq_status ingest_http_get(const char *url, int timeout_ms, ingest_sink_fn sink, void *arg, const atomic_int *stop,
			    rpcq_error *err) RPCQ_NODISCARD;

/* curl_global_init, once per process, before any thread fetches. */
void ingest_global_init(void);

#endif
