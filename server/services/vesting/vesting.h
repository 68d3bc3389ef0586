/*
 * rpcq.vesting.VestingService inside rpcqd: the service definition that
 * services.c registers, and what its handler files share. compute.c serves
 * Compute, Upload and CloseSession from memory (the compute-session store is
 * the service's state, created by the start hook); ledger.c serves
 * AppendEvents, Schedule and ListLedgers from PostgreSQL. Handlers run on
 * worker threads and block on the database.
 */
#ifndef RPCQ_VESTING_H
#define RPCQ_VESTING_H

#include <stdint.h>

#include "events.h"
#include "rpcq/vesting.pb-c.h"
#include "service.h"

extern const service_def vesting_service;

/* Default and largest page of a schedule reply. A page also ends early when
 * its entries approach the server's message size limit. */
#define VESTING_PAGE_DEFAULT 50000
#define VESTING_PAGE_MAX 1000000

/* compute.c */
typedef struct vesting_sessions vesting_sessions;
rpcq_status vesting_sessions_create(vesting_sessions **out, int ttl_s, long max_bytes, rpcq_error *err) RPCQ_NODISCARD;
void vesting_sessions_destroy(vesting_sessions *s);
rpcq_status vesting_compute(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status vesting_upload(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status vesting_close_session(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

/* ledger.c */
rpcq_status vesting_append_events(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status vesting_schedule(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status vesting_list_ledgers(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

/* service.c: request pieces every handler validates the same way. */

/* Adds the events of m (CSV text or rows, not both) to ev, numbering lines
 * from first_line (m->first_line when that is 0 and m sets it, else 1).
 * m->csv is unescaped in place (it belongs to the call arena).
 * INVALID_ARGUMENT "line N: ..." on bad input. */
rpcq_status vesting_add_events(vesting_events *ev, const Rpcq__Vesting__Events *m, uint64_t first_line,
			       rpcq_error *err) RPCQ_NODISCARD;

/* Parses a target date and checks a precision, naming the field on error. */
rpcq_status vesting_check_query(const char *target_date, uint32_t precision, int32_t *day,
				rpcq_error *err) RPCQ_NODISCARD;

/* The page size to use for a request's page_size (0: default). */
uint32_t vesting_page_size(uint32_t requested);

/* A schedule reply under construction in the call arena. */
typedef struct vesting_page {
	Rpcq__Vesting__ScheduleResponse *resp;
	size_t cap;
	size_t bytes;	  /* approximate packed size so far */
	size_t max_bytes; /* end the page before this */
} vesting_page;

/* Starts an empty reply able to hold up to cap entries. */
rpcq_status vesting_page_init(vesting_page *pg, call *c, size_t cap) RPCQ_NODISCARD;

/* 1 while another entry fits the page (count and size). */
int vesting_page_has_room(const vesting_page *pg);

/* Appends an entry, copying the strings into the call arena. */
rpcq_status vesting_page_add(vesting_page *pg, call *c, const char *employee_id, size_t employee_id_len,
			     const char *name, size_t name_len, const char *award_id, size_t award_id_len,
			     int64_t micro, int precision) RPCQ_NODISCARD;

#endif
