/*
 * `rpcq vouchers` as its users run it: the real pair of exports of
 * ../shared/data/vouchers/ and small files of the tests' own through a real
 * rpcqd on a real PostgreSQL.
 *
 * The expected report of the real exports is computed here, independently of
 * the server, by a plain reimplementation of the spec's rules over the two
 * files (quadratic, which is nothing at their size), and checked against two
 * facts known of that data by hand: five barcodes appear twice, once assigned
 * and once unassigned, and three orders have no barcode.
 *
 * One cluster for the group; each test has a fresh database of its own and
 * its own rpcqd, stopped by the per-test teardown whatever happened. Files
 * are written into the cluster's directory, which goes with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

static harness_pg pg;
static int db_counter;
static harness_server *server; /* the current test's */

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	assert_non_null(p);
	return p;
}

/* A malloc'd printf. */
static char *fmt(const char *f, ...) PRINTF_LIKE(1, 2);

static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	assert_true(n >= 0);
	char *p = malloc((size_t)n + 1);
	assert_non_null(p);
	va_start(ap, f);
	vsnprintf(p, (size_t)n + 1, f, ap);
	va_end(ap);
	return p;
}

/* A growing string. */
struct sb {
	char *s;
	size_t len, cap;
};

static void sb_add(struct sb *b, const char *f, ...) PRINTF_LIKE(2, 3);

static void sb_add(struct sb *b, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	assert_true(n >= 0);
	if (b->len + (size_t)n + 1 > b->cap) {
		b->cap = (b->len + (size_t)n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		assert_non_null(b->s);
	}
	va_start(ap, f);
	vsnprintf(b->s + b->len, (size_t)n + 1, f, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static char *sb_take(struct sb *b)
{
	if (b->s == NULL)
		return xstrdup("");
	char *s = b->s;
	b->s = NULL;
	b->len = b->cap = 0;
	return s;
}

/* Writes text to name in the cluster's directory; returns the path. */
static char *write_file(const char *name, const char *text)
{
	char *path = fmt("%s/%s", pg.dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	fputs(text, f);
	if (fclose(f) != 0)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	return path;
}

static char *shared_file(const char *name)
{
	char rel[256], buf[1024];
	snprintf(rel, sizeof(rel), "data/vouchers/%s", name);
	return xstrdup(harness_shared_path(rel, buf, sizeof(buf)));
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Whether text has a line that starts with prefix. */
static int has_line_starting(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, n) == 0)
			return 1;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

/* The lines of text that look like rejections (NAME.csv:LINE: ...). */
static int count_rejection_lines(const char *text)
{
	int n = 0;
	for (const char *p = text; p && *p;) {
		const char *c = strstr(p, ".csv:");
		const char *eol = strchr(p, '\n');
		if (c && (eol == NULL || c < eol) && c[5] >= '0' && c[5] <= '9')
			n++;
		p = eol ? eol + 1 : NULL;
	}
	return n;
}

/* ---- databases, servers, the CLI ---- */

/* A fresh, migrated database in the group's cluster. */
static void fresh_db(harness_pg *out)
{
	char name[32], sql[64];
	snprintf(name, sizeof(name), "vouchers_%d", ++db_counter);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	harness_sql(pg.conninfo, sql);
	*out = pg;
	const char *at = strstr(pg.conninfo, "dbname=rpcq");
	if (at == NULL)
		fail_msg("conninfo \"%s\" names no dbname=rpcq", pg.conninfo);
	snprintf(out->conninfo, sizeof(out->conninfo), "%.*sdbname=%s%s", (int)(at - pg.conninfo), pg.conninfo, name,
		 at + strlen("dbname=rpcq"));
	if (harness_migrate(out) != 0)
		fail_msg("rpcqd migrate failed on %s", out->conninfo);
}

/* A fresh database and an rpcqd serving it (the test's teardown stops it). */
static harness_server *start(harness_pg *db)
{
	fresh_db(db);
	harness_server *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	const char *args[] = {"--http", "", NULL};
	harness_server_start(s, db, args);
	server = s;
	return s;
}

static int teardown_test(void **state)
{
	(void)state;
	int bad = 0;
	if (server != NULL) {
		/* An rpcqd that does not exit 0 (a leak under ASan) fails the test. */
		if (server->pid > 0)
			bad = harness_server_stop(server) != 0;
		free(server);
		server = NULL;
	}
	return bad ? -1 : 0;
}

/* rpcq vouchers ARGS... against s: exit status, stdout and stderr (freed by
 * the caller). */
static int vouchers(const harness_server *s, char **out, char **err, ...)
{
	const char *args[32];
	int n = 0;
	args[n++] = "vouchers";
	va_list ap;
	va_start(ap, err);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL) {
		assert_true(n < 31);
		args[n++] = a;
	}
	va_end(ap);
	args[n] = NULL;
	*out = *err = NULL;
	return harness_cli(s->rpc_url, args, NULL, out, err);
}

/* The same, failing the test unless it exits 0. */
static void vouchers_ok(const harness_server *s, char **out, char **err, const char *what, ...)
{
	const char *args[32];
	int n = 0;
	args[n++] = "vouchers";
	va_list ap;
	va_start(ap, what);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL) {
		assert_true(n < 31);
		args[n++] = a;
	}
	va_end(ap);
	args[n] = NULL;
	*out = *err = NULL;
	int rc = harness_cli(s->rpc_url, args, NULL, out, err);
	if (rc != 0)
		fail_msg("rpcq vouchers %s: exit %d\nstdout: %s\nstderr: %s", what, rc, *out, *err);
}

/* rpcq vouchers ARGS... against s with its stdout on /dev/full, where
 * every write fails (ENOSPC): exit status; *err its stderr (freed by the
 * caller). */
static int vouchers_to_full_disk(const harness_server *s, char **err, ...)
{
	const char *args[40];
	int n = 0;
	args[n++] = "sh";
	args[n++] = "-c";
	args[n++] = "exec \"$0\" \"$@\" >/dev/full";
	args[n++] = getenv("RPCQ_CLI");
	args[n++] = "--server";
	args[n++] = s->rpc_url;
	args[n++] = "vouchers";
	assert_non_null(args[3]);
	va_list ap;
	va_start(ap, err);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL) {
		assert_true(n < 39);
		args[n++] = a;
	}
	va_end(ap);
	args[n] = NULL;
	*err = NULL;
	return harness_run(args, NULL, NULL, err, 60000);
}

/* ---- the spec's rules, reimplemented ---- */

#define REF_MAX 4096

struct ref_order {
	char id[80], customer[80];
	long line;
	int rejected;
	int tickets; /* barcodes kept for it */
};

struct ref_barcode {
	char code[80], order[80];
	long line;
	int kept; /* this occurrence is the barcode in the stock */
};

struct ref {
	struct ref_order orders[REF_MAX];
	struct ref_barcode barcodes[REF_MAX];
	int norders, nbarcodes;
	char rejected[2 * REF_MAX][32]; /* "orders.csv:12" */
	int nrejected;
	char *vouchers; /* the voucher lines */
	char *top;	/* "Top 5 customers:\n..." */
	long long unused;
};

/* Splits "a,b" lines of text (after the header) into fields a and b;
 * calls row for each. */
static void ref_read(const char *text, void (*row)(struct ref *, const char *, const char *, long), struct ref *r)
{
	long line = 1;
	const char *p = strchr(text, '\n');
	while (p != NULL && p[1] != '\0') {
		p++;
		line++;
		size_t n = strcspn(p, "\n");
		char buf[200];
		assert_true(n < sizeof(buf));
		memcpy(buf, p, n);
		buf[n] = '\0';
		char *comma = strchr(buf, ',');
		assert_non_null(comma);
		*comma = '\0';
		row(r, buf, comma + 1, line);
		p = strchr(p, '\n');
	}
}

static void ref_order_row(struct ref *r, const char *a, const char *b, long line)
{
	assert_true(r->norders < REF_MAX);
	struct ref_order *o = &r->orders[r->norders++];
	snprintf(o->id, sizeof(o->id), "%s", a);
	snprintf(o->customer, sizeof(o->customer), "%s", b);
	o->line = line;
}

static void ref_barcode_row(struct ref *r, const char *a, const char *b, long line)
{
	assert_true(r->nbarcodes < REF_MAX);
	struct ref_barcode *o = &r->barcodes[r->nbarcodes++];
	snprintf(o->code, sizeof(o->code), "%s", a);
	snprintf(o->order, sizeof(o->order), "%s", b);
	o->line = line;
}

static void ref_reject(struct ref *r, const char *file, long line)
{
	snprintf(r->rejected[r->nrejected++], sizeof(r->rejected[0]), "%s:%ld", file, line);
}

static struct ref_order *ref_find_order(struct ref *r, const char *id)
{
	for (int i = 0; i < r->norders; i++) {
		if (!r->orders[i].rejected && strcmp(r->orders[i].id, id) == 0)
			return &r->orders[i];
	}
	return NULL;
}

static int all_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
	}
	return 1;
}

