/*
 * The vouchers service end to end over RPC: two real rpcqd processes on one
 * real PostgreSQL, called through the generated stubs. The real exports
 * against an independent reading of the spec's rules, in chunks of every
 * size; each rule's rejection with its file and line; chunks resent, out of
 * order, refused; an import resumed on the other process after a restart;
 * imports merging into the stock; the reports' order and paging; and
 * IssueVouchers: the basics, its errors, idempotency, its stream, and a
 * storm of 32 callers over both processes that must never sell a barcode
 * twice. (The `rpcq vouchers` command has its own tests.)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include <rpcq/rpcq.h>

#include "harness.h"

static harness_pg pg;
static harness_server srv[2];
static rpcq_client *cl[2];

static void connect_client(int i)
{
	rpcq_client_options o = {.servers = srv[i].rpc_url, .timeout_ms = 60000};
	rpcq_error err;
	if (rpcq_client_create(&cl[i], &o, &err) != RPCQ_OK)
		fail_msg("client: %s", err.message);
}

static int setup_all(void **state)
{
	(void)state;
	harness_pg_start(&pg);
	if (harness_migrate(&pg) != 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		harness_server_start(&srv[i], &pg, NULL);
		connect_client(i);
	}
	return 0;
}

static int teardown_all(void **state)
{
	for (int i = 0; i < 2; i++)
		rpcq_client_destroy(cl[i]);
	return harness_teardown(state);
}

/* An empty stock before each test. */
static int reset(void **state)
{
	(void)state;
	harness_sql(pg.conninfo, "TRUNCATE voucher_orders, voucher_barcodes, voucher_customers, voucher_issues,"
				 " voucher_imports, voucher_import_files, voucher_import_rejections,"
				 " voucher_stage_orders, voucher_stage_barcodes;"
				 " UPDATE voucher_stock SET unused = 0, sold = 0");
	return 0;
}

static long long sql_count(const char *sql)
{
	return harness_sql_scalar(pg.conninfo, sql);
}

/* Orders and customers whose stored sort keys are not voucher_sort_key of
 * their ids (the writers fill them: they are not generated columns). */
static long long sort_keys_wrong(void)
{
	return sql_count("SELECT (SELECT count(*) FROM voucher_orders WHERE customer_key IS DISTINCT FROM"
			 " voucher_sort_key(customer_id) OR order_key IS DISTINCT FROM voucher_sort_key(order_id))"
			 " + (SELECT count(*) FROM voucher_customers WHERE customer_key IS DISTINCT FROM"
			 " voucher_sort_key(customer_id))");
}

/* ---- imports through the stubs ---- */

static Rpcq__Vouchers__Import *start_import(rpcq_client *c, const char *key)
{
	Rpcq__Vouchers__StartImportRequest req = RPCQ__VOUCHERS__START_IMPORT_REQUEST__INIT;
	req.key = (char *)(key ? key : "");
	Rpcq__Vouchers__Import *imp = NULL;
	rpcq_error err;
	if (rpcq_voucher_start_import(c, &req, &imp, NULL, &err) != RPCQ_OK)
		fail_msg("StartImport: %s", err.message);
	return imp;
}

static void import_free(Rpcq__Vouchers__Import *imp)
{
	if (imp)
		protobuf_c_message_free_unpacked(&imp->base, NULL);
}

/* One chunk; returns the status, *out (optional) the reply. */
static rpcq_status send_chunk(rpcq_client *c, const char *id, Rpcq__Vouchers__File file, uint64_t offset,
			      const char *data, size_t len, int last, Rpcq__Vouchers__Import **out, rpcq_error *err)
{
	Rpcq__Vouchers__ImportChunkRequest req = RPCQ__VOUCHERS__IMPORT_CHUNK_REQUEST__INIT;
	req.import_id = (char *)id;
	req.file = file;
	req.offset = offset;
	req.data.data = (uint8_t *)data;
	req.data.len = len;
	req.last = last;
	Rpcq__Vouchers__Import *imp = NULL;
	rpcq_status st = rpcq_voucher_import_chunk(c, &req, &imp, NULL, err);
	if (out)
		*out = imp;
	else
		import_free(imp);
	return st;
}

/* Sends text[from..len) in chunks of `chunk` bytes (the last marked). */
static void send_file(rpcq_client *c, const char *id, Rpcq__Vouchers__File file, const char *text, size_t from,
		      size_t len, size_t chunk)
{
	rpcq_error err;
	size_t off = from;
	do {
		size_t n = len - off < chunk ? len - off : chunk;
		int last = off + n == len;
		if (send_chunk(c, id, file, off, text + off, n, last, NULL, &err) != RPCQ_OK)
			fail_msg("ImportChunk at %zu: %s", off, err.message);
		off += n;
	} while (off < len);
}

static rpcq_status finish(rpcq_client *c, const char *id, Rpcq__Vouchers__Import **out, rpcq_error *err)
{
	Rpcq__Vouchers__FinishImportRequest req = RPCQ__VOUCHERS__FINISH_IMPORT_REQUEST__INIT;
	req.import_id = (char *)id;
	return rpcq_voucher_finish_import(c, &req, out, NULL, err);
}

/* A whole import of two texts; the applied Import. */
static Rpcq__Vouchers__Import *import_texts(rpcq_client *c, const char *orders, const char *barcodes, size_t chunk)
{
	Rpcq__Vouchers__Import *imp = start_import(c, NULL);
	send_file(c, imp->import_id, RPCQ__VOUCHERS__FILE__ORDERS, orders, 0, strlen(orders), chunk);
	send_file(c, imp->import_id, RPCQ__VOUCHERS__FILE__BARCODES, barcodes, 0, strlen(barcodes), chunk);
	Rpcq__Vouchers__Import *done = NULL;
	rpcq_error err;
	if (finish(c, imp->import_id, &done, &err) != RPCQ_OK)
		fail_msg("FinishImport: %s", err.message);
	import_free(imp);
	assert_int_equal(done->state, RPCQ__VOUCHERS__IMPORT_STATE__APPLIED);
	return done;
}

/* Every rejection of an import, "file:line: reason\n" each (malloc'd). */
static char *rejections(rpcq_client *c, const char *id)
{
	size_t cap = 1 << 16, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	s[0] = '\0';
	char *token = strdup("");
	for (;;) {
		Rpcq__Vouchers__ListRejectionsRequest req = RPCQ__VOUCHERS__LIST_REJECTIONS_REQUEST__INIT;
		req.import_id = (char *)id;
		req.page_token = token;
		req.page_size = 3; /* several pages */
		Rpcq__Vouchers__ListRejectionsResponse *r = NULL;
		rpcq_error err;
		if (rpcq_voucher_list_rejections(c, &req, &r, NULL, &err) != RPCQ_OK)
			fail_msg("ListRejections: %s", err.message);
		for (size_t i = 0; i < r->n_rejections; i++) {
			const Rpcq__Vouchers__Rejection *x = r->rejections[i];
			size_t need = strlen(x->file_name) + strlen(x->reason) + 32;
			if (len + need >= cap) {
				cap = (cap + need) * 2;
				s = realloc(s, cap);
				assert_non_null(s);
			}
			len += (size_t)snprintf(s + len, cap - len, "%s:%llu: %s\n", x->file_name,
						(unsigned long long)x->line, x->reason);
		}
		free(token);
		token = strdup(r->next_page_token);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (token[0] == '\0')
			break;
	}
	free(token);
	return s;
}

/* Every voucher line in the spec's format (malloc'd), paging with size; an
 * order that comes in parts (Voucher.continues) is one line, as the spec
 * has it. *parts (optional) counts the parts that continue. */
static char *voucher_lines_parts(rpcq_client *c, const char *customer, uint32_t size, int *parts)
{
	size_t cap = 1 << 16, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	s[0] = '\0';
	char *token = strdup("");
	int open = 0;
	if (parts)
		*parts = 0;
	for (;;) {
		Rpcq__Vouchers__ListVouchersRequest req = RPCQ__VOUCHERS__LIST_VOUCHERS_REQUEST__INIT;
		req.customer_id = (char *)(customer ? customer : "");
		req.page_token = token;
		req.page_size = size;
		Rpcq__Vouchers__ListVouchersResponse *r = NULL;
		rpcq_error err;
		if (rpcq_voucher_list_vouchers(c, &req, &r, NULL, &err) != RPCQ_OK)
			fail_msg("ListVouchers: %s", err.message);
		assert_true(r->n_vouchers <= size);
		assert_true(protobuf_c_message_get_packed_size(&r->base) < (4u << 20));
		for (size_t i = 0; i < r->n_vouchers; i++) {
			const Rpcq__Vouchers__Voucher *v = r->vouchers[i];
			/* Only a page's last voucher continues. */
			assert_true(!v->continues || i + 1 == r->n_vouchers);
			size_t need = strlen(v->customer_id) + strlen(v->order_id) + 16;
			for (size_t k = 0; k < v->n_barcodes; k++)
				need += strlen(v->barcodes[k]) + 2;
			if (len + need >= cap) {
				cap = (cap + need) * 2;
				s = realloc(s, cap);
				assert_non_null(s);
			}
			if (!open)
				len += (size_t)snprintf(s + len, cap - len, "%s, %s, [", v->customer_id, v->order_id);
			for (size_t k = 0; k < v->n_barcodes; k++)
				len += (size_t)snprintf(s + len, cap - len, "%s%s", k || open ? ", " : "",
							v->barcodes[k]);
			open = v->continues;
			if (open && parts)
				++*parts;
			if (!open)
				len += (size_t)snprintf(s + len, cap - len, "]\n");
		}
		free(token);
		token = strdup(r->next_page_token);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (token[0] == '\0')
			break;
	}
	assert_false(open);
	free(token);
	return s;
}

static char *voucher_lines(rpcq_client *c, const char *customer, uint32_t size)
{
	return voucher_lines_parts(c, customer, size, NULL);
}

static char *top_lines(rpcq_client *c, uint32_t n)
{
	Rpcq__Vouchers__TopCustomersRequest req = RPCQ__VOUCHERS__TOP_CUSTOMERS_REQUEST__INIT;
	req.n = n;
	Rpcq__Vouchers__TopCustomersResponse *r = NULL;
	rpcq_error err;
	if (rpcq_voucher_top_customers(c, &req, &r, NULL, &err) != RPCQ_OK)
		fail_msg("TopCustomers: %s", err.message);
	char *s = calloc(1, 64 * (r->n_customers + 1));
	assert_non_null(s);
	size_t len = 0;
	for (size_t i = 0; i < r->n_customers; i++)
		len += (size_t)snprintf(s + len, 64 * (r->n_customers + 1) - len, "%s, %llu\n",
					r->customers[i]->customer_id, (unsigned long long)r->customers[i]->tickets);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return s;
}

static void stock(rpcq_client *c, uint64_t *unused, uint64_t *sold)
{
	Rpcq__Vouchers__CountUnusedRequest req = RPCQ__VOUCHERS__COUNT_UNUSED_REQUEST__INIT;
	Rpcq__Vouchers__CountUnusedResponse *r = NULL;
	rpcq_error err;
	if (rpcq_voucher_count_unused(c, &req, &r, NULL, &err) != RPCQ_OK)
		fail_msg("CountUnused: %s", err.message);
	*unused = r->unused;
	if (sold)
		*sold = r->sold;
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* ---- an independent reading of the spec's rules, for small files ---- */

#define MAXROWS 4096

typedef struct row2 {
	char a[80], b[80];
	int line;
} row2;

static int read_rows2(const char *text, row2 *rows)
{
	int n = 0, line = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		line++;
		if (line > 1) {
			const char *comma = memchr(p, ',', len);
			assert_non_null(comma);
			assert_true(n < MAXROWS);
			snprintf(rows[n].a, sizeof(rows[n].a), "%.*s", (int)(comma - p), p);
			snprintf(rows[n].b, sizeof(rows[n].b), "%.*s", (int)(len - (size_t)(comma - p) - 1), comma + 1);
			rows[n].line = line;
			n++;
		}
		p += len + (nl ? 1 : 0);
	}
	return n;
}

typedef struct expected {
	char *vouchers;
	char *top5;
	long long unused;
} expected;

static int cmp_ids(const char *x, const char *y)
{
	/* Integers numerically (these files hold only integers). */
	long long a = strtoll(x, NULL, 10), b = strtoll(y, NULL, 10);
	return a < b ? -1 : a > b;
}

typedef struct vline {
	const char *customer, *order;
	char text[1024];
} vline;

static int cmp_vline(const void *x, const void *y)
{
	const vline *a = x, *b = y;
	int k = cmp_ids(a->customer, b->customer);
	return k ? k : cmp_ids(a->order, b->order);
}

typedef struct ctick {
	const char *customer;
	int tickets;
} ctick;

static int cmp_ctick(const void *x, const void *y)
{
	const ctick *a = x, *b = y;
	if (a->tickets != b->tickets)
		return b->tickets - a->tickets;
	return cmp_ids(a->customer, b->customer);
}

