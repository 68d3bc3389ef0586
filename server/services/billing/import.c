/*
 * StartImport, ImportChunk, GetImport, ListRejections and
 * ListFailedEmails: a debts file received in chunks (schema in
 * db/migrations/0005_billing.sql).
 *
 * A chunk is one transaction: lock the import's row, take the chunk
 * (upload.h: a resend changes nothing, a gap is refused), read its whole
 * records (debt.h), COPY the valid rows into a temporary stage and the bad
 * ones into the rejection report, then one statement merges the stage into
 * the debts by debtId (sql.c, billing_sql_merge: new debts are queued for
 * their bills in ranges of --billing-batch ids; a repeat with the same
 * values is not a new debt; with other values it is rejected), and the
 * import's counters, its upload state and a progress message on
 * "billing.imports.<id>" are written with it. Chunk merges take one
 * advisory lock, so a debtId new to two imports at once is compared once
 * (schema of the queue: db/migrations/0008_billing_ranges.sql). Memory is bounded by the chunk: nothing of the file but
 * the carried partial record outlives a chunk's transaction.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "billing_service.h"
#include "debt.h"
#include "pgcopy.h"
#include "sql.h"
#include "stream.h"
#include "topic_map.h"
#include "upload.h"
#include "upload_ahead.h"
#include "utf8.h"

/* ListRejections and ListFailedEmails pages. */
#define PAGE_DEFAULT 1000
#define PAGE_MAX 10000
/* Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01. */
#define PG_EPOCH_DAYS 10957

static const char default_name[] = "debts.csv";

rpcq_status billing_import_id(call *c, const char *text, int64_t *id)
{
	if (upload_parse_id(text, id) != 0)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "import_id \"%.40s\" is not an import id (a number)",
				 text ? text : "");
	return RPCQ_OK;
}