/* Ids compare numerically when both are integers, else by bytes. */
static int id_cmp(const char *a, const char *b)
{
	if (all_digits(a) && all_digits(b)) {
		while (*a == '0' && a[1])
			a++;
		while (*b == '0' && b[1])
			b++;
		size_t la = strlen(a), lb = strlen(b);
		if (la != lb)
			return la < lb ? -1 : 1;
	}
	return strcmp(a, b);
}

static int by_customer_then_order(const void *x, const void *y)
{
	const struct ref_order *a = *(const struct ref_order *const *)x, *b = *(const struct ref_order *const *)y;
	int c = id_cmp(a->customer, b->customer);
	return c ? c : id_cmp(a->id, b->id);
}

struct ref_customer {
	const char *id;
	long tickets;
};

static int by_tickets(const void *x, const void *y)
{
	const struct ref_customer *a = x, *b = y;
	if (a->tickets != b->tickets)
		return a->tickets > b->tickets ? -1 : 1;
	return id_cmp(a->id, b->id);
}

/* The spec's answers for the two files. */
static struct ref *ref_compute(const char *orders_path, const char *barcodes_path, int top_n)
{
	struct ref *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	char *ot = harness_read_file(orders_path, NULL), *bt = harness_read_file(barcodes_path, NULL);
	ref_read(ot, ref_order_row, r);
	ref_read(bt, ref_barcode_row, r);
	free(ot);
	free(bt);

	/* order_id is unique: a repeated one's row is rejected. */
	for (int i = 0; i < r->norders; i++) {
		for (int k = 0; k < i; k++) {
			if (!r->orders[k].rejected && strcmp(r->orders[k].id, r->orders[i].id) == 0) {
				r->orders[i].rejected = 1;
				ref_reject(r, "orders.csv", r->orders[i].line);
				break;
			}
		}
	}
	/* A barcode is kept once: its assigning occurrence wins over unassigned
	 * ones; occurrences assigning it to different orders reject them all;
	 * one assigned to an order not in orders.csv is rejected. */
	for (int i = 0; i < r->nbarcodes; i++) {
		int first = 1;
		for (int k = 0; k < i; k++)
			first &= strcmp(r->barcodes[k].code, r->barcodes[i].code) != 0;
		if (!first)
			continue;
		const char *owner = NULL;
		int conflict = 0, winner = -1;
		for (int k = i; k < r->nbarcodes; k++) {
			struct ref_barcode *b = &r->barcodes[k];
			if (strcmp(b->code, r->barcodes[i].code) != 0 || b->order[0] == '\0')
				continue;
			if (owner == NULL) {
				owner = b->order;
				winner = k;
			} else if (strcmp(owner, b->order) != 0) {
				conflict = 1;
			}
		}
		if (owner == NULL)
			winner = i;
		if (!conflict && owner != NULL && ref_find_order(r, owner) == NULL)
			winner = -1;
		if (conflict)
			winner = -1;
		for (int k = i; k < r->nbarcodes; k++) {
			struct ref_barcode *b = &r->barcodes[k];
			if (strcmp(b->code, r->barcodes[i].code) != 0)
				continue;
			if (k == winner)
				b->kept = 1;
			else
				ref_reject(r, "barcodes.csv", b->line);
		}
	}
	/* Vouchers: orders with barcodes, by customer then order, barcodes in
	 * input order; an order without any is left out and reported. */
	struct ref_order **sorted = calloc((size_t)r->norders + 1, sizeof(*sorted));
	assert_non_null(sorted);
	int n = 0;
	for (int i = 0; i < r->norders; i++) {
		struct ref_order *o = &r->orders[i];
		if (o->rejected)
			continue;
		for (int k = 0; k < r->nbarcodes; k++)
			o->tickets += r->barcodes[k].kept && strcmp(r->barcodes[k].order, o->id) == 0;
		if (o->tickets == 0)
			ref_reject(r, "orders.csv", o->line);
		else
			sorted[n++] = o;
	}
	qsort(sorted, (size_t)n, sizeof(*sorted), by_customer_then_order);
	struct sb v = {0};
	for (int i = 0; i < n; i++) {
		sb_add(&v, "%s, %s, [", sorted[i]->customer, sorted[i]->id);
		int m = 0;
		for (int k = 0; k < r->nbarcodes; k++) {
			if (r->barcodes[k].kept && strcmp(r->barcodes[k].order, sorted[i]->id) == 0)
				sb_add(&v, "%s%s", m++ ? ", " : "", r->barcodes[k].code);
		}
		sb_add(&v, "]\n");
	}
	r->vouchers = sb_take(&v);
	/* Top customers by tickets, ties by customer id; the unused count. */
	struct ref_customer *cust = calloc((size_t)n + 1, sizeof(*cust));
	assert_non_null(cust);
	int nc = 0;
	for (int i = 0; i < n; i++) {
		int k = 0;
		while (k < nc && strcmp(cust[k].id, sorted[i]->customer) != 0)
			k++;
		if (k == nc)
			cust[nc++] = (struct ref_customer){sorted[i]->customer, 0};
		cust[k].tickets += sorted[i]->tickets;
	}
	qsort(cust, (size_t)nc, sizeof(*cust), by_tickets);
	struct sb t = {0};
	sb_add(&t, "Top %d customers:\n", top_n);
	for (int i = 0; i < nc && i < top_n; i++)
		sb_add(&t, "%s, %ld\n", cust[i].id, cust[i].tickets);
	r->top = sb_take(&t);
	for (int k = 0; k < r->nbarcodes; k++)
		r->unused += r->barcodes[k].kept && r->barcodes[k].order[0] == '\0';
	free(cust);
	free(sorted);
	return r;
}

