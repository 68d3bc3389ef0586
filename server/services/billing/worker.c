/*
 * The billing service's background loops (billing_service.h): a thread
 * that runs a round of work while there is more, then waits until it is
 * woken (an import of this process, or a progress message from another
 * process) or the schedule's period has passed. A round that fails (the
 * database is away) is retried at the next period, not in a busy loop.
 */
#include <rpcq/alloc.h>

#include "billing_service.h"

struct billing_worker {
	nng_thread *thread;
	nng_mtx *lock;
	nng_cv *cv;
	int woken;
	int stop;
	int period_s;
	billing_work_fn fn;
	billing_state *st;
	const char *name;
};

static void run(void *arg)
{
	billing_worker *w = arg;
	nng_mtx_lock(w->lock);
	while (!w->stop) {
		w->woken = 0;
		nng_mtx_unlock(w->lock);
		int more = w->fn(w->st);
		nng_mtx_lock(w->lock);
		if (more || w->stop)
			continue;
		nng_time until = nng_clock() + (nng_time)w->period_s * 1000;
		while (!w->woken && !w->stop)
			if (nng_cv_until(w->cv, until) == NNG_ETIMEDOUT)
				break;
	}
	nng_mtx_unlock(w->lock);
}

rpcq_status billing_worker_start(billing_worker **out, const char *name, billing_work_fn fn, billing_state *st,
				 int period_s, rpcq_error *err)
{
	billing_worker *w = rpcq_calloc(1, sizeof(*w));
	if (w == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	w->fn = fn;
	w->st = st;
	w->name = name;
	w->period_s = period_s;
	if (nng_mtx_alloc(&w->lock) != 0 || nng_cv_alloc(&w->cv, w->lock) != 0 ||
	    nng_thread_create(&w->thread, run, w) != 0) {
		if (w->cv)
			nng_cv_free(w->cv);
		if (w->lock)
			nng_mtx_free(w->lock);
		rpcq_free(w);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "cannot start the billing %s thread", name);
	}
	nng_thread_set_name(w->thread, name);
	*out = w;
	return RPCQ_OK;
}

void billing_worker_wake(billing_worker *w)
{
	if (w == NULL)
		return;
	nng_mtx_lock(w->lock);
	w->woken = 1;
	nng_cv_wake(w->cv);
	nng_mtx_unlock(w->lock);
}

void billing_worker_stop(billing_worker *w)
{
	if (w == NULL)
		return;
	nng_mtx_lock(w->lock);
	w->stop = 1;
	nng_cv_wake(w->cv);
	nng_mtx_unlock(w->lock);
	nng_thread_destroy(w->thread);
	nng_cv_free(w->cv);
	nng_mtx_free(w->lock);
	rpcq_free(w);
}
