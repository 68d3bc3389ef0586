/*
 * rpcqd's serving core: one REP socket with every listener on it, a set of
 * nng contexts, and a fixed pool of worker threads.
 *
 *     receiving --(request arrives: nng callback)--> queued
 *     queued --(a worker runs the call, hands the reply to nng and
 *               receives again on the context)--> receiving
 *
 * The nng callback only queues the call. A worker runs it and sends the
 * reply through an aio without a callback: nng hands it to the connection
 * before nng_ctx_send returns (unless earlier replies to the same caller
 * are still being written), so no nng task thread has to wake up to finish
 * the send, as it would for an aio with a callback. The worker looks at
 * that send again only before the context's next reply (reply_collect).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/alloc.h>

#include "auth.h"
#include "call_internal.h"
#include "db/pool.h"
#include "gateway.h"
#include "log.h"
#include "metrics.h"
#include "publisher.h"
#include "server.h"
#include "tls.h"

/* A reply may wait for its connection (behind earlier replies to the same
 * caller) until the call's deadline, at least REPLY_WAIT_MIN_MS and at most
 * REPLY_WAIT_MAX_MS; then it is dropped and counted. */
#define REPLY_WAIT_MIN_MS 1000
#define REPLY_WAIT_MAX_MS 60000

/* Replies take the direct path (serve_call) once this many calls in a row
 * arrived at an idle server. Measured at 8 and 32: the same. */
#define QUIET_STREAK 16

/* Threads beyond --workers, each running a call only while a worker waits
 * for other calls' handlers (server_wait_begin): IssueVouchers' batches,
 * which gather the issues of waiting workers, are as large as the calls
 * that can wait. More running workers instead measured slower for Echo
 * (0.61x raw nng at 16 callers with 32 workers, 1.12x with 4). */
#define WORKERS_SPARE 64

/* One nng context and the call it carries. */
struct work {
	server_job job; /* first: queued as a job */
	server *srv;
	nng_ctx ctx;
	nng_aio *recv;	     /* callback work_cb */
	nng_aio *send;	     /* no callback; see reply_collect */
	nng_aio *send_async; /* callback send_done */
	int sending;	     /* a reply handed to send, not yet collected */
	char sending_request_id[64];
	nng_msg *request; /* while queued */
	nng_time received;
	uint64_t received_ns;
	unsigned pipes_closed; /* srv->pipes_closed when the request arrived */
};

struct server {
	rpcq_config *cfg;
	const service_def *const *services;
	void **states; /* per service, from its start hook */
	size_t nservices;
	size_t started; /* services whose start hook ran */
	dispatch *dispatch;
	auth *auth; /* NULL: --auth off */
	pool *pool;
	publisher *publisher;
	nng_tls_config *tls;

	nng_socket sock;
	int sock_open;
	nng_listener listeners[CONFIG_MAX_URLS];
	int nlisteners;
	struct work *works;
	int nworks; /* with their context and aios open */

	nng_mtx *lock;
	nng_cv *queue_cv; /* work queued, or stopping */
	nng_cv *spare_cv; /* work queued while workers wait, or stopping */
	nng_cv *idle_cv;  /* in_flight dropped to zero */
	server_job *head, *tail;
	int stopping;
	atomic_int draining;
	atomic_int drain_expired; /* calls not started by now are refused */
	int serving;		  /* server_create returned it: a drain cut short is worth a warning */
	nng_time drain_start;	  /* set before draining */
	pthread_t *threads;
	int nthreads;
	int waiting;	   /* workers between server_wait_begin and _end */
	int spare_running; /* spare threads running a job */

	atomic_uint in_flight;	  /* received, reply not yet handed to nng */
	atomic_uint pipes_closed; /* connections gone since start */
	atomic_uint quiet_streak; /* calls in a row that arrived to an idle server */
	atomic_ullong calls, failed, dropped;
	nng_time start_time;
	metrics *metrics;
	gateway *gateway;
};

