/*
 * AppendEvents, Schedule and ListLedgers: vesting ledgers persisted in
 * PostgreSQL (schema in db/migrations/0002_vesting.sql, statements in sql.c).
 *
 * Appending: a batch comes in one request, or in parts (each under the
 * message size limit) that are staged in vesting_parts and applied together,
 * in one transaction, when the part marked last arrives. The transaction
 * locks the ledger row, so appends to one ledger apply one at a time; it
 * re-checks the batch id under that lock, so a resent batch, even one racing
 * its first copy, returns the original result and changes nothing. The batch
 * is validated with the stored events of the awards it touches: a ledger
 * must satisfy the CANCEL rule at every precision 0..6, so that any schedule
 * asked of it later can be answered. The new running totals of those awards
 * are written with their events, and LedgerAppended is appended to the
 * stream "vesting.ledgers.<ledger>" in the same transaction. Bad input
 * changes nothing and removes the batch's staged parts.
 *
 * Schedule reads one row per award (see sql.c), a page at a time, keyed by
 * the last (employee id, award id) of the previous page.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "arena.h"
#include "db/db.h"
#include "pgcopy.h"
#include "qty.h"
#include "schedule.h"
#include "sql.h"
#include "stream.h"
#include "vesting.h"

#define LEDGER_NAME_MAX 64
#define BATCH_ID_MAX 128
#define PARTS_MAX 4096
/* Batches of at least this many events refresh the planner's statistics. */
#define ANALYZE_AFTER 10000

static int valid_name(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      strchr(extra, ch) != NULL))
			return 0;
	}
	return 1;
}

static rpcq_status check_ledger_name(call *c, const char *name)
{
	if (valid_name(name, LEDGER_NAME_MAX, "_.-"))
		return RPCQ_OK;
	char q[48];
	vesting_quote_for_message(name, strlen(name), q);
	return call_fail(c, RPCQ_INVALID_ARGUMENT, "ledger name %s is not 1..%d characters of [A-Za-z0-9_.-]", q,
			 LEDGER_NAME_MAX);
}

/* Integer OIDs of the array elements (pg_type: int4, int8). */
#define OID_INT4 23
#define OID_INT8 20

/* A one-dimensional array field of n int4 (size 4) or int8 (size 8) values,
 * in binary COPY (pgcopy.h: binary because array_in, parsing the arrays of
 * running totals as text, was most of an append). */
static void put_array(strbuf *b, uint32_t oid, int size, const void *values, size_t n)
{
	pgcopy_be(b, 20 + n * (4 + (size_t)size), 4);
	pgcopy_be(b, 1, 4); /* dimensions */
	pgcopy_be(b, 0, 4); /* no NULLs */
	pgcopy_be(b, oid, 4);
	pgcopy_be(b, n, 4);
	pgcopy_be(b, 1, 4); /* lower bound */
	for (size_t i = 0; i < n; i++) {
		pgcopy_be(b, (uint64_t)size, 4);
		if (size == 4)
			pgcopy_be(b, (uint32_t)((const int32_t *)values)[i], 4);
		else
			pgcopy_be(b, (uint64_t)((const int64_t *)values)[i], 8);
	}
}

/* Everything one append needs on its way through the transaction. */
typedef struct append_ctx {
	call *c;
	dbconn *db;
	const Rpcq__Vesting__AppendEventsRequest *in;
	vesting_events *ev;
	vesting_plan *plan;
	int64_t *award_ids; /* database id of each store award */
	uint64_t nnew;	    /* events of the batch */
	int ledger_id;
	rpcq_error err;
} append_ctx;

/* COPY of the store's awards into vesting_tmp: keys and names, or with
 * their running totals as well. */
