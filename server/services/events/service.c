/*
 * The events service's definition: its method table and the start/stop
 * hooks that own its state (the in-memory index and its follower, the
 * provider fetch thread).
 */
#include <rpcq/alloc.h>

#include "events_service.h"

static rpcq_status start(server *srv, void **state, rpcq_error *err)
{
	events_state *st = rpcq_calloc(1, sizeof(*st));
	if (st == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	st->srv = srv;
	st->cfg = server_config(srv);
	*state = st;
	if (nng_mtx_alloc(&st->fetch_lock) != 0)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq_status s = events_follow_start(st, err);
	if (s != RPCQ_OK)
		return s;
	ingest_global_init();
	if (st->cfg->provider_url && st->cfg->provider_url[0])
		return ingest_create(&st->ingest, st->cfg->provider_interval_s, events_fetch_scheduled, st, err);
	return RPCQ_OK;
}

static void stop(void *state)
{
	events_state *st = state;
	if (st == NULL)
		return;
	ingest_destroy(st->ingest);
	events_follow_stop(st);
	if (st->fetch_lock)
		nng_mtx_free(st->fetch_lock);
	rpcq_free(st);
}

static const method_def methods[] = {
	{"Search", events_search},
	{"GetEvent", events_get},
	{"Sync", events_sync},
	{"Changes", events_changes},
	{NULL, NULL},
};

/* Both answer from the index (search.c). */
static const char *const from_memory[] = {"Search", "GetEvent", NULL};

const service_def events_service = {
	.descriptor = &rpcq__events__event_service__descriptor,
	.methods = methods,
	.from_memory = from_memory,
	.start = start,
	.stop = stop,
};