static int64_t int_at(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The failed e-mails of import ids after bill number after, at most limit,
 * into *list (in ar) and *n; *next is the bill number of the last one when
 * more follow, else 0. */
static rpcq_status failed_emails_read(dbconn *db, arena *ar, const char *ids, int64_t after, uint32_t limit,
				      Rpcq__Billing__FailedEmail ***list, size_t *n, int64_t *next, rpcq_error *err)
{
	char al[24], lim[16];
	snprintf(al, sizeof(al), "%" PRId64, after);
	snprintf(lim, sizeof(lim), "%" PRIu32, limit + 1);
	const char *p[] = {ids, al, lim};
	PGresult *res = NULL;
	rpcq_status st = db_exec(db, &billing_sql_failed_emails_page, p, &res, err);
	if (st != RPCQ_OK)
		return st;
	int rows = PQntuples(res);
	int take = rows > (int)limit ? (int)limit : rows;
	Rpcq__Billing__FailedEmail **l = arena_calloc(ar, (size_t)take + 1, sizeof(*l));
	Rpcq__Billing__FailedEmail *f = arena_calloc(ar, (size_t)take + 1, sizeof(*f));
	if (l == NULL || f == NULL) {
		PQclear(res);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	for (int i = 0; i < take; i++) {
		rpcq__billing__failed_email__init(&f[i]);
		f[i].debt_id = arena_strdup(ar, PQgetvalue(res, i, 1));
		f[i].line = (uint64_t)int_at(res, i, 2);
		f[i].email = arena_strdup(ar, PQgetvalue(res, i, 3));
		f[i].attempts = (uint32_t)int_at(res, i, 4);
		f[i].last_error = arena_strdup(ar, PQgetvalue(res, i, 5));
		l[i] = &f[i];
	}
	*next = rows > take && take > 0 ? int_at(res, take - 1, 0) : 0;
	PQclear(res);
	*list = l;
	*n = (size_t)take;
	return RPCQ_OK;
}

rpcq_status billing_import_read(dbconn *db, arena *ar, int64_t id, int with_reasons, Rpcq__Billing__Import **out,
				rpcq_error *err)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	const char *p[] = {ids};
	PGresult *res = NULL;
	rpcq_status st = db_exec(db, &billing_sql_import_get, p, &res, err);
	if (st != RPCQ_OK)
		return st;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return rpcq_error_set(err, RPCQ_NOT_FOUND, "import %" PRId64 " not found", id);
	}
	Rpcq__Billing__Import *m = arena_calloc(ar, 1, sizeof(*m));
	if (m == NULL) {
		PQclear(res);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	rpcq__billing__import__init(m);
	m->import_id = arena_strdup(ar, ids);
	m->key = arena_strdup(ar, PQgetvalue(res, 0, 1));
	m->name = arena_strdup(ar, PQgetvalue(res, 0, 2));
	m->received_bytes = (uint64_t)int_at(res, 0, 3);
	m->complete = PQgetvalue(res, 0, 4)[0] == 't';
	m->rows = (uint64_t)int_at(res, 0, 5);
	m->accepted = (uint64_t)int_at(res, 0, 6);
	m->new_debts = (uint64_t)int_at(res, 0, 7);
	m->repeated = (uint64_t)int_at(res, 0, 8);
	m->rejected = (uint64_t)int_at(res, 0, 9);
	m->bills = (uint64_t)int_at(res, 0, 10);
	m->emails_sent = (uint64_t)int_at(res, 0, 11);
	m->emails_failed = (uint64_t)int_at(res, 0, 12);
	uint64_t cancelled = (uint64_t)int_at(res, 0, 13);
	m->created_at_ms = int_at(res, 0, 14);
	m->updated_at_ms = int_at(res, 0, 15);
	PQclear(res);
	uint64_t settled = m->emails_sent + m->emails_failed + cancelled;
	m->emails_pending = m->bills > settled ? m->bills - settled : 0;
	if (!m->complete)
		m->state = RPCQ__BILLING__IMPORT_STATE__RECEIVING;
	else if (m->bills < m->new_debts)
		m->state = RPCQ__BILLING__IMPORT_STATE__BILLING;
	else if (settled < m->new_debts)
		m->state = RPCQ__BILLING__IMPORT_STATE__MAILING;
	else
		m->state = RPCQ__BILLING__IMPORT_STATE__DONE;
	if (!with_reasons) {
		*out = m;
		return RPCQ_OK;
	}
	int64_t next = 0;
	if (m->emails_failed > 0 &&
	    (st = failed_emails_read(db, ar, ids, 0, BILLING_FIRST_FAILED_EMAILS, &m->first_failed_emails,
				     &m->n_first_failed_emails, &next, err)) != RPCQ_OK)
		return st;

	char limit[16];
	snprintf(limit, sizeof(limit), "%d", BILLING_FIRST_REJECTIONS);
	const char *q[] = {ids, limit};
	if ((st = db_exec(db, &billing_sql_rejections_first, q, &res, err)) != RPCQ_OK)
		return st;
	int n = PQntuples(res);
	m->first_rejections = arena_calloc(ar, (size_t)n + 1, sizeof(*m->first_rejections));
	Rpcq__Billing__Rejection *r = arena_calloc(ar, (size_t)n + 1, sizeof(*r));
	if (m->first_rejections == NULL || r == NULL) {
		PQclear(res);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	for (int i = 0; i < n; i++) {
		rpcq__billing__rejection__init(&r[i]);
		r[i].line = (uint64_t)int_at(res, i, 0);
		r[i].reason = arena_strdup(ar, PQgetvalue(res, i, 1));
		m->first_rejections[i] = &r[i];
	}
	m->n_first_rejections = (size_t)n;
	PQclear(res);
	*out = m;
	return RPCQ_OK;
}

rpcq_status billing_publish_progress(dbconn *db, int64_t id, rpcq_error *err)
{
	arena *ar = arena_create(4096);
	if (ar == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	Rpcq__Billing__Import *imp = NULL;
	/* Subscribers want the counts; the reasons are in GetImport. */
	rpcq_status st = billing_import_read(db, ar, id, 0, &imp, err);
	if (st == RPCQ_OK) {
		Rpcq__Billing__ImportProgress msg = RPCQ__BILLING__IMPORT_PROGRESS__INIT;
		msg.import = imp;
		char topic[64];
		snprintf(topic, sizeof(topic), BILLING_TOPIC_PREFIX "%" PRId64, id);
		st = stream_append(db, topic, &msg.base, NULL, err);
	}
	arena_destroy(ar);
	return st;
}

static rpcq_status load_reply(call *c, int64_t id, int duplicate, ProtobufCMessage **out)
{
	dbconn *db;
	rpcq_error err;
	rpcq_status st = call_db(c, &db);
	if (st != RPCQ_OK)
		return st;
	Rpcq__Billing__Import *m = NULL;
	if ((st = billing_import_read(db, call_arena(c), id, 1, &m, &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);
	m->duplicate = duplicate;
	*out = &m->base;
	return RPCQ_OK;
}

rpcq_status billing_start_import(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Billing__StartImportRequest *in = (const Rpcq__Billing__StartImportRequest *)msg;
	const char *key = in->key && in->key[0] ? in->key : NULL;
	const char *name = in->name && in->name[0] ? in->name : default_name;
	if (key && (strlen(key) > BILLING_KEY_MAX || !utf8_valid(key, strlen(key))))
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "key is not UTF-8 of at most %d bytes", BILLING_KEY_MAX);
	if (strlen(name) > BILLING_FILE_NAME_MAX || !utf8_valid(name, strlen(name)))
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "name is not UTF-8 of at most %d bytes",
				 BILLING_FILE_NAME_MAX);
	dbconn *db;
	rpcq_error err;
	PGresult *res = NULL;
	rpcq_status st = call_db(c, &db);
	if (st != RPCQ_OK)
		return st;
	const char *p[] = {key, name};
	if ((st = db_exec(db, &billing_sql_import_create, p, &res, &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);
	int64_t id = PQntuples(res) == 1 ? int_at(res, 0, 0) : 0;
	PQclear(res);
	if (id == 0) {
		/* The key exists: that import, as it stands. */
		const char *pk[] = {key};
		if ((st = db_exec(db, &billing_sql_import_by_key, pk, &res, &err)) != RPCQ_OK)
			return call_fail_err(c, st, &err);
		id = PQntuples(res) == 1 ? int_at(res, 0, 0) : 0;
		PQclear(res);
		if (id == 0)
			return call_fail(c, RPCQ_ABORTED, "import key \"%.40s\" changed meanwhile", key);
	}
	return load_reply(c, id, 0, out);
}

/* A chunk's rows as COPY data: valid ones for the stage, bad ones for the
 * rejection report. */
typedef struct chunk_rows {
	strbuf stage;
	strbuf rejected;
	uint64_t rows, bad;
	uint64_t firsts; /* distinct debtIds among the staged rows */
} chunk_rows;

static void add_rejection(chunk_rows *out, int64_t id, uint64_t line, const char *reason)
{
	pgcopy_row(&out->rejected, 3);
	pgcopy_int8(&out->rejected, id);
	pgcopy_int8(&out->rejected, (int64_t)line);
	pgcopy_bytes(&out->rejected, reason, strlen(reason));
	out->bad++;
}

/* Whether two valid rows hold the same debt: the values the merge
 * compares, as PostgreSQL compares them (text byte for byte). */
static int same_values(const billing_row *a, const billing_row *b)
{
	return a->amount_cents == b->amount_cents && a->due_day == b->due_day && a->name_len == b->name_len &&
	       a->government_id_len == b->government_id_len && a->email_len == b->email_len &&
	       memcmp(a->name, b->name, a->name_len) == 0 &&
	       memcmp(a->government_id, b->government_id, a->government_id_len) == 0 &&
	       memcmp(a->email, b->email, a->email_len) == 0;
}

static int read_rows(int64_t id, const upload_piece *pc, int *header_seen, chunk_rows *out, rpcq_error *err)
{
	billing_reader r;
	billing_row row;
	/* The first row of each debtId in the chunk (its fields point into
	 * the chunk's text, which outlives this), so that the stage says
	 * which row is a debtId's first (the merge inserts those) and whether
	 * a later one repeats it, without a window or a join over the chunk
	 * in SQL. */
	topic_map *firsts = topic_map_create(sizeof(billing_row));
	if (firsts == NULL) {
		rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory reading the chunk");
		return -1;
	}
	int k;
	billing_reader_init(&r, pc->records, pc->records_len, pc->first_line, *header_seen);
	pgcopy_header(&out->stage);
	pgcopy_header(&out->rejected);
	while ((k = billing_reader_next(&r, &row, err)) == 1) {
		out->rows++;
		if (row.reason != NULL) {
			add_rejection(out, id, row.line, row.reason);
			continue;
		}
		int inserted;
		billing_row *first = topic_map_put(firsts, row.debt_id, row.debt_id_len, &inserted);
		if (first == NULL) {
			topic_map_destroy(firsts);
			rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory reading the chunk");
			return -1;
		}
		if (inserted)
			*first = row;
		pgcopy_row(&out->stage, 9);
		pgcopy_int8(&out->stage, (int64_t)row.line);
		pgcopy_int8(&out->stage, (int64_t)first->line);
		pgcopy_bool(&out->stage, !inserted && same_values(first, &row));
		pgcopy_bytes(&out->stage, row.debt_id, row.debt_id_len);
		pgcopy_bytes(&out->stage, row.name, row.name_len);
		pgcopy_bytes(&out->stage, row.government_id, row.government_id_len);
		pgcopy_bytes(&out->stage, row.email, row.email_len);
		pgcopy_int8(&out->stage, row.amount_cents);
		pgcopy_int4(&out->stage, row.due_day - PG_EPOCH_DAYS);
	}
	out->firsts = topic_map_count(firsts);
	topic_map_destroy(firsts);
	*header_seen = r.header_seen;
	return k;
}

static void rows_reset(chunk_rows *rows, strbuf *work)
{
	strbuf_fini(work);
	strbuf_fini(&rows->stage);
	strbuf_fini(&rows->rejected);
	*rows = (chunk_rows){STRBUF_INIT, STRBUF_INIT, 0, 0, 0};
}

/* COPYs the stage rows, leaving them in place: a chunk read ahead may
 * stage them again in a later transaction. */
static rpcq_status stage_rows(dbconn *db, const chunk_rows *rows, rpcq_error *err)
{
	rpcq_status st = db_command(db, billing_sql_stage_create, err);
	return st == RPCQ_OK ? pgcopy_copy(db, BILLING_SQL_COPY_STAGE, &rows->stage, err) : st;
}

/* Whether the locked import row (billing_sql_import_lock, binary) holds
 * the state sp that a chunk was read ahead from. */
static int row_is(const PGresult *res, const upload_spec *sp)
{
	return (uint64_t)db_int8(res, 0, 0) == sp->st.received && (uint64_t)db_int8(res, 0, 1) == sp->st.line &&
	       (PQgetvalue(res, 0, 2)[0] != 0) == (sp->st.complete != 0) &&
	       (PQgetvalue(res, 0, 3)[0] != 0) == (sp->header_seen != 0) && (int)db_int8(res, 0, 6) == sp->st.skip &&
	       (size_t)PQgetlength(res, 0, 4) == sp->carry.len &&
	       (sp->carry.len == 0 || memcmp(PQgetvalue(res, 0, 4), sp->carry.data, sp->carry.len) == 0);
}

/* Attempts at the row lock: a chunk that got there before its predecessor
 * (still in this process's hands) waits for it and tries again. */
#define LOCK_ATTEMPTS 8
/* How long such a chunk waits for its predecessor to arrive. */
#define PREDECESSOR_WAIT_MS 250

static rpcq_status import_chunk(call *c, const Rpcq__Billing__ImportChunkRequest *in, int64_t id, upload_ahead *a,
				ProtobufCMessage **out)
{
	billing_state *bs = call_service_state(c);
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	dbconn *db;
	rpcq_error err;
	rpcq_status st;
	PGresult *res = NULL;
	strbuf work = STRBUF_INIT;
	chunk_rows rows = {STRBUF_INIT, STRBUF_INIT, 0, 0, 0};
	upload_spec sp = {UPLOAD_STATE_INIT, 0, STRBUF_INIT};
	int duplicate = 0, queued = 0, ahead = 0, staged = 0, waited_out = 0;
	char name[BILLING_FILE_NAME_MAX + 1] = "";
	upload_state us;
	int header_seen;
	upload_piece pc;
	if ((st = call_db(c, &db)) != RPCQ_OK)
		return st;

	/* Read ahead, from the state the chunk before published, while that
	 * one's transaction may still run (upload_ahead.h). */
	if (a != NULL && upload_ahead_get(a, id, in->offset, call_deadline(c), &sp)) {
		us = sp.st;
		header_seen = sp.header_seen;
		if (upload_take(&us, sp.carry.data, sp.carry.len, in->offset, in->data.data, in->data.len, in->last,
				BILLING_MAX_RECORD, &work, &pc, &err) == RPCQ_OK &&
		    pc.action == UPLOAD_TAKEN && read_rows(id, &pc, &header_seen, &rows, &err) >= 0) {
			ahead = 1;
			upload_ahead_put(a, id, &us, header_seen, pc.carry, pc.carry_len);
		} else {
			rows_reset(&rows, &work);
		}
	}

	for (int attempt = 0;; attempt++) {
		if ((st = db_begin(db, &err)) != RPCQ_OK)
			goto fail;
		staged = 0;
		if (ahead && rows.rows > rows.bad) {
			if ((st = stage_rows(db, &rows, &err)) != RPCQ_OK)
				goto fail;
			staged = 1;
		}
		const char *pl[] = {ids};
		const int fmt[] = {0};
		if ((st = db_exec_params(db, &billing_sql_import_lock, pl, NULL, fmt, 1, &res, &err)) != RPCQ_OK)
			goto fail;
		if (PQntuples(res) == 0) {
			st = rpcq_error_set(&err, RPCQ_NOT_FOUND, "import %" PRId64 " not found", id);
			goto fail;
		}
		snprintf(name, sizeof(name), "%.*s", PQgetlength(res, 0, 5), PQgetvalue(res, 0, 5));
		uint64_t received = (uint64_t)db_int8(res, 0, 0);
		if (received < in->offset && a != NULL && !waited_out && attempt + 1 < LOCK_ATTEMPTS) {
			/* Here before the chunk at received, which a client with
			 * chunks in flight sent first: wait for that one (without
			 * the lock it needs), if it comes soon. It may be queued
			 * behind this call (every worker busy, or --workers 1):
			 * while this one waits, a spare thread takes calls. */
			PQclear(res);
			res = NULL;
			db_rollback(db);
			nng_time deadline = call_deadline(c), arrive = nng_clock() + PREDECESSOR_WAIT_MS;
			server_wait_begin(call_server(c));
			if (!upload_ahead_wait_for(a, id, received, arrive < deadline ? arrive : deadline, deadline))
				waited_out = 1;
			server_wait_end(call_server(c));
			continue;
		}
		if (ahead && row_is(res, &sp))
			break; /* rows, pc, us and header_seen are this chunk's */
		if (ahead) {
			/* Read from a state that did not last: read again. */
			PQclear(res);
			res = NULL;
			db_rollback(db);
			rows_reset(&rows, &work);
			ahead = 0;
			continue;
		}
		us = (upload_state){received, (uint64_t)db_int8(res, 0, 1), PQgetvalue(res, 0, 2)[0] != 0,
				    (int)db_int8(res, 0, 6)};
		header_seen = PQgetvalue(res, 0, 3)[0] != 0;
		st = upload_take(&us, PQgetvalue(res, 0, 4), (size_t)PQgetlength(res, 0, 4), in->offset, in->data.data,
				 in->data.len, in->last, BILLING_MAX_RECORD, &work, &pc, &err);
		PQclear(res);
		res = NULL;
		if (st != RPCQ_OK)
			goto fail_named;
		if (pc.action == UPLOAD_DUPLICATE) {
			duplicate = 1;
			db_rollback(db);
			goto reply;
		}
		if (read_rows(id, &pc, &header_seen, &rows, &err) < 0) {
			st = err.code;
			goto fail_named;
		}
		if (a != NULL)
			upload_ahead_put(a, id, &us, header_seen, pc.carry, pc.carry_len);
		break;
	}
	PQclear(res);
	res = NULL;
	if (pc.overlong_line != 0) {
		if (!header_seen) {
			st = rpcq_error_set(&err, RPCQ_INVALID_ARGUMENT, "line %" PRIu64 ": the header is %s",
					    pc.overlong_line, BILLING_OVERLONG_REASON);
			goto fail_named;
		}
		rows.rows++;
		add_rejection(&rows, id, pc.overlong_line, BILLING_OVERLONG_REASON);
	}
	if (!header_seen && us.complete) {
		st = rpcq_error_set(&err, RPCQ_INVALID_ARGUMENT, "line 1: the file is empty (it needs the header %s)",
				    BILLING_HEADER);
		goto fail_named;
	}

	int64_t added = 0, repeated = 0, conflicting = 0;
	if (rows.rows > rows.bad) {
		char batch[16], firsts[24];
		snprintf(batch, sizeof(batch), "%d", server_config(call_server(c))->billing_batch);
		snprintf(firsts, sizeof(firsts), "%" PRIu64, rows.firsts);
		const char *pm[] = {ids, batch, firsts};
		if ((!staged && (st = stage_rows(db, &rows, &err)) != RPCQ_OK) ||
		    (st = db_exec(db, &billing_sql_merge_lock, NULL, NULL, &err)) != RPCQ_OK ||
		    (st = db_exec_fresh(db, &billing_sql_merge, pm, &res, &err)) != RPCQ_OK)
			goto fail;
		added = int_at(res, 0, 0);
		repeated = int_at(res, 0, 1);
		conflicting = int_at(res, 0, 2);
		PQclear(res);
		res = NULL;
	}
	if (rows.bad > 0 && (st = pgcopy_copy(db, BILLING_SQL_COPY_REJECTIONS, &rows.rejected, &err)) != RPCQ_OK)
		goto fail;

	char v[10][24], skip[8];
	snprintf(skip, sizeof(skip), "%d", us.skip);
	snprintf(v[0], sizeof(v[0]), "%" PRIu64, us.received);
	snprintf(v[1], sizeof(v[1]), "%" PRIu64, us.line);
	snprintf(v[2], sizeof(v[2]), "%" PRIu64, rows.rows);
	snprintf(v[3], sizeof(v[3]), "%" PRId64, added + repeated);
	snprintf(v[4], sizeof(v[4]), "%" PRId64, added);
	snprintf(v[5], sizeof(v[5]), "%" PRId64, repeated);
	snprintf(v[6], sizeof(v[6]), "%" PRIu64, rows.bad + (uint64_t)conflicting);
	const char *pu[] = {ids,
			    v[0],
			    v[1],
			    us.complete ? "true" : "false",
			    header_seen ? "true" : "false",
			    pc.carry,
			    v[2],
			    v[3],
			    v[4],
			    v[5],
			    v[6],
			    skip};
	const int lens[] = {0, 0, 0, 0, 0, (int)pc.carry_len, 0, 0, 0, 0, 0, 0};
	const int fmts[] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
	if ((st = db_exec_params(db, &billing_sql_import_update, pu, lens, fmts, 0, NULL, &err)) != RPCQ_OK ||
	    (st = billing_publish_progress(db, id, &err)) != RPCQ_OK || (st = db_commit(db, &err)) != RPCQ_OK)
		goto fail;
	queued = added > 0;
reply:
	strbuf_fini(&work);
	strbuf_fini(&rows.stage);
	strbuf_fini(&rows.rejected);
	strbuf_fini(&sp.carry);
	if (queued && bs != NULL)
		billing_worker_wake(bs->biller);
	return load_reply(c, id, duplicate, out);
fail_named : {
	char msgbuf[sizeof(err.message)];
	snprintf(msgbuf, sizeof(msgbuf), "%s", err.message);
	rpcq_error_set(&err, st, "%s: %s", name, msgbuf);
}
fail:
	PQclear(res);
	db_rollback(db);
	strbuf_fini(&work);
	strbuf_fini(&rows.stage);
	strbuf_fini(&rows.rejected);
	strbuf_fini(&sp.carry);
	if (a != NULL)
		upload_ahead_forget(a, id);
	return call_fail_err(c, st, &err);
}

rpcq_status billing_import_chunk(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Billing__ImportChunkRequest *in = (const Rpcq__Billing__ImportChunkRequest *)msg;
	billing_state *bs = call_service_state(c);
	upload_ahead *a = bs != NULL ? bs->ahead : NULL;
	int64_t id;
	rpcq_status st;
	if ((st = billing_import_id(c, in->import_id, &id)) != RPCQ_OK)
		return st;
	if (a != NULL)
		upload_ahead_enter(a, id, in->offset, in->offset + in->data.len);
	st = import_chunk(c, in, id, a, out);
	if (a != NULL)
		upload_ahead_leave(a, id, in->offset);
	return st;
}

rpcq_status billing_get_import(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Billing__GetImportRequest *in = (const Rpcq__Billing__GetImportRequest *)msg;
	int64_t id;
	rpcq_status st = billing_import_id(c, in->import_id, &id);
	if (st != RPCQ_OK)
		return st;
	return load_reply(c, id, 0, out);
}

/* A listing's page: its size (0: the default; at most PAGE_MAX) and where
 * it starts, after the position its token names (a line, a bill number:
 * positive; no token, 0). */
static rpcq_status page_args(call *c, uint32_t page_size, const char *token, uint32_t *size, int64_t *after)
{
	*size = page_size == 0 ? PAGE_DEFAULT : page_size > PAGE_MAX ? PAGE_MAX : page_size;
	*after = 0;
	if (token == NULL || token[0] == '\0')
		return RPCQ_OK;
	long long v;
	char tail;
	if (sscanf(token, "%lld%c", &v, &tail) != 1 || v <= 0)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "page_token \"%.40s\" is not one this server gave", token);
	*after = v;
	return RPCQ_OK;
}

rpcq_status billing_list_rejections(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Billing__ListRejectionsRequest *in = (const Rpcq__Billing__ListRejectionsRequest *)msg;
	arena *ar = call_arena(c);
	int64_t id;
	rpcq_status st = billing_import_id(c, in->import_id, &id);
	if (st != RPCQ_OK)
		return st;
	uint32_t size;
	int64_t after;
	if ((st = page_args(c, in->page_size, in->page_token, &size, &after)) != RPCQ_OK)
		return st;
	char ids[24], al[24], lim[16];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	snprintf(al, sizeof(al), "%" PRId64, after);
	snprintf(lim, sizeof(lim), "%u", size + 1);
	const char *p[] = {ids, al, lim};
	PGresult *res = NULL;
	if ((st = call_query(c, &billing_sql_rejections_page, p, 0, &res)) != RPCQ_OK)
		return st;
	int n = PQntuples(res);
	if (n == 0) {
		PQclear(res);
		return call_fail(c, RPCQ_NOT_FOUND, "import %" PRId64 " not found", id);
	}
	if (PQgetisnull(res, 0, 0))
		n = 0;
	int take = n > (int)size ? (int)size : n;
	Rpcq__Billing__ListRejectionsResponse *resp = arena_calloc(ar, 1, sizeof(*resp));
	Rpcq__Billing__Rejection *r = arena_calloc(ar, (size_t)take + 1, sizeof(*r));
	Rpcq__Billing__Rejection **list = arena_calloc(ar, (size_t)take + 1, sizeof(*list));
	if (resp == NULL || r == NULL || list == NULL) {
		PQclear(res);
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	rpcq__billing__list_rejections_response__init(resp);
	for (int i = 0; i < take; i++) {
		rpcq__billing__rejection__init(&r[i]);
		r[i].line = (uint64_t)int_at(res, i, 0);
		r[i].reason = arena_strdup(ar, PQgetvalue(res, i, 1));
		list[i] = &r[i];
	}
	resp->rejections = list;
	resp->n_rejections = (size_t)take;
	resp->next_page_token = n > take && take > 0 ? arena_printf(ar, "%" PRIu64, r[take - 1].line) : "";
	PQclear(res);
	*out = &resp->base;
	return RPCQ_OK;
}

rpcq_status billing_list_failed_emails(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Billing__ListFailedEmailsRequest *in = (const Rpcq__Billing__ListFailedEmailsRequest *)msg;
	arena *ar = call_arena(c);
	int64_t id;
	rpcq_status st = billing_import_id(c, in->import_id, &id);
	if (st != RPCQ_OK)
		return st;
	uint32_t size;
	int64_t after;
	if ((st = page_args(c, in->page_size, in->page_token, &size, &after)) != RPCQ_OK)
		return st;
	dbconn *db;
	rpcq_error err;
	if ((st = call_db(c, &db)) != RPCQ_OK)
		return st;
	/* The import first: an unknown one is NOT_FOUND, not an empty list. */
	Rpcq__Billing__Import *imp = NULL;
	if ((st = billing_import_read(db, ar, id, 0, &imp, &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);
	Rpcq__Billing__ListFailedEmailsResponse *resp = arena_calloc(ar, 1, sizeof(*resp));
	if (resp == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__billing__list_failed_emails_response__init(resp);
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	int64_t next = 0;
	if ((st = failed_emails_read(db, ar, ids, after, size, &resp->failed_emails, &resp->n_failed_emails, &next,
				     &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);
	resp->next_page_token = next > 0 ? arena_printf(ar, "%" PRId64, next) : "";
	*out = &resp->base;
	return RPCQ_OK;
}
