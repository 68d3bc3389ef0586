/*
 * IssueVouchers, in batches. The issues that reach this process at the same
 * moment are made together by one autocommitted statement,
 * voucher_issue_batch (the migrations' plpgsql, 0009), which claims unused
 * barcodes with FOR UPDATE SKIP LOCKED from a random point of the stock,
 * creates the orders, sells the barcodes, counts them and appends one
 * VouchersIssued per issue to "vouchers.issued", all in the statement's own
 * transaction. What an issue costs the database is mostly per statement (the
 * round trip, PL/pgSQL and executor start-up, the commit, the topic's row,
 * which every append takes and holds to its commit), so a batch pays it once
 * for all its issues. Each issue still gets its own answer: one that finds
 * too little stock fails alone, with nothing assigned, while the others of
 * its batch go on.
 *
 * The batches form by themselves, as a database's group commit does: a
 * worker with an issue queues it; if fewer than LEADERS_MAX batches are in
 * flight it takes every queued issue (its own among them) and runs them as
 * one statement on its own connection, otherwise it waits for a batch to
 * finish. So a lone issue goes out at once, and while a batch runs, the
 * issues that arrive meanwhile gather for the next one. The workers that
 * wait hold no database connection, and another thread takes calls in
 * their stead (server_wait_begin), so a batch can carry as many issues as
 * there are callers, not only as many as --workers.
 *
 * Concurrent batches, here and in other processes, claim different barcodes
 * without waiting for each other; a key stored by one batch makes a batch
 * with the same key wait for its commit and then replay it; two calls with
 * one key are never in one batch (the second one waits for the next).
 *
 * The appends make no NOTIFY, which would be made under the topic's lock:
 * after the commit the batch kicks this process's publisher, which publishes
 * the messages and notifies the other processes (publisher_kick).
 *
 * Each message is packed here except for order_id and barcodes, which only
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
/* Issues in one statement, and barcodes beyond its first issue's. */
#define BATCH_MAX 64
#define BATCH_BARCODES 10000
/* Batches in flight in one process at once. Two measured slower than one
 * (2,300 against 3,050 issues/s at 32 callers): the second batch mostly
 * waits for the first's lock on the topic's row, and its issues would have
 * made the next batch larger. */
#define LEADERS_MAX 1

/* The outcome of one attempt. */
typedef enum attempt {
	ATTEMPT_DONE,  /* reply or failure set */
	ATTEMPT_AGAIN, /* nothing assigned, try again */
} attempt;

typedef enum item_state {
	ITEM_QUEUED,
	ITEM_RUNNING,
	ITEM_DONE,
} item_state;

/* One issue on its way through a batch: the request, its message's packed
 * fields, and (once ITEM_DONE) the attempt's outcome. Lives on its worker's
 * stack; the batch that runs it writes its reply into its call. */
typedef struct issue_item {
	struct issue_item *next;
	call *c;
	const Rpcq__Vouchers__IssueVouchersRequest *in;
	const char *key;
	const uint8_t *mid, *rest; /* VouchersIssued's fields around 1 and 3 */
	size_t mid_len, rest_len;
	Rpcq__Vouchers__IssueVouchersResponse *resp;
	item_state state;
	attempt outcome;
	rpcq_status result;
} issue_item;

struct vouchers_issuer {
	nng_mtx *lock;
	nng_cv *finished; /* a batch finished: its items are done */
	issue_item *queue, **tail;
	int leaders; /* batches in flight */
};

