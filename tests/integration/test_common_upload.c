/*
 * The shared upload (server/services/common/upload.h) through the services
 * that use it, on a real rpcqd: billing's and vouchers' ImportChunk take a
 * file in chunks at byte offsets the same way. A resent chunk changes
 * nothing, a gap and bytes after the end are refused with the same words,
 * an overlapping chunk adds only its new bytes, and a file whose last line
 * has no line break is read whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rpcq/rpcq.h>

#include "harness.h"

static harness_pg pg;
static harness_server srv;
static rpcq_client *client;

static int setup_all(void **state)
{
	(void)state;
	harness_pg_start(&pg);
	if (harness_migrate(&pg) != 0)
		return -1;
	const char *args[] = {"--billing-schedule", "0", NULL};
	harness_server_start(&srv, &pg, args);
	rpcq_client_options o = {.servers = srv.rpc_url, .timeout_ms = 20000};
	rpcq_error err;
	return rpcq_client_create(&client, &o, &err) == RPCQ_OK ? 0 : -1;
}

static int teardown_all(void **state)
{
	(void)state;
	rpcq_client_destroy(client);
	/* An rpcqd that does not exit 0 (a leak under ASan) fails the group. */
	int bad = srv.pid > 0 && harness_server_stop(&srv) != 0;
	harness_pg_stop(&pg);
	return bad ? -1 : 0;
}

/* One service's upload as the test drives it: a chunk of the file at
 * offset, and what the service says it holds afterwards. */
struct upload {
	const char *what;
	rpcq_status (*chunk)(struct upload *u, uint64_t offset, const char *data, size_t len, int last,
			     uint64_t *received, int *complete, rpcq_error *err);
	char id[32];
};

static rpcq_status billing_chunk(struct upload *u, uint64_t offset, const char *data, size_t len, int last,
				 uint64_t *received, int *complete, rpcq_error *err)
{
	Rpcq__Billing__ImportChunkRequest req = RPCQ__BILLING__IMPORT_CHUNK_REQUEST__INIT;
	req.import_id = u->id;
	req.offset = offset;
	req.data.data = (uint8_t *)data;
	req.data.len = len;
	req.last = last;
	Rpcq__Billing__Import *imp = NULL;
	rpcq_status st = rpcq_billing_import_chunk(client, &req, &imp, NULL, err);
	if (st == RPCQ_OK) {
		*received = imp->received_bytes;
		*complete = imp->complete;
		protobuf_c_message_free_unpacked(&imp->base, NULL);
	}
	return st;
}

static rpcq_status vouchers_chunk(struct upload *u, uint64_t offset, const char *data, size_t len, int last,
				  uint64_t *received, int *complete, rpcq_error *err)
{
	Rpcq__Vouchers__ImportChunkRequest req = RPCQ__VOUCHERS__IMPORT_CHUNK_REQUEST__INIT;
	req.import_id = u->id;
	req.file = RPCQ__VOUCHERS__FILE__ORDERS;
	req.offset = offset;
	req.data.data = (uint8_t *)data;
	req.data.len = len;
	req.last = last;
	Rpcq__Vouchers__Import *imp = NULL;
	rpcq_status st = rpcq_voucher_import_chunk(client, &req, &imp, NULL, err);
	if (st == RPCQ_OK) {
		*received = imp->orders->received_bytes;
		*complete = imp->orders->complete;
		protobuf_c_message_free_unpacked(&imp->base, NULL);
	}
	return st;
}

static void start_billing(struct upload *u)
{
	Rpcq__Billing__StartImportRequest req = RPCQ__BILLING__START_IMPORT_REQUEST__INIT;
	Rpcq__Billing__Import *imp = NULL;
	rpcq_error err;
	if (rpcq_billing_start_import(client, &req, &imp, NULL, &err) != RPCQ_OK)
		fail_msg("billing StartImport: %s", err.message);
	snprintf(u->id, sizeof(u->id), "%s", imp->import_id);
	protobuf_c_message_free_unpacked(&imp->base, NULL);
}

