/*
 * rpcqd's serving core.
 *
 * Threads: nng's own task threads run the per-context receive callbacks,
 * which only queue a received call and never block. A fixed pool of worker
 * threads takes queued calls, runs the handler (which may block on the
 * database), hands the reply to nng and receives again on the context.
 * "contexts" (calls the wire may have outstanding) is sized apart from
 * "workers" (what CPU and database allow): extra received calls wait in the
 * queue, and their deadline keeps counting.
 *
 * Locking: one mutex guards the work queue; everything else a worker
 * touches belongs to its call. Counters and the draining flag are atomics.
 */
#ifndef RPCQ_SERVER_H
#define RPCQ_SERVER_H

#include <stdint.h>

#include <rpcq/error.h>

#include "arena.h"
#include "config.h"
#include "dispatch.h"
#include "service.h"

typedef struct server_stats {
	uint64_t calls;		  /* answered */
	uint64_t failed;	  /* answered with a status other than OK */
	uint64_t replies_dropped; /* the caller had gone when its reply was ready */
	unsigned in_flight;
} server_stats;

/* Builds the dispatch table, opens the pool, starts the services and the
 * stream publisher, binds every listener and starts the workers. On failure
 * nothing is left running. services: NULL-terminated. Blocks (pool set-up). */
rpcq_status server_create(server **out, rpcq_config *cfg, const service_def *const *services,
			  rpcq_error *err) RPCQ_NODISCARD;

/* Graceful stop: answers calls arriving from now on UNAVAILABLE (listeners
 * stay open, so that replies still reach their callers), waits up to
 * cfg->drain_timeout_ms for in-flight calls to finish, then stops
 * everything and frees the server. final (may be NULL) gets the counters
 * as they stand once the last call is answered. NULL srv is a no-op. Blocks. */
void server_destroy(server *srv, server_stats *final);

void server_get_stats(server *srv, server_stats *out);
int server_draining(server *srv);
/* 0 for a call received after draining began, or not started when the
 * drain timeout ran out: it is answered UNAVAILABLE. */
int server_accepts(server *srv, nng_time received);
uint64_t server_uptime_ms(server *srv);
const dispatch *server_dispatch(server *srv);
/* Access control (auth.h); NULL with --auth off. */
typedef struct auth auth;
auth *server_auth(server *srv);

/* Work for the worker pool: a transport (nng's contexts, the HTTP gateway)
 * queues a job; a worker calls run(job, ar) with its arena (reset after
 * run returns). The job's memory is the submitter's; it must stay valid
 * until run has returned. */
typedef struct server_job server_job;
struct server_job {
	void (*run)(server_job *job, arena *ar);
	server_job *next;   /* in the queue */
	nng_time queued_at; /* set by the queue */
};

/* Queues job; the call counts as in flight until run has returned. Never
 * blocks (a short lock): callable from nng callbacks. Returns -1 when the
 * workers have stopped (the job is not queued), else 0. */
int server_submit(server *srv, server_job *job);

/* How long the oldest queued call has waited for a worker; 0 when none
 * waits. A short lock, never blocks: for /readyz, which must not queue
 * behind the calls it reports on. */
nng_duration server_queue_wait_ms(server *srv);

/* A call that a transport runs on its own thread (a method that answers
 * from memory, dispatch_entry.from_memory) instead of submitting it: in
 * flight from begin to end, as a submitted job is until it has run. */
void server_inline_begin(server *srv);
void server_inline_end(server *srv);

/* A call answered, for the counters of Health/Check and /metrics. */
void server_count_call(server *srv, const dispatch_entry *e, rpcq_status status, uint64_t duration_ns);

/* A reply that did not reach its caller (it had gone). */
void server_count_dropped(server *srv);

void *server_service_state(server *srv, size_t index);
typedef struct metrics metrics;
metrics *server_metrics(server *srv);

#endif
