/*
 * RecordPayment: marks a debt paid, once. In the same transaction a
 * pending e-mail of its bill is cancelled; that waits for a dispatcher
 * that holds the e-mail's row while sending it, so a payment either stops
 * the e-mail or finds it sent, never both. Recording the same payment again
 * returns it (replayed); another payment of a paid debt is ALREADY_EXISTS.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "billing_service.h"
#include "money.h"
#include "sql.h"
#include "timestamp.h"
#include "utf8.h"

#define PAYER_MAX 200

rpcq_status billing_record_payment(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Billing__RecordPaymentRequest *in = (const Rpcq__Billing__RecordPaymentRequest *)msg;
	arena *ar = call_arena(c);
	if (in->debt_id == NULL || in->debt_id[0] == '\0')
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "debt_id is required");
	int64_t cents;
	money_result mr = money_parse(in->amount, strlen(in->amount), &cents);
	if (mr != MONEY_OK)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "amount \"%.40s\" %s", in->amount, money_result_phrase(mr));
	int64_t ms;
	char why[160];
	if (in->paid_at == NULL || in->paid_at[0] == '\0') {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	} else if (timestamp_parse(in->paid_at, strlen(in->paid_at), &ms, why, sizeof(why)) != 0) {
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "paid_at \"%.40s\": %s", in->paid_at, why);
	}
	const char *payer = in->payer ? in->payer : "";
	if (strlen(payer) > PAYER_MAX || !utf8_valid(payer, strlen(payer)))
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "payer is not UTF-8 of at most %d bytes", PAYER_MAX);

	char paid_at[TIMESTAMP_FORMAT_MAX], amount[MONEY_FORMAT_MAX], debt[24];
	timestamp_format(ms, paid_at);
	money_format(cents, amount);
	dbconn *db;
	rpcq_error err;
	PGresult *res = NULL;
	rpcq_status st = call_db(c, &db);
	if (st != RPCQ_OK)
		return st;
	if ((st = db_begin(db, &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);
	const char *pf[] = {in->debt_id};
	if ((st = db_exec(db, &billing_sql_debt_exists, pf, &res, &err)) != RPCQ_OK)
		goto fail;
	if (PQntuples(res) == 0) {
		st = rpcq_error_set(&err, RPCQ_NOT_FOUND, "debt %.64s not found", in->debt_id);
		goto fail;
	}
	snprintf(debt, sizeof(debt), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	res = NULL;

	char cents_text[24];
	snprintf(cents_text, sizeof(cents_text), "%" PRId64, cents);
	const char *pp[] = {debt, paid_at, cents_text, payer};
	Rpcq__Billing__Payment *p = arena_calloc(ar, 1, sizeof(*p));
	if (p == NULL) {
		st = rpcq_error_set(&err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto fail;
	}
	rpcq__billing__payment__init(p);
	p->debt_id = (char *)in->debt_id;
	p->paid_at = arena_strdup(ar, paid_at);
	p->amount = arena_strdup(ar, amount);
	p->payer = (char *)payer;
	if ((st = db_exec(db, &billing_sql_payment_insert, pp, &res, &err)) != RPCQ_OK)
		goto fail;
	int inserted = PQntuples(res) == 1;
	PQclear(res);
	res = NULL;
	if (!inserted) {
		if ((st = db_exec(db, &billing_sql_payment_get, pp, &res, &err)) != RPCQ_OK)
			goto fail;
		if (PQntuples(res) == 1 && PQgetvalue(res, 0, 3)[0] == 't') {
			p->replayed = 1;
			PQclear(res);
			db_rollback(db);
			*out = &p->base;
			return RPCQ_OK;
		}
		char first[MONEY_FORMAT_MAX] = "";
		if (PQntuples(res) == 1)
			money_format(strtoll(PQgetvalue(res, 0, 1), NULL, 10), first);
		st = rpcq_error_set(&err, RPCQ_ALREADY_EXISTS, "debt %.64s was paid already (%s at %s)", in->debt_id,
				    first, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "?");
		goto fail;
	}
	const char *pc[] = {debt};
	if ((st = db_exec(db, &billing_sql_mail_cancel, pc, &res, &err)) != RPCQ_OK)
		goto fail;
	if (PQntuples(res) == 1) {
		p->cancelled_notification = 1;
		int64_t import = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		res = NULL;
		if ((st = billing_publish_progress(db, import, &err)) != RPCQ_OK)
			goto fail;
	}
	PQclear(res);
	res = NULL;
	if ((st = db_commit(db, &err)) != RPCQ_OK)
		goto fail;
	*out = &p->base;
	return RPCQ_OK;
fail:
	PQclear(res);
	db_rollback(db);
	return call_fail_err(c, st, &err);
}
