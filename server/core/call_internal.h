/*
 * Running one call: the work phase of a received request, on a worker
 * thread. Decodes the envelope, finds the method, checks the deadline,
 * unpacks the input, runs the handler, releases its database connection and
 * packs exactly one Response, whatever happened.
 */
#ifndef RPCQ_CALL_INTERNAL_H
#define RPCQ_CALL_INTERNAL_H

#include <nng/nng.h>

#include "arena.h"
#include "server.h"

typedef struct call_outcome {
	rpcq_status status;  /* the reply's */
	nng_time deadline;   /* the call's, on nng_clock() */
	char request_id[64]; /* for what is logged after the call */
} call_outcome;

/* Returns the reply message for the request bytes (never NULL unless out of
 * memory, in which case the caller drops the call) and fills *outcome.
 * received: nng_clock() when the request arrived. ar is reset by the caller
 * between calls. */
nng_msg *call_execute(server *srv, arena *ar, const void *req, size_t len, nng_time received,
		      void *const *service_states, call_outcome *outcome);

#endif