static void start_vouchers(struct upload *u)
{
	Rpcq__Vouchers__StartImportRequest req = RPCQ__VOUCHERS__START_IMPORT_REQUEST__INIT;
	Rpcq__Vouchers__Import *imp = NULL;
	rpcq_error err;
	if (rpcq_voucher_start_import(client, &req, &imp, NULL, &err) != RPCQ_OK)
		fail_msg("vouchers StartImport: %s", err.message);
	snprintf(u->id, sizeof(u->id), "%s", imp->import_id);
	protobuf_c_message_free_unpacked(&imp->base, NULL);
}

/* A chunk that must be taken; the service then holds want bytes. */
static void expect_taken(struct upload *u, uint64_t offset, const char *data, size_t len, int last, uint64_t want)
{
	uint64_t received = 0;
	int complete = 0;
	rpcq_error err;
	rpcq_status st = u->chunk(u, offset, data, len, last, &received, &complete, &err);
	if (st != RPCQ_OK)
		fail_msg("%s: chunk at %llu: %s: %s", u->what, (unsigned long long)offset, rpcq_status_name(st),
			 err.message);
	if (received != want || complete != last)
		fail_msg("%s: chunk at %llu: the upload holds %llu bytes (complete %d), wanted %llu (%d)", u->what,
			 (unsigned long long)offset, (unsigned long long)received, complete, (unsigned long long)want,
			 last);
}

/* A chunk that must be refused with FAILED_PRECONDITION saying words. */
static void expect_refused(struct upload *u, uint64_t offset, const char *data, size_t len, int last, const char *words)
{
	uint64_t received = 0;
	int complete = 0;
	rpcq_error err;
	rpcq_status st = u->chunk(u, offset, data, len, last, &received, &complete, &err);
	if (st != RPCQ_FAILED_PRECONDITION || strstr(err.message, words) == NULL)
		fail_msg("%s: chunk at %llu: %s \"%s\", wanted FAILED_PRECONDITION saying \"%s\"", u->what,
			 (unsigned long long)offset, rpcq_status_name(st), st == RPCQ_OK ? "" : err.message, words);
}

/* The same file through the same steps, whichever service takes it. */
static void upload_in_chunks(struct upload *u, const char *file)
{
	size_t len = strlen(file);
	/* A first chunk cut inside a record, and the same chunk again. */
	expect_taken(u, 0, file, 20, 0, 20);
	expect_taken(u, 0, file, 20, 0, 20);
	/* A gap: refused, and nothing changes. */
	expect_refused(u, 25, file + 25, 5, 0,
		       "chunk at byte 25 leaves a gap: the upload has 20 bytes, send from there");
	/* Overlapping: bytes 10..30, of which 20..30 are new. */
	expect_taken(u, 10, file + 10, 20, 0, 30);
	/* The rest, the last line without a line break. */
	expect_taken(u, 30, file + 30, len - 30, 1, len);
	/* After the end: a resend is acknowledged, new bytes refused. */
	expect_taken(u, 30, file + 30, len - 30, 1, len);
	expect_refused(u, len, "x", 1, 1, "the file ended at byte");
}

static void test_billing_and_vouchers_take_chunks_at_offsets_alike(void **state)
{
	(void)state;
	struct upload billing = {.what = "billing", .chunk = billing_chunk};
	start_billing(&billing);
	upload_in_chunks(&billing, "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
				   "Ana Lima,1,ana@example.com,10.00,2030-01-01,up-1\n"
				   "Bia Reis,2,bia@example.com,20.00,2030-01-01,up-2");
	struct upload vouchers = {.what = "vouchers", .chunk = vouchers_chunk};
	start_vouchers(&vouchers);
	upload_in_chunks(&vouchers, "order_id,customer_id\n1,10\n2,11\n3,12\n4,13\n5,14\n6,15");

	/* Both read the file whole, its open last line included. */
	long long debts = harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts");
	assert_int_equal(debts, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_billing_and_vouchers_take_chunks_at_offsets_alike),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
