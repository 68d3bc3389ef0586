/*
 * FinishImport: merging an import whose two files are complete into the
 * stock, in one transaction, set-based (the statements are in sql.c):
 *
 *   orders     the first row of each order_id is kept, later ones are
 *              rejected; an order already in the stock for another customer
 *              is rejected; the rest are added (or were there already).
 *   barcodes   each barcode of the file is kept once: the occurrence that
 *              sells it to an order wins over unused ones (which are
 *              rejected as repeats), and when occurrences sell it to
 *              different orders every one is rejected. The winner is then
 *              rejected when its order is not a kept order, or when the
 *              stock has sold it to another order. The stock's word wins
 *              over the file's "unused": a barcode is never unsold by an
 *              import, so it cannot be sold twice.
 *   orders without a barcode (after all of that) are reported, and left
 *              out of the vouchers (they stay in the stock as orders).
 *
 * Imports are applied one at a time across processes (an advisory lock);
 * IssueVouchers goes on meanwhile: it claims only rows that are unused and
 * not locked, and the import's UPDATE of an unused barcode it sells checks
 * again, under the row lock, that the barcode is still unused. One that an
 * issue sold since the import looked (after the import read the stock,
 * before its UPDATE) is rejected on its line, naming the order it went to.
 * The staging partitions are dropped with the commit.
 *
 * The rows that issues write too are taken last, just before the commit:
 * the customers' tickets, in the order of the customer ids that
 * voucher_issue_batch (0009) also follows, then the stock's slot 0. So an
 * issue waits for an import at most for its last two statements and its
 * commit, and the two never deadlock on the customers' rows. A deadlock or
 * serialization failure that happens anyway (an import whose file names an
 * order "V<n>" that an issue creates at the same moment) rolls everything
 * back, and the whole transaction runs again, up to APPLY_TRIES times.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "log.h"
#include "sql.h"
#include "vouchers_service.h"

/* An import adding more rows than this refreshes the planner's statistics
 * of the table before the next statement joins it (a first import into an
 * empty stock would otherwise be planned as if the table were still empty:
 * a million index probes instead of one hash join). */
#define ANALYZE_AFTER 10000
/* Runs of the whole transaction when it is aborted (deadlock,
 * serialization failure), and the pause before another, in ms. */
#define APPLY_TRIES 5
#define APPLY_PAUSE_MS 20

typedef struct apply_ctx {
	call *c;
	dbconn *db;
	const char *id;
	rpcq_error err;
	int64_t read_rejected[3]; /* per file (1, 2): rows rejected as the chunks were read */
} apply_ctx;

/* Runs one statement of the merge; *a and *b (optional) get the first two
 * columns of its one row, or the count of rows it wrote. */
static rpcq_status step(apply_ctx *x, const db_stmt *stmt, const char *arg2, int64_t *a, int64_t *b, int64_t *c3)
{
	const char *p[] = {x->id, arg2};
	PGresult *res = NULL;
	rpcq_status st = db_exec(x->db, stmt, p, &res, &x->err);
	if (st != RPCQ_OK)
		return st;
	if (PQnfields(res) == 0) {
		if (a)
			*a = strtoll(PQcmdTuples(res), NULL, 10);
	} else if (PQntuples(res) == 1) {
		if (a)
			*a = vouchers_int(res, 0, 0);
		if (b && PQnfields(res) > 1)
			*b = vouchers_int(res, 0, 1);
		if (c3 && PQnfields(res) > 2)
			*c3 = vouchers_int(res, 0, 2);
	}
	PQclear(res);
	return RPCQ_OK;
}