/* The spec's rules, applied the slow and obvious way (quadratic). */
static expected expect(const char *orders_text, const char *barcodes_text)
{
	static row2 o[MAXROWS], b[MAXROWS];
	static vline v[MAXROWS];
	static ctick t[MAXROWS];
	int no = read_rows2(orders_text, o), nb = read_rows2(barcodes_text, b);
	expected e = {NULL, NULL, 0};
	/* The winning occurrence of each barcode, or none. */
	static int win[MAXROWS];
	for (int i = 0; i < nb; i++) {
		win[i] = 0;
		int first = -1, sold = -1, conflict = 0;
		for (int j = 0; j < nb; j++) {
			if (strcmp(b[i].a, b[j].a) != 0)
				continue;
			if (first < 0)
				first = j;
			if (b[j].b[0]) {
				if (sold >= 0 && strcmp(b[sold].b, b[j].b) != 0)
					conflict = 1;
				if (sold < 0)
					sold = j;
			}
		}
		int w = sold >= 0 ? sold : first;
		int known = 1;
		if (b[w].b[0]) {
			known = 0;
			for (int k = 0; k < no; k++)
				known |= strcmp(o[k].a, b[w].b) == 0;
		}
		win[i] = !conflict && w == i && known;
		if (win[i] && !b[i].b[0])
			e.unused++;
	}
	int nv = 0, nt = 0;
	for (int k = 0; k < no; k++) {
		int dup = 0;
		for (int q = 0; q < k; q++)
			dup |= strcmp(o[q].a, o[k].a) == 0;
		if (dup)
			continue;
		vline *x = &v[nv];
		x->customer = o[k].b;
		x->order = o[k].a;
		size_t len = (size_t)snprintf(x->text, sizeof(x->text), "%s, %s, [", o[k].b, o[k].a);
		int count = 0;
		for (int i = 0; i < nb; i++)
			if (win[i] && strcmp(b[i].b, o[k].a) == 0)
				len += (size_t)snprintf(x->text + len, sizeof(x->text) - len, "%s%s",
							count++ ? ", " : "", b[i].a);
		snprintf(x->text + len, sizeof(x->text) - len, "]\n");
		if (count == 0)
			continue;
		nv++;
		int found = 0;
		for (int q = 0; q < nt; q++)
			if (strcmp(t[q].customer, o[k].b) == 0) {
				t[q].tickets += count;
				found = 1;
			}
		if (!found)
			t[nt++] = (ctick){o[k].b, count};
	}
	qsort(v, (size_t)nv, sizeof(*v), cmp_vline);
	qsort(t, (size_t)nt, sizeof(*t), cmp_ctick);
	e.vouchers = calloc(1, (size_t)nv * 1024 + 1);
	e.top5 = calloc(1, 6 * 64);
	assert_true(e.vouchers && e.top5);
	size_t len = 0;
	for (int i = 0; i < nv; i++)
		len += (size_t)snprintf(e.vouchers + len, (size_t)nv * 1024 + 1 - len, "%s", v[i].text);
	len = 0;
	for (int i = 0; i < nt && i < 5; i++)
		len += (size_t)snprintf(e.top5 + len, 6 * 64 - len, "%s, %d\n", t[i].customer, t[i].tickets);
	return e;
}

static char *read_shared(const char *rel)
{
	char path[512];
	return harness_read_file(harness_shared_path(rel, path, sizeof(path)), NULL);
}

/* ---- tests ---- */

static const char real_rejections[] =
	"orders.csv:76: order_id 75 has no barcodes: left out of the vouchers\n"
	"orders.csv:108: order_id 108 has no barcodes: left out of the vouchers\n"
	"orders.csv:196: order_id 201 has no barcodes: left out of the vouchers\n"
	"barcodes.csv:533: barcode 11111111649 repeats line 487, where it is sold to order 181\n"
	"barcodes.csv:549: barcode 11111111665 repeats line 518, where it is sold to order 213\n"
	"barcodes.csv:558: barcode 11111111674 repeats line 266, where it is sold to order 191\n"
	"barcodes.csv:561: barcode 11111111595 repeats line 480, where it is sold to order 174\n"
	"barcodes.csv:584: barcode 11111111700 repeats line 415, where it is sold to order 103\n";

/* The messages of vouchers.issued after after_seq, through Replay on c
 * (free with protobuf_c_message_free_unpacked). */
static Rpcq__ReplayResponse *replay_issued(rpcq_client *c, uint64_t after_seq)
{
	Rpcq__ReplayRequest rr = RPCQ__REPLAY_REQUEST__INIT;
	rr.topic = "vouchers.issued";
	rr.after_seq = after_seq;
	Rpcq__ReplayResponse *rep = NULL;
	rpcq_error err;
	rpcq_status st = rpcq_streams_replay(c, &rr, &rep, NULL, &err);
	if (st != RPCQ_OK)
		fail_msg("Replay of vouchers.issued: %s: %s", rpcq_status_name(st), err.message);
	return rep;
}

/* Message i of rep as a VouchersIssued (free with
 * protobuf_c_message_free_unpacked). */
static Rpcq__Vouchers__VouchersIssued *issued_message(const Rpcq__ReplayResponse *rep, size_t i)
{
	assert_true(i < rep->n_messages);
	Rpcq__Vouchers__VouchersIssued *ev = rpcq__vouchers__vouchers_issued__unpack(
		NULL, rep->messages[i]->payload.len, rep->messages[i]->payload.data);
	if (ev == NULL)
		fail_msg("message %zu of vouchers.issued is no VouchersIssued", i);
	return ev;
}

/* A connection of the test's own holding the row of "vouchers.issued" in an
 * open transaction: every issue waits for it until release_topic_row. */
static PGconn *hold_topic_row(void)
{
	PGconn *db = PQconnectdb(pg.conninfo);
	assert_int_equal(PQstatus(db), CONNECTION_OK);
	PGresult *res = PQexec(db, "BEGIN");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	res = PQexec(db, "SELECT 1 FROM stream_topics WHERE topic = 'vouchers.issued' FOR UPDATE");
	assert_int_equal(PQntuples(res), 1);
	PQclear(res);
	return db;
}

/* Commits and closes what hold_topic_row opened: the issues go on. */
static void release_topic_row(PGconn *db)
{
	PGresult *res = PQexec(db, "COMMIT");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	PQfinish(db);
}

static void test_the_real_exports_in_chunks_of_any_size_give_what_the_rules_imply(void **state)
{
	char *orders = read_shared("data/vouchers/orders.csv");
	char *barcodes = read_shared("data/vouchers/barcodes.csv");
	expected e = expect(orders, barcodes);
	const size_t chunks[] = {100000, 4096, 61, 7};
	for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		reset(state);
		Rpcq__Vouchers__Import *imp = import_texts(cl[k % 2], orders, barcodes, chunks[k]);
		assert_int_equal(imp->orders->rows, 207);
		assert_int_equal(imp->barcodes->rows, 620);
		assert_int_equal(imp->counts->orders_added, 207);
		assert_int_equal(imp->counts->orders_without_barcodes, 3);
		assert_int_equal(imp->counts->barcodes_added, 615);
		assert_int_equal(imp->counts->barcodes_rejected, 5);
		assert_int_equal(imp->rejections, 8);
		char *rej = rejections(cl[(k + 1) % 2], imp->import_id);
		assert_string_equal(rej, real_rejections);
		char *lines = voucher_lines(cl[k % 2], NULL, k == 0 ? 1000 : 9);
		assert_string_equal(lines, e.vouchers);
		char *top = top_lines(cl[k % 2], 5);
		assert_string_equal(top, e.top5);
		uint64_t unused, sold;
		stock(cl[k % 2], &unused, &sold);
		assert_int_equal(unused, e.unused);
		assert_int_equal(unused, 98);
		assert_int_equal(sold, 615 - 98);
		free(rej);
		free(lines);
		free(top);
		import_free(imp);
	}
	/* The same files again change nothing: every row is already there. */
	Rpcq__Vouchers__Import *again = import_texts(cl[0], orders, barcodes, 100000);
	assert_int_equal(again->counts->orders_added, 0);
	assert_int_equal(again->counts->orders_unchanged, 207);
	assert_int_equal(again->counts->barcodes_added, 0);
	assert_int_equal(again->counts->barcodes_unchanged, 615);
	char *lines = voucher_lines(cl[1], NULL, 1000);
	assert_string_equal(lines, e.vouchers);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_barcodes"), 615);
	free(lines);
	import_free(again);
	free(e.vouchers);
	free(e.top5);
	free(orders);
	free(barcodes);
}

static const char rule_orders[] = "order_id,customer_id\n"
				  "1,10\n"
				  "2,11\n"
				  "2,12\n"
				  "3,10\n"
				  "4,13\n"
				  ",14\n"
				  "5,15,x\n"
				  " 6 , 16 \n";

static const char rule_barcodes[] = "barcode,order_id\n"
				    "A,1\n"
				    "B,2\n"
				    "C,1\n"
				    "C,3\n"
				    "D,9\n"
				    "E,\n"
				    "E,\n"
				    "F,\n"
				    "F,1\n"
				    ",2\n"
				    "\"G,1\",6\r\n"
				    "\n"
				    "H\n";

static void test_each_rule_rejects_its_rows_with_file_and_line_and_the_rest_applies(void **state)
{
	(void)state;
	Rpcq__Vouchers__Import *imp = import_texts(cl[0], rule_orders, rule_barcodes, 5);
	char *rej = rejections(cl[1], imp->import_id);
	assert_string_equal(rej, "orders.csv:4: order_id 2 repeats line 3\n"
				 "orders.csv:5: order_id 3 has no barcodes: left out of the vouchers\n"
				 "orders.csv:6: order_id 4 has no barcodes: left out of the vouchers\n"
				 "orders.csv:7: order_id is empty\n"
				 "orders.csv:8: expected 2 fields (order_id,customer_id), found 3\n"
				 "barcodes.csv:4: barcode C is given to different orders (1, 3): its owner is unknown\n"
				 "barcodes.csv:5: barcode C is given to different orders (1, 3): its owner is unknown\n"
				 "barcodes.csv:6: order_id 9 is not in orders.csv\n"
				 "barcodes.csv:8: barcode E repeats line 7\n"
				 "barcodes.csv:9: barcode F repeats line 10, where it is sold to order 1\n"
				 "barcodes.csv:11: barcode is empty\n"
				 "barcodes.csv:14: expected 2 fields (barcode,order_id), found 1\n");
	assert_int_equal(imp->orders->rows, 8);
	assert_int_equal(imp->orders->rejected, 2);
	assert_int_equal(imp->barcodes->rows, 12);
	assert_int_equal(imp->barcodes->rejected, 2);
	assert_int_equal(imp->counts->orders_added, 5);
	/* Every rejected row of each file, those rejected while reading too:
	 * the counts agree with the report (3 + 7 + 2 without barcodes). */
	assert_int_equal(imp->counts->orders_rejected, 3);
	assert_int_equal(imp->counts->orders_without_barcodes, 2);
	assert_int_equal(imp->counts->barcodes_added, 5);
	assert_int_equal(imp->counts->barcodes_rejected, 7);
	assert_int_equal(imp->rejections, 12);
	assert_int_equal(imp->counts->orders_rejected + imp->counts->orders_without_barcodes +
				 imp->counts->barcodes_rejected,
			 imp->rejections);
	assert_int_equal(imp->n_first_rejections, 12);
	assert_int_equal(imp->first_rejections[0]->file, RPCQ__VOUCHERS__FILE__ORDERS);
	assert_int_equal(imp->first_rejections[0]->line, 4);

	char *lines = voucher_lines(cl[0], NULL, 1000);
	assert_string_equal(lines, "10, 1, [A, F]\n"
				   "11, 2, [B]\n"
				   "16, 6, [G,1]\n");
	char *top = top_lines(cl[1], 5);
	assert_string_equal(top, "10, 2\n11, 1\n16, 1\n");
	uint64_t unused;
	stock(cl[0], &unused, NULL);
	assert_int_equal(unused, 1); /* E */
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_orders WHERE order_id IN ('3', '4')"), 2);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_barcodes WHERE barcode IN ('C', 'D', '')"), 0);
	free(rej);
	free(lines);
	free(top);
	import_free(imp);
}

static void test_a_file_that_cannot_be_read_is_refused_and_changes_nothing(void **state)
{
	(void)state;
	Rpcq__Vouchers__Import *imp = start_import(cl[0], NULL);
	rpcq_error err;
	const char bad_header[] = "id,customer\n1,10\n";
	assert_int_equal(send_chunk(cl[0], imp->import_id, RPCQ__VOUCHERS__FILE__ORDERS, 0, bad_header,
				    strlen(bad_header), 1, NULL, &err),
			 RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "orders.csv: line 1: the header must be order_id,customer_id (found 2 "
					 "field(s), the first \"id\")");
	/* (A malformed record after the header is a rejected row: test_vouchers_cli.) */
	assert_int_equal(send_chunk(cl[1], imp->import_id, RPCQ__VOUCHERS__FILE__BARCODES, 0, "", 0, 1, NULL, &err),
			 RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message,
			    "barcodes.csv: line 1: the file is empty (it needs the header barcode,order_id)");
	/* Nothing was taken: both files are still at byte 0. */
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_import_files WHERE received > 0 OR complete"), 0);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_stage_orders"), 0);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_import_rejections"), 0);
	/* Bad requests. */
	assert_int_equal(send_chunk(cl[0], "x1", RPCQ__VOUCHERS__FILE__ORDERS, 0, "", 0, 1, NULL, &err),
			 RPCQ_INVALID_ARGUMENT);
	assert_int_equal(send_chunk(cl[0], "999999", RPCQ__VOUCHERS__FILE__ORDERS, 0, "", 0, 1, NULL, &err),
			 RPCQ_NOT_FOUND);
	assert_int_equal(
		send_chunk(cl[0], imp->import_id, RPCQ__VOUCHERS__FILE__FILE_UNSPECIFIED, 0, "", 0, 1, NULL, &err),
		RPCQ_INVALID_ARGUMENT);
	import_free(imp);
}