pool *server_pool(server *srv)
{
	return srv->pool;
}

const rpcq_config *server_config(server *srv)
{
	return srv->cfg;
}

publisher *server_publisher(server *srv)
{
	return srv->publisher;
}

int server_draining(server *srv)
{
	return atomic_load(&srv->draining);
}

int server_accepts(server *srv, nng_time received)
{
	if (!atomic_load(&srv->draining))
		return 1;
	return received < srv->drain_start && !atomic_load(&srv->drain_expired);
}

uint64_t server_uptime_ms(server *srv)
{
	return nng_clock() - srv->start_time;
}

auth *server_auth(server *srv)
{
	return srv->auth;
}

const dispatch *server_dispatch(server *srv)
{
	return srv->dispatch;
}

void *server_service_state(server *srv, size_t index)
{
	return srv->states[index];
}

metrics *server_metrics(server *srv)
{
	return srv->metrics;
}

void server_count_dropped(server *srv)
{
	atomic_fetch_add_explicit(&srv->dropped, 1, memory_order_relaxed);
}

void server_count_call(server *srv, const dispatch_entry *e, rpcq_status status, uint64_t duration_ns)
{
	atomic_fetch_add_explicit(&srv->calls, 1, memory_order_relaxed);
	if (status != RPCQ_OK)
		atomic_fetch_add_explicit(&srv->failed, 1, memory_order_relaxed);
	metrics_call(srv->metrics, e, status, duration_ns);
}

void server_get_stats(server *srv, server_stats *out)
{
	out->calls = atomic_load(&srv->calls);
	out->failed = atomic_load(&srv->failed);
	out->replies_dropped = atomic_load(&srv->dropped);
	out->in_flight = atomic_load(&srv->in_flight);
}

/* One call finished: its reply is handed to nng, or lost. */
static void call_done(server *srv)
{
	if (atomic_fetch_sub(&srv->in_flight, 1) == 1) {
		nng_mtx_lock(srv->lock);
		nng_cv_wake(srv->idle_cv);
		nng_mtx_unlock(srv->lock);
	}
}

static void pipe_removed(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	(void)pipe;
	(void)ev;
	server *srv = arg;
	atomic_fetch_add(&srv->pipes_closed, 1);
}

/* REP drops a reply whose caller has gone without telling us; we count it
 * here, where we can still see the pipe is gone. Asking nng costs a system
 * call, so we ask only when some connection closed while the call ran. */
static int caller_gone(server *srv, const struct work *w, nng_pipe pipe)
{
	if (atomic_load(&srv->pipes_closed) == w->pipes_closed)
		return 0;
	nng_sockaddr sa;
	return nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &sa) != 0;
}

static nng_duration reply_wait(nng_time deadline)
{
	nng_time now = nng_clock();
	nng_time left = deadline > now ? deadline - now : 0;
	if (left < REPLY_WAIT_MIN_MS)
		return REPLY_WAIT_MIN_MS;
	return left > REPLY_WAIT_MAX_MS ? REPLY_WAIT_MAX_MS : (nng_duration)left;
}

/* Appends a job to the queue and wakes a worker; srv->lock held. */
static void enqueue_locked(server *srv, server_job *job)
{
	job->next = NULL;
	job->queued_at = nng_clock();
	if (srv->tail)
		srv->tail->next = job;
	else
		srv->head = job;
	srv->tail = job;
	nng_cv_wake1(srv->queue_cv);
	if (srv->spare_running < srv->waiting)
		nng_cv_wake1(srv->spare_cv);
}

/* Counts a call received: in flight until its job has run. */
static void call_received(server *srv)
{
	if (atomic_fetch_add(&srv->in_flight, 1) == 0)
		atomic_fetch_add_explicit(&srv->quiet_streak, 1, memory_order_relaxed);
	else
		atomic_store_explicit(&srv->quiet_streak, 0, memory_order_relaxed);
}

