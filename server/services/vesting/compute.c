/*
 * Compute, Upload and CloseSession: schedules computed in memory, from
 * events sent inline or uploaded in chunks to a compute session.
 *
 * A session is an event store (events.h) filled chunk by chunk. Chunks may
 * be cut anywhere, even inside a record: the bytes after the last complete
 * record are carried over to the next chunk, and line numbers run on across
 * chunks, so a file sent in pieces reads exactly as the whole file would.
 * Compute on a session seals it (the carried bytes become its last record)
 * and may be asked again for other pages, dates or precisions: the plan (the
 * sort) is built once and kept.
 *
 * Locking: the store's mutex guards the list, reference counts, last use and
 * memory accounting; each session's mutex guards its contents while one call
 * works on it, so different sessions progress in parallel. Expired sessions
 * (idle longer than the TTL) are removed by whichever call next takes the
 * store lock; a session in use is never freed under its user.
 */
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "arena.h"
#include "csv.h"
#include "schedule.h"
#include "vesting.h"

typedef struct session {
	char id[33];
	nng_mtx *mu;
	/* Under the store's lock. */
	int refs;
	int dead; /* unlinked; freed when refs drops to 0 */
	nng_time last_used;
	size_t accounted; /* bytes counted in the store's total */
	struct session *next;
	/* Under mu. */
	vesting_events *ev;
	vesting_plan *plan;
	strbuf carry;  /* an incomplete last record */
	uint64_t line; /* line of the first carried byte */
	uint32_t next_chunk;
	int sealed;
} session;

struct vesting_sessions {
	nng_mtx *mu;
	session *head;
	nng_duration ttl_ms;
	size_t max_bytes;
	size_t used;
};

static void session_free(session *s)
{
	if (s == NULL)
		return;
	vesting_plan_destroy(s->plan);
	vesting_events_destroy(s->ev);
	strbuf_fini(&s->carry);
	if (s->mu)
		nng_mtx_free(s->mu);
	rpcq_free(s);
}

rpcq_status vesting_sessions_create(vesting_sessions **out, int ttl_s, long max_bytes, rpcq_error *err)
{
	vesting_sessions *s = rpcq_calloc(1, sizeof(*s));
	if (s == NULL || nng_mtx_alloc(&s->mu) != 0) {
		rpcq_free(s);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the vesting sessions");
	}
	s->ttl_ms = (nng_duration)(ttl_s > 0 ? ttl_s : 300) * 1000;
	s->max_bytes = max_bytes > 0 ? (size_t)max_bytes : (size_t)2 << 30;
	*out = s;
	return RPCQ_OK;
}

void vesting_sessions_destroy(vesting_sessions *st)
{
	if (st == NULL)
		return;
	while (st->head) {
		session *s = st->head;
		st->head = s->next;
		session_free(s);
	}
	nng_mtx_free(st->mu);
	rpcq_free(st);
}