static rpcq_status copy_awards(append_ctx *x, int with_totals)
{
	rpcq_status st;
	strbuf b = STRBUF_INIT;
	int32_t *days = NULL;
	int64_t *cum = NULL;
	const vesting_events *ev = x->ev;

	if (with_totals) {
		uint32_t most = 1;
		for (uint32_t a = 0; a < ev->naward; a++) {
			uint32_t n = vesting_plan_award_events(x->plan, a);
			most = n > most ? n : most;
		}
		days = rpcq_alloc(most * sizeof(*days));
		cum = rpcq_alloc((size_t)most * (VESTING_PRECISION_MAX + 1) * sizeof(*cum));
		if (days == NULL || cum == NULL) {
			st = rpcq_error_set(&x->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for running totals");
			goto out;
		}
	}
	st = db_copy_begin(x->db, with_totals ? VESTING_SQL_TMP_COPY_ALL : VESTING_SQL_TMP_COPY_KEYS, &x->err);
	if (st != RPCQ_OK)
		goto out;
	pgcopy_header(&b);
	for (uint32_t a = 0; a < ev->naward && st == RPCQ_OK; a++) {
		const vesting_award *aw = &ev->awards[a];
		const vesting_employee *em = &ev->employees[aw->employee];
		pgcopy_row(&b, with_totals ? 5 : 3);
		pgcopy_bytes(&b, em->id, em->id_len);
		pgcopy_bytes(&b, aw->id, aw->id_len);
		pgcopy_bytes(&b, em->name, em->name_len);
		if (with_totals) {
			size_t nd = vesting_plan_award_days(x->plan, a, days, cum);
			put_array(&b, OID_INT4, 4, days, nd);
			put_array(&b, OID_INT8, 8, cum, nd * (VESTING_PRECISION_MAX + 1));
		}
		st = pgcopy_send(x->db, &b, 0, &x->err);
	}
	st = pgcopy_finish(x->db, &b, st, &x->err);
out:
	rpcq_free(days);
	rpcq_free(cum);
	strbuf_fini(&b);
	return st;
}

/* Adds the stored events of the batch's awards to the store (line 0). */
static rpcq_status load_stored(append_ctx *x)
{
	char id[16];
	snprintf(id, sizeof(id), "%d", x->ledger_id);
	const char *params[] = {id};
	PGresult *res = NULL;
	rpcq_status st = db_exec(x->db, &vesting_sql_tmp_events, params, &res, &x->err);
	for (int i = 0; st == RPCQ_OK && i < PQntuples(res); i++) {
		long long day = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		long long qty = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		st = vesting_events_add_parsed(x->ev, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0), "", 0,
					       PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1),
					       qty < 0 ? VESTING_CANCEL : VESTING_VEST, (int32_t)day,
					       qty < 0 ? -qty : qty, &x->err);
	}
	PQclear(res);
	return st;
}

/* The CANCEL rule and overflow at every precision, over stored and new
 * events together. */
static rpcq_status check_all_precisions(append_ctx *x)
{
	rpcq_status st = vesting_plan_create(&x->plan, x->ev, &x->err);
	for (int p = VESTING_PRECISION_MAX; st == RPCQ_OK && p >= 0; p--) {
		st = vesting_plan_compute(x->plan, p, NULL, NULL, &x->err);
		if (st == RPCQ_INVALID_ARGUMENT && p < VESTING_PRECISION_MAX) {
			char msg[sizeof(x->err.message)];
			memcpy(msg, x->err.message, sizeof(msg));
			if (strstr(msg, "at precision") != NULL) /* the message names it already */
				rpcq_error_set(&x->err, st, "%.400s (a ledger must be valid at every precision 0..6)",
					       msg);
			else
				rpcq_error_set(
					&x->err, st,
					"%.400s (at precision %d; a ledger must be valid at every precision 0..6)", msg,
					p);
		}
	}
	return st;
}