int server_submit(server *srv, server_job *job)
{
	nng_mtx_lock(srv->lock);
	if (srv->stopping) {
		nng_mtx_unlock(srv->lock);
		return -1;
	}
	call_received(srv);
	enqueue_locked(srv, job);
	nng_mtx_unlock(srv->lock);
	return 0;
}

nng_duration server_queue_wait_ms(server *srv)
{
	nng_mtx_lock(srv->lock);
	nng_time queued_at = srv->head != NULL ? srv->head->queued_at : 0;
	nng_mtx_unlock(srv->lock);
	if (queued_at == 0)
		return 0;
	nng_time now = nng_clock();
	return now > queued_at ? (nng_duration)(now - queued_at) : 0;
}

void server_inline_begin(server *srv)
{
	call_received(srv);
}

void server_inline_end(server *srv)
{
	call_done(srv);
}

static void serve_call(server_job *job, arena *ar);

/* The nng callback of w->recv: queues the call for a worker. Never blocks. */
static void work_cb(void *arg)
{
	struct work *w = arg;
	server *srv = w->srv;
	int rv = nng_aio_result(w->recv);
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
			nng_ctx_recv(w->ctx, w->recv);
		return;
	}
	call_received(srv);
	w->request = nng_aio_get_msg(w->recv);
	w->received = nng_clock();
	w->received_ns = call_clock_ns();
	w->pipes_closed = atomic_load(&srv->pipes_closed);
	w->job.run = serve_call;
	nng_mtx_lock(srv->lock);
	enqueue_locked(srv, &w->job);
	nng_mtx_unlock(srv->lock);
}

static void reply_lost(struct work *w, nng_aio *aio, int rv)
{
	nng_msg_free(nng_aio_get_msg(aio));
	nng_aio_set_msg(aio, NULL);
	atomic_fetch_add(&w->srv->dropped, 1);
	log_set_request_id(w->sending_request_id);
	log_warn("reply dropped, its connection did not take it: %s", nng_strerror(rv));
	log_set_request_id(NULL);
}

/* The nng callback of w->send_async: the reply is sent (or lost); the
 * context receives again. Never blocks. */
static void send_done(void *arg)
{
	struct work *w = arg;
	int rv = nng_aio_result(w->send_async);
	if (rv != 0)
		reply_lost(w, w->send_async, rv);
	if (rv != NNG_ECLOSED)
		nng_ctx_recv(w->ctx, w->recv);
}

/* Waits for the context's previous reply to be taken by its connection
 * (done long ago, unless that caller is not reading) and counts it if it
 * was not. Bounded by the send's own timeout. */
static void reply_collect(struct work *w)
{
	if (!w->sending)
		return;
	w->sending = 0;
	nng_aio_wait(w->send);
	int rv = nng_aio_result(w->send);
	if (rv != 0) /* not taken before its wait ran out, or stopping */
		reply_lost(w, w->send, rv);
}

/* Runs a queued call, hands its reply to nng and receives again.
 *
 * Two ways to send. While calls come one at a time (QUIET_STREAK), the
 * reply goes through w->send, which has no callback: nng hands it to the
 * connection before nng_ctx_send returns and the worker receives again on
 * the context at once, so no nng task thread wakes up for the send (at one
 * caller, about a quarter of the context switches of a call). Under
 * concurrent load that path measured slower (cause not pinned down;
 * nng's locks are contended either way), so there the reply goes
 * through w->send_async, whose callback receives again, and the task
 * threads work alongside the workers. bench/README.md has the numbers. */
