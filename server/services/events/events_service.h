/*
 * rpcq.events.EventService inside rpcqd: the service definition that
 * services.c registers, and what its files share. follow.c keeps the
 * in-memory index current from the change log (events.changed, through the
 * publisher); search.c answers Search, GetEvent and Changes from it; sync.c
 * fetches the provider's feed (the ingest thread every interval, or Sync
 * now) and writes what changed. (Named events_service.h, not events.h: the
 * vesting service has an events.h of its own on the include path.)
 */
#ifndef RPCQ_EVENTS_SERVICE_H
#define RPCQ_EVENTS_SERVICE_H

#include <stdatomic.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "index.h"
#include "ingest.h"
#include "rpcq/events.pb-c.h"
#include "server.h"
#include "service.h"

#define EVENTS_TOPIC "events.changed"

extern const service_def events_service;

typedef struct events_state {
	server *srv;
	const rpcq_config *cfg;
	event_index *index;

	/* follow.c: the index against the log, under lock. */
	nng_mtx *lock;
	nng_cv *applied_cv; /* applied moved */
	uint64_t applied;   /* last events.changed seq the index holds */
	uint64_t known;	    /* highest seq known to exist */
	int loaded;	    /* the index holds the database's events */
	int catching_up;    /* job queued or running */
	int stopping;
	server_job job;
	nng_aio *retry; /* a failed load or Replay, again in a second */
	int listening;

	/* sync.c */
	ingest *ingest;
	nng_mtx *fetch_lock; /* one fetch at a time in this process */
	/* The statistics refresh after a large fetch, on a worker; under lock. */
	server_job analyze_job;
	int analyzing;	   /* queued or running */
	int analyze_again; /* another fetch asked while it ran */
} events_state;

/* follow.c */
rpcq_status events_follow_start(events_state *st, rpcq_error *err) RPCQ_NODISCARD;
void events_follow_stop(events_state *st);
/* Waits (at most until deadline) for the index to hold seq; 1 when it does. */
int events_follow_wait(events_state *st, uint64_t seq, nng_time deadline);
/* Applies a fetch's own committed changes to the index, recs[i]->seq
 * ascending and contiguous (records from event_rec_dup, all taken over:
 * recs[] is left NULL), under the same rule as the changes the log brings:
 * a seq at or below the index's position is ignored, the next is applied,
 * a gap stops it (the log brings the rest). Returns how many it applied.
 * Does not block on the database. */
size_t events_follow_apply_own(events_state *st, event_rec **recs, size_t n);
/* The index has been loaded from the database. */
int events_follow_ready(events_state *st);
/* An Event message of a record, in arena ar (NULL when out of memory). */
Rpcq__Events__Event *events_message_of(arena *ar, const event_rec *r);
/* A record of an Event message (strings point into m). 0, or -1 when a
 * field does not fit the record (never for messages this service wrote). */
int events_rec_of(const Rpcq__Events__Event *m, event_rec *r);

/* search.c */
rpcq_status events_search(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status events_get(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status events_changes(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

/* sync.c */
rpcq_status events_sync(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
/* The scheduled fetch of the ingest thread (ingest_run_fn). */
rpcq_status events_fetch_scheduled(void *arg, const atomic_int *stop, rpcq_error *err);

#endif
