/*
 * The biller and GetBill. A biller round is one transaction: claim one
 * queued range of debts (at most --billing-batch of one import; FOR UPDATE
 * SKIP LOCKED, so the billers of every process take different ones; the
 * range is deleted by the same transaction), make each one's boleto
 * (boleto.h: the bill number is the debt's id, so payment codes are
 * unique), COPY the bills and their e-mails into the outbox, publish the
 * import's progress, and commit. A biller killed at any moment leaves its
 * range queued (the transaction rolls back); the bills' primary key makes
 * a second bill for a debt impossible anyway.
 *
 * A bill stores its boleto and the layout of its slip, not the slip: the
 * slip (slip.h) is rendered from the bill's debt and boleto whenever it is
 * read (GetBill, the e-mail), the same bytes each time. Storing it made
 * the bills ten times the size of the file they came from.
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
#include "slip_pdf.h"
#include "sql.h"

/* The bank code and agreement number of the boletos this service makes:
 * a bank code of 0 is no real bank's, so a slip of ours cannot be taken
 * for one of a real bank's. */
#define BILLING_BANK 0
#define BILLING_AGREEMENT 1
#define BILLING_BENEFICIARY "rpcq Billing"

static int64_t int_at(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The Message-ID of a bill's e-mail (mail.h), into buf:
 * "<bill-NUMBER.TAG@domain>". The bill number alone is unique only in its
 * database; the tag, random to each process (service.c), keeps two
 * databases that send from one domain (a staging copy of production, say)
 * from giving two e-mails one id, which a receiver would take for a
 * resend of one. Made once with the bill and stored: every resend carries
 * it whatever process sends it. */
static void message_id_of(const billing_state *st, const char *debt_id, int64_t number, char *buf)
{
	char id[48];
	snprintf(id, sizeof(id), "%" PRId64 ".%s", number, st->message_tag);
	mail_message m = {0};
	m.from = st->cfg->mail_from;
	m.debt_id = debt_id;
	m.id = id;
	mail_message_id(&m, buf);
}

rpcq_status billing_bill_render(const billing_bill_source *src, int layout, boleto *b, strbuf *slip, rpcq_error *err)
{
	int32_t due;
	if (date_parse(src->due_date, strlen(src->due_date), &due) != DATE_OK)
		return rpcq_error_set(err, RPCQ_INTERNAL, "debt %s has a stored due date that does not parse",
				      src->debt_id);
	boleto_input in = {BILLING_BANK, BILLING_AGREEMENT, (uint64_t)src->number, due, src->amount_cents};
	rpcq_status st = boleto_make(&in, b, err);
	if (st != RPCQ_OK || slip == NULL)
		return st;
	if (layout != BILLING_SLIP_LAYOUT)
		return rpcq_error_set(err, RPCQ_INTERNAL,
				      "the bill of debt %s has slip layout %d, which this rpcqd "
				      "does not know",
				      src->debt_id, layout);
	slip_input si = {BILLING_BENEFICIARY, src->name, src->government_id, src->debt_id, src->amount_cents, due, b};
	slip_render(slip, &si);
	if (slip->failed)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a slip");
	return RPCQ_OK;
}

rpcq_status billing_bill_pdf(const billing_bill_source *src, strbuf *pdf, rpcq_error *err)
{
	boleto b;
	int32_t due;
	rpcq_status st = billing_bill_render(src, BILLING_SLIP_LAYOUT, &b, NULL, err);
	if (st != RPCQ_OK)
		return st;
	(void)date_parse(src->due_date, strlen(src->due_date), &due); /* parsed by billing_bill_render */
	slip_input si = {BILLING_BENEFICIARY, src->name, src->government_id, src->debt_id, src->amount_cents, due, &b};
	return slip_pdf_render(pdf, &si, err);
}

/* Bills the claimed rows of res: COPY data for the bills and the outbox. */
static rpcq_status make_bills(billing_state *st, const PGresult *res, strbuf *bills, strbuf *mails, rpcq_error *err)
{
	char msgid[MAIL_MESSAGE_ID_MAX + 1];
	pgcopy_header(bills);
	pgcopy_header(mails);
	for (int i = 0; i < PQntuples(res); i++) {
		billing_bill_source src = {int_at(res, i, 0), PQgetvalue(res, i, 1), "", "",
					   int_at(res, i, 2), PQgetvalue(res, i, 3)};
		boleto b;
		rpcq_status s = billing_bill_render(&src, BILLING_SLIP_LAYOUT, &b, NULL, err);
		if (s != RPCQ_OK)
			return s;
		pgcopy_row(bills, 3);
		pgcopy_int8(bills, src.number);
		pgcopy_bytes(bills, b.barcode, BOLETO_BARCODE_LEN);
		pgcopy_bytes(bills, b.printed, strlen(b.printed));
		message_id_of(st, src.debt_id, src.number, msgid);
		pgcopy_row(mails, 2);
		pgcopy_int8(mails, src.number);
		pgcopy_bytes(mails, msgid, strlen(msgid));
	}
	return RPCQ_OK;
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
	if ((s = db_exec(db, &billing_sql_claim_range, NULL, &res, &err)) != RPCQ_OK)
		goto fail;
	if (PQntuples(res) == 0) {
		db_rollback(db);
		goto out;
	}
	char lo[24], hi[24];
	snprintf(lo, sizeof(lo), "%s", PQgetvalue(res, 0, 0));
	snprintf(hi, sizeof(hi), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	res = NULL;
	const char *range[] = {lo, hi};
	if ((s = db_exec_fresh(db, &billing_sql_range_debts, range, &res, &err)) != RPCQ_OK)
		goto fail;
	int n = PQntuples(res);
	if (n == 0) {
		/* Nothing queues such a range; left queued, it would be claimed
		 * first for ever. */
		log_warn("billing: queued range of debts %s..%s holds none; dropped", lo, hi);
		if ((s = db_commit(db, &err)) != RPCQ_OK)
			goto fail;
		more = 1;
		goto out;
	}
	/* A range is of one import: its progress is one message. */
	if ((s = make_bills(st, res, &bills, &mails, &err)) != RPCQ_OK ||
	    (s = pgcopy_copy(db, BILLING_SQL_COPY_BILLS, &bills, &err)) != RPCQ_OK ||
	    (s = pgcopy_copy(db, BILLING_SQL_COPY_NOTIFICATIONS, &mails, &err)) != RPCQ_OK ||
	    (s = billing_publish_progress(db, int_at(res, 0, 4), &err)) != RPCQ_OK ||
	    (s = db_commit(db, &err)) != RPCQ_OK)
		goto fail;
	log_debug("billing: %d bill(s) written", n);
	more = 1; /* another range may be queued */
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
	billing_bill_source src = {int_at(res, 0, 15), b->debt_id,	  b->name,
				   b->government_id,   int_at(res, 0, 4), b->due_date};
	rpcq_error err;
	st = RPCQ_OK;
	if (PQgetvalue(res, 0, 17)[0] == 't') {
		b->slip = arena_strdup(ar, PQgetvalue(res, 0, 8));
	} else {
		boleto bo;
		strbuf slip = STRBUF_INIT;
		st = billing_bill_render(&src, (int)int_at(res, 0, 16), &bo, &slip, &err);
		b->slip = st == RPCQ_OK ? arena_strndup(ar, slip.data, slip.len) : NULL;
		strbuf_fini(&slip);
	}
	if (st == RPCQ_OK && in->pdf) {
		strbuf pdf = STRBUF_INIT;
		st = billing_bill_pdf(&src, &pdf, &err);
		b->slip_pdf.data = st == RPCQ_OK ? arena_alloc(ar, pdf.len) : NULL;
		if (b->slip_pdf.data != NULL) {
			memcpy(b->slip_pdf.data, pdf.data, pdf.len);
			b->slip_pdf.len = pdf.len;
		} else if (st == RPCQ_OK) {
			st = rpcq_error_set(&err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a PDF slip");
		}
		strbuf_fini(&pdf);
	}
	if (st != RPCQ_OK) {
		PQclear(res);
		return call_fail_err(c, st, &err);
	}
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