static void serve_call(server_job *job, arena *ar)
{
	struct work *w = (struct work *)job;
	server *srv = w->srv;
	nng_msg *req = w->request;
	w->request = NULL;
	nng_pipe pipe = nng_msg_get_pipe(req);
	call_result oc;
	nng_msg *rep =
		call_execute(srv, ar, nng_msg_body(req), nng_msg_len(req), pipe, w->received, w->received_ns, &oc);
	nng_msg_free(req);
	if (rep != NULL) {
		if (caller_gone(srv, w, pipe))
			atomic_fetch_add(&srv->dropped, 1);
		reply_collect(w);
		memcpy(w->sending_request_id, oc.request_id, sizeof(w->sending_request_id));
		int alone = atomic_load_explicit(&srv->quiet_streak, memory_order_relaxed) >= QUIET_STREAK;
		nng_aio *aio = alone ? w->send : w->send_async;
		nng_aio_set_msg(aio, rep);
		nng_aio_set_timeout(aio, reply_wait(oc.deadline));
		nng_ctx_send(w->ctx, aio);
		if (aio == w->send) {
			w->sending = 1;
			nng_ctx_recv(w->ctx, w->recv);
		}
	} else {
		/* Out of memory even for the reply: the caller's deadline answers. */
		nng_ctx_recv(w->ctx, w->recv);
	}
}

/* Takes the first queued job; srv->lock held, the queue not empty. */
static server_job *dequeue_locked(server *srv)
{
	server_job *job = srv->head;
	srv->head = job->next;
	if (srv->head == NULL)
		srv->tail = NULL;
	return job;
}

static void run_job(server *srv, server_job *job, arena *ar)
{
	job->run(job, ar);
	arena_reset(ar);
	call_done(srv);
}

/* Worker thread: runs queued calls until the server stops. */
static void *worker_main(void *arg)
{
	server *srv = arg;
	arena *ar = arena_create(64 * 1024);
	if (ar == NULL) {
		log_error("worker: out of memory");
		return NULL;
	}
	for (;;) {
		nng_mtx_lock(srv->lock);
		while (srv->head == NULL && !srv->stopping)
			nng_cv_wait(srv->queue_cv);
		if (srv->head == NULL) {
			nng_mtx_unlock(srv->lock);
			break;
		}
		server_job *job = dequeue_locked(srv);
		nng_mtx_unlock(srv->lock);
		run_job(srv, job, ar);
	}
	arena_destroy(ar);
	return NULL;
}

/* Spare thread: runs queued calls only while fewer spare threads run than
 * workers wait (server_wait_begin), so that at most --workers calls run
 * and the rest of the time it sleeps on a condition variable of its own
 * (woken for every call, the workers' one measured slower for Echo). Its
 * arena is made at its first call. */
static void *spare_main(void *arg)
{
	server *srv = arg;
	arena *ar = NULL;
	int ran = 0;
	for (;;) {
		nng_mtx_lock(srv->lock);
		srv->spare_running -= ran;
		ran = 0;
		while ((srv->head == NULL || srv->spare_running >= srv->waiting) && !srv->stopping)
			nng_cv_wait(srv->spare_cv);
		if (srv->head == NULL || srv->stopping) {
			nng_mtx_unlock(srv->lock);
			break;
		}
		server_job *job = dequeue_locked(srv);
		srv->spare_running++;
		nng_mtx_unlock(srv->lock);
		ran = 1;
		if (ar == NULL && (ar = arena_create(64 * 1024)) == NULL) {
			/* Give the job back to the workers. */
			log_error("worker: out of memory");
			nng_mtx_lock(srv->lock);
			srv->spare_running--;
			job->next = srv->head;
			srv->head = job;
			if (srv->tail == NULL)
				srv->tail = job;
			nng_cv_wake1(srv->queue_cv);
			nng_mtx_unlock(srv->lock);
			return NULL;
		}
		run_job(srv, job, ar);
	}
	if (ar != NULL)
		arena_destroy(ar);
	return NULL;
}

/* What a request may exceed the message limit by and still be answered. */
#define RECV_SLACK_BYTES ((size_t)2 << 20)