/* Unlinks s (store lock held); frees it now if nobody uses it. */
static void unlink_locked(vesting_sessions *st, session *s)
{
	for (session **pp = &st->head; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	s->dead = 1;
	st->used -= s->accounted;
	s->accounted = 0;
	if (s->refs == 0)
		session_free(s);
}

static void sweep_locked(vesting_sessions *st, nng_time now)
{
	session *s = st->head;
	while (s) {
		session *next = s->next;
		if (s->refs == 0 && now - s->last_used > (nng_time)st->ttl_ms)
			unlink_locked(st, s);
		s = next;
	}
}

/* Finds a session by id and locks it for the caller. */
static rpcq_status acquire(vesting_sessions *st, const char *id, session **out, call *c)
{
	nng_mtx_lock(st->mu);
	sweep_locked(st, nng_clock());
	session *s = st->head;
	while (s && strcmp(s->id, id) != 0)
		s = s->next;
	if (s)
		s->refs++;
	nng_mtx_unlock(st->mu);
	if (s == NULL) {
		char q[48];
		vesting_quote_for_message(id, strlen(id), q);
		return call_fail(
			c, RPCQ_NOT_FOUND,
			"no compute session %s on this server (closed, failed, idle longer than %d s, or opened "
			"on another rpcqd: a session lives in the memory of the one that opened it, so send all "
			"of its calls there)",
			q, (int)(st->ttl_ms / 1000));
	}
	nng_mtx_lock(s->mu);
	*out = s;
	return RPCQ_OK;
}

/* Unlocks s, accounts its memory, and drops it when discard is set. */
static void release(vesting_sessions *st, session *s, int discard)
{
	size_t now_bytes = vesting_events_bytes(s->ev) + s->carry.cap;
	nng_mtx_unlock(s->mu);
	nng_mtx_lock(st->mu);
	s->refs--;
	if (!s->dead) {
		st->used = st->used - s->accounted + now_bytes;
		s->accounted = now_bytes;
		s->last_used = nng_clock();
		if (discard)
			unlink_locked(st, s);
	} else if (s->refs == 0) {
		session_free(s);
	}
	nng_mtx_unlock(st->mu);
}

/* 1 when all sessions together hold more than allowed. */
static int over_budget(vesting_sessions *st, const session *s)
{
	nng_mtx_lock(st->mu);
	size_t others = st->used - s->accounted;
	int over = others + vesting_events_bytes(s->ev) + s->carry.cap > st->max_bytes;
	nng_mtx_unlock(st->mu);
	return over;
}

static rpcq_status session_create(vesting_sessions *st, session **out, call *c)
{
	rpcq_error err;
	session *s = rpcq_calloc(1, sizeof(*s));
	if (s == NULL || nng_mtx_alloc(&s->mu) != 0 || vesting_events_create(&s->ev, &err) != RPCQ_OK) {
		session_free(s);
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a compute session");
	}
	snprintf(s->id, sizeof(s->id), "%08x%08x%08x%08x", nng_random(), nng_random(), nng_random(), nng_random());
	s->line = 1;
	s->refs = 1;
	s->last_used = nng_clock();
	nng_mtx_lock(s->mu);
	nng_mtx_lock(st->mu);
	sweep_locked(st, s->last_used);
	s->next = st->head;
	st->head = s;
	nng_mtx_unlock(st->mu);
	*out = s;
	return RPCQ_OK;
}

static uint64_t count_newlines(const char *p, size_t n)
{
	uint64_t k = 0;
	for (const char *end = p + n; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
		k++;
	return k;
}

/* The longest partial record a session carries to its next chunk: a valid
 * record is far shorter (three texts of at most 1024 bytes, events.c, even
 * quoted with every '"' doubled), and the bound keeps each chunk from
 * rescanning a carry that only grows. */
#define CARRY_MAX (16 * 1024)

/* Adds one chunk's events to the session (its lock held). */
static rpcq_status session_add(session *s, const Rpcq__Vesting__Events *m, rpcq_error *err)
{
	if (m == NULL)
		return RPCQ_OK;
	if (m->csv.len > 0 && m->n_rows > 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "events: give csv or rows, not both");
	if (m->n_rows > 0) {
		if (s->carry.len > 0)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					      "line %llu: rows sent after CSV text that does not end with a line break",
					      (unsigned long long)s->line);
		rpcq_status st = vesting_add_events(s->ev, m, s->line, err);
		s->line += m->n_rows;
		return st;
	}
	strbuf_append(&s->carry, m->csv.data, m->csv.len);
	if (s->carry.failed)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a chunk");
	size_t done = csv_complete(s->carry.data, s->carry.len);
	uint64_t lines = count_newlines(s->carry.data, done);
	rpcq_status st = vesting_events_add_csv(s->ev, s->carry.data, done, s->line, err);
	if (st != RPCQ_OK)
		return st;
	s->line += lines;
	memmove(s->carry.data, s->carry.data + done, s->carry.len - done);
	s->carry.len -= done;
	if (s->carry.len > CARRY_MAX)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "line %llu: a record longer than %d bytes with no line break (a valid one is "
				      "far shorter)",
				      (unsigned long long)s->line, CARRY_MAX);
	return RPCQ_OK;
}

