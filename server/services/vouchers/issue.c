/*
 * IssueVouchers: one autocommitted statement, voucher_issue_publish (the
 * migrations' plpgsql), which claims unused barcodes with FOR UPDATE SKIP
 * LOCKED from a random point of the stock, creates the order, sells them,
 * counts them and appends VouchersIssued to "vouchers.issued", all in the
 * statement's own transaction: one round trip per issue. Concurrent issues
 * on any number of processes claim different barcodes without waiting for
 * each other; the topic's row lock, which keeps the stream's seqs gap-free,
 * is taken last, inside the statement, so issues queue only for the append
 * and the commit, never for a round trip. The append makes no NOTIFY, which
 * would be made under that lock: after the commit the issue kicks this
 * process's publisher, which publishes the message and notifies the other
 * processes (publisher_kick).
 *
 * The message is packed here except for order_id and barcodes, which only
 * the database knows: the statement gets customer_id's field and the fields
 * after the barcodes packed, and puts the two in between, so the stored
 * payload is what protobuf-c packs for the whole message.
 *
 * When too few barcodes are free only because other issues hold some of
 * them (they may yet roll back), the issue tries again after a short random
 * pause, until it succeeds, the stock is really short (RESOURCE_EXHAUSTED,
 * nothing assigned) or the deadline passes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "publisher.h"
#include "sql.h"
#include "stream.h"
#include "vouchers_service.h"

#define QUANTITY_MAX 10000
#define KEY_MAX_BYTES 128

/* The outcome of one attempt. */
typedef enum attempt {
	ATTEMPT_DONE,  /* reply or failure set */
	ATTEMPT_AGAIN, /* rolled back, try again */
} attempt;

static attempt fail_attempt(call *c, dbconn *db, rpcq_status st, const rpcq_error *err, rpcq_status *out)
{
	db_rollback(db);
	/* A deadlock or serialization failure of this attempt: nothing was
	 * assigned, so it can simply run again. */
	if (st == RPCQ_ABORTED)
		return ATTEMPT_AGAIN;
	*out = call_fail_err(c, st, err);
	return ATTEMPT_DONE;
}

/* Packs msg into buf (at least its packed size): its length. */
static size_t pack_into(const ProtobufCMessage *msg, uint8_t **buf, arena *ar)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	*buf = arena_alloc(ar, len + 1);
	if (*buf == NULL)
		return SIZE_MAX;
	return protobuf_c_message_pack(msg, *buf);
}