static rpcq_status open_listeners(server *srv, rpcq_error *err)
{
	const rpcq_config *cfg = srv->cfg;
	rpcq_status st;
	int rv = nng_rep0_open(&srv->sock);
	if (rv != 0)
		return rpcq_error_set(err, RPCQ_INTERNAL, "cannot open the reply socket: %s", nng_strerror(rv));
	srv->sock_open = 1;
	nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, pipe_removed, srv);
	/* nng closes a pipe whose frame exceeds RECVMAXSZ without a word, so
	 * accept up to twice the limit, and at least RECV_SLACK_BYTES over it
	 * (a client's usual 1 MiB upload chunk to a server with a small limit),
	 * and answer RESOURCE_EXHAUSTED ourselves for what lies between. */
	size_t limit = (size_t)cfg->max_message_bytes;
	size_t recv_max = limit < RECV_SLACK_BYTES ? limit + RECV_SLACK_BYTES : limit * 2;
	nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, recv_max);
	for (int i = 0; i < cfg->nlisten; i++) {
		const char *url = cfg->listen[i];
		nng_listener l;
		if ((rv = nng_listener_create(&l, srv->sock, url)) != 0)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "listen URL \"%s\": %s", url,
					      nng_strerror(rv));
		if (tls_url(url) && (st = tls_listener_setup(l, url, cfg, NULL, &srv->tls, err)) != RPCQ_OK)
			return st;
		nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, recv_max);
		if ((rv = nng_listener_start(l, 0)) != 0) {
			nng_listener_close(l);
			return rpcq_error_set(err, RPCQ_UNAVAILABLE, "cannot listen on %s: %s", url, nng_strerror(rv));
		}
		srv->listeners[srv->nlisteners++] = l;
		log_info("listening on %s", url);
	}
	return RPCQ_OK;
}
static rpcq_status start_works(server *srv, rpcq_error *err)
{
	int n = srv->cfg->contexts;
	srv->works = rpcq_calloc((size_t)n, sizeof(*srv->works));
	if (srv->works == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	for (int i = 0; i < n; i++) {
		struct work *w = &srv->works[i];
		w->srv = srv;
		int rv = nng_ctx_open(&w->ctx, srv->sock);
		if (rv == 0 && (rv = nng_aio_alloc(&w->recv, work_cb, w)) != 0)
			nng_ctx_close(w->ctx);
		if (rv == 0 && (rv = nng_aio_alloc(&w->send, NULL, NULL)) != 0) {
			nng_aio_free(w->recv);
			nng_ctx_close(w->ctx);
		}
		if (rv == 0 && (rv = nng_aio_alloc(&w->send_async, send_done, w)) != 0) {
			nng_aio_free(w->send);
			nng_aio_free(w->recv);
			nng_ctx_close(w->ctx);
		}
		if (rv != 0)
			return rpcq_error_set(err, RPCQ_INTERNAL, "cannot open call context: %s", nng_strerror(rv));
		srv->nworks++;
		nng_ctx_recv(w->ctx, w->recv);
	}
	return RPCQ_OK;
}

void server_wait_begin(server *srv)
{
	nng_mtx_lock(srv->lock);
	srv->waiting++;
	if (srv->head != NULL)
		nng_cv_wake1(srv->spare_cv);
	nng_mtx_unlock(srv->lock);
}

void server_wait_end(server *srv)
{
	nng_mtx_lock(srv->lock);
	srv->waiting--;
	nng_mtx_unlock(srv->lock);
}

/* --workers threads, and WORKERS_SPARE more that run calls only in the
 * stead of workers waiting in server_wait_begin. */
static rpcq_status start_workers(server *srv, rpcq_error *err)
{
	int n = srv->cfg->workers + WORKERS_SPARE;
	srv->threads = rpcq_calloc((size_t)n, sizeof(*srv->threads));
	if (srv->threads == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	for (int i = 0; i < n; i++) {
		if (pthread_create(&srv->threads[i], NULL, i < srv->cfg->workers ? worker_main : spare_main, srv) != 0)
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "cannot start worker thread %d", i);
		srv->nthreads++;
	}
	return RPCQ_OK;
}

static rpcq_status start_services(server *srv, rpcq_error *err)
{
	for (size_t i = 0; i < srv->nservices; i++) {
		const service_def *s = srv->services[i];
		if (s->start) {
			rpcq_status st = s->start(srv, &srv->states[i], err);
			if (st != RPCQ_OK)
				return st;
		}
		srv->started++;
	}
	return RPCQ_OK;
}

/* Frees the lock and condition variables, then the server itself. */
static void free_sync(server *srv)
{
	if (srv->idle_cv)
		nng_cv_free(srv->idle_cv);
	if (srv->queue_cv)
		nng_cv_free(srv->queue_cv);
	if (srv->spare_cv)
		nng_cv_free(srv->spare_cv);
	if (srv->lock)
		nng_mtx_free(srv->lock);
	rpcq_free(srv);
}

rpcq_status server_create(server **out, rpcq_config *cfg, const service_def *const *services, rpcq_error *err)
{
	rpcq_status st;
	server *srv = rpcq_calloc(1, sizeof(*srv));
	if (srv == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	srv->cfg = cfg;
	srv->services = services;
	srv->start_time = nng_clock();
	if (nng_mtx_alloc(&srv->lock) != 0 || nng_cv_alloc(&srv->queue_cv, srv->lock) != 0 ||
	    nng_cv_alloc(&srv->spare_cv, srv->lock) != 0 || nng_cv_alloc(&srv->idle_cv, srv->lock) != 0) {
		free_sync(srv);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	while (services[srv->nservices])
		srv->nservices++;
	srv->states = rpcq_calloc(srv->nservices + 1, sizeof(*srv->states));
	if (srv->states == NULL) {
		st = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto fail;
	}
	if ((st = dispatch_create(&srv->dispatch, services, err)) != RPCQ_OK)
		goto fail;
	if ((st = metrics_create(&srv->metrics, srv->dispatch, err)) != RPCQ_OK)
		goto fail;
	if ((st = auth_create(&srv->auth, cfg, srv->dispatch, err)) != RPCQ_OK)
		goto fail;
	pool_config pc = {
		.conninfo = cfg->database,
		.min_conns = cfg->pool_min,
		.max_conns = cfg->pool_max,
		.acquire_timeout_ms = cfg->pool_acquire_timeout_ms,
		.application_name = "rpcqd",
	};
	if ((st = pool_create(&srv->pool, &pc, err)) != RPCQ_OK)
		goto fail;
	/* Always: with no --publish URL it still follows the log for the
	 * in-process listeners (the gateway's /streams). */
	if ((st = publisher_create(&srv->publisher, cfg, err)) != RPCQ_OK)
		goto fail;
	if ((st = start_services(srv, err)) != RPCQ_OK)
		goto fail;
	if ((st = start_workers(srv, err)) != RPCQ_OK)
		goto fail;
	if ((st = open_listeners(srv, err)) != RPCQ_OK)
		goto fail;
	if ((st = start_works(srv, err)) != RPCQ_OK)
		goto fail;
	if ((st = gateway_create(&srv->gateway, srv, err)) != RPCQ_OK)
		goto fail;
	srv->serving = 1;
	*out = srv;
	return RPCQ_OK;
fail:
	srv->cfg->drain_timeout_ms = 0;
	server_destroy(srv, NULL);
	return st;
}

/* Waits until no call is in flight or the clock passes until. */
static void drain(server *srv, nng_time until)
{
	nng_mtx_lock(srv->lock);
	while (atomic_load(&srv->in_flight) > 0) {
		if (nng_cv_until(srv->idle_cv, until) == NNG_ETIMEDOUT)
			break;
	}
	nng_mtx_unlock(srv->lock);
	unsigned left = atomic_load(&srv->in_flight);
	if (left) {
		atomic_store(&srv->drain_expired, 1);
		if (srv->serving)
			log_warn("drain timeout with %u call(s) in flight: those not started are answered UNAVAILABLE, "
				 "running ones finish",
				 left);
	}
}

/* nng timer callback: the drain time is over, replies still queued for
 * their connections are given up. Never blocks. */
static void cancel_sends(void *arg)
{
	server *srv = arg;
	for (int i = 0; i < srv->nworks; i++) {
		nng_aio_cancel(srv->works[i].send);
		nng_aio_cancel(srv->works[i].send_async);
	}
}

/* Collects every reply still on its way, giving them until the clock
 * passes until. */
static void collect_replies(server *srv, nng_time until)
{
	nng_aio *timer = NULL;
	nng_time now = nng_clock();
	if (until > now && nng_aio_alloc(&timer, cancel_sends, srv) == 0)
		nng_sleep_aio((nng_duration)(until - now), timer);
	else
		cancel_sends(srv);
	for (int i = 0; i < srv->nworks; i++) {
		reply_collect(&srv->works[i]);
		nng_aio_wait(srv->works[i].send_async);
	}
	if (timer) {
		nng_aio_stop(timer);
		nng_aio_free(timer);
	}
}

void server_destroy(server *srv, server_stats *final)
{
	if (srv == NULL)
		return;
	/* Listeners stay open while draining: closing one closes the pipes it
	 * accepted, and with them the replies of the calls still running.
	 * Calls arriving now are answered UNAVAILABLE (server_accepts). */
	srv->drain_start = nng_clock();
	atomic_store(&srv->draining, 1);
	gateway_drain(srv->gateway);
	nng_time until = srv->drain_start + (nng_time)srv->cfg->drain_timeout_ms;
	drain(srv, until);

	/* Stop the workers first: they finish what is queued and send it on a
	 * socket that is still open (nng panics on a send to a context of a
	 * closed socket). Replies still on their way to a busy connection get
	 * the rest of the drain time. Then close the wire: pending receives
	 * end with NNG_ECLOSED, and calls that arrived after the workers left
	 * are dropped unanswered, like any call cut off by a closing server. */
	nng_mtx_lock(srv->lock);
	srv->stopping = 1;
	nng_cv_wake(srv->queue_cv);
	nng_cv_wake(srv->spare_cv);
	nng_mtx_unlock(srv->lock);
	for (int i = 0; i < srv->nthreads; i++)
		pthread_join(srv->threads[i], NULL);
	/* No gateway job can run now; its replies still on their way are cut. */
	gateway_destroy(srv->gateway);
	srv->gateway = NULL;
	collect_replies(srv, until);
	if (final)
		server_get_stats(srv, final);
	if (srv->sock_open)
		nng_close(srv->sock);
	for (int i = 0; i < srv->nworks; i++) {
		nng_aio_stop(srv->works[i].send_async);
		nng_aio_stop(srv->works[i].recv);
		nng_aio_free(srv->works[i].recv);
		nng_aio_free(srv->works[i].send);
		nng_aio_free(srv->works[i].send_async);
	}
	/* The workers ran every queued job before they stopped. */
	srv->head = srv->tail = NULL;
	for (size_t i = srv->started; i-- > 0;) {
		if (srv->services[i]->stop)
			srv->services[i]->stop(srv->states[i]);
	}
	publisher_destroy(srv->publisher);
	pool_destroy(srv->pool);
	auth_destroy(srv->auth);
	metrics_destroy(srv->metrics);
	dispatch_destroy(srv->dispatch);
	if (srv->tls)
		nng_tls_config_free(srv->tls);
	rpcq_free(srv->works);
	rpcq_free(srv->threads);
	rpcq_free(srv->states);
	free_sync(srv);
}
