/*
 * StartImport, ImportChunk, GetImport and ListRejections: receiving the two
 * files of an import (schema in db/migrations/0004_vouchers.sql).
 *
 * An import is a row per file holding the upload's state (upload.h: the
 * next offset, the line of the carried partial record, the carry itself)
 * and a staging partition per file for the rows read so far. A chunk is one
 * transaction: lock the file's row, take the chunk (a resend changes
 * nothing, a gap is refused), read its whole records, COPY the valid rows
 * into staging and the rejected ones into the rejection report, and store
 * the new upload state. A chunk that cannot be read at all (malformed CSV,
 * a wrong header) is refused and changes nothing. Rows are checked one by
 * one here (rows.h); what needs both whole files waits for FinishImport
 * (apply.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgcopy.h"
#include "sql.h"
#include "upload.h"
#include "vouchers_service.h"

#define NAME_MAX_BYTES 200
#define KEY_MAX_BYTES 128
#define REJECTIONS_PAGE_DEFAULT 1000
#define REJECTIONS_PAGE_MAX 10000

static const char *const default_name[3] = {"", "orders.csv", "barcodes.csv"};

rpcq_status vouchers_import_id(call *c, const char *text, int64_t *id)
{
	if (upload_parse_id(text, id) != 0)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "import_id \"%.40s\" is not an import id (a number)",
				 text ? text : "");
	return RPCQ_OK;
}

static Rpcq__Vouchers__File file_of(int64_t v)
{
	return v == 1 ? RPCQ__VOUCHERS__FILE__ORDERS : RPCQ__VOUCHERS__FILE__BARCODES;
}

rpcq_status vouchers_import_load(call *c, int64_t id, Rpcq__Vouchers__Import **out)
{
	arena *ar = call_arena(c);
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	const char *p[] = {ids, NULL};
	PGresult *res = NULL;
	rpcq_status st = call_query(c, &vouchers_sql_import_get, p, 0, &res);
	if (st != RPCQ_OK)
		return st;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return call_fail(c, RPCQ_NOT_FOUND, "import %" PRId64 " not found", id);
	}
	Rpcq__Vouchers__Import *m = arena_calloc(ar, 1, sizeof(*m));
	Rpcq__Vouchers__ImportCounts *k = arena_calloc(ar, 1, sizeof(*k));
	Rpcq__Vouchers__FileProgress *f = arena_calloc(ar, 2, sizeof(*f));
	if (m == NULL || k == NULL || f == NULL) {
		PQclear(res);
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	rpcq__vouchers__import__init(m);
	rpcq__vouchers__import_counts__init(k);
	m->import_id = arena_strdup(ar, ids);
	m->key = arena_strdup(ar, PQgetvalue(res, 0, 0));
	m->state = vouchers_int(res, 0, 1) == 2 ? RPCQ__VOUCHERS__IMPORT_STATE__APPLIED
						: RPCQ__VOUCHERS__IMPORT_STATE__RECEIVING;
	m->rejections = (uint64_t)vouchers_int(res, 0, 2);
	m->created_at_ms = vouchers_int(res, 0, 3);
	m->applied_at_ms = vouchers_int(res, 0, 4);
	if (m->state == RPCQ__VOUCHERS__IMPORT_STATE__APPLIED) {
		uint64_t *v[] = {
			&k->orders_added,   &k->orders_unchanged, &k->orders_rejected,	  &k->orders_without_barcodes,
			&k->barcodes_added, &k->barcodes_sold,	  &k->barcodes_unchanged, &k->barcodes_rejected};
		for (int i = 0; i < 8; i++)
			*v[i] = (uint64_t)vouchers_int(res, 0, 5 + i);
		m->counts = k;
	}
	PQclear(res);

	if ((st = call_query(c, &vouchers_sql_files_get, p, 0, &res)) != RPCQ_OK)
		return st;
	const char *names[3] = {"", default_name[1], default_name[2]};
	for (int i = 0; i < PQntuples(res) && i < 2; i++) {
		Rpcq__Vouchers__FileProgress *fp = &f[i];
		rpcq__vouchers__file_progress__init(fp);
		int64_t file = vouchers_int(res, i, 0);
		fp->name = arena_strdup(ar, PQgetvalue(res, i, 1));
		fp->received_bytes = (uint64_t)vouchers_int(res, i, 2);
		fp->lines = (uint64_t)vouchers_int(res, i, 3) - 1;
		fp->complete = PQgetvalue(res, i, 4)[0] == 't';
		fp->rows = (uint64_t)vouchers_int(res, i, 5);
		fp->rejected = (uint64_t)vouchers_int(res, i, 6);
		if (file == 1) {
			m->orders = fp;
			names[1] = fp->name;
		} else {
			m->barcodes = fp;
			names[2] = fp->name;
		}
	}
	PQclear(res);

	char limit[16];
	snprintf(limit, sizeof(limit), "%d", VOUCHERS_FIRST_REJECTIONS);
	const char *q[] = {ids, limit};
	if ((st = call_query(c, &vouchers_sql_rejections_first, q, 0, &res)) != RPCQ_OK)
		return st;
	int n = PQntuples(res);
	m->first_rejections = arena_calloc(ar, (size_t)n + 1, sizeof(*m->first_rejections));
	Rpcq__Vouchers__Rejection *r = arena_calloc(ar, (size_t)n + 1, sizeof(*r));
	if (m->first_rejections == NULL || r == NULL) {
		PQclear(res);
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	for (int i = 0; i < n; i++) {
		rpcq__vouchers__rejection__init(&r[i]);
		int64_t file = vouchers_int(res, i, 0);
		r[i].file = file_of(file);
		r[i].file_name = (char *)names[file == 1 ? 1 : 2];
		r[i].line = (uint64_t)vouchers_int(res, i, 1);
		r[i].reason = arena_strdup(ar, PQgetvalue(res, i, 2));
		m->first_rejections[i] = &r[i];
	}
	m->n_first_rejections = (size_t)n;
	PQclear(res);
	*out = m;
	return RPCQ_OK;
}

static rpcq_status check_name(call *c, const char *field, const char *s)
{
	rpcq_status st = vouchers_check_text(c, field, s, NAME_MAX_BYTES, 0);
	return st;
}

rpcq_status vouchers_start_import(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vouchers__StartImportRequest *in = (const Rpcq__Vouchers__StartImportRequest *)msg;
	rpcq_status st;
	if ((st = vouchers_check_text(c, "key", in->key, KEY_MAX_BYTES, 0)) != RPCQ_OK ||
	    (st = check_name(c, "orders_name", in->orders_name)) != RPCQ_OK ||
	    (st = check_name(c, "barcodes_name", in->barcodes_name)) != RPCQ_OK)
		return st;
	const char *key = in->key && in->key[0] ? in->key : NULL;
	const char *names[3] = {"", in->orders_name && in->orders_name[0] ? in->orders_name : default_name[1],
				in->barcodes_name && in->barcodes_name[0] ? in->barcodes_name : default_name[2]};

	dbconn *db;
	rpcq_error err;
	PGresult *res = NULL;
	int64_t id = 0;
	if ((st = call_db(c, &db)) != RPCQ_OK)
		return st;
	if ((st = db_begin(db, &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);
	const char *pk[] = {key};
	if ((st = db_exec(db, &vouchers_sql_import_create, pk, &res, &err)) != RPCQ_OK)
		goto fail;
	if (PQntuples(res) == 1) {
		id = vouchers_int(res, 0, 0);
		char ids[24];
		snprintf(ids, sizeof(ids), "%" PRId64, id);
		const char *p1[] = {ids, "1", names[1]};
		const char *p2[] = {ids, "2", names[2]};
		const char *p3[] = {ids};
		if ((st = db_exec(db, &vouchers_sql_file_create, p1, NULL, &err)) != RPCQ_OK ||
		    (st = db_exec(db, &vouchers_sql_file_create, p2, NULL, &err)) != RPCQ_OK ||
		    (st = db_exec(db, &vouchers_sql_stage_create, p3, NULL, &err)) != RPCQ_OK)
			goto fail;
	} else {
		/* The key exists (the insert waited for a racing StartImport). */
		PQclear(res);
		res = NULL;
		if ((st = db_exec(db, &vouchers_sql_import_by_key, pk, &res, &err)) != RPCQ_OK)
			goto fail;
		if (PQntuples(res) != 1) {
			st = rpcq_error_set(&err, RPCQ_ABORTED, "import key \"%.40s\" changed meanwhile", key);
			goto fail;
		}
		id = vouchers_int(res, 0, 0);
	}
	PQclear(res);
	res = NULL;
	if ((st = db_commit(db, &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);
	return vouchers_import_load(c, id, (Rpcq__Vouchers__Import **)out);
fail:
	PQclear(res);
	db_rollback(db);
	return call_fail_err(c, st, &err);
}

/* One chunk's rows as COPY data for staging and for the rejection report. */
typedef struct chunk_rows {
	strbuf rows;
	strbuf rejected;
	uint64_t nrows, nrejected;
} chunk_rows;

static void add_rejection(strbuf *b, int64_t id, int file, uint64_t line, const char *reason)
{
	pgcopy_row(b, 4);
	pgcopy_int8(b, id);
	pgcopy_int2(b, (int16_t)file);
	pgcopy_int8(b, (int64_t)line);
	pgcopy_bytes(b, reason, strlen(reason));
}

/* Reads the records of a taken chunk; -1 with err when they cannot be read. */
static int read_rows(int64_t id, vouchers_file file, const upload_piece *pc, int *header_seen, chunk_rows *out,
		     rpcq_error *err)
{
	vouchers_reader r;
	vouchers_row row;
	int k;
	vouchers_reader_init(&r, file, pc->records, pc->records_len, pc->first_line, *header_seen);
	pgcopy_header(&out->rows);
	pgcopy_header(&out->rejected);
	while ((k = vouchers_reader_next(&r, &row, err)) == 1) {
		out->nrows++;
		if (row.reason != NULL) {
			add_rejection(&out->rejected, id, file, row.line, row.reason);
			out->nrejected++;
			continue;
		}
		pgcopy_row(&out->rows, 4);
		pgcopy_int8(&out->rows, id);
		pgcopy_int8(&out->rows, (int64_t)row.line);
		pgcopy_bytes(&out->rows, row.a, row.a_len);
		if (file == VOUCHERS_BARCODES && row.b_len == 0)
			pgcopy_null(&out->rows);
		else
			pgcopy_bytes(&out->rows, row.b, row.b_len);
	}
	*header_seen = r.header_seen;
	return k;
}

static const char *bool_text(int v)
{
	return v ? "true" : "false";
}

rpcq_status vouchers_import_chunk(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vouchers__ImportChunkRequest *in = (const Rpcq__Vouchers__ImportChunkRequest *)msg;
	int64_t id;
	rpcq_status st;
	if ((st = vouchers_import_id(c, in->import_id, &id)) != RPCQ_OK)
		return st;
	if (in->file != RPCQ__VOUCHERS__FILE__ORDERS && in->file != RPCQ__VOUCHERS__FILE__BARCODES)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "file must be ORDERS or BARCODES");
	vouchers_file file = in->file == RPCQ__VOUCHERS__FILE__ORDERS ? VOUCHERS_ORDERS : VOUCHERS_BARCODES;

	char ids[24], files[4];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	snprintf(files, sizeof(files), "%d", (int)file);
	dbconn *db;
	rpcq_error err;
	PGresult *res = NULL;
	strbuf work = STRBUF_INIT;
	chunk_rows rows = {STRBUF_INIT, STRBUF_INIT, 0, 0};
	int duplicate = 0;
	if ((st = call_db(c, &db)) != RPCQ_OK)
		return st;
	if ((st = db_begin(db, &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);

	const char *pl[] = {ids, files};
	const int fmt[] = {0, 0};
	if ((st = db_exec_params(db, &vouchers_sql_file_lock, pl, NULL, fmt, 1, &res, &err)) != RPCQ_OK)
		goto fail;
	if (PQntuples(res) == 0) {
		st = rpcq_error_set(&err, RPCQ_NOT_FOUND, "import %" PRId64 " not found", id);
		goto fail;
	}
	upload_state us = {(uint64_t)db_int8(res, 0, 0), (uint64_t)db_int8(res, 0, 1), PQgetvalue(res, 0, 2)[0] != 0,
			   (int)db_int8(res, 0, 9)};
	int header_seen = PQgetvalue(res, 0, 3)[0] != 0;
	char name[NAME_MAX_BYTES + 1];
	snprintf(name, sizeof(name), "%.*s", PQgetlength(res, 0, 7), PQgetvalue(res, 0, 7));
	int applied = (PQgetvalue(res, 0, 8)[0] << 8 | (unsigned char)PQgetvalue(res, 0, 8)[1]) == 2;
	upload_piece pc;
	st = upload_take(&us, PQgetvalue(res, 0, 6), (size_t)PQgetlength(res, 0, 6), in->offset, in->data.data,
			 in->data.len, in->last, VOUCHERS_MAX_RECORD, &work, &pc, &err);
	PQclear(res);
	res = NULL;
	if (st != RPCQ_OK) {
		if (applied && st == RPCQ_FAILED_PRECONDITION)
			rpcq_error_set(&err, st, "import %" PRId64 " has been applied: it takes no more chunks", id);
		goto fail_named;
	}
	if (pc.action == UPLOAD_DUPLICATE) {
		duplicate = 1;
		db_rollback(db);
		goto reply;
	}
	if (read_rows(id, file, &pc, &header_seen, &rows, &err) < 0) {
		st = err.code;
		goto fail_named;
	}
	if (pc.overlong_line != 0) {
		if (!header_seen) {
			st = rpcq_error_set(&err, RPCQ_INVALID_ARGUMENT, "line %" PRIu64 ": the header is %s",
					    pc.overlong_line, VOUCHERS_OVERLONG_REASON);
			goto fail_named;
		}
		add_rejection(&rows.rejected, id, file, pc.overlong_line, VOUCHERS_OVERLONG_REASON);
		rows.nrows++;
		rows.nrejected++;
	}
	if (!header_seen && us.complete) {
		st = rpcq_error_set(&err, RPCQ_INVALID_ARGUMENT, "line 1: the file is empty (it needs the header %s)",
				    vouchers_file_header(file));
		goto fail_named;
	}
	if ((rows.nrows > rows.nrejected &&
	     (st = pgcopy_copy(db, file == VOUCHERS_ORDERS ? VOUCHERS_SQL_COPY_ORDERS : VOUCHERS_SQL_COPY_BARCODES,
			       &rows.rows, &err)) != RPCQ_OK) ||
	    (rows.nrejected > 0 &&
	     (st = pgcopy_copy(db, VOUCHERS_SQL_COPY_REJECTIONS, &rows.rejected, &err)) != RPCQ_OK))
		goto fail;

	char received[24], line[24], nrows[24], nrej[24], skip[8];
	snprintf(skip, sizeof(skip), "%d", us.skip);
	snprintf(received, sizeof(received), "%" PRIu64, us.received);
	snprintf(line, sizeof(line), "%" PRIu64, us.line);
	snprintf(nrows, sizeof(nrows), "%" PRIu64, rows.nrows);
	snprintf(nrej, sizeof(nrej), "%" PRIu64, rows.nrejected);
	const char *pu[] = {ids,   files, received, line, bool_text(us.complete), bool_text(header_seen),
			    nrows, nrej,  pc.carry, skip};
	const int lens[] = {0, 0, 0, 0, 0, 0, 0, 0, (int)pc.carry_len, 0};
	const int fmts[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
	if ((st = db_exec_params(db, &vouchers_sql_file_update, pu, lens, fmts, 0, NULL, &err)) != RPCQ_OK ||
	    (st = db_commit(db, &err)) != RPCQ_OK)
		goto fail;
reply:
	strbuf_fini(&work);
	strbuf_fini(&rows.rows);
	strbuf_fini(&rows.rejected);
	Rpcq__Vouchers__Import *m;
	if ((st = vouchers_import_load(c, id, &m)) != RPCQ_OK)
		return st;
	m->duplicate = duplicate;
	*out = &m->base;
	return RPCQ_OK;
fail_named:
	/* Errors about the file's content or position name it. */
	{
		char msgbuf[sizeof(err.message)];
		snprintf(msgbuf, sizeof(msgbuf), "%s", err.message);
		rpcq_error_set(&err, st, "%s: %s", name, msgbuf);
	}
fail:
	PQclear(res);
	db_rollback(db);
	strbuf_fini(&work);
	strbuf_fini(&rows.rows);
	strbuf_fini(&rows.rejected);
	return call_fail_err(c, st, &err);
}

rpcq_status vouchers_get_import(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vouchers__GetImportRequest *in = (const Rpcq__Vouchers__GetImportRequest *)msg;
	int64_t id;
	rpcq_status st = vouchers_import_id(c, in->import_id, &id);
	if (st != RPCQ_OK)
		return st;
	return vouchers_import_load(c, id, (Rpcq__Vouchers__Import **)out);
}

rpcq_status vouchers_list_rejections(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vouchers__ListRejectionsRequest *in = (const Rpcq__Vouchers__ListRejectionsRequest *)msg;
	arena *ar = call_arena(c);
	int64_t id;
	rpcq_status st = vouchers_import_id(c, in->import_id, &id);
	if (st != RPCQ_OK)
		return st;
	uint32_t size = in->page_size ? in->page_size : REJECTIONS_PAGE_DEFAULT;
	if (size > REJECTIONS_PAGE_MAX)
		size = REJECTIONS_PAGE_MAX;
	/* The token: "<file>:<line>" of the last rejection of the previous page. */
	int after_file = 0;
	unsigned long long after_line = 0;
	if (in->page_token && in->page_token[0]) {
		char tail;
		if (sscanf(in->page_token, "%d:%llu%c", &after_file, &after_line, &tail) != 2 || after_file < 1 ||
		    after_file > 2)
			return call_fail(c, RPCQ_INVALID_ARGUMENT, "page_token \"%.40s\" is not one this server gave",
					 in->page_token);
	}
	Rpcq__Vouchers__Import *imp;
	if ((st = vouchers_import_load(c, id, &imp)) != RPCQ_OK)
		return st;
	const char *names[3] = {"", imp->orders ? imp->orders->name : default_name[1],
				imp->barcodes ? imp->barcodes->name : default_name[2]};

	char ids[24], af[8], al[24], lim[16];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	snprintf(af, sizeof(af), "%d", after_file);
	snprintf(al, sizeof(al), "%llu", after_line);
	snprintf(lim, sizeof(lim), "%u", size + 1);
	const char *p[] = {ids, af, al, lim};
	PGresult *res = NULL;
	if ((st = call_query(c, &vouchers_sql_rejections_page, p, 0, &res)) != RPCQ_OK)
		return st;
	int n = PQntuples(res);
	int take = n > (int)size ? (int)size : n;
	Rpcq__Vouchers__ListRejectionsResponse *resp = arena_calloc(ar, 1, sizeof(*resp));
	Rpcq__Vouchers__Rejection *r = arena_calloc(ar, (size_t)take + 1, sizeof(*r));
	Rpcq__Vouchers__Rejection **list = arena_calloc(ar, (size_t)take + 1, sizeof(*list));
	if (resp == NULL || r == NULL || list == NULL) {
		PQclear(res);
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	rpcq__vouchers__list_rejections_response__init(resp);
	for (int i = 0; i < take; i++) {
		rpcq__vouchers__rejection__init(&r[i]);
		int64_t file = vouchers_int(res, i, 0);
		r[i].file = file_of(file);
		r[i].file_name = (char *)names[file == 1 ? 1 : 2];
		r[i].line = (uint64_t)vouchers_int(res, i, 1);
		r[i].reason = arena_strdup(ar, PQgetvalue(res, i, 2));
		list[i] = &r[i];
	}
	resp->rejections = list;
	resp->n_rejections = (size_t)take;
	resp->next_page_token = "";
	if (n > take && take > 0)
		resp->next_page_token = arena_printf(
			ar, "%d:%" PRIu64, r[take - 1].file == RPCQ__VOUCHERS__FILE__ORDERS ? 1 : 2, r[take - 1].line);
	PQclear(res);
	*out = &resp->base;
	return RPCQ_OK;
}