/* The reference's rejections as strings for expect_rejections. */
static const char **ref_rejected(const struct ref *r)
{
	const char **v = calloc((size_t)r->nrejected + 1, sizeof(*v));
	assert_non_null(v);
	for (int i = 0; i < r->nrejected; i++)
		v[i] = r->rejected[i];
	return v;
}

static void ref_free(struct ref *r)
{
	free(r->vouchers);
	free(r->top);
	free(r);
}

/* Every expected rejection is on a line of its own in err ("FILE:LINE: "),
 * and there are no others. */
static void expect_rejections(const char *err, const char *const *want, int n)
{
	for (int i = 0; i < n; i++) {
		char *prefix = fmt("%s: ", want[i]);
		if (!has_line_starting(err, prefix))
			fail_msg("no rejection %s in stderr:\n%s", want[i], err);
		free(prefix);
	}
	if (count_rejection_lines(err) != n)
		fail_msg("%d rejections expected, stderr has %d:\n%s", n, count_rejection_lines(err), err);
}

/* ---- tests ---- */

static void test_the_real_exports_give_the_vouchers_top_5_and_unused_count_the_spec_implies(void **state)
{
	(void)state;
	harness_pg db;
	harness_server *s = start(&db);
	char *orders = shared_file("orders.csv"), *barcodes = shared_file("barcodes.csv");
	struct ref *r = ref_compute(orders, barcodes, 5);

	/* The hand-checked facts of the data, so the reference cannot drift:
	 * five barcodes twice (assigned once, unassigned once: the unassigned
	 * line is rejected), three orders without barcodes. */
	int dup_unassigned = 0, without = 0;
	for (int i = 0; i < r->nrejected; i++) {
		dup_unassigned += strncmp(r->rejected[i], "barcodes.csv:", 13) == 0;
		without += strncmp(r->rejected[i], "orders.csv:", 11) == 0;
	}
	assert_int_equal(dup_unassigned, 5);
	assert_int_equal(without, 3);
	assert_int_equal(r->nrejected, 8);

	char *out_path = fmt("%s/vouchers.txt", pg.dir);
	char *out, *err;
	vouchers_ok(s, &out, &err, "report", "report", "--orders", orders, "--barcodes", barcodes, "--output", out_path,
		    NULL);
	char *file = harness_read_file(out_path, NULL);
	assert_string_equal(file, r->vouchers);
	char *want_stdout = fmt("%sUnused barcodes: %lld\n", r->top, r->unused);
	assert_string_equal(out, want_stdout);
	const char **rejected = ref_rejected(r);
	expect_rejections(err, rejected, r->nrejected);
	assert_non_null(strstr(err, "import 1 applied: "));
	long long orders_in = harness_sql_scalar(db.conninfo, "SELECT count(*) FROM voucher_orders");
	long long barcodes_in = harness_sql_scalar(db.conninfo, "SELECT count(*) FROM voucher_barcodes");
	assert_int_equal(orders_in, 207);
	assert_int_equal(barcodes_in, 615);

	/* Again, the vouchers to stdout this time: the same import, nothing
	 * added, the same answers (with one empty line before the top). */
	char *out2, *err2;
	vouchers_ok(s, &out2, &err2, "report again", "report", "--orders", orders, "--barcodes", barcodes, NULL);
	char *want2 = fmt("%s\n%s", file, out);
	assert_string_equal(out2, want2);
	expect_rejections(err2, rejected, r->nrejected);
	assert_non_null(strstr(err2, "was already applied"));
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT count(*) FROM voucher_orders"), orders_in);
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT count(*) FROM voucher_barcodes"), barcodes_in);
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT count(*) FROM voucher_imports"), 1);
	/* Finding its import took no id: the next import is import 2. */
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT last_value FROM voucher_imports_id_seq"), 1);

	/* list prints the same lines; report without files reports the stock. */
	char *out3, *err3;
	vouchers_ok(s, &out3, &err3, "list", "list", NULL);
	assert_string_equal(out3, file);
	char *out4, *err4;
	vouchers_ok(s, &out4, &err4, "report --top 3", "report", "--top", "3", NULL);
	struct ref *r3 = ref_compute(orders, barcodes, 3);
	char *want4 = fmt("%s\n%sUnused barcodes: %lld\n", file, r3->top, r3->unused);
	assert_string_equal(out4, want4);

	free(out4), free(err4), free(want4), ref_free(r3);
	free(out3), free(err3), free(out2), free(err2), free(want2);
	free(out), free(err), free(want_stdout), free(file), free(out_path);
	free(rejected);
	ref_free(r);
	free(orders), free(barcodes);
}

