/* nng_close bounded in time (sockclose.h). */
#include "sockclose.h"

#include <pthread.h>
#include <stdatomic.h>

#include <nng/supplemental/util/platform.h>

#include <rpcq/alloc.h>

static atomic_int wedged; /* a close has outlived its wait in this process */

struct closer {
	nng_socket sock;
	nng_mtx *lock;
	nng_cv *cv;
	int refs; /* the closing thread's and the caller's */
	int done;
};

static void closer_release(struct closer *c)
{
	nng_mtx_lock(c->lock);
	int last = --c->refs == 0;
	nng_mtx_unlock(c->lock);
	if (last) {
		nng_cv_free(c->cv);
		nng_mtx_free(c->lock);
		rpcq_free(c);
	}
}

static void *closer_run(void *arg)
{
	struct closer *c = arg;
	nng_close(c->sock);
	nng_mtx_lock(c->lock);
	c->done = 1;
	nng_cv_wake(c->cv);
	nng_mtx_unlock(c->lock);
	closer_release(c);
	return NULL;
}

void sock_close_bounded(nng_socket sock)
{
	struct closer *c = rpcq_calloc(1, sizeof(*c));
	pthread_t t;
	if (c == NULL || nng_mtx_alloc(&c->lock) != 0) {
		rpcq_free(c);
		nng_close(sock);
		return;
	}
	if (nng_cv_alloc(&c->cv, c->lock) != 0) {
		nng_mtx_free(c->lock);
		rpcq_free(c);
		nng_close(sock);
		return;
	}
	c->sock = sock;
	c->refs = 2;
	if (pthread_create(&t, NULL, closer_run, c) != 0) {
		c->refs = 1;
		closer_release(c);
		nng_close(sock);
		return;
	}
	pthread_detach(t);
	nng_time until = nng_clock() + (atomic_load(&wedged) ? SOCK_CLOSE_WEDGED_MS : SOCK_CLOSE_WAIT_MS);
	nng_mtx_lock(c->lock);
	while (!c->done && nng_cv_until(c->cv, until) != NNG_ETIMEDOUT)
		;
	int done = c->done;
	nng_mtx_unlock(c->lock);
	if (!done)
		atomic_store(&wedged, 1);
	closer_release(c);
}
