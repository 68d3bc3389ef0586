/*
 * The biller and GetBill. A biller round is one transaction: claim up to
 * --billing-batch queued debts (FOR UPDATE SKIP LOCKED, so the billers of
 * every process take different ones; the queue entries are deleted by the
 * same transaction), make each one's boleto (boleto.h: the bill number is
 * the debt's id, so payment codes are unique) and slip (slip.h), COPY the
 * bills and their e-mails into the outbox, count the bills on their
 * imports and publish their progress, and commit. A biller killed at any
 * moment leaves its debts in the queue (the transaction rolls back); the
 * bills' primary key makes a second bill for a debt impossible anyway.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "billing_service.h"
#include "boleto.h"
#include "date.h"
#include "log.h"
#include "mail.h"
#include "money.h"
#include "pgcopy.h"
#include "slip.h"
#include "sql.h"

/* The bank code and agreement number of the boletos this service makes:
 * a bank code of 0 is no real bank's, so a slip of ours cannot be taken
 * for one of a real bank's. */
#define BILLING_BANK 0
#define BILLING_AGREEMENT 1
#define BILLING_BENEFICIARY "rpcq Billing"
#define MAX_IMPORTS_PER_ROUND 64

static int64_t int_at(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The Message-ID of a bill's e-mail (mail.h), into buf. */
static void message_id_of(const billing_state *st, const char *debt_id, int64_t number, char *buf)
{
	char id[32];
	snprintf(id, sizeof(id), "%" PRId64, number);
	mail_message m = {0};
	m.from = st->cfg->mail_from;
	m.debt_id = debt_id;
	m.id = id;
	mail_message_id(&m, buf);
}

typedef struct import_count {
	int64_t id;
	int64_t n;
} import_count;

static void count_import(import_count *c, int *n, int64_t id)
{
	for (int i = 0; i < *n; i++)
		if (c[i].id == id) {
			c[i].n++;
			return;
		}
	if (*n < MAX_IMPORTS_PER_ROUND)
		c[(*n)++] = (import_count){id, 1};
}

static rpcq_status write_counts(dbconn *db, const import_count *c, int n, rpcq_error *err)
{
	char ids[MAX_IMPORTS_PER_ROUND * 24 + 4], ns[MAX_IMPORTS_PER_ROUND * 24 + 4];
	size_t a = 0, b = 0;
	ids[a++] = '{';
	ns[b++] = '{';
	for (int i = 0; i < n; i++) {
		a += (size_t)snprintf(ids + a, sizeof(ids) - a, "%s%" PRId64, i ? "," : "", c[i].id);
		b += (size_t)snprintf(ns + b, sizeof(ns) - b, "%s%" PRId64, i ? "," : "", c[i].n);
	}
	snprintf(ids + a, sizeof(ids) - a, "}");
	snprintf(ns + b, sizeof(ns) - b, "}");
	const char *p[] = {ids, ns};
	rpcq_status st = db_exec(db, &billing_sql_count_bills, p, NULL, err);
	for (int i = 0; st == RPCQ_OK && i < n; i++)
		st = billing_publish_progress(db, c[i].id, err);
	return st;
}

/* Bills the claimed rows of res: COPY data for the bills and the outbox. */
static rpcq_status make_bills(billing_state *st, const PGresult *res, strbuf *bills, strbuf *mails, rpcq_error *err)
{
	strbuf slip = STRBUF_INIT;
	char msgid[MAIL_MESSAGE_ID_MAX + 1];
	pgcopy_header(bills);
	pgcopy_header(mails);
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t number = int_at(res, i, 0);
		const char *debt_id = PQgetvalue(res, i, 1);
		int32_t due;
		if (date_parse(PQgetvalue(res, i, 6), (size_t)PQgetlength(res, i, 6), &due) != DATE_OK) {
			strbuf_fini(&slip);
			return rpcq_error_set(err, RPCQ_INTERNAL, "debt %s has a stored due date that does not parse",
					      debt_id);
		}
		boleto_input in = {BILLING_BANK, BILLING_AGREEMENT, (uint64_t)number, due, int_at(res, i, 5)};
		boleto b;
		if (boleto_make(&in, &b, err) != RPCQ_OK) {
			strbuf_fini(&slip);
			return err->code;
		}
		slip_input si = {BILLING_BENEFICIARY,
				 PQgetvalue(res, i, 2),
				 PQgetvalue(res, i, 3),
				 debt_id,
				 in.amount_cents,
				 due,
				 &b};
		slip.len = 0;
		slip_render(&slip, &si);
		pgcopy_row(bills, 4);
		pgcopy_int8(bills, number);
		pgcopy_bytes(bills, b.barcode, BOLETO_BARCODE_LEN);
		pgcopy_bytes(bills, b.printed, strlen(b.printed));
		pgcopy_bytes(bills, slip.data, slip.len);
		message_id_of(st, debt_id, number, msgid);
		pgcopy_row(mails, 2);
		pgcopy_int8(mails, number);
		pgcopy_bytes(mails, msgid, strlen(msgid));
	}
	int failed = slip.failed;
	strbuf_fini(&slip);
	if (failed)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a slip");
	return RPCQ_OK;
}

static rpcq_status copy_all(dbconn *db, const char *sql, strbuf *b, rpcq_error *err)
{
	rpcq_status st = db_copy_begin(db, sql, err);
	if (st == RPCQ_OK)
		st = pgcopy_send(db, b, 0, err);
	return pgcopy_finish(db, b, st, err);
}