static void test_each_rule_rejects_its_rows_with_file_and_line(void **state)
{
	(void)state;
	harness_pg db;
	harness_server *s = start(&db);
	char *orders = write_file("orders.csv", "order_id,customer_id\n"
						"1,10\n"       /* 2 */
						"2,11\n"       /* 3 */
						"1,12\n"       /* 4: order_id repeated */
						"3,12\n"       /* 5: no barcode */
						"4,13,extra\n" /* 6: three fields */
						"5,14\n");     /* 7 */
	char *barcodes = write_file("barcodes.csv", "barcode,order_id\n"
						    "900001,1\n"   /* 2 */
						    "900002,1\n"   /* 3 */
						    "900003,2\n"   /* 4 */
						    "900004,1\n"   /* 5: assigned to 1 and 2 */
						    "900004,2\n"   /* 6: ... both rejected */
						    "900005,99\n"  /* 7: order not in orders.csv */
						    "900006,\n"	   /* 8: unused */
						    "900007,5\n"   /* 9 */
						    "900007,\n"	   /* 10: the assigned occurrence wins */
						    "900008,1,x\n" /* 11: three fields */
						    "900009,\n");  /* 12: unused */
	char *out, *err;
	vouchers_ok(s, &out, &err, "report", "report", "--orders", orders, "--barcodes", barcodes, NULL);
	const char *want[] = {"orders.csv:4",	"orders.csv:5",	  "orders.csv:6",    "barcodes.csv:5",
			      "barcodes.csv:6", "barcodes.csv:7", "barcodes.csv:10", "barcodes.csv:11"};
	expect_rejections(err, want, (int)(sizeof(want) / sizeof(want[0])));
	/* The summary counts the rejections it printed, those of rows that
	 * could not be read (orders.csv:6, barcodes.csv:11) too. */
	assert_non_null(strstr(err, " applied: orders 4 added, 0 unchanged, 2 rejected, 1 without barcodes;"
				    " barcodes 6 added, 0 sold from the stock, 0 unchanged, 5 rejected\n"));
	assert_string_equal(out, "10, 1, [900001, 900002]\n"
				 "11, 2, [900003]\n"
				 "14, 5, [900007]\n"
				 "\n"
				 "Top 5 customers:\n"
				 "10, 2\n"
				 "11, 1\n"
				 "14, 1\n"
				 "Unused barcodes: 2\n");
	free(out), free(err);

	/* A wrong header fails the whole command, naming the file and line 1. */
	char *bad = write_file("bad_orders.csv", "order,customer\n1,10\n");
	int rc = vouchers(s, &out, &err, "import", "--orders", bad, "--barcodes", barcodes, NULL);
	assert_int_equal(rc, 1);
	assert_int_equal(count_lines(err), 1);
	assert_non_null(strstr(err, "bad_orders.csv"));
	assert_non_null(strstr(err, "line 1"));
	assert_string_equal(out, "");
	free(out), free(err);
	char *bad_b = write_file("bad_barcodes.csv", "barcode;order_id\n900001;1\n");
	rc = vouchers(s, &out, &err, "import", "--orders", orders, "--barcodes", bad_b, NULL);
	assert_int_equal(rc, 1);
	assert_int_equal(count_lines(err), 1);
	assert_non_null(strstr(err, "bad_barcodes.csv"));
	assert_non_null(strstr(err, "line 1"));
	free(out), free(err);

	/* Usage errors exit 2. */
	rc = vouchers(s, &out, &err, "import", "--orders", orders, NULL);
	assert_int_equal(rc, 2);
	free(out), free(err);
	rc = vouchers(s, &out, &err, "import", "--orders", orders, "--barcodes", "/nonexistent/b.csv", NULL);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(err, "/nonexistent/b.csv"));
	free(out), free(err);
	free(bad), free(bad_b), free(orders), free(barcodes);
}

static void test_malformed_csv_rows_and_a_byte_order_mark_do_not_stop_the_import(void **state)
{
	(void)state;
	harness_pg db;
	harness_server *s = start(&db);
	/* Saved by a spreadsheet: a byte order mark before the header. A
	 * malformed record is rejected on its line like any bad row, and the
	 * rest of the file goes on; a no-break space after a closing quote is
	 * a blank. */
	char *orders = write_file("orders.csv", "\xef\xbb\xbf"
						"order_id,customer_id\n"
						"1,10\n"	       /* 2 */
						"\"2\"x,11\n"	       /* 3: text after the quote */
						"\"3\"\xc2\xa0,12\n"); /* 4 */
	struct sb text = {0};
	sb_add(&text, "\xef\xbb\xbf"
		      "barcode,order_id\n"
		      "900001,1\n"
		      "\"900002\" 1,1\n" /* 3: text after the quote */
		      "900003,3\n"
		      "\""); /* 5: longer than a record may be */
	for (int i = 0; i < 50; i++)
		sb_add(&text, "%099d\n", i);
	sb_add(&text, "\",3\n"
		      "900004,\"3\n900005,3\n"); /* 56: never closed */
	char *barcodes_text = sb_take(&text);
	char *barcodes = write_file("barcodes.csv", barcodes_text);
	free(barcodes_text);
	char *out, *err;
	vouchers_ok(s, &out, &err, "report", "report", "--orders", orders, "--barcodes", barcodes, NULL);
	const char *want[] = {"orders.csv:3", "barcodes.csv:3", "barcodes.csv:5", "barcodes.csv:56"};
	expect_rejections(err, want, 4);
	assert_non_null(strstr(err, "orders.csv:3: field 1: text after the closing quote"));
	assert_non_null(strstr(err, "barcodes.csv:5: a record longer than 4096 bytes"));
	assert_non_null(strstr(err, "barcodes.csv:56: a quoted field is not closed before the end of the input"));
	assert_string_equal(out, "10, 1, [900001]\n"
				 "12, 3, [900003]\n"
				 "\n"
				 "Top 5 customers:\n"
				 "10, 1\n"
				 "12, 1\n"
				 "Unused barcodes: 0\n");
	free(out), free(err), free(orders), free(barcodes);
}