/* Both files complete? FAILED_PRECONDITION naming the first that is not. */
static rpcq_status check_complete(apply_ctx *x, char *orders_name, size_t len)
{
	const char *p[] = {x->id};
	PGresult *res = NULL;
	rpcq_status st = db_exec(x->db, &vouchers_sql_files_lock, p, &res, &x->err);
	if (st != RPCQ_OK)
		return st;
	for (int i = 0; i < PQntuples(res) && st == RPCQ_OK; i++) {
		int64_t file = vouchers_int(res, i, 0);
		if (file == 1)
			snprintf(orders_name, len, "%s", PQgetvalue(res, i, 2));
		if (file == 1 || file == 2)
			x->read_rejected[file] = vouchers_int(res, i, 4);
		if (PQgetvalue(res, i, 1)[0] != 't')
			st = rpcq_error_set(&x->err, RPCQ_FAILED_PRECONDITION,
					    "%s is not complete: %s bytes received, and no last chunk",
					    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
	}
	PQclear(res);
	return st;
}

static rpcq_status merge(apply_ctx *x, const char *orders_name)
{
	int64_t o_rej = 0, o_add = 0, o_same = 0, b_rej = 0, b_lost = 0, b_sold = 0, b_add = 0, b_add_unused = 0,
		b_stored_ok = 0, without = 0;
	rpcq_status st;
	if ((st = db_command(x->db, vouchers_sql_apply_settings, &x->err)) != RPCQ_OK ||
	    (st = step(x, &vouchers_sql_apply_orders_stage, NULL, NULL, NULL, NULL)) != RPCQ_OK ||
	    (st = db_command(x->db, "ANALYZE vo", &x->err)) != RPCQ_OK ||
	    (st = step(x, &vouchers_sql_apply_orders_reject, NULL, &o_rej, NULL, NULL)) != RPCQ_OK ||
	    (st = step(x, &vouchers_sql_apply_orders_insert, NULL, &o_add, &o_same, NULL)) != RPCQ_OK ||
	    (o_add > ANALYZE_AFTER && (st = db_command(x->db, "ANALYZE voucher_orders", &x->err)) != RPCQ_OK) ||
	    (st = step(x, &vouchers_sql_apply_barcodes_stage, NULL, NULL, NULL, NULL)) != RPCQ_OK ||
	    (st = db_command(x->db, "ANALYZE vb", &x->err)) != RPCQ_OK ||
	    (st = step(x, &vouchers_sql_apply_barcodes_reject, orders_name, &b_rej, NULL, NULL)) != RPCQ_OK ||
	    (st = step(x, &vouchers_sql_apply_barcodes_sell, NULL, &b_sold, NULL, NULL)) != RPCQ_OK ||
	    (st = step(x, &vouchers_sql_apply_barcodes_lost, NULL, &b_lost, NULL, NULL)) != RPCQ_OK ||
	    (st = step(x, &vouchers_sql_apply_barcodes_insert, NULL, &b_add, &b_add_unused, &b_stored_ok)) != RPCQ_OK ||
	    (b_add > ANALYZE_AFTER && (st = db_command(x->db, "ANALYZE voucher_barcodes", &x->err)) != RPCQ_OK) ||
	    (st = step(x, &vouchers_sql_apply_without_barcodes, NULL, &without, NULL, NULL)) != RPCQ_OK)
		return st;
	b_rej += b_lost;

	/* The rejections added here; the counts, of every rejected row of
	 * each file (those rejected as the chunks were read too), so they
	 * agree with the report. */
	int64_t v[] = {o_rej + b_rej + without,
		       o_add,
		       o_same,
		       o_rej + x->read_rejected[1],
		       without,
		       b_add,
		       b_sold,
		       b_stored_ok - b_sold,
		       b_rej + x->read_rejected[2]};
	char txt[9][24];
	const char *pd[10] = {x->id};
	for (int i = 0; i < 9; i++) {
		snprintf(txt[i], sizeof(txt[i]), "%" PRId64, v[i]);
		pd[i + 1] = txt[i];
	}
	const char *pid[] = {x->id};
	if ((st = db_exec(x->db, &vouchers_sql_apply_done, pd, NULL, &x->err)) != RPCQ_OK ||
	    (st = db_exec(x->db, &vouchers_sql_stage_drop, pid, NULL, &x->err)) != RPCQ_OK)
		return st;

	/* Last: the rows that issues write too (see the top of the file). */
	char unused[24], sold[24];
	snprintf(unused, sizeof(unused), "%" PRId64, b_add_unused - b_sold);
	snprintf(sold, sizeof(sold), "%" PRId64, (b_add - b_add_unused) + b_sold);
	const char *ps[] = {unused, sold};
	if ((st = db_exec(x->db, &vouchers_sql_apply_tickets, NULL, NULL, &x->err)) != RPCQ_OK ||
	    (st = db_exec(x->db, &vouchers_sql_apply_stock, ps, NULL, &x->err)) != RPCQ_OK)
		return st;
	log_info("vouchers: import %s applied: orders %" PRId64 " added, %" PRId64 " unchanged, %" PRId64
		 " rejected, %" PRId64 " without barcodes; barcodes %" PRId64 " added, %" PRId64 " sold, %" PRId64
		 " rejected (%" PRId64 " sold meanwhile)",
		 x->id, o_add, o_same, o_rej, without, b_add, b_sold, b_rej, b_lost);
	return RPCQ_OK;
}

/* One run of FinishImport's transaction, committed when st is RPCQ_OK;
 * *applied tells whether this run applied the import (not when it was
 * applied already). On failure the caller rolls back. */
static rpcq_status apply_once(apply_ctx *x, int *applied)
{
	const char *p[] = {x->id};
	PGresult *res = NULL;
	char orders_name[256] = "orders.csv";
	rpcq_status st;
	*applied = 0;
	if ((st = db_begin(x->db, &x->err)) != RPCQ_OK ||
	    (st = db_exec(x->db, &vouchers_sql_apply_lock, NULL, NULL, &x->err)) != RPCQ_OK ||
	    (st = db_exec(x->db, &vouchers_sql_import_lock, p, &res, &x->err)) != RPCQ_OK)
		return st;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return rpcq_error_set(&x->err, RPCQ_NOT_FOUND, "import %s not found", x->id);
	}
	int done = vouchers_int(res, 0, 0) == 2;
	PQclear(res);
	if (done) {
		db_rollback(x->db);
		return RPCQ_OK;
	}
	if ((st = check_complete(x, orders_name, sizeof(orders_name))) != RPCQ_OK ||
	    (st = merge(x, orders_name)) != RPCQ_OK || (st = db_commit(x->db, &x->err)) != RPCQ_OK)
		return st;
	*applied = 1;
	return RPCQ_OK;
}