static void test_chunks_resent_out_of_order_or_after_the_end(void **state)
{
	(void)state;
	Rpcq__Vouchers__Import *imp = start_import(cl[0], NULL), *r = NULL;
	const char *id = imp->import_id;
	rpcq_error err;
	const char orders[] = "order_id,customer_id\n1,10\n2,11\n";
	const char barcodes[] = "barcode,order_id\nA,1\nB,2\nC,\n";
	/* Cut inside a record: "order_id,customer_id\n1," then the rest. */
	assert_int_equal(send_chunk(cl[0], id, RPCQ__VOUCHERS__FILE__ORDERS, 0, orders, 23, 0, &r, &err), RPCQ_OK);
	assert_int_equal(r->orders->received_bytes, 23);
	assert_int_equal(r->orders->rows, 0);
	import_free(r);
	/* The same chunk again: a duplicate, nothing more read. */
	assert_int_equal(send_chunk(cl[1], id, RPCQ__VOUCHERS__FILE__ORDERS, 0, orders, 23, 0, &r, &err), RPCQ_OK);
	assert_true(r->duplicate);
	assert_int_equal(r->orders->received_bytes, 23);
	import_free(r);
	/* A gap: refused, naming where to go on from. */
	assert_int_equal(send_chunk(cl[0], id, RPCQ__VOUCHERS__FILE__ORDERS, 25, orders + 25, 4, 0, NULL, &err),
			 RPCQ_FAILED_PRECONDITION);
	assert_string_equal(err.message,
			    "orders.csv: chunk at byte 25 leaves a gap: the upload has 23 bytes, send from there");
	/* Overlapping the received bytes: only the new ones count. */
	assert_int_equal(
		send_chunk(cl[1], id, RPCQ__VOUCHERS__FILE__ORDERS, 20, orders + 20, strlen(orders) - 20, 1, &r, &err),
		RPCQ_OK);
	assert_false(r->duplicate);
	assert_true(r->orders->complete);
	assert_int_equal(r->orders->rows, 2);
	import_free(r);
	/* Finish before the barcodes are complete. */
	assert_int_equal(finish(cl[0], id, &r, &err), RPCQ_FAILED_PRECONDITION);
	assert_string_equal(err.message, "barcodes.csv is not complete: 0 bytes received, and no last chunk");
	send_file(cl[0], id, RPCQ__VOUCHERS__FILE__BARCODES, barcodes, 0, strlen(barcodes), 8);
	/* New bytes after the last chunk. */
	assert_int_equal(
		send_chunk(cl[0], id, RPCQ__VOUCHERS__FILE__BARCODES, strlen(barcodes), "D,\n", 3, 1, NULL, &err),
		RPCQ_FAILED_PRECONDITION);
	assert_int_equal(finish(cl[1], id, &r, &err), RPCQ_OK);
	assert_int_equal(r->counts->barcodes_added, 3);
	import_free(r);
	/* Finishing again returns the result and changes nothing. */
	assert_int_equal(finish(cl[0], id, &r, &err), RPCQ_OK);
	assert_int_equal(r->counts->barcodes_added, 3);
	assert_int_equal(r->state, RPCQ__VOUCHERS__IMPORT_STATE__APPLIED);
	import_free(r);
	/* A resent last chunk after the apply is still acknowledged. */
	assert_int_equal(
		send_chunk(cl[1], id, RPCQ__VOUCHERS__FILE__BARCODES, 0, barcodes, strlen(barcodes), 1, &r, &err),
		RPCQ_OK);
	assert_true(r->duplicate);
	import_free(r);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_barcodes"), 3);
	/* The import's staging partitions went with the apply. */
	char sql[160];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM pg_class WHERE relname IN ('voucher_stage_orders_%s', "
		 "'voucher_stage_barcodes_%s')",
		 id, id);
	assert_int_equal(sql_count(sql), 0);
	import_free(imp);
}

static void test_an_import_resumes_on_the_other_process_after_a_restart(void **state)
{
	(void)state;
	char *orders = read_shared("data/vouchers/orders.csv");
	char *barcodes = read_shared("data/vouchers/barcodes.csv");
	size_t blen = strlen(barcodes);
	Rpcq__Vouchers__Import *imp = start_import(cl[0], "resume-test");
	char *id = strdup(imp->import_id);
	import_free(imp);
	send_file(cl[0], id, RPCQ__VOUCHERS__FILE__ORDERS, orders, 0, strlen(orders), 500);
	/* Half of the barcodes, cut inside a record, then process 0 stops. */
	rpcq_error err;
	assert_int_equal(
		send_chunk(cl[0], id, RPCQ__VOUCHERS__FILE__BARCODES, 0, barcodes, blen / 2 + 3, 0, NULL, &err),
		RPCQ_OK);
	rpcq_client_destroy(cl[0]);
	assert_int_equal(harness_server_stop(&srv[0]), 0);

	/* The same key on the other process: where the import stands. */
	imp = start_import(cl[1], "resume-test");
	assert_string_equal(imp->import_id, id);
	assert_int_equal(imp->state, RPCQ__VOUCHERS__IMPORT_STATE__RECEIVING);
	assert_true(imp->orders->complete);
	assert_int_equal(imp->barcodes->received_bytes, blen / 2 + 3);
	send_file(cl[1], id, RPCQ__VOUCHERS__FILE__BARCODES, barcodes, imp->barcodes->received_bytes, blen, 1000);
	import_free(imp);
	Rpcq__Vouchers__Import *done = NULL;
	assert_int_equal(finish(cl[1], id, &done, &err), RPCQ_OK);
	assert_int_equal(done->barcodes->rows, 620);
	assert_int_equal(done->counts->barcodes_added, 615);
	char *rej = rejections(cl[1], id);
	assert_string_equal(rej, real_rejections);
	import_free(done);

	harness_server_start(&srv[0], &pg, NULL);
	connect_client(0);
	/* Once applied, the key answers the result. */
	imp = start_import(cl[0], "resume-test");
	assert_int_equal(imp->state, RPCQ__VOUCHERS__IMPORT_STATE__APPLIED);
	assert_int_equal(imp->counts->barcodes_added, 615);
	import_free(imp);
	free(rej);
	free(id);
	free(orders);
	free(barcodes);
}

static void test_a_second_import_merges_into_the_stock(void **state)
{
	(void)state;
	Rpcq__Vouchers__Import *a =
		import_texts(cl[0], "order_id,customer_id\n1,10\n", "barcode,order_id\nX,1\nY,\nW,\n", 100);
	import_free(a);
	Rpcq__Vouchers__Import *b = import_texts(cl[1], "order_id,customer_id\n1,11\n2,12\n3,10\n",
						 "barcode,order_id\nX,2\nY,2\nZ,1\nW,\nV,3\nX,\n", 100);
	char *rej = rejections(cl[0], b->import_id);
	/* Order 1 belongs to customer 10 in the stock: the file's claim is
	 * refused, and so are its barcodes; X is sold to order 1 already; Y,
	 * unused in the stock, is now sold; W stays unused; V is new. */
	assert_string_equal(rej, "orders.csv:2: order_id 1 is already in the stock, for customer 10\n"
				 "barcodes.csv:2: barcode X is already sold to order 1\n"
				 "barcodes.csv:4: order_id 1 is rejected in orders.csv\n"
				 "barcodes.csv:7: barcode X repeats line 2, where it is sold to order 2\n");
	assert_int_equal(b->counts->orders_added, 2);
	assert_int_equal(b->counts->orders_rejected, 1);
	assert_int_equal(b->counts->barcodes_added, 1);
	assert_int_equal(b->counts->barcodes_sold, 1);
	assert_int_equal(b->counts->barcodes_unchanged, 1);
	assert_int_equal(b->counts->barcodes_rejected, 3);
	char *lines = voucher_lines(cl[0], NULL, 2);
	assert_string_equal(lines, "10, 1, [X]\n10, 3, [V]\n12, 2, [Y]\n");
	char *top = top_lines(cl[1], 5);
	assert_string_equal(top, "10, 2\n12, 1\n");
	uint64_t unused, sold;
	stock(cl[0], &unused, &sold);
	assert_int_equal(unused, 1);
	assert_int_equal(sold, 3);
	free(lines);
	free(top);
	assert_int_equal(sort_keys_wrong(), 0);
	free(rej);
	import_free(b);

	/* A barcodes file names the orders of its own orders.csv: orders 1 and
	 * 3, in the stock but not in this file, are refused there, and the
	 * vouchers of those orders stay as they were. */
	Rpcq__Vouchers__Import *c =
		import_texts(cl[0], "order_id,customer_id\n4,13\n", "barcode,order_id\nU,1\nT,3\nS,4\n", 100);
	rej = rejections(cl[1], c->import_id);
	assert_string_equal(rej, "barcodes.csv:2: order_id 1 is not in orders.csv\n"
				 "barcodes.csv:3: order_id 3 is not in orders.csv\n");
	assert_int_equal(c->counts->orders_added, 1);
	assert_int_equal(c->counts->barcodes_added, 1);
	assert_int_equal(c->counts->barcodes_rejected, 2);
	lines = voucher_lines(cl[0], NULL, 10);
	assert_string_equal(lines, "10, 1, [X]\n10, 3, [V]\n12, 2, [Y]\n13, 4, [S]\n");
	free(lines);
	free(rej);
	import_free(c);
}

/* Fails naming where got first differs from want (texts too long to print). */
static void same_text(const char *what, const char *got, const char *want)
{
	size_t i = 0;
	while (got[i] && got[i] == want[i])
		i++;
	if (got[i] != want[i])
		fail_msg("%s: differs at byte %zu of %zu (wanted %zu): got \"%.60s\", wanted \"%.60s\"", what, i,
			 strlen(got), strlen(want), got + (i > 20 ? i - 20 : 0), want + (i > 20 ? i - 20 : 0));
}

/* An order with more barcodes than one reply holds (4 MiB): listed in
 * parts over consecutive pages, each reply under the limit, that join up to
 * its whole line; for one customer too; a continuation token that this
 * server did not give is refused. */
static void test_an_order_longer_than_a_page_is_listed_in_parts_that_join_up(void **state)
{
	(void)state;
	const int big = 130000; /* 60-byte barcodes: 7.8 MB, 130% of the 100,000 rows a page reads */
	size_t cap = (size_t)big * 64 + 256, len = 0;
	char *barcodes = malloc(cap), *want = malloc(cap);
	assert_non_null(barcodes);
	assert_non_null(want);
	len = (size_t)snprintf(barcodes, cap, "barcode,order_id\na1,A\na2,A\na3,A\nc1,C\nc2,C\n");
	size_t wl = (size_t)snprintf(want, cap, "1, A, [a1, a2, a3]\n2, B, [");
	for (int k = 0; k < big; k++) {
		len += (size_t)snprintf(barcodes + len, cap - len, "b%059d,B\n", k);
		wl += (size_t)snprintf(want + wl, cap - wl, "%sb%059d", k ? ", " : "", k);
	}
	wl += (size_t)snprintf(want + wl, cap - wl, "]\n3, C, [c1, c2]\n");
	Rpcq__Vouchers__Import *imp =
		import_texts(cl[0], "order_id,customer_id\nA,1\nB,2\nC,3\n", barcodes, (size_t)1 << 20);
	assert_int_equal(imp->counts->barcodes_added, big + 5);
	import_free(imp);

	int parts;
	char *lines = voucher_lines_parts(cl[0], NULL, 1000, &parts);
	same_text("every voucher", lines, want);
	assert_true(parts >= 2); /* cut by the rows read, then by the reply's size */
	free(lines);
	lines = voucher_lines_parts(cl[1], "2", 1000, &parts);
	const char *b_line = strstr(want, "2, B, [");
	char *want_b = strndup(b_line, (size_t)(strstr(want, "3, C, [") - b_line));
	assert_non_null(want_b);
	same_text("customer 2's", lines, want_b);
	free(want_b);
	free(lines);
	/* Pages of one order each, across the other process. */
	lines = voucher_lines(cl[1], NULL, 1);
	same_text("pages of one order", lines, want);
	free(lines);

	Rpcq__Vouchers__ListVouchersRequest req = RPCQ__VOUCHERS__LIST_VOUCHERS_REQUEST__INIT;
	Rpcq__Vouchers__ListVouchersResponse *r = NULL;
	rpcq_error err;
	const char *bad[] = {"B\x1f",
			     "B\x1fx",
			     "B\x1f-1",
			     "\x1f"
			     "7",
			     "B\x1f"
			     "99999999999999999999",
			     "B\x1f"
			     "9223372036854775807"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req.page_token = (char *)bad[i];
		assert_int_equal(rpcq_voucher_list_vouchers(cl[0], &req, &r, NULL, &err), RPCQ_INVALID_ARGUMENT);
		assert_non_null(strstr(err.message, "is not one this server gave"));
	}
	/* Past the order's last barcode: the orders after it. */
	req.page_token = "B\x1f"
			 "9223372036854775806";
	assert_int_equal(rpcq_voucher_list_vouchers(cl[0], &req, &r, NULL, &err), RPCQ_OK);
	assert_int_equal(r->n_vouchers, 1);
	assert_string_equal(r->vouchers[0]->order_id, "C");
	protobuf_c_message_free_unpacked(&r->base, NULL);
	/* Another customer's order. */
	req.customer_id = "3";
	req.page_token = "B\x1f"
			 "5";
	assert_int_equal(rpcq_voucher_list_vouchers(cl[0], &req, &r, NULL, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "for customer 3"));
	free(barcodes);
	free(want);
}

/* Reports: ids that are integers sort numerically, others after them by
 * bytes; pages of any size join up to the whole report. */
static void test_reports_sort_page_and_filter(void **state)
{
	(void)state;
	const char orders[] = "order_id,customer_id\n"
			      "10,2\n"
			      "9,2\n"
			      "b,2\n"
			      "a,10\n"
			      "100,10\n"
			      "1,007\n"
			      "2,abc\n"
			      "3,9\n"
			      "4,9\n";
	const char barcodes[] = "barcode,order_id\n"
				"x1,10\nx2,9\nx3,b\nx4,a\nx5,100\nx6,1\nx7,2\nx8,3\nx9,4\nx10,9\nx11,\nx12,\n";
	Rpcq__Vouchers__Import *imp = import_texts(cl[0], orders, barcodes, 1000);
	import_free(imp);
	const char all[] = "2, 9, [x2, x10]\n"
			   "2, 10, [x1]\n"
			   "2, b, [x3]\n"
			   "007, 1, [x6]\n"
			   "9, 3, [x8]\n"
			   "9, 4, [x9]\n"
			   "10, 100, [x5]\n"
			   "10, a, [x4]\n"
			   "abc, 2, [x7]\n";
	for (uint32_t size = 1; size <= 10; size += 3) {
		char *lines = voucher_lines(cl[size % 2], NULL, size);
		assert_string_equal(lines, all);
		free(lines);
	}
	char *one = voucher_lines(cl[1], "2", 1);
	assert_string_equal(one, "2, 9, [x2, x10]\n2, 10, [x1]\n2, b, [x3]\n");
	free(one);
	one = voucher_lines(cl[1], "nobody", 10);
	assert_string_equal(one, "");
	free(one);
	char *top = top_lines(cl[0], 3);
	assert_string_equal(top, "2, 4\n9, 2\n10, 2\n");
	free(top);
	top = top_lines(cl[0], 100);
	assert_string_equal(top, "2, 4\n9, 2\n10, 2\n007, 1\nabc, 1\n");
	free(top);
	uint64_t unused, sold;
	stock(cl[1], &unused, &sold);
	assert_int_equal(unused, 2);
	assert_int_equal(sold, 10);
	/* A page token that names no order (or, for one customer, no order of
	 * that customer) is not one the server gave: refused, named. The last
	 * order's own token gives an empty page. */
	Rpcq__Vouchers__ListVouchersRequest req = RPCQ__VOUCHERS__LIST_VOUCHERS_REQUEST__INIT;
	req.page_token = "no-such-order";
	Rpcq__Vouchers__ListVouchersResponse *r = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_voucher_list_vouchers(cl[0], &req, &r, NULL, &err), RPCQ_INVALID_ARGUMENT);
	assert_null(r);
	assert_string_equal(err.message, "page_token \"no-such-order\" is not one this server gave");
	req.customer_id = "2";
	req.page_token = "a";
	assert_int_equal(rpcq_voucher_list_vouchers(cl[1], &req, &r, NULL, &err), RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "page_token \"a\" is not one this server gave for customer 2");
	req.page_token = "b";
	assert_int_equal(rpcq_voucher_list_vouchers(cl[1], &req, &r, NULL, &err), RPCQ_OK);
	assert_int_equal(r->n_vouchers, 0);
	assert_string_equal(r->next_page_token, "");
	protobuf_c_message_free_unpacked(&r->base, NULL);
	req.customer_id = "";
	req.page_token = "2";
	assert_int_equal(rpcq_voucher_list_vouchers(cl[0], &req, &r, NULL, &err), RPCQ_OK);
	assert_int_equal(r->n_vouchers, 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	Rpcq__Vouchers__TopCustomersRequest tr = RPCQ__VOUCHERS__TOP_CUSTOMERS_REQUEST__INIT;
	tr.n = 10001;
	Rpcq__Vouchers__TopCustomersResponse *t = NULL;
	assert_int_equal(rpcq_voucher_top_customers(cl[0], &tr, &t, NULL, &err), RPCQ_INVALID_ARGUMENT);
	assert_int_equal(sort_keys_wrong(), 0);
}