/* Writes n_orders orders and n_barcodes barcodes: every tenth barcode is
 * unused, and the orders 1, 11, 21, ... get none (their share of the
 * barcodes is the unused one). */
static void generate(const char *orders_path, const char *barcodes_path, int n_orders, int n_barcodes)
{
	FILE *o = fopen(orders_path, "wb"), *b = fopen(barcodes_path, "wb");
	assert_non_null(o);
	assert_non_null(b);
	fputs("order_id,customer_id\n", o);
	for (int i = 1; i <= n_orders; i++)
		fprintf(o, "%d,%d\n", i, 1 + i % 997);
	fputs("barcode,order_id\n", b);
	for (int i = 0; i < n_barcodes; i++) {
		if (i % 10 == 0)
			fprintf(b, "%011d,\n", 20000000 + i);
		else
			fprintf(b, "%011d,%d\n", 20000000 + i, 1 + i % n_orders);
	}
	assert_int_equal(fclose(o), 0);
	assert_int_equal(fclose(b), 0);
}

/* The report (all vouchers, an empty line, the top 5, the unused count) of
 * the files generate() writes: order o has the barcodes i = o - 1 + k *
 * n_orders that are not unused, its customer is 1 + o % 997. */
static char *generated_report(int n_orders, int n_barcodes)
{
	long *tickets = calloc(998, sizeof(*tickets));
	assert_non_null(tickets);
	struct sb b = {0};
	for (int c = 1; c <= 997; c++) {
		for (int o = c - 1 > 0 ? c - 1 : 997; o <= n_orders; o += 997) {
			int m = 0;
			for (int i = o - 1; i < n_barcodes; i += n_orders) {
				if (i % 10 == 0)
					continue;
				if (m++ == 0)
					sb_add(&b, "%d, %d, [%011d", c, o, 20000000 + i);
				else
					sb_add(&b, ", %011d", 20000000 + i);
			}
			if (m > 0)
				sb_add(&b, "]\n");
			tickets[c] += m;
		}
	}
	sb_add(&b, "\nTop 5 customers:\n");
	for (int k = 0; k < 5; k++) {
		int best = 1;
		for (int c = 2; c <= 997; c++)
			best = tickets[c] > tickets[best] ? c : best;
		sb_add(&b, "%d, %ld\n", best, tickets[best]);
		tickets[best] = -1;
	}
	sb_add(&b, "Unused barcodes: %d\n", (n_barcodes + 9) / 10);
	free(tickets);
	return sb_take(&b);
}

/* The import's barcodes bytes received so far (0 before it started). */
static long long received_barcodes(const harness_pg *db)
{
	return harness_sql_scalar(db->conninfo, "SELECT coalesce(max(received), 0) FROM voucher_import_files "
						"WHERE file = 2");
}

static void test_an_import_killed_midway_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(void **state)
{
	(void)state;
	harness_pg db;
	harness_server *s = start(&db);
	char *orders = fmt("%s/big_orders.csv", pg.dir), *barcodes = fmt("%s/big_barcodes.csv", pg.dir);
	generate(orders, barcodes, 40000, 300000);

	/* Start the import and kill it once the server has some of the barcodes
	 * file (it has all of the orders by then). */
	const char *cli = getenv("RPCQ_CLI");
	assert_non_null(cli);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(cli, cli, "--server", s->rpc_url, "vouchers", "import", "--orders", orders, "--barcodes",
		      barcodes, (char *)NULL);
		_exit(127);
	}
	int64_t deadline = now_ms() + 30000;
	long long got = 0;
	int status, exited = 0;
	while ((got = received_barcodes(&db)) == 0 && now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			break;
		}
		sleep_ms(2);
	}
	if (!exited) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (exited)
		fail_msg("the import ended (status %d) before it was killed", status);
	if (got == 0)
		fail_msg("the import sent no barcodes within 30 s");
	/* A chunk in flight when the command died may still land: wait until
	 * the server's count stands still. */
	for (long long prev = -1; prev != got;) {
		prev = got;
		sleep_ms(300);
		got = received_barcodes(&db);
	}
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT count(*) FROM voucher_barcodes"), 0); /* not applied */
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT count(*) FROM voucher_imports WHERE state = 1"), 1);
	FILE *bf = fopen(barcodes, "rb");
	assert_non_null(bf);
	fseek(bf, 0, SEEK_END);
	long bsize = ftell(bf);
	fclose(bf);
	if (got >= bsize)
		fail_msg("the import had all %lld bytes of the barcodes when killed: no longer midway", got);

	/* Run again: it resumes from the bytes the server has, sending none of
	 * them twice (the server read each row once). */
	char *out, *err;
	vouchers_ok(s, &out, &err, "import (resumed)", "import", "--orders", orders, "--barcodes", barcodes, NULL);
	/* It resumes where the server stands: at least what was counted above (a
	 * chunk the killed command had sent may have landed since, however long
	 * we waited), never from the start and never past the end. */
	const char *at = strstr(err, "barcodes.csv from byte ");
	if (strstr(err, "rpcq: resuming import") == NULL || at == NULL)
		fail_msg("no \"resuming import ... barcodes.csv from byte\" in stderr:\n%s", err);
	long long from = strtoll(at + strlen("barcodes.csv from byte "), NULL, 10);
	if (from < got || from >= bsize)
		fail_msg("resumed from byte %lld; the server had %lld of %ld when it was killed", from, got, bsize);
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT rows FROM voucher_import_files WHERE file = 2"),
			 300000);
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT rows FROM voucher_import_files WHERE file = 1"),
			 40000);
	char *resumed_report, *e1;
	vouchers_ok(s, &resumed_report, &e1, "report", "report", NULL);

	/* What the same files give uninterrupted, by generate()'s pattern. */
	char *want = generated_report(40000, 300000);
	assert_string_equal(resumed_report, want);
	assert_non_null(strstr(err,
			       "import 1 applied: orders 40000 added, 0 unchanged, 0 rejected, 4000 without "
			       "barcodes; barcodes 300000 added, 0 sold from the stock, 0 unchanged, 0 rejected\n"));
	/* Every tenth order has only unused barcodes: 4,000 rejections, more
	 * than come with the import, paged through ListRejections. */
	assert_int_equal(count_rejection_lines(err), 4000);
	assert_true(has_line_starting(err, "big_orders.csv:2: "));
	assert_true(has_line_starting(err, "big_orders.csv:39992: "));
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT count(*) FROM voucher_barcodes"), 300000);
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT count(*) FROM voucher_imports"), 1);

	free(want), free(resumed_report), free(e1);
	free(out), free(err), free(orders), free(barcodes);
}