/* Upserts employees and awards; fills award_ids from the RETURNING rows. */
static rpcq_status write_awards(append_ctx *x)
{
	char id[16];
	snprintf(id, sizeof(id), "%d", x->ledger_id);
	const char *params[] = {id};
	PGresult *res = NULL;
	rpcq_status st = db_exec(x->db, &vesting_sql_employees_upsert, params, NULL, &x->err);
	if (st == RPCQ_OK)
		st = db_exec(x->db, &vesting_sql_awards_upsert, params, &res, &x->err);
	x->award_ids = rpcq_calloc(x->ev->naward + 1, sizeof(*x->award_ids));
	if (st == RPCQ_OK && x->award_ids == NULL)
		st = rpcq_error_set(&x->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for award ids");
	for (int i = 0; st == RPCQ_OK && i < PQntuples(res); i++) {
		int64_t a = vesting_events_find_award(x->ev, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1),
						      PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2));
		if (a < 0) {
			st = rpcq_error_set(&x->err, RPCQ_INTERNAL, "an award written is not in the batch");
			break;
		}
		x->award_ids[a] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	}
	PQclear(res);
	return st;
}

/* COPY of the batch's own events (those with a line), award by award in
 * plan order: new awards got ascending ids in store order, so the rows
 * arrive in (award, day) order, which the index takes as appends to its
 * right edge and which keeps an award's events together in the heap. */
static rpcq_status write_events(append_ctx *x)
{
	strbuf b = STRBUF_INIT;
	rpcq_status st = db_copy_begin(x->db, VESTING_SQL_COPY_EVENTS, &x->err);
	if (st == RPCQ_OK)
		pgcopy_header(&b);
	for (uint32_t a = 0; st == RPCQ_OK && a < x->ev->naward; a++) {
		uint32_t n;
		const uint32_t *idx = vesting_plan_award_event_indexes(x->plan, a, &n);
		for (uint32_t k = 0; k < n; k++) {
			const vesting_event *e = &x->ev->ev[idx[k]];
			if (e->line == 0)
				continue;
			pgcopy_row(&b, 3);
			pgcopy_int8(&b, x->award_ids[a]);
			pgcopy_int4(&b, e->day);
			pgcopy_int8(&b, e->action == VESTING_CANCEL ? -e->qty : e->qty);
		}
		st = pgcopy_send(x->db, &b, 0, &x->err);
	}
	st = pgcopy_finish(x->db, &b, st, &x->err);
	strbuf_fini(&b);
	return st;
}

/* Looks the batch up; *found set when it was applied (r filled). */
static rpcq_status find_batch(append_ctx *x, Rpcq__Vesting__AppendEventsResponse *r, int *found)
{
	const char *params[] = {x->in->ledger, x->in->batch_id};
	PGresult *res = NULL;
	rpcq_status st = db_exec(x->db, &vesting_sql_batch_find, params, &res, &x->err);
	*found = st == RPCQ_OK && PQntuples(res) > 0;
	if (*found) {
		r->applied = 1;
		r->duplicate = 1;
		r->events = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		r->ledger_events = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	}
	PQclear(res);
	return st;
}