rpcq_status vesting_upload(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vesting__UploadRequest *in = (const Rpcq__Vesting__UploadRequest *)msg;
	vesting_sessions *st = call_service_state(c);
	session *s;
	rpcq_error err;
	rpcq_status result;
	int discard = 0;

	Rpcq__Vesting__UploadResponse *r = arena_alloc(call_arena(c), sizeof(*r));
	if (r == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__vesting__upload_response__init(r);
	if (in->session_id[0] == '\0') {
		if (in->chunk != 0)
			return call_fail(c, RPCQ_INVALID_ARGUMENT, "a new session starts with chunk 0, not %u",
					 in->chunk);
		result = session_create(st, &s, c);
	} else {
		result = acquire(st, in->session_id, &s, c);
	}
	if (result != RPCQ_OK)
		return result;

	if (s->sealed) {
		result = call_fail(c, RPCQ_FAILED_PRECONDITION, "session %s was computed; upload to a new session",
				   s->id);
		goto out;
	}
	if (in->chunk > s->next_chunk) {
		result = call_fail(c, RPCQ_FAILED_PRECONDITION, "chunk %u sent before chunk %u", in->chunk,
				   s->next_chunk);
		goto out;
	}
	if (in->chunk == s->next_chunk) {
		result = session_add(s, in->events, &err);
		if (result == RPCQ_OK && over_budget(st, s)) {
			result = rpcq_error_set(&err, RPCQ_RESOURCE_EXHAUSTED,
						"compute sessions hold more than %zu bytes; compute smaller files or "
						"use a ledger",
						st->max_bytes);
		}
		if (result != RPCQ_OK) {
			discard = 1;
			result = call_fail_err(c, result, &err);
			goto out;
		}
		s->next_chunk++;
	}
	/* An earlier chunk is a resend whose reply was lost: acknowledged as is. */
	r->session_id = arena_strdup(call_arena(c), s->id);
	r->events = s->ev->nev;
	*out = &r->base;
	result = RPCQ_OK;
out:
	release(st, s, discard);
	return result;
}

rpcq_status vesting_close_session(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vesting__CloseSessionRequest *in = (const Rpcq__Vesting__CloseSessionRequest *)msg;
	vesting_sessions *st = call_service_state(c);
	Rpcq__Vesting__CloseSessionResponse *r = arena_alloc(call_arena(c), sizeof(*r));
	if (r == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__vesting__close_session_response__init(r);
	/* Closing an unknown or already closed session succeeds: the method is
	 * idempotent, and the outcome the caller wants holds either way. */
	nng_mtx_lock(st->mu);
	for (session *s = st->head; s; s = s->next) {
		if (strcmp(s->id, in->session_id) == 0) {
			unlink_locked(st, s);
			break;
		}
	}
	nng_mtx_unlock(st->mu);
	*out = &r->base;
	return RPCQ_OK;
}

/* Parses a page token "p<offset>"; 0 for none. */
static int parse_token(const char *tok, size_t *offset)
{
	*offset = 0;
	if (tok[0] == '\0')
		return 0;
	if (tok[0] != 'p' || tok[1] == '\0')
		return -1;
	size_t v = 0;
	for (const char *p = tok + 1; *p; p++) {
		if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10)
			return -1;
		v = v * 10 + (size_t)(*p - '0');
	}
	*offset = v;
	return 0;
}

/* Builds one page of ev's schedule (plan built, totals computed). */
static rpcq_status fill_page(call *c, const vesting_events *ev, const vesting_plan *plan, const int64_t *totals,
			     const Rpcq__Vesting__ComputeRequest *in, Rpcq__Vesting__ScheduleResponse **out)
{
	size_t n, offset;
	const uint32_t *order = vesting_plan_order(plan, &n);
	if (parse_token(in->page_token, &offset) != 0 || offset > n)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "page_token is not one this service gave");
	vesting_page pg;
	uint32_t size = vesting_page_size(in->page_size);
	rpcq_status st = vesting_page_init(&pg, c, size < n - offset ? size : n - offset);
	if (st != RPCQ_OK)
		return st;
	size_t emp_len = strlen(in->employee_id);
	size_t i = offset;
	for (; i < n && vesting_page_has_room(&pg); i++) {
		const vesting_award *a = &ev->awards[order[i]];
		const vesting_employee *e = &ev->employees[a->employee];
		if (emp_len && (e->id_len != emp_len || memcmp(e->id, in->employee_id, emp_len) != 0))
			continue;
		st = vesting_page_add(&pg, c, e->id, e->id_len, e->name, e->name_len, a->id, a->id_len,
				      totals[order[i]], (int)in->precision);
		if (st != RPCQ_OK)
			return st;
	}
	pg.resp->next_page_token = i < n ? arena_printf(call_arena(c), "p%zu", i) : "";
	if (pg.resp->next_page_token == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	*out = pg.resp;
	return RPCQ_OK;
}

/* Computes the schedule of ev at the request's date and precision. */
static rpcq_status compute_page(call *c, const vesting_events *ev, vesting_plan **plan,
				const Rpcq__Vesting__ComputeRequest *in, int32_t day,
				Rpcq__Vesting__ScheduleResponse **out)
{
	rpcq_error err;
	rpcq_status st;
	if (*plan == NULL || vesting_plan_version(*plan) != ev->version) {
		vesting_plan_destroy(*plan);
		*plan = NULL;
		if ((st = vesting_plan_create(plan, ev, &err)) != RPCQ_OK)
			return call_fail_err(c, st, &err);
	}
	int64_t *totals = rpcq_alloc((ev->naward ? ev->naward : 1) * sizeof(*totals));
	if (totals == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory for %u totals", ev->naward);
	st = vesting_plan_compute(*plan, (int)in->precision, &day, totals, &err);
	if (st != RPCQ_OK)
		st = call_fail_err(c, st, &err);
	else
		st = fill_page(c, ev, *plan, totals, in, out);
	rpcq_free(totals);
	return st;
}

rpcq_status vesting_compute(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vesting__ComputeRequest *in = (const Rpcq__Vesting__ComputeRequest *)msg;
	Rpcq__Vesting__ScheduleResponse *resp = NULL;
	rpcq_error err;
	int32_t day;
	rpcq_status st = vesting_check_query(in->target_date, in->precision, &day, &err);
	if (st != RPCQ_OK)
		return call_fail_err(c, st, &err);

	if (in->session_id[0] == '\0') {
		vesting_events *ev = NULL;
		vesting_plan *plan = NULL;
		if ((st = vesting_events_create(&ev, &err)) != RPCQ_OK ||
		    (st = vesting_add_events(ev, in->events, 0, &err)) != RPCQ_OK)
			st = call_fail_err(c, st, &err);
		else
			st = compute_page(c, ev, &plan, in, day, &resp);
		vesting_plan_destroy(plan);
		vesting_events_destroy(ev);
	} else {
		vesting_sessions *ss = call_service_state(c);
		session *s;
		if (in->events && (in->events->csv.len > 0 || in->events->n_rows > 0))
			return call_fail(c, RPCQ_INVALID_ARGUMENT, "give events or session_id, not both");
		if ((st = acquire(ss, in->session_id, &s, c)) != RPCQ_OK)
			return st;
		int discard = 0;
		if (!s->sealed && s->carry.len > 0) {
			/* The last record of the file had no line break. */
			st = vesting_events_add_csv(s->ev, s->carry.data, s->carry.len, s->line, &err);
			s->carry.len = 0;
			if (st != RPCQ_OK) {
				discard = 1;
				st = call_fail_err(c, st, &err);
			}
		}
		s->sealed = 1;
		/* A CANCEL refused at this precision may pass at another: the
		 * session stays for the caller to ask again. */
		if (st == RPCQ_OK)
			st = compute_page(c, s->ev, &s->plan, in, day, &resp);
		release(ss, s, discard);
	}
	if (st == RPCQ_OK)
		*out = &resp->base;
	return st;
}