/* A stock of n unused barcodes "s0001".. */
static void stock_of(int n)
{
	size_t cap = (size_t)n * 16 + 64;
	char *b = malloc(cap);
	assert_non_null(b);
	size_t len = (size_t)snprintf(b, cap, "barcode,order_id\n");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(b + len, cap - len, "s%04d,\n", i + 1);
	import_free(import_texts(cl[0], "order_id,customer_id\n", b, 1 << 20));
	free(b);
}

static rpcq_status issue(rpcq_client *c, const char *customer, uint32_t qty, const char *key,
			 Rpcq__Vouchers__IssueVouchersResponse **out, rpcq_error *err)
{
	Rpcq__Vouchers__IssueVouchersRequest req = RPCQ__VOUCHERS__ISSUE_VOUCHERS_REQUEST__INIT;
	req.customer_id = (char *)customer;
	req.quantity = qty;
	req.idempotency_key = (char *)(key ? key : "");
	*out = NULL;
	return rpcq_voucher_issue_vouchers(c, &req, out, NULL, err);
}

static void test_issue_vouchers_sells_unused_barcodes_once_and_says_when_short(void **state)
{
	(void)state;
	stock_of(10);
	long long seq0 = sql_count("SELECT coalesce((SELECT last_seq FROM stream_topics WHERE topic = "
				   "'vouchers.issued'), 0)");
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL, *again = NULL;
	rpcq_error err;
	assert_int_equal(issue(cl[0], "c1", 3, NULL, &r, &err), RPCQ_OK);
	assert_int_equal(r->n_barcodes, 3);
	assert_string_equal(r->customer_id, "c1");
	assert_int_equal(r->order_id[0], 'V');
	assert_false(r->replayed);
	char line[256];
	snprintf(line, sizeof(line), "c1, %s, [%s, %s, %s]\n", r->order_id, r->barcodes[0], r->barcodes[1],
		 r->barcodes[2]);
	char *lines = voucher_lines(cl[1], "c1", 10);
	assert_string_equal(lines, line);
	free(lines);
	uint64_t unused, sold;
	stock(cl[1], &unused, &sold);
	assert_int_equal(unused, 7);
	assert_int_equal(sold, 3);
	char *top = top_lines(cl[0], 1);
	assert_string_equal(top, "c1, 3\n");
	free(top);

	/* Its message on vouchers.issued, in the same transaction. */
	Rpcq__ReplayResponse *rep = replay_issued(cl[1], (uint64_t)seq0);
	assert_int_equal(rep->n_messages, 1);
	assert_string_equal(rep->messages[0]->type, "rpcq.vouchers.VouchersIssued");
	Rpcq__Vouchers__VouchersIssued *ev = issued_message(rep, 0);
	assert_string_equal(ev->order_id, r->order_id);
	assert_int_equal(ev->n_barcodes, 3);
	assert_string_equal(ev->barcodes[2], r->barcodes[2]);
	protobuf_c_message_free_unpacked(&ev->base, NULL);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	/* Too few: RESOURCE_EXHAUSTED, nothing assigned. */
	assert_int_equal(issue(cl[1], "c2", 8, NULL, &r, &err), RPCQ_RESOURCE_EXHAUSTED);
	assert_string_equal(err.message, "8 barcode(s) asked, 7 unused");
	stock(cl[0], &unused, NULL);
	assert_int_equal(unused, 7);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_orders WHERE customer_id = 'c2'"), 0);

	/* A key: the first result again, nothing more; the key with other
	 * parameters is refused. */
	assert_int_equal(issue(cl[0], "c2", 2, "key-1", &r, &err), RPCQ_OK);
	assert_int_equal(issue(cl[1], "c2", 2, "key-1", &again, &err), RPCQ_OK);
	assert_true(again->replayed);
	assert_string_equal(again->order_id, r->order_id);
	assert_int_equal(again->n_barcodes, 2);
	assert_string_equal(again->barcodes[0], r->barcodes[0]);
	assert_string_equal(again->barcodes[1], r->barcodes[1]);
	protobuf_c_message_free_unpacked(&again->base, NULL);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	assert_int_equal(issue(cl[1], "c2", 3, "key-1", &r, &err), RPCQ_FAILED_PRECONDITION);
	stock(cl[0], &unused, NULL);
	assert_int_equal(unused, 5);
	/* A short issue with a key does not keep the key. */
	assert_int_equal(issue(cl[0], "c3", 6, "key-2", &r, &err), RPCQ_RESOURCE_EXHAUSTED);
	assert_int_equal(issue(cl[0], "c3", 5, "key-2", &r, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	stock(cl[0], &unused, &sold);
	assert_int_equal(unused, 0);
	assert_int_equal(sold, 10);
	assert_int_equal(sql_count("SELECT last_seq FROM stream_topics WHERE topic = 'vouchers.issued'"), seq0 + 3);

	/* Bad requests. */
	assert_int_equal(issue(cl[0], "c1", 0, NULL, &r, &err), RPCQ_INVALID_ARGUMENT);
	assert_int_equal(issue(cl[0], "c1", 10001, NULL, &r, &err), RPCQ_INVALID_ARGUMENT);
	assert_int_equal(issue(cl[0], "", 1, NULL, &r, &err), RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "customer_id is required");
	assert_int_equal(issue(cl[0], "c\001", 1, NULL, &r, &err), RPCQ_INVALID_ARGUMENT);
}

/* A batch of issues, as voucher_issue_batch makes it for the issues that
 * reach one process together (how they meet is up to timing, so the batch
 * is made here by its statement): each item gets its own answer in one
 * transaction. One that asks for more than is left gets nothing and keeps
 * no key while the items after it go on; the messages take consecutive
 * seqs in item order; a key of an earlier batch is replayed, a key given up
 * by a short item can be used again. */
#define BATCH_SQL(customers, quantities, keys)                                                                \
	"CREATE TABLE batch_result AS SELECT * FROM voucher_issue_batch(" customers ", " quantities ", " keys \
	", 'vouchers.issued', 'rpcq.vouchers.VouchersIssued', (SELECT array_agg(voucher_pb_bytes(2, "         \
	"convert_to(c, 'UTF8')) ORDER BY o) FROM unnest(" customers ") WITH ORDINALITY AS u(c, o)), "         \
	"(SELECT array_agg(''::bytea) FROM unnest(" customers ")))"
#define LAST_SEQ "(SELECT last_seq FROM stream_topics WHERE topic = 'vouchers.issued')"
struct lost_issue {
	const char *prefix, *key_prefix; /* key_prefix NULL: no key */
	char customer[64], key[64];	 /* of the attempt that waited */
	rpcq_status st;
	char message[sizeof(((rpcq_error *)0)->message)];
	atomic_int done;
};

static void *lost_issue_main(void *arg)
{
	struct lost_issue *l = arg;
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	l->st = issue(cl[0], l->customer, 3, l->key_prefix ? l->key : NULL, &r, &err);
	snprintf(l->message, sizeof(l->message), "%s", l->st == RPCQ_OK ? "" : err.message);
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	atomic_store(&l->done, 1);
	return NULL;
}

/* Runs an issue whose commit waits for a synchronous standby that does not
 * exist, and terminates its backend meanwhile: the issue has committed
 * (PostgreSQL says so), but its answer never comes. rpcqd's connections
 * take the new setting when the postmaster passes the reload on, which has
 * no moment a test can see: an issue that commits before that is just an
 * issue, and the next attempt (another customer, another key) is made. */
static void issue_and_lose_the_connection(struct lost_issue *l)
{
	/* scripts/pg's clusters run with synchronous_commit off. */
	harness_sql(pg.conninfo, "ALTER SYSTEM SET synchronous_commit = on");
	harness_sql(pg.conninfo, "ALTER SYSTEM SET synchronous_standby_names = 'nosuch'");
	harness_sql(pg.conninfo, "SELECT pg_reload_conf()");
	long long killed = 0;
	pthread_t t;
	int running = 0;
	for (int attempt = 0; killed == 0 && attempt < 20; attempt++) {
		snprintf(l->customer, sizeof(l->customer), "%s-%d", l->prefix, attempt);
		snprintf(l->key, sizeof(l->key), "%s-%d", l->key_prefix ? l->key_prefix : "", attempt);
		atomic_store(&l->done, 0);
		assert_int_equal(pthread_create(&t, NULL, lost_issue_main, l), 0);
		running = 1;
		for (int64_t until = harness_now_ms() + 20000;
		     killed == 0 && !atomic_load(&l->done) && harness_now_ms() < until;) {
			harness_sleep_ms(10);
			killed = harness_sql_scalar(
				pg.conninfo, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
					     " WHERE wait_event = 'SyncRep' AND query LIKE '%FROM voucher_issue_%'");
		}
		if (killed == 0 && !atomic_load(&l->done))
			break; /* neither waited nor finished: reported below */
		pthread_join(t, NULL);
		running = 0;
	}
	harness_sql(pg.conninfo, "ALTER SYSTEM RESET synchronous_standby_names");
	harness_sql(pg.conninfo, "ALTER SYSTEM RESET synchronous_commit");
	harness_sql(pg.conninfo, "SELECT pg_reload_conf()");
	if (running)
		pthread_join(t, NULL); /* released by the reset */
	if (killed == 0)
		fail_msg("no issue for %s waited for the standby (the last: %s: %s)", l->prefix,
			 rpcq_status_name(l->st), l->message);
}

/* An issue whose connection is lost after it was sent may have committed:
 * its caller is told so, not a plain UNAVAILABLE that reads as "nothing
 * happened, try again" (which, without a key, would sell a second order). */
static void test_an_issue_whose_answer_was_lost_says_it_may_have_been_made(void **state)
{
	(void)state;
	stock_of(200);
	char sql[200];
	struct lost_issue nokey = {.prefix = "lost-nokey"};
	issue_and_lose_the_connection(&nokey);
	assert_int_equal(nokey.st, RPCQ_UNAVAILABLE);
	if (strstr(nokey.message, "which has no idempotency key, may or may not have been made") == NULL)
		fail_msg("the lost key-less issue said: %s", nokey.message);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM voucher_orders WHERE customer_id = '%s'", nokey.customer);
	assert_int_equal(sql_count(sql), 1);

	/* With a key: sent again, it returns the order that was made. */
	struct lost_issue keyed = {.prefix = "lost-key", .key_prefix = "lost"};
	issue_and_lose_the_connection(&keyed);
	assert_int_equal(keyed.st, RPCQ_UNAVAILABLE);
	if (strstr(keyed.message, "sent again with the same idempotency key, it returns the order") == NULL)
		fail_msg("the lost keyed issue said: %s", keyed.message);
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	assert_int_equal(issue(cl[1], keyed.customer, 3, keyed.key, &r, &err), RPCQ_OK);
	assert_true(r->replayed);
	assert_int_equal(r->n_barcodes, 3);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM voucher_orders WHERE customer_id = '%s'", keyed.customer);
	assert_int_equal(sql_count(sql), 1);
}

static void test_issues_in_one_batch_each_get_their_own_answer(void **state)
{
	(void)state;
	stock_of(12);
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	/* A customer id and a key with the characters an array literal
	 * quotes, through IssueVouchers (its batch's array parameters): stored
	 * as given. */
	assert_int_equal(issue(cl[0], "a \"q\", {b} \\ z", 2, "k\"3\\", &r, &err), RPCQ_OK);
	assert_string_equal(r->customer_id, "a \"q\", {b} \\ z");
	protobuf_c_message_free_unpacked(&r->base, NULL);
	char *top = top_lines(cl[1], 1);
	assert_string_equal(top, "a \"q\", {b} \\ z, 2\n");
	free(top);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_issues WHERE idempotency_key = 'k\"3\\'"), 1);

	long long seq0 = sql_count("SELECT coalesce((SELECT last_seq FROM stream_topics WHERE topic = "
				   "'vouchers.issued'), 0)");
	harness_sql(pg.conninfo, "DROP TABLE IF EXISTS batch_result");
	harness_sql(pg.conninfo, BATCH_SQL("ARRAY['a \"q\", {b} \\ z', 'c2', 'c3', 'a \"q\", {b} \\ z']",
					   "ARRAY[3, 100, 4, 2]", "ARRAY['k1', 'k2', NULL, NULL]"));
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result"), 4);
	assert_int_equal(sql_count(LAST_SEQ), seq0 + 3);
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result WHERE r_item = 1 AND r_status = 'ok'"
				   " AND cardinality(r_barcodes) = 3 AND r_seq = " LAST_SEQ " - 3 + 1"),
			 1);
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result WHERE r_item = 2 AND r_status = 'short'"
				   " AND r_available = 1 AND r_order_id IS NULL AND r_barcodes IS NULL"),
			 1);
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result WHERE r_item = 3 AND r_status = 'ok'"
				   " AND cardinality(r_barcodes) = 4 AND r_seq = " LAST_SEQ " - 3 + 2"),
			 1);
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result WHERE r_item = 4 AND r_status = 'ok'"
				   " AND cardinality(r_barcodes) = 2 AND r_seq = " LAST_SEQ " - 3 + 3"),
			 1);
	/* Every barcode sold once, each order's in ascending order with its
	 * rank, and all of it in one transaction. */
	assert_int_equal(sql_count("SELECT count(DISTINCT b) FROM batch_result, unnest(r_barcodes) b"), 9);
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result r, unnest(r.r_barcodes) WITH ORDINALITY"
				   " AS k(b, o) JOIN voucher_barcodes v ON v.barcode = k.b"
				   " WHERE v.order_id = r.r_order_id AND v.pos = k.o"),
			 9);
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result WHERE r_barcodes <> ARRAY(SELECT b FROM "
				   "unnest(r_barcodes) b ORDER BY b)"),
			 0);
	assert_int_equal(sql_count("SELECT count(DISTINCT o.created_at) FROM voucher_orders o JOIN batch_result r"
				   " ON r.r_order_id = o.order_id"),
			 1);
	assert_int_equal(sql_count("SELECT tickets FROM voucher_customers WHERE customer_id = 'a \"q\", {b} \\ z'"), 7);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_issues"), 2);
	assert_int_equal(sql_count("SELECT sum(unused) FROM voucher_stock"), 1);
	assert_int_equal(sql_count("SELECT sum(sold) FROM voucher_stock"), 11);
	/* The messages: item order, each naming its order and customer. */
	assert_int_equal(sql_count("SELECT count(*) FROM stream_log l JOIN batch_result r ON l.seq = r.r_seq"
				   " WHERE l.topic = 'vouchers.issued' AND position(convert_to(r.r_order_id, 'UTF8')"
				   " IN l.payload) = 3"),
			 3);
	Rpcq__ReplayResponse *rep = replay_issued(cl[1], (uint64_t)seq0);
	assert_int_equal(rep->n_messages, 3);
	Rpcq__Vouchers__VouchersIssued *ev = issued_message(rep, 2);
	assert_string_equal(ev->customer_id, "a \"q\", {b} \\ z");
	assert_int_equal(ev->n_barcodes, 2);
	protobuf_c_message_free_unpacked(&ev->base, NULL);
	protobuf_c_message_free_unpacked(&rep->base, NULL);

	/* The next batch: k1 replayed, k2 (given up) used again for the last
	 * barcode, and nothing left for a third. */
	harness_sql(pg.conninfo, "DROP TABLE batch_result");
	harness_sql(pg.conninfo,
		    BATCH_SQL("ARRAY['a \"q\", {b} \\ z', 'c9', 'c3']", "ARRAY[3, 1, 1]", "ARRAY['k1', 'k2', NULL]"));
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result b JOIN voucher_issues k ON k.idempotency_key ="
				   " 'k1' WHERE b.r_item = 1 AND b.r_status = 'replayed' AND b.r_order_id = k.order_id"
				   " AND b.r_barcodes = k.barcodes AND b.r_seq IS NULL"),
			 1);
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result WHERE r_item = 2 AND r_status = 'ok'"
				   " AND cardinality(r_barcodes) = 1"),
			 1);
	assert_int_equal(sql_count("SELECT count(*) FROM batch_result WHERE r_item = 3 AND r_status = 'short'"
				   " AND r_available = 0"),
			 1);
	assert_int_equal(sql_count("SELECT sum(unused) FROM voucher_stock"), 0);
	harness_sql(pg.conninfo, "DROP TABLE batch_result");
}