/* An order with more barcodes than one reply holds comes over several
 * pages; list and report print it as one line all the same, and --json as
 * one object. */
static void test_an_order_longer_than_a_page_is_one_line(void **state)
{
	(void)state;
	harness_pg db;
	harness_server *s = start(&db);
	const int big = 120000;
	struct sb b = {0}, want = {0};
	sb_add(&b, "barcode,order_id\nc1,C\n");
	sb_add(&want, "1, B, [");
	for (int k = 0; k < big; k++) {
		sb_add(&b, "b%059d,B\n", k);
		sb_add(&want, "%sb%059d", k ? ", " : "", k);
	}
	sb_add(&want, "]\n2, C, [c1]\n");
	char *text = sb_take(&b), *want_text = sb_take(&want);
	char *orders = write_file("orders.csv", "order_id,customer_id\nB,1\nC,2\n");
	char *barcodes = write_file("barcodes.csv", text);
	char *out, *err;
	vouchers_ok(s, &out, &err, "report", "report", "--orders", orders, "--barcodes", barcodes, NULL);
	assert_int_equal(strncmp(out, want_text, strlen(want_text)), 0);
	free(out), free(err);
	vouchers_ok(s, &out, &err, "list", "list", NULL);
	assert_int_equal(strlen(out), strlen(want_text));
	assert_int_equal(strcmp(out, want_text), 0);
	free(out), free(err);
	vouchers_ok(s, &out, &err, "list --json", "list", "--json", NULL);
	assert_int_equal(count_lines(out), 2);
	assert_int_equal(has_line_starting(out, "{\"customerId\":\"1\",\"orderId\":\"B\",\"barcodes\":[\"b0"), 1);
	assert_int_equal(has_line_starting(out, "{\"customerId\":\"2\",\"orderId\":\"C\",\"barcodes\":[\"c1\"]"), 1);
	assert_null(strstr(out, "\"continues\":true"));
	char last[80];
	snprintf(last, sizeof(last), "\"b%059d\"],", big - 1);
	assert_non_null(strstr(out, last));
	int commas = 0;
	for (const char *p = out; *p && *p != '\n'; p++)
		commas += *p == ',';
	assert_int_equal(commas, 3 + big - 1); /* customerId, orderId, barcodes, continues; between the barcodes */
	free(out), free(err);
	free(text), free(want_text), free(orders), free(barcodes);
}

static void test_issue_sells_from_the_unused_stock_and_fails_with_resource_exhausted_when_short(void **state)
{
	(void)state;
	harness_pg db;
	harness_server *s = start(&db);
	char *orders = write_file("orders.csv", "order_id,customer_id\n"
						"1,10\n"
						"2,11\n"
						"3,10\n");
	char *barcodes = write_file("barcodes.csv", "barcode,order_id\n"
						    "500001,1\n"
						    "500002,2\n"
						    "500003,2\n"
						    "500004,3\n"
						    "500010,\n"
						    "500011,\n"
						    "500012,\n");
	char *out, *err;
	vouchers_ok(s, &out, &err, "import", "import", "--orders", orders, "--barcodes", barcodes, "--json", NULL);
	assert_non_null(strstr(out, "\"APPLIED\""));
	free(out), free(err);
	vouchers_ok(s, &out, &err, "unused", "unused", NULL);
	assert_string_equal(out, "3\n");
	free(out), free(err);

	/* Two of the three unused barcodes for customer 12: a new order. */
	vouchers_ok(s, &out, &err, "issue", "issue", "--customer", "12", "--quantity", "2", NULL);
	assert_int_equal(count_lines(out), 3);
	assert_true(strncmp(out, "order ", 6) == 0);
	char order[64];
	size_t n = strcspn(out + 6, "\n");
	assert_true(n > 0 && n < sizeof(order));
	memcpy(order, out + 6, n);
	order[n] = '\0';
	const char *b1 = out + 6 + n + 1;
	assert_true(strncmp(b1, "5000", 4) == 0);
	char *want_line = fmt("12, %s, [%.6s, %.6s]\n", order, b1, b1 + 7);
	assert_string_equal(err, "");
	char *out2, *err2;
	vouchers_ok(s, &out2, &err2, "list --customer 12", "list", "--customer", "12", NULL);
	assert_string_equal(out2, want_line);
	free(out2), free(err2);
	free(out), free(err);
	vouchers_ok(s, &out, &err, "unused", "unused", "--json", NULL);
	assert_string_equal(out, "{\"unused\":\"1\",\"sold\":\"6\"}\n");
	free(out), free(err);

	/* Two more: only one is left. Nothing is sold. */
	int rc = vouchers(s, &out, &err, "issue", "--customer", "13", "--quantity", "2", NULL);
	assert_int_equal(rc, 1);
	assert_string_equal(out, "");
	assert_true(strncmp(err, "rpcq: RESOURCE_EXHAUSTED: ", 26) == 0);
	assert_int_equal(count_lines(err), 1);
	free(out), free(err);
	vouchers_ok(s, &out, &err, "unused", "unused", NULL);
	assert_string_equal(out, "1\n");
	free(out), free(err);

	/* With a key, a repeat returns the first order and sells nothing more. */
	char *first, *e;
	vouchers_ok(s, &first, &e, "issue --key", "issue", "--customer", "13", "--quantity", "1", "--key", "k-1", NULL);
	assert_string_equal(e, "");
	free(e);
	vouchers_ok(s, &out, &err, "issue --key again", "issue", "--customer", "13", "--quantity", "1", "--key", "k-1",
		    NULL);
	assert_string_equal(out, first);
	/* Said on stderr, so that stdout stays the order alone. */
	if (strstr(err, "rpcq: key k-1 was used before: this is its order; nothing more was sold") == NULL)
		fail_msg("issue --key again: stderr %s", err);
	free(out), free(err);
	/* --json: the reply as JSON, the same order. */
	vouchers_ok(s, &out, &err, "issue --key --json", "issue", "--customer", "13", "--quantity", "1", "--key", "k-1",
		    "--json", NULL);
	char order_id[64], want[96];
	assert_int_equal(sscanf(first, "order %63s", order_id), 1);
	snprintf(want, sizeof(want), "\"orderId\": \"%s\"", order_id);
	if (strstr(out, want) == NULL || strstr(out, "\"replayed\": true") == NULL)
		fail_msg("issue --json: %s", out);
	free(out), free(err), free(first);
	vouchers_ok(s, &out, &err, "unused", "unused", NULL);
	assert_string_equal(out, "0\n");
	free(out), free(err);

	/* top 3: customer 10 (orders 1 and 3), 11 and 12 (2 each), by id. */
	vouchers_ok(s, &out, &err, "top 3", "top", "3", NULL);
	assert_string_equal(out, "10, 2\n11, 2\n12, 2\n");
	free(out), free(err);
	vouchers_ok(s, &out, &err, "top", "top", NULL);
	assert_string_equal(out, "10, 2\n11, 2\n12, 2\n13, 1\n");
	free(out), free(err);
	vouchers_ok(s, &out, &err, "top --json", "top", "1", "--json", NULL);
	assert_string_equal(out, "{\"customerId\":\"10\",\"tickets\":\"2\"}\n");
	free(out), free(err);
	vouchers_ok(s, &out, &err, "list --customer 10", "list", "--customer", "10", NULL);
	assert_string_equal(out, "10, 1, [500001]\n10, 3, [500004]\n");
	free(out), free(err);
	vouchers_ok(s, &out, &err, "list --customer 10 --json", "list", "--customer", "10", "--json", NULL);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "\"barcodes\":[\"500001\"]"));
	free(out), free(err);

	/* Usage errors exit 2. */
	rc = vouchers(s, &out, &err, "issue", "--customer", "13", NULL);
	assert_int_equal(rc, 2);
	free(out), free(err);
	rc = vouchers(s, &out, &err, "issue", "--customer", "13", "--quantity", "0", NULL);
	assert_int_equal(rc, 2);
	free(out), free(err);
	free(want_line), free(orders), free(barcodes);
}