rpcq_status vouchers_issuer_create(vouchers_issuer **out, rpcq_error *err)
{
	vouchers_issuer *is = calloc(1, sizeof(*is));
	if (is == NULL || nng_mtx_alloc(&is->lock) != 0) {
		free(is);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	if (nng_cv_alloc(&is->finished, is->lock) != 0) {
		nng_mtx_free(is->lock);
		free(is);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	is->tail = &is->queue;
	*out = is;
	return RPCQ_OK;
}

void vouchers_issuer_destroy(vouchers_issuer *is)
{
	if (is == NULL)
		return;
	nng_cv_free(is->finished);
	nng_mtx_free(is->lock);
	free(is);
}

/* Packs msg into a buffer of the arena: its length, SIZE_MAX when out of memory. */
static size_t pack_into(const ProtobufCMessage *msg, uint8_t **buf, arena *ar)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	*buf = arena_alloc(ar, len + 1);
	if (*buf == NULL)
		return SIZE_MAX;
	return protobuf_c_message_pack(msg, *buf);
}

/* Takes queued items into batch (at most BATCH_MAX, in queue order, none
 * with a key already in it): their number. Called with the lock held. */
static size_t take_batch(vouchers_issuer *is, issue_item **batch)
{
	size_t n = 0;
	uint64_t barcodes = 0;
	issue_item **link = &is->queue;
	while (*link != NULL && n < BATCH_MAX) {
		issue_item *it = *link;
		int clash = n > 0 && barcodes + it->in->quantity > BATCH_BARCODES;
		for (size_t i = 0; i < n && !clash && it->key != NULL; i++)
			clash = batch[i]->key != NULL && strcmp(batch[i]->key, it->key) == 0;
		if (clash) {
			link = &it->next;
			continue;
		}
		*link = it->next;
		it->next = NULL;
		it->state = ITEM_RUNNING;
		barcodes += it->in->quantity;
		batch[n++] = it;
	}
	is->tail = link;
	while (*is->tail != NULL)
		is->tail = &(*is->tail)->next;
	return n;
}

/* Item it's reply from its rows [r, end) of the batch's result. */
static void finish_item(issue_item *it, PGresult *res, int r, int end)
{
	call *c = it->c;
	arena *ar = call_arena(c);
	Rpcq__Vouchers__IssueVouchersResponse *resp = it->resp;
	const char *status = PQgetvalue(res, r, 1);
	it->outcome = ATTEMPT_DONE;
	if (strcmp(status, "busy") == 0) {
		it->outcome = ATTEMPT_AGAIN;
		return;
	}
	if (strcmp(status, "short") == 0) {
		it->result = call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "%u barcode(s) asked, %lld unused", it->in->quantity,
				       (long long)vouchers_int(res, r, 3));
		return;
	}
	if (strcmp(status, "mismatch") == 0) {
		it->result = call_fail(c, RPCQ_FAILED_PRECONDITION,
				       "idempotency_key \"%.40s\" was first used with another customer or quantity",
				       it->key);
		return;
	}
	if (strcmp(status, "ok") != 0 && strcmp(status, "replayed") != 0) {
		it->result = call_fail(c, RPCQ_INTERNAL, "voucher_issue_batch answered \"%.20s\"", status);
		return;
	}

	/* The issue has committed: only its reply can fail. */
	resp->order_id = arena_strdup(ar, PQgetvalue(res, r, 2));
	resp->customer_id = (char *)it->in->customer_id;
	resp->replayed = strcmp(status, "replayed") == 0;
	if (!resp->replayed)
		resp->seq = (uint64_t)vouchers_int(res, r, 4);
	resp->barcodes = arena_calloc(ar, (size_t)(end - r) + 1, sizeof(*resp->barcodes));
	if (resp->order_id == NULL || resp->barcodes == NULL) {
		it->result = call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	for (int i = r; i < end; i++)
		if (!PQgetisnull(res, i, 5))
			resp->barcodes[resp->n_barcodes++] = arena_strdup(ar, PQgetvalue(res, i, 5));
	it->result = RPCQ_OK;
}

/* The whole batch failed with st: nothing of it was assigned, unless
 * unknown (the statement was sent and no answer came: the connection was
 * lost, or the cancel at the leader's deadline went unanswered, db.c; it
 * may have committed). */
static void fail_batch(call *leader, issue_item **batch, size_t n, rpcq_status st, const rpcq_error *err, int unknown)
{
	for (size_t i = 0; i < n; i++) {
		issue_item *it = batch[i];
		/* A deadlock or serialization failure, or the leader's deadline
		 * or connection, which need not be this item's: it can simply run
		 * again; after an unknown outcome only with its key, which makes
		 * the second run a replay of the first if that one committed. The
		 * leader's own call cannot: its connection is the one lost. */
		int own = it->c == leader || (st == RPCQ_DEADLINE_EXCEEDED && call_expired(it->c));
		int again = st == RPCQ_DEADLINE_EXCEEDED ? !unknown || it->key != NULL : unknown && it->key != NULL;
		if (st == RPCQ_ABORTED || (!own && again)) {
			it->outcome = ATTEMPT_AGAIN;
			continue;
		}
		it->outcome = ATTEMPT_DONE;
		if (unknown && it->key == NULL)
			it->result = call_fail(it->c, own ? st : RPCQ_UNAVAILABLE,
					       "the database did not answer after the issue was sent (%s): this issue,"
					       " which has no idempotency key, may or may not have been made",
					       err != NULL ? err->message : "no answer");
		else if (unknown)
			it->result =
				call_fail(it->c, st,
					  "the database did not answer after the issue was sent (%s): it may or may"
					  " not have been made; sent again with the same idempotency key, it returns"
					  " the order if it was",
					  err != NULL ? err->message : "no answer");
		else
			it->result = err != NULL ? call_fail_err(it->c, st, err) : st;
	}
}

/* A batch of one: voucher_issue_publish, whose answer has the batch's shape. */
static rpcq_status run_one(dbconn *db, const issue_item *it, PGresult **res, rpcq_error *err)
{
	char qty[16];
	snprintf(qty, sizeof(qty), "%u", it->in->quantity);
	const char *p[] = {it->in->customer_id,
			   qty,
			   it->key,
			   VOUCHERS_TOPIC,
			   rpcq__vouchers__vouchers_issued__descriptor.name,
			   (const char *)it->mid,
			   (const char *)it->rest};
	const int lengths[] = {0, 0, 0, 0, 0, (int)it->mid_len, (int)it->rest_len};
	const int formats[] = {0, 0, 0, 0, 0, 1, 1};
	return db_exec_params(db, &vouchers_sql_issue_one, p, lengths, formats, 0, res, err);
}

/* A batch of several: voucher_issue_batch, with the items' fields as arrays. */
static rpcq_status run_many(dbconn *db, issue_item *const *batch, size_t n, PGresult **res, rpcq_error *err)
{
	db_array customers = {0}, quantities = {0}, keys = {0}, mids = {0}, rests = {0};
	for (size_t i = 0; i < n; i++) {
		char qty[16];
		snprintf(qty, sizeof(qty), "%u", batch[i]->in->quantity);
		db_array_text(&customers, batch[i]->in->customer_id);
		db_array_text(&quantities, qty);
		db_array_text(&keys, batch[i]->key);
		db_array_bytea(&mids, batch[i]->mid, batch[i]->mid_len);
		db_array_bytea(&rests, batch[i]->rest, batch[i]->rest_len);
	}
	const char *p[] = {db_array_end(&customers),
			   db_array_end(&quantities),
			   db_array_end(&keys),
			   VOUCHERS_TOPIC,
			   rpcq__vouchers__vouchers_issued__descriptor.name,
			   db_array_end(&mids),
			   db_array_end(&rests)};
	rpcq_status st;
	if (p[0] == NULL || p[1] == NULL || p[2] == NULL || p[5] == NULL || p[6] == NULL)
		st = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	else
		st = db_exec(db, &vouchers_sql_issue_batch, p, res, err);
	db_array_free(&customers);
	db_array_free(&quantities);
	db_array_free(&keys);
	db_array_free(&mids);
	db_array_free(&rests);
	return st;
}

/* Runs batch as one statement on leader's connection and sets every item's
 * outcome. */
static void run_batch(call *leader, issue_item **batch, size_t n)
{
	dbconn *db;
	rpcq_error err;
	PGresult *res = NULL;
	rpcq_status st = call_db(leader, &db);
	if (st != RPCQ_OK) {
		/* No connection for the leader (its call has failed): the others
		 * try again, as leaders of their own. */
		for (size_t i = 0; i < n; i++) {
			batch[i]->outcome = batch[i]->c == leader ? ATTEMPT_DONE : ATTEMPT_AGAIN;
			batch[i]->result = st;
		}
		return;
	}
	st = n == 1 ? run_one(db, batch[0], &res, &err) : run_many(db, batch, n, &res, &err);
	if (st != RPCQ_OK) {
		/* A statement that committed before the cancel of the leader's
		 * deadline reached it answers OK (db.c); one sent whose answer
		 * never came (the connection lost, or the cancel unanswered) has
		 * an unknown outcome. */
		int unknown = (st == RPCQ_DEADLINE_EXCEEDED || st == RPCQ_UNAVAILABLE) && dbconn_in_doubt(db);
		db_rollback(db);
		fail_batch(leader, batch, n, st, &err, unknown);
		return;
	}

	/* Rows by item (r_item, 1-based), each item's barcodes in order. */
	int rows = PQntuples(res), issued = 0;
	for (size_t i = 0; i < n; i++)
		batch[i]->outcome = ATTEMPT_DONE, batch[i]->result = RPCQ_INTERNAL;
	for (int r = 0; r < rows;) {
		long long item = vouchers_int(res, r, 0);
		int end = r + 1;
		while (end < rows && vouchers_int(res, end, 0) == item)
			end++;
		if (item >= 1 && (size_t)item <= n) {
			issue_item *it = batch[item - 1];
			finish_item(it, res, r, end);
			issued += it->outcome == ATTEMPT_DONE && it->result == RPCQ_OK && !it->resp->replayed;
		}
		r = end;
	}
	PQclear(res);
	for (size_t i = 0; i < n; i++)
		if (batch[i]->outcome == ATTEMPT_DONE && batch[i]->result == RPCQ_INTERNAL)
			batch[i]->result =
				call_fail(batch[i]->c, RPCQ_INTERNAL, "voucher_issue_batch left an issue out");
	/* The appends made no NOTIFY: this process's publisher publishes the
	 * messages and wakes the other processes'. */
	if (issued > 0)
		publisher_kick(server_publisher(call_server(leader)));
}

/* Queues it and returns once a batch has run it: as that batch's leader, or
 * after waiting for another worker's. */
static void issue_submit(vouchers_issuer *is, issue_item *it)
{
	server *srv = call_server(it->c);
	int waiting = 0; /* between server_wait_begin and _end */
	nng_mtx_lock(is->lock);
	it->state = ITEM_QUEUED;
	it->next = NULL;
	*is->tail = it;
	is->tail = &it->next;
	while (it->state != ITEM_DONE) {
		if (it->state != ITEM_QUEUED || is->leaders >= LEADERS_MAX) {
			if (!waiting) {
				/* Another thread may take calls meanwhile: they
				 * are the next batch. */
				nng_mtx_unlock(is->lock);
				server_wait_begin(srv);
				nng_mtx_lock(is->lock);
				waiting = 1;
				continue;
			}
			nng_cv_wait(is->finished);
			continue;
		}
		issue_item *batch[BATCH_MAX];
		size_t n = take_batch(is, batch);
		is->leaders++;
		nng_mtx_unlock(is->lock);
		run_batch(it->c, batch, n);
		nng_mtx_lock(is->lock);
		is->leaders--;
		for (size_t i = 0; i < n; i++)
			batch[i]->state = ITEM_DONE;
		nng_cv_wake(is->finished);
	}
	nng_mtx_unlock(is->lock);
	if (waiting)
		server_wait_end(srv);
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

	arena *ar = call_arena(c);
	issue_item it = {.c = c, .in = in};
	it.key = in->idempotency_key && in->idempotency_key[0] ? in->idempotency_key : NULL;
	it.resp = arena_calloc(ar, 1, sizeof(*it.resp));
	/* VouchersIssued's fields around order_id (1) and barcodes (3). */
	Rpcq__Vouchers__VouchersIssued mid = RPCQ__VOUCHERS__VOUCHERS_ISSUED__INIT;
	Rpcq__Vouchers__VouchersIssued rest = RPCQ__VOUCHERS__VOUCHERS_ISSUED__INIT;
	mid.customer_id = (char *)in->customer_id;
	rest.idempotency_key = (char *)(it.key ? it.key : "");
	rest.issued_at_ms = (int64_t)time(NULL) * 1000;
	uint8_t *mid_buf, *rest_buf;
	it.mid_len = pack_into(&mid.base, &mid_buf, ar);
	it.rest_len = pack_into(&rest.base, &rest_buf, ar);
	it.mid = mid_buf;
	it.rest = rest_buf;
	if (it.resp == NULL || it.mid_len == SIZE_MAX || it.rest_len == SIZE_MAX)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");

	vouchers_issuer *is = call_service_state(c);
	unsigned seed = (unsigned)nng_clock() ^ (unsigned)(uintptr_t)it.resp;
	for (int tries = 0;; tries++) {
		rpcq__vouchers__issue_vouchers_response__init(it.resp);
		issue_submit(is, &it);
		if (it.outcome == ATTEMPT_DONE)
			break;
		if (call_expired(c))
			return call_fail(c, RPCQ_DEADLINE_EXCEEDED,
					 "the barcodes left are held by issues still in flight (%d attempts)",
					 tries + 1);
		/* 1..4 ms, growing a little with the attempts, at most 20 ms. */
		int pause = 1 + (int)(rand_r(&seed) % 4u) + (tries < 16 ? tries : 16);
		nng_msleep((nng_duration)pause);
	}
	if (it.result != RPCQ_OK)
		return it.result;
	*out = &it.resp->base;
	return RPCQ_OK;
}