/* Workers waiting for a batch do not hold up other calls. The test holds
 * the topic's row, so the first issue's statement waits in the database;
 * the issues behind it wait for that batch and would occupy every worker
 * (4, the default) if spare threads did not take calls in their stead
 * (server_wait_begin): a report is answered meanwhile. Then every issue
 * goes through. */
#define HELD_ISSUES 8

typedef struct held_issue {
	pthread_t thread;
	int index;
	rpcq_status st;
	char message[sizeof(((rpcq_error *)0)->message)];
} held_issue;

static void *held_issue_thread(void *arg)
{
	held_issue *h = arg;
	char customer[16];
	snprintf(customer, sizeof(customer), "held%d", h->index);
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	h->st = issue(cl[0], customer, 1, NULL, &r, &err);
	if (h->st != RPCQ_OK)
		snprintf(h->message, sizeof(h->message), "%s", err.message);
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return NULL;
}

static void test_calls_are_answered_while_workers_wait_for_a_batch(void **state)
{
	(void)state;
	stock_of(20);
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	/* The topic's row exists from here on. */
	assert_int_equal(issue(cl[0], "first", 1, NULL, &r, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	PGconn *db = hold_topic_row();

	held_issue held[HELD_ISSUES];
	memset(held, 0, sizeof(held));
	for (int i = 0; i < HELD_ISSUES; i++) {
		held[i].index = i;
		if (pthread_create(&held[i].thread, NULL, held_issue_thread, &held[i]) != 0)
			fail_msg("pthread_create");
	}
	/* The first batch waits for the topic's row. */
	int64_t until = harness_now_ms() + 30000;
	while (sql_count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
			 " AND query LIKE '%voucher_issue%'") == 0) {
		if (harness_now_ms() > until)
			fail_msg("no issue waited for the topic's row");
		harness_sleep_ms(10);
	}
	/* Answered while the issues wait: nothing of them is committed. */
	uint64_t unused;
	stock(cl[0], &unused, NULL);
	assert_int_equal(unused, 19);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_orders"), 1);

	release_topic_row(db);
	for (int i = 0; i < HELD_ISSUES; i++) {
		pthread_join(held[i].thread, NULL);
		if (held[i].st != RPCQ_OK)
			fail_msg("issue %d: %s: %s", i, rpcq_status_name(held[i].st), held[i].message);
	}
	stock(cl[1], &unused, NULL);
	assert_int_equal(unused, 20 - 1 - HELD_ISSUES);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_orders"), 1 + HELD_ISSUES);
}

/* Two calls with one idempotency key in flight at once: the first's
 * transaction is held at the topic's row by the test after it stored the
 * key, and the second is sent meanwhile. On the other process its
 * statement waits in the database for the first's key (seen as a second
 * lock wait); on the same process it waits behind the first's batch (two
 * calls with one key never share one), seen as two calls in flight in the
 * process's /metrics. Released, both answer the first issue: one order, its
 * barcodes, nothing more assigned, one message. */
typedef struct keyed_issue {
	pthread_t thread;
	rpcq_client *c;
	rpcq_status st;
	char message[sizeof(((rpcq_error *)0)->message)];
	Rpcq__Vouchers__IssueVouchersResponse *r;
} keyed_issue;

static void *keyed_issue_thread(void *arg)
{
	keyed_issue *k = arg;
	rpcq_error err;
	k->st = issue(k->c, "racer", 3, "race-key", &k->r, &err);
	if (k->st != RPCQ_OK)
		snprintf(k->message, sizeof(k->message), "%s", err.message);
	return NULL;
}

static void keyed_issue_start(keyed_issue *k, int process)
{
	memset(k, 0, sizeof(*k));
	k->c = cl[process];
	if (pthread_create(&k->thread, NULL, keyed_issue_thread, k) != 0)
		fail_msg("pthread_create");
}

/* rpcq_calls_in_flight of srv[i]'s /metrics. */
static long long calls_in_flight(int i)
{
	char url[192];
	snprintf(url, sizeof(url), "%s/metrics", srv[i].http_url);
	harness_http_reply r;
	if (harness_http("GET", url, NULL, NULL, 0, &r) != 0 || r.status != 200)
		fail_msg("GET %s: %ld %s", url, r.status, r.error);
	const char *p = strstr(r.body, "\nrpcq_calls_in_flight ");
	if (p == NULL)
		fail_msg("no rpcq_calls_in_flight in %s", url);
	long long v = strtoll(p + strlen("\nrpcq_calls_in_flight "), NULL, 10);
	harness_http_reply_free(&r);
	return v;
}

/* Issues waiting for a lock in the database. */
static long long issues_waiting(void)
{
	return sql_count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
			 " AND query LIKE '%voucher_issue%'");
}

static void wait_until(const char *what, int (*cond)(void))
{
	int64_t until = harness_now_ms() + 30000;
	while (!cond()) {
		if (harness_now_ms() > until)
			fail_msg("not within 30 s: %s", what);
		harness_sleep_ms(10);
	}
}

static int one_issue_waits(void)
{
	return issues_waiting() >= 1;
}

static int two_issues_wait(void)
{
	return issues_waiting() >= 2;
}

static int two_calls_in_flight_on_0(void)
{
	return calls_in_flight(0) >= 2;
}

static void race_one_key(int second)
{
	stock_of(20);
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	/* The topic's row exists from here on. */
	assert_int_equal(issue(cl[0], "first", 1, NULL, &r, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	long long seq0 = sql_count(LAST_SEQ);

	PGconn *db = hold_topic_row();

	keyed_issue a, b;
	keyed_issue_start(&a, 0);
	wait_until("the first issue waits for the topic's row", one_issue_waits);
	/* Its key is stored, not committed: another transaction's insert of the
	 * key waits for it. */
	assert_int_equal(calls_in_flight(0), 1);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_issues WHERE idempotency_key = 'race-key'"), 0);
	keyed_issue_start(&b, second);
	if (second == 1)
		wait_until("the second issue waits for the first's key", two_issues_wait);
	else
		wait_until("two calls in flight on the process", two_calls_in_flight_on_0);
	/* Neither has answered: both are in flight. */
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_orders WHERE customer_id = 'racer'"), 0);

	release_topic_row(db);
	pthread_join(a.thread, NULL);
	pthread_join(b.thread, NULL);
	if (a.st != RPCQ_OK || b.st != RPCQ_OK)
		fail_msg("first: %s %s; second: %s %s", rpcq_status_name(a.st), a.message, rpcq_status_name(b.st),
			 b.message);

	/* The same answer, the second a replay of the first. */
	assert_false(a.r->replayed);
	assert_true(b.r->replayed);
	assert_string_equal(b.r->order_id, a.r->order_id);
	assert_int_equal(a.r->n_barcodes, 3);
	assert_int_equal(b.r->n_barcodes, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(b.r->barcodes[i], a.r->barcodes[i]);

	/* Assigned once: one order of three barcodes, one key, one message. */
	char q[256];
	snprintf(q, sizeof(q), "SELECT count(*) FROM voucher_barcodes WHERE order_id = '%s'", a.r->order_id);
	assert_int_equal(sql_count(q), 3);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_barcodes WHERE order_id IS NOT NULL"), 1 + 3);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_orders WHERE customer_id = 'racer'"), 1);
	assert_int_equal(sql_count("SELECT tickets FROM voucher_customers WHERE customer_id = 'racer'"), 3);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_issues WHERE idempotency_key = 'race-key'"), 1);
	uint64_t unused, sold;
	stock(cl[second], &unused, &sold);
	assert_int_equal(unused, 20 - 1 - 3);
	assert_int_equal(sold, 1 + 3);
	assert_int_equal(sql_count(LAST_SEQ), seq0 + 1);
	Rpcq__ReplayResponse *rep = replay_issued(cl[1], (uint64_t)seq0);
	assert_int_equal(rep->n_messages, 1);
	Rpcq__Vouchers__VouchersIssued *ev = issued_message(rep, 0);
	assert_string_equal(ev->order_id, a.r->order_id);
	assert_string_equal(ev->customer_id, "racer");
	assert_int_equal(ev->n_barcodes, 3);
	protobuf_c_message_free_unpacked(&ev->base, NULL);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	protobuf_c_message_free_unpacked(&a.r->base, NULL);
	protobuf_c_message_free_unpacked(&b.r->base, NULL);
}

static void test_two_calls_with_one_key_in_flight_at_once_on_two_processes_issue_once(void **state)
{
	(void)state;
	race_one_key(1);
}

static void test_two_calls_with_one_key_in_flight_at_once_on_one_process_issue_once(void **state)
{
	(void)state;
	race_one_key(0);
}

/* The claim starts at a random claim point and wraps around to the lowest
 * barcode: wherever the points lie (past every unused barcode, in the
 * middle, or none at all), every unused barcode is found, in barcode order. */
static void test_claims_find_every_unused_barcode_wherever_they_start(void **state)
{
	(void)state;
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	char want[16];

	/* One point past every barcode: the whole stock, exactly the quantity. */
	stock_of(10);
	harness_sql(pg.conninfo,
		    "DELETE FROM voucher_claim_points; INSERT INTO voucher_claim_points VALUES (0, 'zzzz')");
	assert_int_equal(issue(cl[0], "c1", 10, NULL, &r, &err), RPCQ_OK);
	assert_int_equal(r->n_barcodes, 10);
	for (int i = 0; i < 10; i++) {
		snprintf(want, sizeof(want), "s%04d", i + 1);
		assert_string_equal(r->barcodes[i], want);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	assert_int_equal(issue(cl[1], "c1", 1, NULL, &r, &err), RPCQ_RESOURCE_EXHAUSTED);
	assert_string_equal(err.message, "1 barcode(s) asked, 0 unused");

	/* A point in the middle: what lies above it, then the lowest below it,
	 * in barcode order, and the order's barcodes in the same order. */
	harness_sql(pg.conninfo, "TRUNCATE voucher_barcodes, voucher_orders, voucher_customers;"
				 " UPDATE voucher_stock SET unused = 0, sold = 0");
	stock_of(10);
	harness_sql(pg.conninfo,
		    "DELETE FROM voucher_claim_points; INSERT INTO voucher_claim_points VALUES (0, 's0007')");
	assert_int_equal(issue(cl[0], "c2", 6, NULL, &r, &err), RPCQ_OK);
	assert_int_equal(r->n_barcodes, 6);
	static const char *const expect[] = {"s0001", "s0002", "s0007", "s0008", "s0009", "s0010"};
	for (int i = 0; i < 6; i++)
		assert_string_equal(r->barcodes[i], expect[i]);
	char line[256];
	snprintf(line, sizeof(line), "c2, %s, [s0001, s0002, s0007, s0008, s0009, s0010]\n", r->order_id);
	char *lines = voucher_lines(cl[1], "c2", 10);
	assert_string_equal(lines, line);
	free(lines);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	/* No points at all: from the lowest. */
	harness_sql(pg.conninfo, "DELETE FROM voucher_claim_points");
	assert_int_equal(issue(cl[1], "c3", 4, "k-nopoints", &r, &err), RPCQ_OK);
	static const char *const rest[] = {"s0003", "s0004", "s0005", "s0006"};
	for (int i = 0; i < 4; i++)
		assert_string_equal(r->barcodes[i], rest[i]);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	uint64_t unused, sold;
	stock(cl[0], &unused, &sold);
	assert_int_equal(unused, 0);
	assert_int_equal(sold, 10);

	/* An import puts points back, spread over its unused barcodes. */
	harness_sql(pg.conninfo, "TRUNCATE voucher_barcodes, voucher_orders, voucher_customers;"
				 " UPDATE voucher_stock SET unused = 0, sold = 0");
	stock_of(1000);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_claim_points"), 256);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_claim_points WHERE pos = 0 AND barcode = 's0001'"), 1);
	assert_int_equal(sql_count("SELECT count(DISTINCT barcode) FROM voucher_claim_points p JOIN voucher_barcodes b"
				   " USING (barcode) WHERE b.order_id IS NULL"),
			 256);
}