static attempt issue_once(call *c, const Rpcq__Vouchers__IssueVouchersRequest *in, const char *key,
			  Rpcq__Vouchers__IssueVouchersResponse *resp, rpcq_status *result)
{
	arena *ar = call_arena(c);
	dbconn *db;
	rpcq_error err;
	PGresult *res = NULL;
	rpcq_status st = call_db(c, &db);
	if (st != RPCQ_OK) {
		*result = st;
		return ATTEMPT_DONE;
	}
	/* VouchersIssued's fields around order_id (1) and barcodes (3). */
	Rpcq__Vouchers__VouchersIssued mid = RPCQ__VOUCHERS__VOUCHERS_ISSUED__INIT;
	Rpcq__Vouchers__VouchersIssued rest = RPCQ__VOUCHERS__VOUCHERS_ISSUED__INIT;
	mid.customer_id = (char *)in->customer_id;
	rest.idempotency_key = (char *)(key ? key : "");
	rest.issued_at_ms = (int64_t)time(NULL) * 1000;
	uint8_t *mid_buf, *rest_buf;
	size_t mid_len = pack_into(&mid.base, &mid_buf, ar), rest_len = pack_into(&rest.base, &rest_buf, ar);
	if (mid_len == SIZE_MAX || rest_len == SIZE_MAX) {
		*result = call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		return ATTEMPT_DONE;
	}
	char qty[16];
	snprintf(qty, sizeof(qty), "%u", in->quantity);
	const char *p[] = {in->customer_id,
			   qty,
			   key,
			   VOUCHERS_TOPIC,
			   rpcq__vouchers__vouchers_issued__descriptor.name,
			   (const char *)mid_buf,
			   (const char *)rest_buf};
	const int lengths[] = {0, 0, 0, 0, 0, (int)mid_len, (int)rest_len};
	const int formats[] = {0, 0, 0, 0, 0, 1, 1};
	if ((st = db_exec_params(db, &vouchers_sql_issue, p, lengths, formats, 0, &res, &err)) != RPCQ_OK)
		return fail_attempt(c, db, st, &err, result);

	int n = PQntuples(res);
	const char *status = n > 0 ? PQgetvalue(res, 0, 0) : "";
	if (strcmp(status, "busy") == 0) {
		PQclear(res);
		return ATTEMPT_AGAIN;
	}
	if (strcmp(status, "short") == 0) {
		long long avail = vouchers_int(res, 0, 2);
		PQclear(res);
		*result =
			call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "%u barcode(s) asked, %lld unused", in->quantity, avail);
		return ATTEMPT_DONE;
	}
	if (strcmp(status, "mismatch") == 0) {
		PQclear(res);
		*result = call_fail(c, RPCQ_FAILED_PRECONDITION,
				    "idempotency_key \"%.40s\" was first used with another customer or quantity", key);
		return ATTEMPT_DONE;
	}
	if (strcmp(status, "ok") != 0 && strcmp(status, "replayed") != 0) {
		PQclear(res);
		*result = call_fail(c, RPCQ_INTERNAL, "voucher_issue answered \"%.20s\"", status);
		return ATTEMPT_DONE;
	}

	/* From here on the issue has committed: only its reply can fail. */
	resp->order_id = arena_strdup(ar, PQgetvalue(res, 0, 1));
	resp->customer_id = (char *)in->customer_id;
	resp->replayed = strcmp(status, "replayed") == 0;
	if (!resp->replayed)
		resp->seq = (uint64_t)vouchers_int(res, 0, 3);
	resp->barcodes = arena_calloc(ar, (size_t)n + 1, sizeof(*resp->barcodes));
	if (resp->order_id == NULL || resp->barcodes == NULL) {
		PQclear(res);
		*result = call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		return ATTEMPT_DONE;
	}
	for (int i = 0; i < n; i++)
		if (!PQgetisnull(res, i, 4))
			resp->barcodes[resp->n_barcodes++] = arena_strdup(ar, PQgetvalue(res, i, 4));
	PQclear(res);
	/* The append made no NOTIFY: this process's publisher publishes the
	 * message and wakes the other processes'. */
	if (!resp->replayed)
		publisher_kick(server_publisher(call_server(c)));
	*result = RPCQ_OK;
	return ATTEMPT_DONE;
}

rpcq_status vouchers_issue(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vouchers__IssueVouchersRequest *in = (const Rpcq__Vouchers__IssueVouchersRequest *)msg;
	rpcq_status st;
	if ((st = vouchers_check_text(c, "customer_id", in->customer_id, VOUCHERS_ID_MAX, 1)) != RPCQ_OK ||
	    (st = vouchers_check_text(c, "idempotency_key", in->idempotency_key, KEY_MAX_BYTES, 0)) != RPCQ_OK)
		return st;
	if (in->quantity < 1 || in->quantity > QUANTITY_MAX)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "quantity must be 1..%d, not %u", QUANTITY_MAX,
				 in->quantity);
	const char *key = in->idempotency_key && in->idempotency_key[0] ? in->idempotency_key : NULL;

	Rpcq__Vouchers__IssueVouchersResponse *resp = arena_calloc(call_arena(c), 1, sizeof(*resp));
	if (resp == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	unsigned seed = (unsigned)nng_clock() ^ (unsigned)(uintptr_t)resp;
	for (int tries = 0;; tries++) {
		rpcq__vouchers__issue_vouchers_response__init(resp);
		if (issue_once(c, in, key, resp, &st) == ATTEMPT_DONE)
			break;
		if (call_expired(c))
			return call_fail(c, RPCQ_DEADLINE_EXCEEDED,
					 "the barcodes left are held by issues still in flight (%d attempts)",
					 tries + 1);
		/* 1..4 ms, growing a little with the attempts, at most 20 ms. */
		int pause = 1 + (int)(rand_r(&seed) % 4u) + (tries < 16 ? tries : 16);
		nng_msleep((nng_duration)pause);
	}
	if (st != RPCQ_OK)
		return st;
	*out = &resp->base;
	return RPCQ_OK;
}