/* `vouchers top` without N: the top 5, as report --top's default. Seven
 * customers, so two are left out; a tie inside the five (2 and 12: by
 * customer id, numerically) and one at the cut (5 in, 9 out, by id too). */
static void test_top_without_n_prints_the_top_5_ties_by_customer_id(void **state)
{
	(void)state;
	harness_pg db;
	harness_server *s = start(&db);
	static const struct {
		const char *customer;
		int tickets;
	} want[] = {{"9", 3}, {"20", 6}, {"1", 1}, {"12", 4}, {"3", 5}, {"5", 3}, {"2", 4}};
	struct sb o = {0}, b = {0};
	sb_add(&o, "order_id,customer_id\n");
	sb_add(&b, "barcode,order_id\n");
	int code = 700000;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		/* Two orders per customer, the tickets split between them. */
		int first = (want[i].tickets + 1) / 2;
		for (int k = 0; k < 2; k++) {
			sb_add(&o, "%zu%d,%s\n", i + 1, k, want[i].customer);
			for (int t = 0; t < (k == 0 ? first : want[i].tickets - first); t++)
				sb_add(&b, "%d,%zu%d\n", code++, i + 1, k);
		}
	}
	sb_add(&b, "%d,\n%d,\n", code, code + 1); /* unused: no customer's */
	char *ot = sb_take(&o), *bt = sb_take(&b);
	char *orders = write_file("top_orders.csv", ot);
	char *barcodes = write_file("top_barcodes.csv", bt);
	char *out, *err;
	vouchers_ok(s, &out, &err, "import", "import", "--orders", orders, "--barcodes", barcodes, NULL);
	free(out), free(err);

	vouchers_ok(s, &out, &err, "top", "top", NULL);
	assert_string_equal(out, "20, 6\n3, 5\n2, 4\n12, 4\n5, 3\n");
	assert_string_equal(err, "");
	free(out), free(err);
	/* All seven exist: the five were a cut, not the whole stock. */
	vouchers_ok(s, &out, &err, "top 7", "top", "7", NULL);
	assert_string_equal(out, "20, 6\n3, 5\n2, 4\n12, 4\n5, 3\n9, 3\n1, 1\n");
	free(out), free(err);
	vouchers_ok(s, &out, &err, "top --json", "top", "--json", NULL);
	assert_int_equal(count_lines(out), 5);
	assert_true(strncmp(out, "{\"customerId\":\"20\",\"tickets\":\"6\"}\n", 34) == 0);
	free(out), free(err);

	/* Output that cannot be written is a failure, said on stderr. */
	char id[24];
	snprintf(id, sizeof(id), "%lld", harness_sql_scalar(db.conninfo, "SELECT max(id) FROM voucher_imports"));
	const char *const cmds[][3] = {{"top", NULL, NULL},	   {"top", "--json", NULL}, {"unused", NULL, NULL},
				       {"unused", "--json", NULL}, {"status", id, NULL},    {"status", id, "--json"}};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		int rc = vouchers_to_full_disk(s, &err, cmds[i][0], cmds[i][1], cmds[i][2], NULL);
		if (rc != 1 || strcmp(err, "rpcq: INTERNAL: cannot write stdout: No space left on device\n") != 0)
			fail_msg("rpcq vouchers %s %s to /dev/full: exit %d, stderr: %s", cmds[i][0],
				 cmds[i][1] ? cmds[i][1] : "", rc, err);
		free(err);
	}
	free(orders), free(barcodes), free(ot), free(bt);
}

/* A pair of files of a few 1 MiB chunks each, ids from base on. */
static void progress_files_write(int base, char **orders, char **barcodes, long *orders_size, long *barcodes_size)
{
	struct sb o = {0}, b = {0};
	sb_add(&o, "order_id,customer_id\n");
	sb_add(&b, "barcode,order_id\n");
	for (int i = 0; i < 60000; i++) {
		sb_add(&o, "%d,customer-%d\n", base + i, i % 700);
		sb_add(&b, "%d%07d,%d\n%d%07d,%d\n", base / 100000, 2 * i, base + i, base / 100000, 2 * i + 1,
		       base + i);
	}
	char *ot = sb_take(&o), *bt = sb_take(&b);
	*orders_size = (long)strlen(ot);
	*barcodes_size = (long)strlen(bt);
	char *on = fmt("orders-%d.csv", base), *bn = fmt("barcodes-%d.csv", base);
	*orders = write_file(on, ot);
	*barcodes = write_file(bn, bt);
	free(ot), free(bt), free(on), free(bn);
}