/* VouchersIssued is packed partly by rpcqd and partly by the statement: the
 * stored payload is byte for byte protobuf-c's packing of the message, its
 * seq is the reply's, and long fields get multi-byte lengths. */
static void test_the_issued_message_is_what_protobuf_c_packs(void **state)
{
	(void)state;
	stock_of(5);
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	/* 64 bytes of UTF-8 (two-byte characters), and a 128-byte key. */
	char customer[65], key[129];
	for (int i = 0; i < 32; i++)
		memcpy(customer + 2 * i, "\xc3\xa7", 2);
	customer[64] = '\0';
	memset(key, 'k', 128);
	key[128] = '\0';
	assert_int_equal(issue(cl[0], customer, 2, key, &r, &err), RPCQ_OK);
	assert_true(r->seq > 0);
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM stream_log WHERE topic = 'vouchers.issued' AND seq = %llu",
		 (unsigned long long)r->seq);
	assert_int_equal(sql_count(sql), 1);

	Rpcq__ReplayResponse *rep = replay_issued(cl[1], r->seq - 1);
	assert_true(rep->n_messages >= 1);
	assert_int_equal(rep->messages[0]->seq, r->seq);
	const ProtobufCBinaryData *payload = &rep->messages[0]->payload;
	Rpcq__Vouchers__VouchersIssued *ev = rpcq__vouchers__vouchers_issued__unpack(NULL, payload->len, payload->data);
	assert_non_null(ev);
	assert_string_equal(ev->order_id, r->order_id);
	assert_string_equal(ev->customer_id, customer);
	assert_string_equal(ev->idempotency_key, key);
	assert_int_equal(ev->n_barcodes, 2);
	assert_string_equal(ev->barcodes[0], r->barcodes[0]);
	assert_string_equal(ev->barcodes[1], r->barcodes[1]);
	assert_true(ev->issued_at_ms > 0);
	size_t len = protobuf_c_message_get_packed_size(&ev->base);
	uint8_t *again = malloc(len);
	assert_non_null(again);
	assert_int_equal(protobuf_c_message_pack(&ev->base, again), len);
	assert_int_equal(len, payload->len);
	assert_memory_equal(again, payload->data, len);
	free(again);
	protobuf_c_message_free_unpacked(&ev->base, NULL);
	protobuf_c_message_free_unpacked(&rep->base, NULL);

	/* The replay of the key answers the first result; its seq is not kept. */
	Rpcq__Vouchers__IssueVouchersResponse *r2 = NULL;
	assert_int_equal(issue(cl[1], customer, 2, key, &r2, &err), RPCQ_OK);
	assert_true(r2->replayed);
	assert_string_equal(r2->order_id, r->order_id);
	protobuf_c_message_free_unpacked(&r2->base, NULL);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	/* Lengths of 128 bytes and more take two varint bytes, of 16384 three. */
	assert_int_equal(
		sql_count("SELECT count(*) WHERE voucher_pb_bytes(1, convert_to('ab', 'UTF8')) = '\\x0a026162'"), 1);
	assert_int_equal(
		sql_count("SELECT count(*) WHERE substr(voucher_pb_bytes(3, convert_to(repeat('a', 200), 'UTF8')),"
			  " 1, 3) = '\\x1ac801'"),
		1);
	assert_int_equal(
		sql_count("SELECT count(*) WHERE substr(voucher_pb_bytes(3, convert_to(repeat('a', 20000), 'UTF8')),"
			  " 1, 4) = '\\x1aa09c01'"),
		1);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

/* Waits (at most 20 s) for a NOTIFY rpcq_stream on db from another
 * session; 1 when one came. */
static int notified(PGconn *db)
{
	int sock = PQsocket(db);
	for (int64_t deadline = harness_now_ms() + 20000; harness_now_ms() < deadline;) {
		assert_int_equal(PQconsumeInput(db), 1);
		PGnotify *nt;
		int got = 0;
		while ((nt = PQnotifies(db)) != NULL) {
			got |= strcmp(nt->relname, "rpcq_stream") == 0 && nt->be_pid != PQbackendPID(db);
			PQfreemem(nt);
		}
		if (got)
			return 1;
		fd_set r;
		FD_ZERO(&r);
		FD_SET(sock, &r);
		struct timeval tv = {0, 100 * 1000};
		select(sock + 1, &r, NULL, NULL, &tv);
	}
	return 0;
}

/* An issue's append makes no NOTIFY: the issuing process's publisher
 * notifies the others after the commit, so they publish it without waiting
 * for their poll (500 ms). What the test sees: after each issue through
 * one process, a NOTIFY of the stream's channel reaches a session that
 * listens, and the other process's subscriber gets the message. How soon
 * is printed, not asserted (bench/README.md measures it). */