/* The transaction that applies a parsed batch. */
static rpcq_status apply(append_ctx *x, Rpcq__Vesting__AppendEventsResponse *r)
{
	const char *name[] = {x->in->ledger};
	PGresult *res = NULL;
	int found = 0;
	long long stored;
	rpcq_status st = db_begin(x->db, &x->err);
	if (st != RPCQ_OK)
		return st;
	if ((st = db_exec(x->db, &vesting_sql_ledger_create, name, NULL, &x->err)) != RPCQ_OK ||
	    (st = db_exec(x->db, &vesting_sql_ledger_lock, name, &res, &x->err)) != RPCQ_OK)
		goto out;
	x->ledger_id = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	stored = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	res = NULL;
	if ((st = find_batch(x, r, &found)) != RPCQ_OK || found)
		goto out;
	if ((st = db_command(x->db, VESTING_SQL_TMP_CREATE, &x->err)) != RPCQ_OK)
		goto out;
	/* An empty ledger (a first bulk load) has no stored events to find. */
	if (stored > 0 && ((st = copy_awards(x, 0)) != RPCQ_OK || (st = load_stored(x)) != RPCQ_OK ||
			   (st = db_command(x->db, VESTING_SQL_TMP_TRUNCATE, &x->err)) != RPCQ_OK))
		goto out;
	if ((st = check_all_precisions(x)) != RPCQ_OK || (st = copy_awards(x, 1)) != RPCQ_OK ||
	    (st = write_awards(x)) != RPCQ_OK || (st = write_events(x)) != RPCQ_OK)
		goto out;

	char id[16], added[24], total[24];
	snprintf(id, sizeof(id), "%d", x->ledger_id);
	snprintf(added, sizeof(added), "%llu", (unsigned long long)x->nnew);
	const char *bump[] = {id, added};
	if ((st = db_exec(x->db, &vesting_sql_ledger_bump, bump, &res, &x->err)) != RPCQ_OK)
		goto out;
	r->events = x->nnew;
	r->ledger_events = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	snprintf(total, sizeof(total), "%llu", (unsigned long long)r->ledger_events);
	const char *batch[] = {id, x->in->batch_id, added, total};
	const char *part[] = {x->in->ledger, x->in->batch_id};
	if ((st = db_exec(x->db, &vesting_sql_batch_insert, batch, NULL, &x->err)) != RPCQ_OK ||
	    (st = db_exec(x->db, &vesting_sql_part_delete, part, NULL, &x->err)) != RPCQ_OK ||
	    (st = db_exec(x->db, &vesting_sql_part_expire, NULL, NULL, &x->err)) != RPCQ_OK)
		goto out;

	Rpcq__Vesting__LedgerAppended msg = RPCQ__VESTING__LEDGER_APPENDED__INIT;
	msg.ledger = (char *)x->in->ledger;
	msg.batch_id = (char *)x->in->batch_id;
	msg.events = r->events;
	msg.ledger_events = r->ledger_events;
	char *topic = arena_printf(call_arena(x->c), "vesting.ledgers.%s", x->in->ledger);
	if (topic == NULL) {
		st = rpcq_error_set(&x->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	if ((st = stream_append(x->db, topic, &msg.base, NULL, &x->err)) != RPCQ_OK)
		goto out;
	st = db_commit(x->db, &x->err);
	if (st == RPCQ_OK)
		r->applied = 1;
	return st;
out:
	PQclear(res);
	db_rollback(x->db);
	return st;
}

/* Parses the staged parts and this last part into x->ev. CSV of all parts is
 * one text (parts may cut records anywhere); rows are numbered on. */
static rpcq_status parse_batch(append_ctx *x)
{
	const Rpcq__Vesting__AppendEventsRequest *in = x->in;
	ProtobufCAllocator *alloc = call_allocator(x->c);
	PGresult *res = NULL;
	strbuf csv = STRBUF_INIT;
	int nparts = 0;
	Rpcq__Vesting__Events **parts = NULL;
	rpcq_status st = RPCQ_OK;

	if (in->part > 0) {
		const char *params[] = {in->ledger, in->batch_id};
		const int formats[] = {0, 0};
		st = db_exec_params(x->db, &vesting_sql_part_list, params, NULL, formats, 1, &res, &x->err);
		if (st != RPCQ_OK)
			goto out;
		nparts = PQntuples(res);
		parts = arena_calloc(call_arena(x->c), (size_t)in->part + 1, sizeof(*parts));
		if (parts == NULL) {
			st = rpcq_error_set(&x->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
			goto out;
		}
		for (int i = 0; i < (int)in->part; i++) {
			uint32_t num = i < nparts ? (uint32_t)db_int4(res, i, 0) : 0;
			if (i >= nparts || num != (uint32_t)i) {
				st = rpcq_error_set(&x->err, RPCQ_FAILED_PRECONDITION,
						    "batch \"%s\": part %d was not received before the last part %u",
						    in->batch_id, i, in->part);
				goto out;
			}
			parts[i] = rpcq__vesting__events__unpack(alloc, (size_t)PQgetlength(res, i, 1),
								 (const uint8_t *)PQgetvalue(res, i, 1));
			if (parts[i] == NULL) {
				st = rpcq_error_set(&x->err, RPCQ_INTERNAL, "staged part %d cannot be read", i);
				goto out;
			}
		}
	}
	if (parts == NULL) {
		parts = arena_calloc(call_arena(x->c), 1, sizeof(*parts));
		if (parts == NULL) {
			st = rpcq_error_set(&x->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
			goto out;
		}
	}
	parts[in->part] = in->events;

	int has_csv = 0, has_rows = 0;
	for (uint32_t i = 0; i <= in->part; i++) {
		if (parts[i] == NULL)
			continue;
		has_csv |= parts[i]->csv.len > 0;
		has_rows |= parts[i]->n_rows > 0;
	}
	if (has_csv && has_rows) {
		st = rpcq_error_set(&x->err, RPCQ_INVALID_ARGUMENT, "a batch is CSV text or rows, not both");
		goto out;
	}
	uint64_t line = 1;
	for (uint32_t i = 0; i <= in->part; i++) {
		if (parts[i] == NULL)
			continue;
		if (has_csv) {
			strbuf_append(&csv, parts[i]->csv.data, parts[i]->csv.len);
			continue;
		}
		if ((st = vesting_add_events(x->ev, parts[i], line, &x->err)) != RPCQ_OK)
			goto out;
		line += parts[i]->n_rows;
	}
	if (csv.failed) {
		st = rpcq_error_set(&x->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the batch");
		goto out;
	}
	if (has_csv)
		st = vesting_events_add_csv(x->ev, csv.data, csv.len, 1, &x->err);
	x->nnew = x->ev->nev;
out:
	strbuf_fini(&csv);
	PQclear(res);
	return st;
}

/* Stages a part that is not the last. */
static rpcq_status stage_part(append_ctx *x)
{
	const Rpcq__Vesting__AppendEventsRequest *in = x->in;
	Rpcq__Vesting__Events empty = RPCQ__VESTING__EVENTS__INIT;
	const Rpcq__Vesting__Events *ev = in->events ? in->events : &empty;
	size_t n = rpcq__vesting__events__get_packed_size(ev);
	uint8_t *packed = arena_alloc(call_arena(x->c), n ? n : 1);
	if (packed == NULL)
		return rpcq_error_set(&x->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__vesting__events__pack(ev, packed);
	char part[16];
	snprintf(part, sizeof(part), "%u", in->part);
	const char *params[] = {in->ledger, in->batch_id, part, (const char *)packed};
	const int lengths[] = {0, 0, 0, (int)n};
	const int formats[] = {0, 0, 0, 1};
	return db_exec_params(x->db, &vesting_sql_part_insert, params, lengths, formats, 0, NULL, &x->err);
}

/* Removes the batch's staged parts after it was refused (best effort: they
 * also expire after a day). */
static void drop_parts(append_ctx *x)
{
	rpcq_error ignored;
	const char *params[] = {x->in->ledger, x->in->batch_id};
	if (db_exec(x->db, &vesting_sql_part_delete, params, NULL, &ignored) != RPCQ_OK)
		return;
}

rpcq_status vesting_append_events(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vesting__AppendEventsRequest *in = (const Rpcq__Vesting__AppendEventsRequest *)msg;
	append_ctx x = {.c = c, .in = in};
	rpcq_status st = check_ledger_name(c, in->ledger);
	if (st != RPCQ_OK)
		return st;
	if (!valid_name(in->batch_id, BATCH_ID_MAX, "_.:-"))
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "batch_id must be 1..%d characters of [A-Za-z0-9_.:-]",
				 BATCH_ID_MAX);
	if (in->part >= PARTS_MAX)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "part %u: a batch has at most %d parts", in->part,
				 PARTS_MAX);

	Rpcq__Vesting__AppendEventsResponse *r = arena_alloc(call_arena(c), sizeof(*r));
	if (r == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__vesting__append_events_response__init(r);
	r->ledger = (char *)in->ledger;
	r->batch_id = (char *)in->batch_id;
	if ((st = call_db(c, &x.db)) != RPCQ_OK)
		return st;

	int found = 0;
	if ((st = find_batch(&x, r, &found)) != RPCQ_OK)
		goto out;
	if (found) {
		drop_parts(&x);
		goto out;
	}
	if (!in->last) {
		st = stage_part(&x);
		goto out;
	}
	if ((st = vesting_events_create(&x.ev, &x.err)) != RPCQ_OK)
		goto out;
	x.ev->require_utf8 = 1;
	if ((st = parse_batch(&x)) != RPCQ_OK || (st = apply(&x, r)) != RPCQ_OK) {
		if (st == RPCQ_INVALID_ARGUMENT)
			drop_parts(&x);
		goto out;
	}
	if (r->duplicate) {
		drop_parts(&x);
	} else if (x.nnew >= ANALYZE_AFTER) {
		/* Fresh statistics keep the schedule's plan an ordered index scan;
		 * stale ones after a bulk load made it a nested loop 50x slower.
		 * All columns: without the widths of days and cum, or the
		 * histogram of employee_id, the plan becomes a sort of the whole
		 * ledger (measured: twice as slow). */
		rpcq_error ignored;
		if (db_command(x.db, "ANALYZE vesting_awards, vesting_employees", &ignored) != RPCQ_OK)
			goto out;
	}
out:
	vesting_plan_destroy(x.plan);
	vesting_events_destroy(x.ev);
	rpcq_free(x.award_ids);
	if (st != RPCQ_OK)
		return call_fail_err(c, st, &x.err);
	*out = &r->base;
	return RPCQ_OK;
}

/* Page tokens of Schedule: "k" + hex(employee id) + "." + hex(award id). */
static char *encode_token(arena *a, const char *emp, const char *award)
{
	size_t ne = strlen(emp), na = strlen(award);
	char *t = arena_alloc(a, 2 * (ne + na) + 3);
	if (t == NULL)
		return NULL;
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;
	t[k++] = 'k';
	for (size_t i = 0; i < ne; i++) {
		t[k++] = hex[(unsigned char)emp[i] >> 4];
		t[k++] = hex[(unsigned char)emp[i] & 15];
	}
	t[k++] = '.';
	for (size_t i = 0; i < na; i++) {
		t[k++] = hex[(unsigned char)award[i] >> 4];
		t[k++] = hex[(unsigned char)award[i] & 15];
	}
	t[k] = '\0';
	return t;
}

static int unhex(arena *a, const char *s, size_t n, char **out)
{
	if (n % 2)
		return -1;
	char *o = arena_alloc(a, n / 2 + 1);
	if (o == NULL)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int v = 0;
		for (int j = 0; j < 2; j++) {
			char ch = s[i + (size_t)j];
			int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
			if (d < 0)
				return -1;
			v = v * 16 + d;
		}
		if (v == 0)
			return -1;
		o[i / 2] = (char)v;
	}
	o[n / 2] = '\0';
	*out = o;
	return 0;
}

static int decode_token(arena *a, const char *tok, char **emp, char **award)
{
	*emp = *award = "";
	if (tok[0] == '\0')
		return 0;
	const char *dot = strchr(tok, '.');
	if (tok[0] != 'k' || dot == NULL)
		return -1;
	return unhex(a, tok + 1, (size_t)(dot - tok - 1), emp) || unhex(a, dot + 1, strlen(dot + 1), award) ? -1 : 0;
}

static rpcq_status ledger_id_of(call *c, dbconn *db, const char *ledger, char id[16])
{
	rpcq_error err;
	PGresult *res = NULL;
	const char *params[] = {ledger};
	rpcq_status st = db_exec(db, &vesting_sql_ledger_find, params, &res, &err);
	if (st != RPCQ_OK)
		return call_fail_err(c, st, &err);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return call_fail(c, RPCQ_NOT_FOUND, "no ledger \"%s\"", ledger);
	}
	snprintf(id, 16, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return RPCQ_OK;
}

rpcq_status vesting_schedule(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vesting__ScheduleRequest *in = (const Rpcq__Vesting__ScheduleRequest *)msg;
	arena *a = call_arena(c);
	rpcq_error err;
	int32_t day;
	dbconn *db;
	char id[16];
	rpcq_status st = check_ledger_name(c, in->ledger);
	if (st != RPCQ_OK)
		return st;
	if ((st = vesting_check_query(in->target_date, in->precision, &day, &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);
	char *after_emp, *after_award;
	if (decode_token(a, in->page_token, &after_emp, &after_award) != 0)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "page_token is not one this service gave");
	if ((st = call_db(c, &db)) != RPCQ_OK || (st = ledger_id_of(c, db, in->ledger, id)) != RPCQ_OK)
		return st;

	uint32_t size = vesting_page_size(in->page_size);
	char dayt[16], prec[4], limit[16];
	snprintf(dayt, sizeof(dayt), "%d", (int)day);
	snprintf(prec, sizeof(prec), "%u", in->precision);
	snprintf(limit, sizeof(limit), "%u", size + 1);
	const char *params[] = {id, dayt, prec, after_emp, after_award, limit, in->employee_id};
	PGresult *res = NULL;
	st = db_exec(db, in->employee_id[0] ? &vesting_sql_schedule_employee : &vesting_sql_schedule, params, &res,
		     &err);
	if (st != RPCQ_OK)
		return call_fail_err(c, st, &err);
	int n = PQntuples(res);
	vesting_page pg;
	if ((st = vesting_page_init(&pg, c, (size_t)n < size ? (size_t)n : size)) != RPCQ_OK)
		goto out;
	int i = 0;
	for (; i < n && vesting_page_has_room(&pg); i++) {
		st = vesting_page_add(&pg, c, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0),
				      PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), PQgetvalue(res, i, 2),
				      (size_t)PQgetlength(res, i, 2), strtoll(PQgetvalue(res, i, 3), NULL, 10),
				      (int)in->precision);
		if (st != RPCQ_OK)
			goto out;
	}
	pg.resp->next_page_token = "";
	if (i < n) {
		Rpcq__Vesting__ScheduleEntry *last = pg.resp->entries[pg.resp->n_entries - 1];
		pg.resp->next_page_token = encode_token(a, last->employee_id, last->award_id);
		if (pg.resp->next_page_token == NULL) {
			st = call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
			goto out;
		}
	}
	*out = &pg.resp->base;
out:
	PQclear(res);
	return st;
}

rpcq_status vesting_list_ledgers(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	arena *a = call_arena(c);
	PGresult *res = NULL;
	rpcq_status st = call_query(c, &vesting_sql_ledger_list, NULL, 0, &res);
	if (st != RPCQ_OK)
		return st;
	int n = PQntuples(res);
	Rpcq__Vesting__ListLedgersResponse *r = arena_alloc(a, sizeof(*r));
	Rpcq__Vesting__LedgerInfo **ls = arena_calloc(a, (size_t)n + 1, sizeof(*ls));
	if (r == NULL || ls == NULL) {
		st = call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	rpcq__vesting__list_ledgers_response__init(r);
	r->ledgers = ls;
	for (int i = 0; i < n; i++) {
		Rpcq__Vesting__LedgerInfo *li = arena_alloc(a, sizeof(*li));
		if (li == NULL) {
			st = call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
			goto out;
		}
		rpcq__vesting__ledger_info__init(li);
		li->name = arena_strdup(a, PQgetvalue(res, i, 0));
		li->events = strtoull(PQgetvalue(res, i, 1), NULL, 10);
		li->batches = strtoull(PQgetvalue(res, i, 2), NULL, 10);
		li->created_at_ms = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		li->updated_at_ms = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		if (li->name == NULL) {
			st = call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
			goto out;
		}
		r->ledgers[r->n_ledgers++] = li;
	}
	*out = &r->base;
out:
	PQclear(res);
	return st;
}