rpcq_status vouchers_finish_import(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vouchers__FinishImportRequest *in = (const Rpcq__Vouchers__FinishImportRequest *)msg;
	int64_t id;
	rpcq_status st = vouchers_import_id(c, in->import_id, &id);
	if (st != RPCQ_OK)
		return st;
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	apply_ctx x = {c, NULL, ids, {0}, {0}};
	if ((st = call_db(c, &x.db)) != RPCQ_OK)
		return st;
	int applied = 0;
	for (int tries = 1;; tries++) {
		if ((st = apply_once(&x, &applied)) == RPCQ_OK)
			break;
		db_rollback(x.db);
		/* Aborted by the database (a deadlock, a serialization failure):
		 * nothing of it stayed, so it can simply run again. */
		if (st != RPCQ_ABORTED || tries == APPLY_TRIES || call_expired(c))
			return call_fail_err(c, st, &x.err);
		log_warn("vouchers: import %s: run %d of the apply was aborted (%s): running it again", ids, tries,
			 x.err.message);
		nng_msleep((nng_duration)(APPLY_PAUSE_MS * tries));
		x.err = (rpcq_error){0};
	}
	if (applied) {
		/* After the commit, in a statement of its own: IssueVouchers'
		 * claims start from points spread over the unused stock, and the
		 * import may have added a range the old points miss. Stale points
		 * only cost speed, so a failure here fails nothing. */
		if (db_exec(x.db, &vouchers_sql_claim_points, NULL, NULL, &x.err) != RPCQ_OK)
			log_warn("vouchers: import %s: the claim points were not refreshed: %s", ids, x.err.message);
	}
	return vouchers_import_load(c, id, (Rpcq__Vouchers__Import **)out);
}