static void test_the_other_process_publishes_an_issue_without_waiting_for_its_poll(void **state)
{
	(void)state;
	stock_of(20);
	const char *urls[] = {srv[1].pub_url, NULL};
	rpcq_subscribe_options o = {.publish_urls = urls};
	const char *prefixes[] = {"vouchers.issued"};
	rpcq_subscription *s = NULL;
	rpcq_error err;
	if (rpcq_subscription_create(&s, cl[1], prefixes, 1, &o, &err) != RPCQ_OK)
		fail_msg("subscribe: %s", err.message);
	rpcq_stream_message *m = NULL;
	assert_int_equal(rpcq_subscription_next(s, 300, &m, &err), RPCQ_OK); /* connected, quiet */
	assert_null(m);
	PGconn *listen = PQconnectdb(pg.conninfo);
	assert_int_equal(PQstatus(listen), CONNECTION_OK);
	PGresult *res = PQexec(listen, "LISTEN rpcq_stream");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	long long took[10];
	for (int i = 0; i < 10; i++) {
		Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
		long long t0 = harness_now_ms();
		assert_int_equal(issue(cl[0], "sub", 1, NULL, &r, &err), RPCQ_OK);
		for (;;) {
			rpcq_status st = rpcq_subscription_next(s, 20000, &m, &err);
			if (st != RPCQ_OK || m == NULL)
				fail_msg("issue %d: no message within 20 s (%s)", i,
					 st == RPCQ_OK ? "none" : err.message);
			int mine = m->seq == r->seq;
			rpcq_stream_message_free(m);
			if (mine)
				break;
		}
		took[i] = harness_now_ms() - t0;
		if (!notified(listen))
			fail_msg("issue %d: no NOTIFY rpcq_stream from the issuing process within 20 s", i);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	PQfinish(listen);
	rpcq_subscription_destroy(s);
	qsort(took, 10, sizeof(took[0]), cmp_ll);
	print_message("issue to the other process's subscriber: median %lld ms, max %lld ms\n", took[5], took[9]);
}

/* ---- the storm ---- */

#define STORM_CALLERS 32
#define STORM_STOCK 900
#define STORM_MAX_CALLS 1000

typedef struct storm_result {
	char order[24];
	char key[32];
	int n;
	char codes[3][8];
	int replayed;
} storm_result;

typedef struct storm_caller {
	pthread_t thread;
	int index;
	storm_result res[STORM_MAX_CALLS];
	int nres;
	int calls; /* made: each is answered OK (res), RESOURCE_EXHAUSTED or a failure */
	int exhausted;
	int failures;
	char failure[600];
} storm_caller;

static storm_caller callers[STORM_CALLERS];

static void *storm_thread(void *arg)
{
	storm_caller *me = arg;
	rpcq_client *c = cl[me->index % 2];
	char customer[16];
	snprintf(customer, sizeof(customer), "cust%d", me->index % 7);
	for (int i = 0; me->nres < STORM_MAX_CALLS; i++) {
		uint32_t qty = 1 + (uint32_t)((i + me->index) % 3);
		/* Pairs of callers (2k, 2k+1, on the two processes) share the key of
		 * every fourth call, and so race with it (same customer, same
		 * quantity). */
		char key[32] = "";
		if (i % 4 == 0) {
			snprintf(key, sizeof(key), "storm-%d-%d", me->index / 2, i);
			qty = 1 + (uint32_t)(i % 3);
		}
		Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
		rpcq_error err;
		me->calls++;
		rpcq_status st = issue(c, key[0] ? "shared" : customer, qty, key, &r, &err);
		if (st == RPCQ_RESOURCE_EXHAUSTED) {
			me->exhausted++;
			if (qty == 1)
				break; /* the stock is empty: it never grows back */
			continue;
		}
		if (st != RPCQ_OK) {
			me->failures++;
			snprintf(me->failure, sizeof(me->failure), "%s: %s", rpcq_status_name(st), err.message);
			continue;
		}
		storm_result *x = &me->res[me->nres++];
		snprintf(x->order, sizeof(x->order), "%s", r->order_id);
		snprintf(x->key, sizeof(x->key), "%s", key);
		x->n = (int)r->n_barcodes;
		x->replayed = r->replayed;
		for (int k = 0; k < x->n && k < 3; k++)
			snprintf(x->codes[k], sizeof(x->codes[k]), "%s", r->barcodes[k]);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_a_storm_of_32_callers_on_two_processes_never_sells_a_barcode_twice(void **state)
{
	(void)state;
	stock_of(STORM_STOCK);
	long long seq0 = sql_count("SELECT coalesce((SELECT last_seq FROM stream_topics WHERE topic = "
				   "'vouchers.issued'), 0)");
	memset(callers, 0, sizeof(callers));
	for (int i = 0; i < STORM_CALLERS; i++) {
		callers[i].index = i;
		if (pthread_create(&callers[i].thread, NULL, storm_thread, &callers[i]) != 0)
			fail_msg("pthread_create");
	}
	for (int i = 0; i < STORM_CALLERS; i++)
		pthread_join(callers[i].thread, NULL);

	/* Every barcode handed out, once, to one order; keyed replays give the
	 * first result. */
	static const char *codes[STORM_STOCK + 1];
	static const char *orders[STORM_CALLERS * STORM_MAX_CALLS];
	int ncodes = 0, norders = 0, exhausted = 0, replayed = 0, calls = 0, answered = 0;
	for (int i = 0; i < STORM_CALLERS; i++) {
		if (callers[i].failures)
			fail_msg("caller %d: %d failure(s), last: %s", i, callers[i].failures, callers[i].failure);
		/* Every call accounted for: a success or RESOURCE_EXHAUSTED. */
		assert_int_equal(callers[i].nres + callers[i].exhausted, callers[i].calls);
		calls += callers[i].calls;
		answered += callers[i].nres + callers[i].exhausted;
		exhausted += callers[i].exhausted;
		for (int k = 0; k < callers[i].nres; k++) {
			const storm_result *x = &callers[i].res[k];
			if (x->replayed) {
				replayed++;
				/* The partner holds the first result of the same key. */
				const storm_caller *p = &callers[i ^ 1];
				int found = 0;
				for (int q = 0; q < p->nres; q++)
					if (strcmp(p->res[q].key, x->key) == 0) {
						assert_string_equal(p->res[q].order, x->order);
						assert_int_equal(p->res[q].n, x->n);
						for (int j = 0; j < x->n; j++)
							assert_string_equal(p->res[q].codes[j], x->codes[j]);
						assert_false(p->res[q].replayed);
						found = 1;
					}
				assert_true(found);
				continue;
			}
			orders[norders++] = x->order;
			for (int j = 0; j < x->n; j++) {
				assert_true(ncodes < STORM_STOCK);
				codes[ncodes++] = x->codes[j];
			}
		}
	}
	qsort(codes, (size_t)ncodes, sizeof(*codes), cmp_str);
	for (int i = 1; i < ncodes; i++)
		if (strcmp(codes[i - 1], codes[i]) == 0)
			fail_msg("barcode %s was sold twice", codes[i]);
	qsort(orders, (size_t)norders, sizeof(*orders), cmp_str);
	for (int i = 1; i < norders; i++)
		assert_string_not_equal(orders[i - 1], orders[i]);
	print_message("storm: %d calls: %d issues, %d replays of a raced key, %d RESOURCE_EXHAUSTED\n", calls, norders,
		      replayed, exhausted);
	assert_int_equal(norders + replayed + exhausted, calls);
	assert_int_equal(answered, calls);
	/* Every caller ended on an empty stock, so all of it was sold. */
	assert_int_equal(ncodes, STORM_STOCK);
	assert_true(exhausted >= STORM_CALLERS);

	/* The database agrees, and never went below zero. */
	uint64_t unused, sold;
	stock(cl[0], &unused, &sold);
	assert_int_equal(unused, 0);
	assert_int_equal(sold, STORM_STOCK);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_barcodes WHERE order_id IS NULL"), 0);
	assert_int_equal(sql_count("SELECT count(DISTINCT order_id) FROM voucher_barcodes"), norders);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_orders"), norders);
	assert_int_equal(sql_count("SELECT sum(tickets) FROM voucher_customers"), STORM_STOCK);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_issues WHERE order_id = ''"), 0);
	assert_int_equal(sort_keys_wrong(), 0);
	assert_int_equal(sql_count("SELECT last_seq FROM stream_topics WHERE topic = 'vouchers.issued'"),
			 seq0 + norders);
	/* What each caller got is what the stock says its order holds. */
	for (int i = 0; i < STORM_CALLERS; i += 5)
		for (int k = 0; k < callers[i].nres; k++) {
			const storm_result *x = &callers[i].res[k];
			char sql[200];
			snprintf(sql, sizeof(sql),
				 "SELECT count(*) FROM voucher_barcodes WHERE order_id = '%s' AND barcode IN ('%s', "
				 "'%s', "
				 "'%s')",
				 x->order, x->codes[0], x->n > 1 ? x->codes[1] : "", x->n > 2 ? x->codes[2] : "");
			assert_int_equal(sql_count(sql), x->n);
		}
}

/* ---- imports and issues at the same time ---- */

/* A connection of the test's own in an open transaction, after lock_sql
 * (may be NULL): what it locks makes a server wait until tx_end. */
static PGconn *tx_begin(const char *lock_sql)
{
	PGconn *db = PQconnectdb(pg.conninfo);
	assert_int_equal(PQstatus(db), CONNECTION_OK);
	PGresult *res = PQexec(db, "BEGIN");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	if (lock_sql != NULL) {
		res = PQexec(db, lock_sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
			fail_msg("%s: %s", lock_sql, PQerrorMessage(db));
		PQclear(res);
	}
	return db;
}

/* Ends and closes what tx_begin opened (NULL: a no-op). */
static void tx_end(PGconn *db, const char *how)
{
	if (db == NULL)
		return;
	PGresult *res = PQexec(db, how);
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	PQfinish(db);
}

/* Backends waiting for a lock that backend pid holds. */
static long long blocked_by(int pid)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE %d = ANY (pg_blocking_pids(pid))", pid);
	return sql_count(sql);
}

/* The backend waiting for a lock that backend pid holds (0: none). */
static int waiter_of(int pid)
{
	char sql[160];
	snprintf(sql, sizeof(sql),
		 "SELECT coalesce(min(pid), 0) FROM pg_stat_activity WHERE %d = ANY (pg_blocking_pids(pid))", pid);
	return (int)sql_count(sql);
}

/* A call on a thread of its own, answered once done is set. */
typedef struct async_call {
	pthread_t thread;
	rpcq_client *c;
	const char *import_id; /* FinishImport of it, or IssueVouchers: */
	const char *customer;
	uint32_t quantity;
	rpcq_status st;
	char message[sizeof(((rpcq_error *)0)->message)];
	Rpcq__Vouchers__Import *imp;
	Rpcq__Vouchers__IssueVouchersResponse *issued;
	volatile int done;
} async_call;

static void *async_call_thread(void *arg)
{
	async_call *a = arg;
	rpcq_error err;
	if (a->import_id != NULL)
		a->st = finish(a->c, a->import_id, &a->imp, &err);
	else
		a->st = issue(a->c, a->customer, a->quantity, NULL, &a->issued, &err);
	if (a->st != RPCQ_OK)
		snprintf(a->message, sizeof(a->message), "%s", err.message);
	__atomic_store_n(&a->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void async_start(async_call *a)
{
	if (pthread_create(&a->thread, NULL, async_call_thread, a) != 0)
		fail_msg("pthread_create");
}

static int async_done(const async_call *a)
{
	return __atomic_load_n(&a->done, __ATOMIC_SEQ_CST);
}

static void async_join_ok(async_call *a, const char *what)
{
	pthread_join(a->thread, NULL);
	if (a->st != RPCQ_OK)
		fail_msg("%s: %s: %s", what, rpcq_status_name(a->st), a->message);
}

/* An import started and both files sent, not finished: its id (malloc'd). */
static char *import_sent(const char *orders, const char *barcodes)
{
	Rpcq__Vouchers__Import *imp = start_import(cl[1], NULL);
	send_file(cl[1], imp->import_id, RPCQ__VOUCHERS__FILE__ORDERS, orders, 0, strlen(orders), 1 << 20);
	send_file(cl[1], imp->import_id, RPCQ__VOUCHERS__FILE__BARCODES, barcodes, 0, strlen(barcodes), 1 << 20);
	char *id = strdup(imp->import_id);
	import_free(imp);
	return id;
}

/* Every customer's tickets are the barcodes its orders hold, and the stock
 * counts what the barcodes say. */
static void expect_counts_add_up(void)
{
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_customers c WHERE tickets <> (SELECT count(*)"
				   " FROM voucher_barcodes b JOIN voucher_orders o USING (order_id)"
				   " WHERE o.customer_id = c.customer_id)"),
			 0);
	assert_int_equal(sql_count("SELECT count(DISTINCT o.customer_id) FROM voucher_barcodes b JOIN voucher_orders o"
				   " USING (order_id) WHERE o.customer_id NOT IN (SELECT customer_id FROM "
				   "voucher_customers)"),
			 0);
	uint64_t unused, sold;
	stock(cl[0], &unused, &sold);
	assert_int_equal(unused, sql_count("SELECT count(*) FROM voucher_barcodes WHERE order_id IS NULL"));
	assert_int_equal(sold, sql_count("SELECT count(*) FROM voucher_barcodes WHERE order_id IS NOT NULL"));
	assert_int_equal(sort_keys_wrong(), 0);
}

/* IssueVouchers for the customers an import adds tickets to, while that
 * import applies: the test holds the import in its barcode writes (a new
 * barcode of its file, inserted and not committed by the test). The import
 * takes the customers' rows only after those, so every issue is answered
 * meanwhile, none waits for the import (each would, and a batch of two of
 * them could deadlock with it, if the import held those rows from its
 * sales of the stock's barcodes on); released, the import applies, and
 * nothing is sold twice. */
#define CONCURRENT_ISSUES 8
static void test_issues_for_the_customers_of_an_import_go_on_while_it_applies(void **state)
{
	(void)state;
	char barcodes[2048];
	size_t len = (size_t)snprintf(barcodes, sizeof(barcodes), "barcode,order_id\na01,1\na02,2\na03,3\n");
	for (int i = 1; i <= 40; i++)
		len += (size_t)snprintf(barcodes + len, sizeof(barcodes) - len, "s%02d,\n", i);
	import_free(import_texts(cl[0], "order_id,customer_id\n1,c1\n2,c2\n3,c3\n", barcodes, 1 << 20));
	char *id = import_sent("order_id,customer_id\n1,c1\n2,c2\n3,c3\n4,c4\n",
			       "barcode,order_id\ns01,1\ns02,1\ns03,2\ns04,2\ns05,3\ns06,3\nn1,4\nhold,1\nn2,\n");

	PGconn *hold = tx_begin("INSERT INTO voucher_barcodes (barcode, order_id, pos) VALUES ('hold', NULL, 0)");
	async_call fin = {.c = cl[0], .import_id = id};
	async_start(&fin);
	while (blocked_by(PQbackendPID(hold)) == 0 && !async_done(&fin))
		harness_sleep_ms(10);
	int importer = waiter_of(PQbackendPID(hold));

	async_call calls[CONCURRENT_ISSUES];
	static const char *const customers[] = {"c1", "c2", "c3", "c4"};
	memset(calls, 0, sizeof(calls));
	for (int i = 0; i < CONCURRENT_ISSUES; i++) {
		calls[i].c = cl[i % 2];
		calls[i].customer = customers[i % 4];
		calls[i].quantity = 2;
		async_start(&calls[i]);
	}
	/* Until every issue is answered, or one waits for the import. */
	int answered = 0;
	long long waiting = 0;
	while (importer != 0 && answered < CONCURRENT_ISSUES && (waiting = blocked_by(importer)) == 0) {
		answered = 0;
		for (int i = 0; i < CONCURRENT_ISSUES; i++)
			answered += async_done(&calls[i]);
		harness_sleep_ms(10);
	}
	int import_done_early = async_done(&fin);
	tx_end(hold, "ROLLBACK");
	for (int i = 0; i < CONCURRENT_ISSUES; i++)
		async_join_ok(&calls[i], "IssueVouchers during the import");
	async_join_ok(&fin, "FinishImport");
	assert_false(import_done_early);
	assert_true(importer != 0);
	if (waiting > 0)
		fail_msg("%lld issue(s) waited for the import (it held their customers' rows)", waiting);

	const Rpcq__Vouchers__ImportCounts *k = fin.imp->counts;
	assert_int_equal(k->orders_added, 1);
	assert_int_equal(k->orders_unchanged, 3);
	assert_int_equal(k->barcodes_sold, 6);
	assert_int_equal(k->barcodes_added, 3);
	assert_int_equal(k->barcodes_unchanged, 0);
	assert_int_equal(k->barcodes_rejected, 0);
	assert_int_equal(fin.imp->rejections, 0);
	/* The issues took none of the import's barcodes, and no barcode twice. */
	static const char *codes[CONCURRENT_ISSUES * 2];
	int n = 0;
	for (int i = 0; i < CONCURRENT_ISSUES; i++) {
		assert_int_equal(calls[i].issued->n_barcodes, 2);
		for (size_t j = 0; j < 2; j++) {
			const char *b = calls[i].issued->barcodes[j];
			assert_true(b[0] == 's' && strcmp(b, "s06") > 0);
			codes[n++] = b;
		}
	}
	qsort(codes, (size_t)n, sizeof(*codes), cmp_str);
	for (int i = 1; i < n; i++)
		if (strcmp(codes[i - 1], codes[i]) == 0)
			fail_msg("barcode %s was sold twice", codes[i]);
	char *top = top_lines(cl[1], 10);
	assert_string_equal(top, "c1, 8\nc2, 7\nc3, 7\nc4, 5\n");
	uint64_t unused, sold;
	stock(cl[1], &unused, &sold);
	assert_int_equal(unused, 19);
	assert_int_equal(sold, 27);
	expect_counts_add_up();
	free(top);
	for (int i = 0; i < CONCURRENT_ISSUES; i++)
		protobuf_c_message_free_unpacked(&calls[i].issued->base, NULL);
	import_free(fin.imp);
	free(id);
}

/* A deadlock that aborts FinishImport's transaction is not the caller's
 * business: the server runs the transaction again. The test makes one: it
 * holds the import in its barcode writes (as above), holds the customer's
 * row of tickets in a second transaction, which then waits for a barcode
 * the import has sold; released, the import waits for that customer's row.
 * The test's transaction never looks for deadlocks (deadlock_timeout), so
 * the import finds it and is aborted; run again, it applies once. */
static void test_an_import_aborted_by_a_deadlock_runs_again_and_applies_once(void **state)
{
	(void)state;
	import_free(import_texts(cl[0], "order_id,customer_id\n1,c1\n", "barcode,order_id\nX,\nW,\nY,1\n", 1 << 20));
	char *id = import_sent("order_id,customer_id\n1,c1\n", "barcode,order_id\nX,1\nhold,1\n");

	PGconn *hold = tx_begin("INSERT INTO voucher_barcodes (barcode, order_id, pos) VALUES ('hold', NULL, 0)");
	PGconn *tickets = tx_begin("SET LOCAL deadlock_timeout = '1h'");
	PGresult *res = PQexec(tickets, "SELECT 1 FROM voucher_customers WHERE customer_id = 'c1' FOR UPDATE");
	assert_int_equal(PQntuples(res), 1);
	PQclear(res);
	async_call fin = {.c = cl[0], .import_id = id};
	async_start(&fin);
	/* The import waits for the new barcode, not for the customer's row. */
	while (blocked_by(PQbackendPID(hold)) == 0 && blocked_by(PQbackendPID(tickets)) == 0 && !async_done(&fin))
		harness_sleep_ms(10);
	int importer = waiter_of(PQbackendPID(hold));
	if (importer == 0) {
		tx_end(hold, "ROLLBACK");
		tx_end(tickets, "ROLLBACK");
		pthread_join(fin.thread, NULL);
		fail_msg("the import waited for the customer's row before its barcode writes (%s %s)",
			 rpcq_status_name(fin.st), fin.message);
	}
	/* The test's transaction waits for the import's barcode X. */
	assert_int_equal(PQsendQuery(tickets, "UPDATE voucher_barcodes SET pos = pos WHERE barcode = 'X'"), 1);
	char sql[200];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND %d = ANY (pg_blocking_pids(pid))",
		 PQbackendPID(tickets), importer);
	while (sql_count(sql) == 0)
		harness_sleep_ms(10);
	/* Released, the import waits for c1's row: a deadlock. */
	tx_end(hold, "ROLLBACK");
	res = PQgetResult(tickets);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("the test's transaction: %s", PQerrorMessage(tickets));
	PQclear(res);
	assert_null(PQgetResult(tickets));
	tx_end(tickets, "COMMIT");
	async_join_ok(&fin, "FinishImport after a deadlock");

	const Rpcq__Vouchers__ImportCounts *k = fin.imp->counts;
	assert_int_equal(k->barcodes_sold, 1);
	assert_int_equal(k->barcodes_added, 1);
	assert_int_equal(k->barcodes_rejected, 0);
	assert_int_equal(fin.imp->rejections, 0);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_import_rejections"), 0);
	char *lines = voucher_lines(cl[1], NULL, 10);
	assert_string_equal(lines, "c1, 1, [Y, X, hold]\n");
	char *top = top_lines(cl[1], 5);
	assert_string_equal(top, "c1, 3\n");
	expect_counts_add_up();
	/* It was the import that the deadlock aborted. */
	char *log = harness_read_file(srv[0].log_path, NULL);
	assert_non_null(strstr(log, "was aborted"));
	free(log);
	free(lines);
	free(top);
	import_free(fin.imp);
	free(id);
}

/* A barcode of the stock that an issue sells after the import has looked
 * at the stock and before the import sells it: the import's sale checks
 * again under the row lock, finds it sold, and rejects the file's row,
 * naming the order it went to (it is neither applied nor unchanged). The
 * test holds the topic's row, so the issue has sold X, not committed, when
 * the import starts; the import's sale of X waits for it; then the test
 * lets the issue commit. */
static void test_a_barcode_an_issue_sells_while_the_import_applies_is_rejected_on_its_line(void **state)
{
	(void)state;
	import_free(import_texts(cl[0], "order_id,customer_id\n", "barcode,order_id\nW0,\n", 1 << 20));
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	/* The topic's row exists from here on. */
	assert_int_equal(issue(cl[0], "first", 1, NULL, &r, &err), RPCQ_OK);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	import_free(import_texts(cl[0], "order_id,customer_id\n1,c1\n", "barcode,order_id\nX,\n", 1 << 20));
	char *id = import_sent("order_id,customer_id\n1,c1\n", "barcode,order_id\nX,1\nY,1\n");

	PGconn *topic = hold_topic_row();
	async_call iss = {.c = cl[1], .customer = "c9", .quantity = 1};
	async_start(&iss);
	while (issues_waiting() == 0 && !async_done(&iss))
		harness_sleep_ms(10);
	async_call fin = {.c = cl[0], .import_id = id};
	async_start(&fin);
	while (sql_count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
			 " AND query LIKE '%UPDATE voucher_barcodes b SET order_id = g.o1%'") == 0 &&
	       !async_done(&fin))
		harness_sleep_ms(10);
	release_topic_row(topic);
	async_join_ok(&iss, "IssueVouchers");
	async_join_ok(&fin, "FinishImport");
	assert_int_equal(iss.issued->n_barcodes, 1);
	assert_string_equal(iss.issued->barcodes[0], "X");

	char want[256];
	snprintf(want, sizeof(want), "barcodes.csv:2: barcode X was sold to order %s while this import applied\n",
		 iss.issued->order_id);
	char *rej = rejections(cl[1], id);
	assert_string_equal(rej, want);
	const Rpcq__Vouchers__ImportCounts *k = fin.imp->counts;
	assert_int_equal(k->barcodes_sold, 0);
	assert_int_equal(k->barcodes_added, 1);
	assert_int_equal(k->barcodes_unchanged, 0);
	assert_int_equal(k->barcodes_rejected, 1);
	assert_int_equal(fin.imp->rejections, 1);
	assert_int_equal(fin.imp->n_first_rejections, 1);
	assert_int_equal(fin.imp->first_rejections[0]->file, RPCQ__VOUCHERS__FILE__BARCODES);
	assert_int_equal(fin.imp->first_rejections[0]->line, 2);

	char *lines = voucher_lines(cl[0], "c9", 10);
	snprintf(want, sizeof(want), "c9, %s, [X]\n", iss.issued->order_id);
	assert_string_equal(lines, want);
	free(lines);
	lines = voucher_lines(cl[0], "c1", 10);
	assert_string_equal(lines, "c1, 1, [Y]\n");
	char *top = top_lines(cl[1], 5);
	assert_string_equal(top, "c1, 1\nc9, 1\nfirst, 1\n");
	uint64_t unused, sold;
	stock(cl[1], &unused, &sold);
	assert_int_equal(unused, 0);
	assert_int_equal(sold, 3);
	expect_counts_add_up();
	free(top);
	free(lines);
	free(rej);
	protobuf_c_message_free_unpacked(&iss.issued->base, NULL);
	import_free(fin.imp);
	free(id);
}

/* Every refusal has its status and a message that names what is wrong. */
static void expect_refused(rpcq_status got, const rpcq_error *err, rpcq_status want, const char *message)
{
	if (got != want || strcmp(err->message, message) != 0)
		fail_msg("got %s \"%s\", want %s \"%s\"", rpcq_status_name(got), got == RPCQ_OK ? "" : err->message,
			 rpcq_status_name(want), message);
}

static rpcq_status start_named(const char *key, const char *orders_name, const char *barcodes_name, rpcq_error *err)
{
	Rpcq__Vouchers__StartImportRequest req = RPCQ__VOUCHERS__START_IMPORT_REQUEST__INIT;
	req.key = (char *)key;
	req.orders_name = (char *)orders_name;
	req.barcodes_name = (char *)barcodes_name;
	Rpcq__Vouchers__Import *imp = NULL;
	rpcq_status st = rpcq_voucher_start_import(cl[0], &req, &imp, NULL, err);
	import_free(imp);
	return st;
}

static rpcq_status get_import(const char *id, rpcq_error *err)
{
	Rpcq__Vouchers__GetImportRequest req = RPCQ__VOUCHERS__GET_IMPORT_REQUEST__INIT;
	req.import_id = (char *)id;
	Rpcq__Vouchers__Import *imp = NULL;
	rpcq_status st = rpcq_voucher_get_import(cl[1], &req, &imp, NULL, err);
	import_free(imp);
	return st;
}

static rpcq_status list_rejections(const char *id, const char *token, rpcq_error *err)
{
	Rpcq__Vouchers__ListRejectionsRequest req = RPCQ__VOUCHERS__LIST_REJECTIONS_REQUEST__INIT;
	req.import_id = (char *)id;
	req.page_token = (char *)token;
	Rpcq__Vouchers__ListRejectionsResponse *r = NULL;
	rpcq_status st = rpcq_voucher_list_rejections(cl[0], &req, &r, NULL, err);
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return st;
}

static rpcq_status list_customer(const char *customer, rpcq_error *err)
{
	Rpcq__Vouchers__ListVouchersRequest req = RPCQ__VOUCHERS__LIST_VOUCHERS_REQUEST__INIT;
	req.customer_id = (char *)customer;
	Rpcq__Vouchers__ListVouchersResponse *r = NULL;
	rpcq_status st = rpcq_voucher_list_vouchers(cl[1], &req, &r, NULL, err);
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return st;
}

static void test_bad_requests_are_refused_naming_what_is_wrong(void **state)
{
	(void)state;
	rpcq_error err;
	char long_key[130], long_name[202], long_id[66];
	memset(long_key, 'k', 129);
	long_key[129] = '\0';
	memset(long_name, 'n', 201);
	long_name[201] = '\0';
	memset(long_id, 'c', 65);
	long_id[65] = '\0';

	/* StartImport: the key, the file names. Nothing is created. */
	expect_refused(start_named(long_key, "", "", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "key is longer than 128 bytes");
	expect_refused(start_named("", long_name, "", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "orders_name is longer than 200 bytes");
	expect_refused(start_named("", "orders\n.csv", "", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "orders_name holds a control character");
	expect_refused(start_named("", "", "barcodes\xff.csv", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "barcodes_name is not valid UTF-8");
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_imports"), 0);

	/* GetImport, ListRejections, FinishImport: ids that are not numbers,
	 * and numbers that name no import. */
	Rpcq__Vouchers__Import *imp = start_import(cl[0], NULL);
	expect_refused(get_import("x1", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "import_id \"x1\" is not an import id (a number)");
	expect_refused(get_import("", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "import_id \"\" is not an import id (a number)");
	expect_refused(get_import("999999", &err), &err, RPCQ_NOT_FOUND, "import 999999 not found");
	expect_refused(list_rejections(imp->import_id, "garbage", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "page_token \"garbage\" is not one this server gave");
	expect_refused(list_rejections(imp->import_id, "3:1", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "page_token \"3:1\" is not one this server gave");
	expect_refused(list_rejections("999999", "", &err), &err, RPCQ_NOT_FOUND, "import 999999 not found");
	expect_refused(list_rejections("-4", "", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "import_id \"-4\" is not an import id (a number)");
	Rpcq__Vouchers__Import *r = NULL;
	expect_refused(finish(cl[1], "999999", &r, &err), &err, RPCQ_NOT_FOUND, "import 999999 not found");
	expect_refused(finish(cl[1], "12ab", &r, &err), &err, RPCQ_INVALID_ARGUMENT,
		       "import_id \"12ab\" is not an import id (a number)");
	assert_null(r);
	import_free(imp);

	/* ListVouchers: the customer_id. */
	expect_refused(list_customer(long_id, &err), &err, RPCQ_INVALID_ARGUMENT,
		       "customer_id is longer than 64 bytes");
	expect_refused(list_customer("c\x01", &err), &err, RPCQ_INVALID_ARGUMENT,
		       "customer_id holds a control character");
	expect_refused(list_customer("\xc3", &err), &err, RPCQ_INVALID_ARGUMENT, "customer_id is not valid UTF-8");

	/* IssueVouchers: the key, the customer. Nothing is issued. */
	stock_of(3);
	Rpcq__Vouchers__IssueVouchersResponse *ir = NULL;
	expect_refused(issue(cl[0], "c1", 1, long_key, &ir, &err), &err, RPCQ_INVALID_ARGUMENT,
		       "idempotency_key is longer than 128 bytes");
	expect_refused(issue(cl[0], long_id, 1, NULL, &ir, &err), &err, RPCQ_INVALID_ARGUMENT,
		       "customer_id is longer than 64 bytes");
	expect_refused(issue(cl[1], "caf\xe9", 1, NULL, &ir, &err), &err, RPCQ_INVALID_ARGUMENT,
		       "customer_id is not valid UTF-8");
	expect_refused(issue(cl[1], "c1", 1, "k\xed\xa0\x80", &ir, &err), &err, RPCQ_INVALID_ARGUMENT,
		       "idempotency_key is not valid UTF-8");
	expect_refused(issue(cl[0], "c1", 0, NULL, &ir, &err), &err, RPCQ_INVALID_ARGUMENT,
		       "quantity must be 1..10000, not 0");
	assert_null(ir);
	uint64_t unused;
	stock(cl[0], &unused, NULL);
	assert_int_equal(unused, 3);
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_orders"), 0);
}

/* The spec's duplicate rules at their edges: a barcode given to two
 * different orders and also listed unassigned has an unknown owner, so
 * every occurrence is rejected, the unassigned one too (it is not kept as
 * unused); a barcode listed twice for the same order is kept once, its
 * later row rejected as a repeat. */
static void test_a_barcode_of_two_orders_and_unassigned_is_rejected_everywhere_and_one_listed_twice_kept_once(
	void **state)
{
	(void)state;
	const char orders[] = "order_id,customer_id\n1,10\n2,11\n3,12\n";
	const char barcodes[] = "barcode,order_id\n"
				"K,\n"	 /* 2 */
				"K,1\n"	 /* 3 */
				"M,1\n"	 /* 4 */
				"K,2\n"	 /* 5 */
				"L,2\n"	 /* 6 */
				"L,2\n"	 /* 7 */
				"N,\n"	 /* 8 */
				"P,1\n"	 /* 9: three orders */
				"P,3\n"	 /* 10 */
				"P,2\n"; /* 11 */
	Rpcq__Vouchers__Import *imp = import_texts(cl[0], orders, barcodes, 7);
	char *rej = rejections(cl[1], imp->import_id);
	assert_string_equal(
		rej, "orders.csv:4: order_id 3 has no barcodes: left out of the vouchers\n"
		     "barcodes.csv:2: barcode K is given to different orders (1, 2): its owner is unknown\n"
		     "barcodes.csv:3: barcode K is given to different orders (1, 2): its owner is unknown\n"
		     "barcodes.csv:5: barcode K is given to different orders (1, 2): its owner is unknown\n"
		     "barcodes.csv:7: barcode L repeats line 6, where it is sold to order 2\n"
		     "barcodes.csv:9: barcode P is given to different orders (1, 3, ...): its owner is unknown\n"
		     "barcodes.csv:10: barcode P is given to different orders (1, 3, ...): its owner is unknown\n"
		     "barcodes.csv:11: barcode P is given to different orders (1, 3, ...): its owner is unknown\n");
	assert_int_equal(imp->counts->barcodes_added, 3);
	assert_int_equal(imp->counts->barcodes_rejected, 7);
	assert_int_equal(imp->counts->orders_without_barcodes, 1);
	assert_int_equal(imp->rejections, 8);
	char *lines = voucher_lines(cl[0], NULL, 10);
	assert_string_equal(lines, "10, 1, [M]\n11, 2, [L]\n");
	assert_int_equal(sql_count("SELECT count(*) FROM voucher_barcodes WHERE barcode IN ('K', 'P')"), 0);
	uint64_t unused;
	stock(cl[1], &unused, NULL);
	assert_int_equal(unused, 1); /* N */
	/* The slow and obvious reading of the rules agrees. */
	expected e = expect(orders, barcodes);
	assert_string_equal(lines, e.vouchers);
	assert_int_equal(e.unused, 1);
	free(e.vouchers);
	free(e.top5);
	free(lines);
	free(rej);
	import_free(imp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_the_real_exports_in_chunks_of_any_size_give_what_the_rules_imply, reset),
		cmocka_unit_test_setup(test_each_rule_rejects_its_rows_with_file_and_line_and_the_rest_applies, reset),
		cmocka_unit_test_setup(test_a_file_that_cannot_be_read_is_refused_and_changes_nothing, reset),
		cmocka_unit_test_setup(test_chunks_resent_out_of_order_or_after_the_end, reset),
		cmocka_unit_test_setup(test_an_import_resumes_on_the_other_process_after_a_restart, reset),
		cmocka_unit_test_setup(test_a_second_import_merges_into_the_stock, reset),
		cmocka_unit_test_setup(test_reports_sort_page_and_filter, reset),
		cmocka_unit_test_setup(test_an_order_longer_than_a_page_is_listed_in_parts_that_join_up, reset),
		cmocka_unit_test_setup(test_issue_vouchers_sells_unused_barcodes_once_and_says_when_short, reset),
		cmocka_unit_test_setup(test_an_issue_whose_answer_was_lost_says_it_may_have_been_made, reset),
		cmocka_unit_test_setup(test_issues_in_one_batch_each_get_their_own_answer, reset),
		cmocka_unit_test_setup(test_calls_are_answered_while_workers_wait_for_a_batch, reset),
		cmocka_unit_test_setup(test_two_calls_with_one_key_in_flight_at_once_on_two_processes_issue_once,
				       reset),
		cmocka_unit_test_setup(test_two_calls_with_one_key_in_flight_at_once_on_one_process_issue_once, reset),
		cmocka_unit_test_setup(test_claims_find_every_unused_barcode_wherever_they_start, reset),
		cmocka_unit_test_setup(test_the_issued_message_is_what_protobuf_c_packs, reset),
		cmocka_unit_test_setup(test_the_other_process_publishes_an_issue_without_waiting_for_its_poll, reset),
		cmocka_unit_test_setup(test_a_storm_of_32_callers_on_two_processes_never_sells_a_barcode_twice, reset),
		cmocka_unit_test_setup(test_issues_for_the_customers_of_an_import_go_on_while_it_applies, reset),
		cmocka_unit_test_setup(test_an_import_aborted_by_a_deadlock_runs_again_and_applies_once, reset),
		cmocka_unit_test_setup(test_a_barcode_an_issue_sells_while_the_import_applies_is_rejected_on_its_line,
				       reset),
		cmocka_unit_test_setup(test_bad_requests_are_refused_naming_what_is_wrong, reset),
		cmocka_unit_test_setup(
			test_a_barcode_of_two_orders_and_unassigned_is_rejected_everywhere_and_one_listed_twice_kept_once,
			reset),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