int billing_bill_round(billing_state *st)
{
	dbconn *db;
	rpcq_error err;
	PGresult *res = NULL;
	strbuf bills = STRBUF_INIT, mails = STRBUF_INIT;
	int more = 0;
	rpcq_status s = pool_acquire(server_pool(st->srv), nng_clock() + 10000, &db, &err);
	if (s != RPCQ_OK)
		goto out_noconn;
	dbconn_set_deadline(db, nng_clock() + 120000);
	if ((s = db_begin(db, &err)) != RPCQ_OK)
		goto out;
	char limit[16];
	snprintf(limit, sizeof(limit), "%d", st->cfg->billing_batch);
	const char *p[] = {limit};
	if ((s = db_exec(db, &billing_sql_claim_bills, p, &res, &err)) != RPCQ_OK)
		goto fail;
	int n = PQntuples(res);
	if (n == 0) {
		db_rollback(db);
		goto out;
	}
	import_count counts[MAX_IMPORTS_PER_ROUND];
	int ncounts = 0;
	for (int i = 0; i < n; i++)
		count_import(counts, &ncounts, int_at(res, i, 7));
	if ((s = make_bills(st, res, &bills, &mails, &err)) != RPCQ_OK ||
	    (s = copy_all(db, BILLING_SQL_COPY_BILLS, &bills, &err)) != RPCQ_OK ||
	    (s = copy_all(db, BILLING_SQL_COPY_NOTIFICATIONS, &mails, &err)) != RPCQ_OK ||
	    (s = write_counts(db, counts, ncounts, &err)) != RPCQ_OK || (s = db_commit(db, &err)) != RPCQ_OK)
		goto fail;
	log_debug("billing: %d bill(s) written", n);
	more = n == st->cfg->billing_batch;
	billing_worker_wake(st->mailer);
	goto out;
fail:
	db_rollback(db);
	log_warn("billing: writing bills failed: %s", err.message);
out:
	PQclear(res);
	pool_release(server_pool(st->srv), db);
out_noconn:
	strbuf_fini(&bills);
	strbuf_fini(&mails);
	return more && !atomic_load(&st->stopping);
}

static const Rpcq__Billing__NotificationState notification_state[] = {
	RPCQ__BILLING__NOTIFICATION_STATE__NOTIFICATION_STATE_UNSPECIFIED, RPCQ__BILLING__NOTIFICATION_STATE__PENDING,
	RPCQ__BILLING__NOTIFICATION_STATE__SENT, RPCQ__BILLING__NOTIFICATION_STATE__FAILED,
	RPCQ__BILLING__NOTIFICATION_STATE__CANCELLED};

rpcq_status billing_get_bill(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Billing__GetBillRequest *in = (const Rpcq__Billing__GetBillRequest *)msg;
	arena *ar = call_arena(c);
	if (in->debt_id == NULL || in->debt_id[0] == '\0')
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "debt_id is required");
	const char *p[] = {in->debt_id};
	PGresult *res = NULL;
	rpcq_status st = call_query(c, &billing_sql_bill_get, p, 0, &res);
	if (st != RPCQ_OK)
		return st;
	if (PQntuples(res) == 0) {
		PQclear(res);
		if ((st = call_query(c, &billing_sql_debt_exists, p, 0, &res)) != RPCQ_OK)
			return st;
		int known = PQntuples(res) > 0;
		PQclear(res);
		return call_fail(c, known ? RPCQ_FAILED_PRECONDITION : RPCQ_NOT_FOUND,
				 known ? "debt %.64s has no bill yet: try again shortly" : "debt %.64s not found",
				 in->debt_id);
	}
	Rpcq__Billing__Bill *b = arena_calloc(ar, 1, sizeof(*b));
	char amount[MONEY_FORMAT_MAX];
	if (b == NULL) {
		PQclear(res);
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	rpcq__billing__bill__init(b);
	money_format(int_at(res, 0, 4), amount);
	b->debt_id = arena_strdup(ar, PQgetvalue(res, 0, 0));
	b->name = arena_strdup(ar, PQgetvalue(res, 0, 1));
	b->government_id = arena_strdup(ar, PQgetvalue(res, 0, 2));
	b->email = arena_strdup(ar, PQgetvalue(res, 0, 3));
	b->amount = arena_strdup(ar, amount);
	b->due_date = arena_strdup(ar, PQgetvalue(res, 0, 5));
	b->barcode = arena_strdup(ar, PQgetvalue(res, 0, 6));
	b->payment_code = arena_strdup(ar, PQgetvalue(res, 0, 7));
	b->slip = arena_strdup(ar, PQgetvalue(res, 0, 8));
	b->created_at_ms = int_at(res, 0, 9);
	int64_t state = int_at(res, 0, 10);
	b->notification = state >= 1 && state <= 4 ? notification_state[state] : notification_state[0];
	b->attempts = (uint32_t)int_at(res, 0, 11);
	b->last_error = arena_strdup(ar, PQgetvalue(res, 0, 12));
	b->message_id = arena_strdup(ar, PQgetvalue(res, 0, 13));
	b->paid = PQgetvalue(res, 0, 14)[0] == 't';
	PQclear(res);
	*out = &b->base;
	return RPCQ_OK;
}
