/*
 * RetryFailedEmails: e-mails that failed for good back in the outbox
 * (sql.c, billing_sql_failed_emails_retry), one debt's to a corrected
 * address if one is given, in one transaction with a
 * progress message on "billing.imports.<id>" for each import they belong
 * to. This process's dispatcher is woken here, the other processes' by
 * those messages.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "billing_service.h"
#include "sql.h"
#include "utf8.h"

rpcq_status billing_retry_failed_emails(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Billing__RetryFailedEmailsRequest *in = (const Rpcq__Billing__RetryFailedEmailsRequest *)msg;
	int by_import = in->import_id && in->import_id[0];
	int by_debt = in->debt_id && in->debt_id[0];
	if (by_import == by_debt)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "give import_id or debt_id, not %s",
				 by_import ? "both" : "neither");
	const char *email = in->email && in->email[0] ? in->email : NULL;
	if (email != NULL && by_import)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "email corrects one debt's address: give debt_id with it");
	if (email != NULL && !mail_addr_check(email, strlen(email), 1)) {
		char q[96];
		utf8_quote(email, strlen(email), q, sizeof(q));
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "email %s is not an address (local@domain.tld)", q);
	}
	int64_t id = 0;
	rpcq_status st;
	if (by_import && (st = billing_import_id(c, in->import_id, &id)) != RPCQ_OK)
		return st;
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	dbconn *db;
	rpcq_error err;
	PGresult *res = NULL;
	if ((st = call_db(c, &db)) != RPCQ_OK)
		return st;
	if ((st = db_begin(db, &err)) != RPCQ_OK)
		return call_fail_err(c, st, &err);
	/* What is named must exist: an unknown one is NOT_FOUND, not 0 retried. */
	if (by_import) {
		Rpcq__Billing__Import *imp = NULL;
		if ((st = billing_import_read(db, call_arena(c), id, 0, &imp, &err)) != RPCQ_OK)
			goto fail;
	} else {
		const char *pd[] = {in->debt_id};
		if ((st = db_exec(db, &billing_sql_debt_exists, pd, &res, &err)) != RPCQ_OK)
			goto fail;
		int found = PQntuples(res) == 1;
		PQclear(res);
		res = NULL;
		if (!found) {
			st = rpcq_error_set(&err, RPCQ_NOT_FOUND, "debt %.64s not found", in->debt_id);
			goto fail;
		}
	}
	const char *p[] = {by_import ? ids : NULL, by_debt ? in->debt_id : NULL, email};
	if ((st = db_exec(db, &billing_sql_failed_emails_retry, p, &res, &err)) != RPCQ_OK)
		goto fail;
	uint64_t retried = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		retried += strtoull(PQgetvalue(res, i, 1), NULL, 10);
		if ((st = billing_publish_progress(db, strtoll(PQgetvalue(res, i, 0), NULL, 10), &err)) != RPCQ_OK)
			goto fail;
	}
	PQclear(res);
	res = NULL;
	if ((st = db_commit(db, &err)) != RPCQ_OK)
		goto fail;
	billing_state *bs = call_service_state(c);
	if (retried > 0 && bs != NULL && bs->mailer != NULL)
		billing_worker_wake(bs->mailer);
	Rpcq__Billing__RetryFailedEmailsResponse *r = arena_calloc(call_arena(c), 1, sizeof(*r));
	if (r == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__billing__retry_failed_emails_response__init(r);
	r->retried = retried;
	*out = &r->base;
	return RPCQ_OK;
fail:
	PQclear(res);
	db_rollback(db);
	return call_fail_err(c, st, &err);
}