/* The two waits that make an import take more than a moment, whatever the
 * machine: StartImport waits for the table of imports (0.8 s once it
 * waits), FinishImport for the apply lock (1.2 s). The CLI's first line
 * comes after 0.5 s, its ticker redraws every 0.25 s. */
static void hold_import(const harness_pg *db, harness_hold **start, harness_hold **apply)
{
	*start = harness_hold_start(db->conninfo, "LOCK TABLE voucher_imports IN EXCLUSIVE MODE",
				    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = "
				    "'voucher_imports'::regclass",
				    800, 30000);
	/* VOUCHERS_APPLY_LOCK_KEY (server/services/vouchers/sql.h). */
	*apply = harness_hold_start(db->conninfo, "SELECT pg_advisory_xact_lock(7401004)",
				    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory'"
				    " AND objid = 7401004",
				    1200, 30000);
}

static void test_an_import_that_takes_a_while_shows_progress_on_a_terminal_and_none_on_a_pipe(void **state)
{
	(void)state;
	harness_pg db;
	harness_server *s = start(&db);
	char *orders, *barcodes, *out, *tty;
	long osize, bsize;
	progress_files_write(100000, &orders, &barcodes, &osize, &bsize);
	assert_true(osize > 1024 * 1024 && bsize > 1024 * 1024); /* two chunks or more each */
	char ob[32], bb[32];
	harness_human_bytes((uint64_t)osize, ob, sizeof(ob));
	harness_human_bytes((uint64_t)bsize, bb, sizeof(bb));

	harness_hold *h1, *h2;
	hold_import(&db, &h1, &h2);
	const char *args[] = {"vouchers", "import", "--orders", orders, "--barcodes", barcodes, NULL};
	int64_t t0 = now_ms();
	int rc = harness_cli_tty(s->rpc_url, args, &out, &tty);
	int64_t took = now_ms() - t0;
	assert_int_equal(harness_hold_finish(h1), 1);
	assert_int_equal(harness_hold_finish(h2), 1);
	if (rc != 0)
		fail_msg("rpcq vouchers import on a terminal: exit %d\nstdout: %s\nterminal: %s", rc, out, tty);
	print_message("import on a terminal: %lld ms, %zu bytes on the terminal\n", (long long)took, strlen(tty));
	assert_string_equal(out, "");
	/* The sending line from the start (once the import had waited), and at
	 * the end with both files sent, each drawn over the last. */
	char *first = fmt("\rsending orders-100000.csv 0 B / %s, barcodes-100000.csv 0 B / %s", ob, bb);
	char *last = fmt("\rsending orders-100000.csv %s / %s, barcodes-100000.csv %s / %s", ob, ob, bb, bb);
	if (strstr(tty, first) == NULL || strstr(tty, last) == NULL)
		fail_msg("no \"%s\" and \"%s\" on the terminal:\n%s", first + 1, last + 1, tty);
	/* While it applies, the ticker: "applying import N (T s)". */
	long long id = harness_sql_scalar(db.conninfo, "SELECT max(id) FROM voucher_imports");
	char *applying = fmt("\rapplying import %lld (", id);
	if (strstr(tty, applying) == NULL)
		fail_msg("no \"%s\" on the terminal:\n%s", applying + 1, tty);
	/* Then the line is wiped ("\r", spaces, "\r") and the summary is what
	 * stays on the screen. */
	const char *cr = strrchr(tty, '\r');
	char *summary = fmt("import %lld applied: orders 60000 added, 0 unchanged, 0 rejected, 0 without barcodes;"
			    " barcodes 120000 added, 0 sold from the stock, 0 unchanged, 0 rejected\n",
			    id);
	assert_string_equal(cr + 1, summary);
	assert_true(cr > tty && cr[-1] == ' ');
	free(first), free(last), free(applying), free(summary), free(out), free(tty);
	free(orders), free(barcodes);

	/* Another pair, as slow, with stderr on a pipe: the summary alone. */
	char *err;
	progress_files_write(300000, &orders, &barcodes, &osize, &bsize);
	hold_import(&db, &h1, &h2);
	const char *args2[] = {"vouchers", "import", "--orders", orders, "--barcodes", barcodes, NULL};
	rc = harness_cli(s->rpc_url, args2, NULL, &out, &err);
	assert_int_equal(harness_hold_finish(h1), 1);
	assert_int_equal(harness_hold_finish(h2), 1);
	if (rc != 0)
		fail_msg("rpcq vouchers import on a pipe: exit %d\nstdout: %s\nstderr: %s", rc, out, err);
	id = harness_sql_scalar(db.conninfo, "SELECT max(id) FROM voucher_imports");
	summary = fmt("import %lld applied: orders 60000 added, 0 unchanged, 0 rejected, 0 without barcodes;"
		      " barcodes 120000 added, 0 sold from the stock, 0 unchanged, 0 rejected\n",
		      id);
	assert_string_equal(err, summary);
	assert_null(strchr(err, '\r'));
	free(summary), free(out), free(err), free(orders), free(barcodes);
}

static int setup_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	harness_pg_start(&pg);
	return 0;
}

static int teardown_all(void **state)
{
	teardown_test(state);
	harness_pg_stop(&pg);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(
			test_the_real_exports_give_the_vouchers_top_5_and_unused_count_the_spec_implies, teardown_test),
		cmocka_unit_test_teardown(test_each_rule_rejects_its_rows_with_file_and_line, teardown_test),
		cmocka_unit_test_teardown(test_malformed_csv_rows_and_a_byte_order_mark_do_not_stop_the_import,
					  teardown_test),
		cmocka_unit_test_teardown(
			test_an_import_killed_midway_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one,
			teardown_test),
		cmocka_unit_test_teardown(
			test_issue_sells_from_the_unused_stock_and_fails_with_resource_exhausted_when_short,
			teardown_test),
		cmocka_unit_test_teardown(test_top_without_n_prints_the_top_5_ties_by_customer_id, teardown_test),
		cmocka_unit_test_teardown(test_an_order_longer_than_a_page_is_one_line, teardown_test),
		cmocka_unit_test_teardown(
			test_an_import_that_takes_a_while_shows_progress_on_a_terminal_and_none_on_a_pipe,
			teardown_test),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
