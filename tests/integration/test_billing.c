/*
 * The billing service end to end over RPC: real rpcqd processes on one real
 * PostgreSQL, a real SMTP server on loopback (tests/integration/smtp_sink.py,
 * aiosmtpd) or the .eml spool. The sample file gives 1,999 debts, bills and
 * e-mails and a second import adds none; bad rows are rejected with their
 * line and store nothing; an upload cut by kill -9 resumes on the other
 * process; kill -9 during dispatch loses and duplicates nothing beyond the
 * one window the README names, and kill -9 while an import merges and bills,
 * or while bills are written, loses and duplicates nothing; two processes
 * dispatch together; curl's upload of the sample bills and mails it; an HTTP
 * upload refused before its first chunk stores nothing, one refused, stalled
 * or cut later names its import and resumes with its key; failures
 * retry and then fail; a payment stops its e-mail, also before the bill and
 * between retries; an e-mail's Message-ID is its bill's; the spool's files
 * parse as RFC 5322. (The `rpcq billing` command has its own tests.)
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include <rpcq/rpcq.h>

#include "harness.h"
#include "smtp_sink.h"

#define PYTHON "/usr/bin/python3"

static harness_pg pg;
static harness_server srv[2];
static rpcq_client *cl[2];
static int running[2];

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- the SMTP sink ---- */

typedef smtp_sink sink;

static sink smtp;

static void sink_start(sink *s)
{
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/smtp", pg.dir);
	mkdir(dir, 0755);
	smtp_sink_start(s, dir, 0, "smtp", NULL);
}

static void sink_stop(sink *s)
{
	smtp_sink_stop(s);
}

/* Message-ID -> how many times the sink got it, over every message so far:
 * returns the number of distinct ids and sets *total and *dups. */
static int sink_count(const sink *s, int *total, int *dups)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd),
		 "import email, glob, collections, sys\n"
		 "c = collections.Counter()\n"
		 "for f in glob.glob('%s/msgs/*/message.eml'):\n"
		 "    m = email.message_from_binary_file(open(f, 'rb'))\n"
		 "    c[m['Message-ID']] += 1\n"
		 "print(len(c), sum(c.values()), sum(v - 1 for v in c.values()))\n",
		 s->dir);
	const char *argv[] = {PYTHON, "-c", cmd, NULL};
	char *out = NULL;
	assert_int_equal(harness_run(argv, NULL, &out, NULL, 60000), 0);
	int distinct = 0;
	assert_int_equal(sscanf(out, "%d %d %d", &distinct, total, dups), 3);
	free(out);
	return distinct;
}

/* One line per message the sink got, "<debt id> <Message-ID>" (the debt id
 * is the Subject's last word), in a malloc'd string the caller frees. */
static char *sink_messages(const sink *s)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd),
		 "import email, glob\n"
		 "for f in sorted(glob.glob('%s/msgs/*/message.eml')):\n"
		 "    m = email.message_from_binary_file(open(f, 'rb'))\n"
		 "    print(m['Subject'].split()[-1], m['Message-ID'].strip())\n",
		 s->dir);
	const char *argv[] = {PYTHON, "-c", cmd, NULL};
	char *out = NULL;
	assert_int_equal(harness_run(argv, NULL, &out, NULL, 60000), 0);
	return out;
}

/* How many messages the sink has accepted: the lines of its log, one per
 * message, written before its 250 (cheaper to poll than sink_count). */
static int sink_total(const sink *s)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/log", s->dir);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	int n = 0, ch;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* How many messages the sink has accepted for addr alone. */
static int sink_sent_to(const sink *s, const char *addr)
{
	enum { MAX = 4096 };
	smtp_sink_entry *e = calloc(MAX, sizeof(*e));
	assert_non_null(e);
	size_t n = smtp_sink_log(s, e, MAX);
	int k = 0;
	for (size_t i = 0; i < n; i++)
		k += strcmp(e[i].to, addr) == 0;
	free(e);
	return k;
}

/* Waits (at most ms) until the sink has accepted at least n messages;
 * returns how many it has. */
static int sink_wait(const sink *s, int n, int ms)
{
	int total = 0;
	for (int64_t deadline = now_ms() + ms;; sleep_ms(20)) {
		total = sink_total(s);
		if (total >= n || now_ms() > deadline)
			return total;
	}
}

/* ---- servers ---- */

static char spool[300];

static void server_up(int i, const char *mode)
{
	char lease[] = "2";
	if (strcmp(mode, "smtp") == 0) {
		const char *args[] = {"--smtp-url",
				      smtp.url,
				      "--mail-lease-s",
				      lease,
				      "--mail-retry-base-ms",
				      "200",
				      "--mail-max-attempts",
				      "3",
				      "--billing-schedule",
				      "1",
				      NULL};
		harness_server_start(&srv[i], &pg, args);
	} else if (strcmp(mode, "smtp-slow-retry") == 0) {
		/* The first retry at least 3.3 s after the first attempt: time
		 * enough to pay in between. */
		const char *args[] = {"--smtp-url",
				      smtp.url,
				      "--mail-lease-s",
				      lease,
				      "--mail-retry-base-ms",
				      "5000",
				      "--mail-max-attempts",
				      "3",
				      "--billing-schedule",
				      "1",
				      NULL};
		harness_server_start(&srv[i], &pg, args);
	} else if (strcmp(mode, "spool") == 0) {
		const char *args[] = {"--mail-spool", spool, "--billing-schedule", "1", NULL};
		harness_server_start(&srv[i], &pg, args);
	} else if (strcmp(mode, "read-timeout") == 0) {
		/* A body that stops coming is cut after 3 s without a byte. */
		const char *args[] = {"--billing-schedule", "0", "--http-read-timeout-ms", "3000", NULL};
		harness_server_start(&srv[i], &pg, args);
	} else if (strcmp(mode, "none7") == 0) {
		const char *args[] = {"--billing-schedule", "0", "--billing-batch", "7", NULL};
		harness_server_start(&srv[i], &pg, args);
	} else {
		const char *args[] = {"--billing-schedule", "0", NULL};
		harness_server_start(&srv[i], &pg, args);
	}
	rpcq_client_options o = {.servers = srv[i].rpc_url, .timeout_ms = 60000};
	rpcq_error err;
	if (rpcq_client_create(&cl[i], &o, &err) != RPCQ_OK)
		fail_msg("client: %s", err.message);
	running[i] = 1;
}

static void server_down(int i, int sig)
{
	if (!running[i])
		return;
	rpcq_client_destroy(cl[i]);
	cl[i] = NULL;
	/* Down whatever its exit status, so a failure here fails one test. */
	running[i] = 0;
	if (sig == SIGKILL) {
		kill(srv[i].pid, SIGKILL);
		waitpid(srv[i].pid, NULL, 0);
	} else {
		assert_int_equal(harness_server_stop(&srv[i]), 0);
	}
}

static int setup_all(void **state)
{
	(void)state;
	harness_pg_start(&pg);
	if (harness_migrate(&pg) != 0)
		return -1;
	snprintf(spool, sizeof(spool), "%s/spool", pg.dir);
	return 0;
}

static int teardown_all(void **state)
{
	server_down(0, SIGTERM);
	server_down(1, SIGTERM);
	sink_stop(&smtp);
	return harness_teardown(state);
}

/* Fresh tables and no server before each test. */
static int reset(void **state)
{
	(void)state;
	server_down(0, SIGTERM);
	server_down(1, SIGTERM);
	sink_stop(&smtp);
	harness_sql(pg.conninfo, "TRUNCATE billing_payments, billing_notifications, billing_bills, billing_bill_ranges,"
				 " billing_debts, billing_rejections, billing_imports");
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s/smtp'", spool, pg.dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* ---- imports ---- */

static Rpcq__Billing__Import *start_import(rpcq_client *c, const char *key, const char *name)
{
	Rpcq__Billing__StartImportRequest req = RPCQ__BILLING__START_IMPORT_REQUEST__INIT;
	req.key = (char *)(key ? key : "");
	req.name = (char *)(name ? name : "");
	Rpcq__Billing__Import *imp = NULL;
	rpcq_error err;
	if (rpcq_billing_start_import(c, &req, &imp, NULL, &err) != RPCQ_OK)
		fail_msg("StartImport: %s", err.message);
	return imp;
}

static void import_free(Rpcq__Billing__Import *imp)
{
	if (imp)
		protobuf_c_message_free_unpacked(&imp->base, NULL);
}

/* StartImport as start_import: the import's id (free it). */
static char *start_import_id(rpcq_client *c, const char *key, const char *name)
{
	Rpcq__Billing__Import *imp = start_import(c, key, name);
	char *id = strdup(imp->import_id);
	assert_non_null(id);
	import_free(imp);
	return id;
}

static rpcq_status send_chunk(rpcq_client *c, const char *id, uint64_t offset, const char *data, size_t len, int last,
			      rpcq_error *err)
{
	Rpcq__Billing__ImportChunkRequest req = RPCQ__BILLING__IMPORT_CHUNK_REQUEST__INIT;
	req.import_id = (char *)id;
	req.offset = offset;
	req.data.data = (uint8_t *)data;
	req.data.len = len;
	req.last = last;
	Rpcq__Billing__Import *imp = NULL;
	rpcq_status st = rpcq_billing_import_chunk(c, &req, &imp, NULL, err);
	import_free(imp);
	return st;
}

static void send_from(rpcq_client *c, const char *id, const char *text, size_t from, size_t len, size_t chunk)
{
	rpcq_error err;
	size_t off = from;
	do {
		size_t n = len - off < chunk ? len - off : chunk;
		if (send_chunk(c, id, off, text + off, n, off + n == len, &err) != RPCQ_OK)
			fail_msg("ImportChunk at %zu: %s", off, err.message);
		off += n;
	} while (off < len);
}

/* A new import (key, name) on c with text sent whole in chunks of chunk
 * bytes: its id (free it). */
static char *import_file(rpcq_client *c, const char *key, const char *name, const char *text, size_t len, size_t chunk)
{
	char *id = start_import_id(c, key, name);
	send_from(c, id, text, 0, len, chunk);
	return id;
}

static Rpcq__Billing__Import *get_import(rpcq_client *c, const char *id)
{
	Rpcq__Billing__GetImportRequest req = RPCQ__BILLING__GET_IMPORT_REQUEST__INIT;
	req.import_id = (char *)id;
	Rpcq__Billing__Import *imp = NULL;
	rpcq_error err;
	if (rpcq_billing_get_import(c, &req, &imp, NULL, &err) != RPCQ_OK)
		fail_msg("GetImport: %s", err.message);
	return imp;
}

/* Waits (at most ms) for the import to reach state; returns it. */
static Rpcq__Billing__Import *wait_state(rpcq_client *c, const char *id, Rpcq__Billing__ImportState state, int ms)
{
	int64_t deadline = now_ms() + ms;
	for (;;) {
		Rpcq__Billing__Import *imp = get_import(c, id);
		if (imp->state >= state || now_ms() > deadline)
			return imp;
		import_free(imp);
		sleep_ms(100);
	}
}

/* ---- holding rpcqd at a known point ---- */

/* A session of the test's own, in a transaction, whose locks make rpcqd's
 * work wait at a known statement, so that a kill -9 lands inside an open
 * transaction of rpcqd's rather than somewhere by chance. */
static PGconn *hold_begin(void)
{
	PGconn *db = PQconnectdb(pg.conninfo);
	if (PQstatus(db) != CONNECTION_OK)
		fail_msg("connecting: %s", PQerrorMessage(db));
	PGresult *r = PQexec(db, "BEGIN; SET LOCAL lock_timeout = '30s'");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	return db;
}

static void hold_exec(PGconn *db, const char *sql)
{
	PGresult *r = PQexec(db, sql);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		char why[512];
		snprintf(why, sizeof(why), "%s", PQerrorMessage(db));
		PQclear(r);
		fail_msg("%s: %s", sql, why);
	}
	PQclear(r);
}

/* Ends the session's transaction (so its locks) and the session. */
static void hold_end(PGconn *db)
{
	hold_exec(db, "ROLLBACK");
	PQfinish(db);
}

/* Waits (at most ms) until another session waits for a lock (wait_event
 * "advisory" or "relation") on a statement that starts with prefix. */
static void wait_for_lock_waiter(const char *wait_event, const char *prefix, int ms)
{
	char sql[600];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = '%s'"
		 " AND left(query, %zu) = '%s'",
		 wait_event, strlen(prefix), prefix);
	for (int64_t deadline = now_ms() + ms; harness_sql_scalar(pg.conninfo, sql) == 0; sleep_ms(10))
		if (now_ms() > deadline)
			fail_msg("nothing waited for a lock on \"%s\" within %d ms", prefix, ms);
}

/* One ImportChunk on a client of its own, on a thread, so that the test
 * can kill the server while the chunk is being taken. */
typedef struct chunk_call {
	const char *url;
	const char *id;
	uint64_t offset;
	const char *data;
	size_t len;
	rpcq_status st;
	pthread_t thread;
} chunk_call;

static void *chunk_call_run(void *arg)
{
	chunk_call *cc = arg;
	/* Short: the server is killed under it, and nng does not resend. */
	rpcq_client_options o = {.servers = cc->url, .timeout_ms = 2000, .max_retries = -1};
	rpcq_client *c = NULL;
	rpcq_error err;
	cc->st = rpcq_client_create(&c, &o, &err);
	if (cc->st == RPCQ_OK)
		cc->st = send_chunk(c, cc->id, cc->offset, cc->data, cc->len, 0, &err);
	rpcq_client_destroy(c);
	return NULL;
}

static char *read_sample(size_t *len)
{
	char path[512];
	return harness_read_file(harness_shared_path("data/billing/debts_sample.csv", path, sizeof(path)), len);
}

static int count_files(const char *dir)
{
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c '\\.eml$'", dir);
	const char *argv[] = {"sh", "-c", cmd, NULL};
	char *out = NULL;
	harness_run(argv, NULL, &out, NULL, 10000);
	int n = out ? (int)strtol(out, NULL, 10) : -1;
	free(out);
	return n;
}

/* ---- tests ---- */

/* The sample's import over: every debt with exactly one bill, every e-mail
 * delivered to the sink exactly once, and nothing left to bill or send. */
static void expect_the_sample_billed_and_mailed_once(const char *id)
{
	Rpcq__Billing__Import *imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 120000);
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__DONE);
	assert_int_equal(imp->rows, 2053);
	assert_int_equal(imp->new_debts, 1999);
	assert_int_equal(imp->repeated, 54);
	assert_int_equal(imp->rejected, 0);
	assert_int_equal(imp->bills, 1999);
	assert_int_equal(imp->emails_sent, 1999);
	assert_int_equal(imp->emails_failed, 0);
	assert_int_equal(imp->emails_pending, 0);
	import_free(imp);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999);
	assert_int_equal(harness_sql_scalar(pg.conninfo,
					    "SELECT count(*) FROM billing_debts d WHERE"
					    " (SELECT count(*) FROM billing_bills b WHERE b.debt = d.id) = 1"),
			 1999);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bills"), 1999);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bill_ranges"), 0);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_notifications WHERE state = 2"),
			 1999);
	int total, dups;
	int distinct = sink_count(&smtp, &total, &dups);
	print_message("sink: %d messages, %d distinct, %d duplicate(s)\n", total, distinct, dups);
	assert_int_equal(distinct, 1999);
	assert_int_equal(total, 1999);
	assert_int_equal(dups, 0);
}

static void test_the_sample_gives_1999_debts_bills_and_emails_and_a_second_import_adds_none(void **state)
{
	(void)state;
	sink_start(&smtp);
	server_up(0, "smtp");
	size_t len;
	char *text = read_sample(&len);
	char *id = import_file(cl[0], "sample", "debts_sample.csv", text, len, 7919);
	expect_the_sample_billed_and_mailed_once(id);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(DISTINCT barcode) FROM billing_bills"), 1999);

	/* The same file again (another key): nothing new, nothing sent. */
	free(id);
	id = import_file(cl[0], "sample-again", NULL, text, len, 1 << 20);
	Rpcq__Billing__Import *imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 10000);
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__DONE);
	assert_int_equal(imp->new_debts, 0);
	assert_int_equal(imp->repeated, 2053);
	assert_int_equal(imp->accepted, 2053);
	assert_int_equal(imp->bills, 0);
	import_free(imp);
	sleep_ms(1500);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999);
	int total, dups;
	assert_int_equal(sink_count(&smtp, &total, &dups), 1999);
	assert_int_equal(total, 1999);
	free(id);
	free(text);
}

static char *generate(int n, const char *prefix, const char *local);

static void test_the_spool_holds_one_rfc_5322_file_per_email(void **state)
{
	(void)state;
	server_up(0, "spool");
	const int n = 150;
	char *text = generate(n, "s", "spool");
	char *id = import_file(cl[0], NULL, "spool.csv", text, strlen(text), 4000);
	Rpcq__Billing__Import *imp;
	imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 60000);
	assert_int_equal(imp->emails_sent, n);
	import_free(imp);
	assert_int_equal(count_files(spool), n);
	/* Every file is an RFC 5322 message naming its debt, with a Message-ID
	 * of its own and the slip as its body. */
	char cmd[900];
	snprintf(cmd, sizeof(cmd),
		 "import email, email.policy, glob, sys\n"
		 "ids = set()\n"
		 "for f in glob.glob('%s/*.eml'):\n"
		 "    raw = open(f, 'rb').read()\n"
		 "    assert b'\\r\\n' in raw and all(len(l) <= 998 for l in raw.split(b'\\r\\n')), f\n"
		 "    m = email.message_from_bytes(raw, policy=email.policy.strict)\n"
		 "    assert not m.defects, (f, m.defects)\n"
		 "    for h in ('From', 'To', 'Subject', 'Date', 'Message-ID'): assert m[h], (f, h)\n"
		 "    body = m.get_content()\n"
		 "    debt = m['Subject'].split()[-1]\n"
		 "    assert debt in body, f\n"
		 "    ids.add(m['Message-ID'])\n"
		 "print(len(ids))\n",
		 spool);
	const char *argv[] = {PYTHON, "-c", cmd, NULL};
	char *out = NULL, *err = NULL;
	int rc = harness_run(argv, NULL, &out, &err, 120000);
	if (rc != 0)
		fail_msg("the spool's files do not parse: %s", err);
	assert_int_equal((int)strtol(out, NULL, 10), n);
	free(out);
	free(err);
	free(id);
	free(text);
}

static const char bad_file[] = "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
			       "Ann,1,ann@example.com,10.00,2030-01-01,d1\n"
			       "Bob,2,bob@example.com,12.345,2030-01-01,d2\n"
			       "Cid,3,cid@example.com,5,2030-02-30,d3\n"
			       "Dee,4,not-an-address,5,2030-01-01,d4\n"
			       "Eve,5,eve@example.com,5,2030-01-01\n"
			       "Ann,1,ann@example.com,99.00,2030-01-01,d1\n"
			       "Ann,1,ann@example.com,10,2030-01-01,d1\n"
			       "\xc2\xa0"
			       "Fay\xc2\xa0"
			       ",6, fay@example.com ,7.5,2030-01-01,d6\r\n";

/* ListRejections; the reply, or NULL when it fails with want. */
static Rpcq__Billing__ListRejectionsResponse *list_rejections(rpcq_client *c, const char *id, uint32_t size,
							      const char *token, rpcq_status want)
{
	Rpcq__Billing__ListRejectionsRequest req = RPCQ__BILLING__LIST_REJECTIONS_REQUEST__INIT;
	req.import_id = (char *)id;
	req.page_size = size;
	req.page_token = (char *)token;
	Rpcq__Billing__ListRejectionsResponse *r = NULL;
	rpcq_error err;
	rpcq_status st = rpcq_billing_list_rejections(c, &req, &r, NULL, &err);
	if (st != want)
		fail_msg("ListRejections(%s, \"%s\"): %d (%s), not %d", id, token, st, st ? err.message : "", want);
	return r;
}

static void test_bad_rows_are_rejected_with_their_line_and_store_nothing(void **state)
{
	(void)state;
	server_up(0, "none");
	char *id = import_file(cl[0], NULL, "bad.csv", bad_file, strlen(bad_file), 13);
	Rpcq__Billing__Import *imp;
	imp = get_import(cl[0], id);
	assert_int_equal(imp->rows, 8);
	assert_int_equal(imp->new_debts, 2);
	assert_int_equal(imp->repeated, 1);
	assert_int_equal(imp->rejected, 5);
	assert_int_equal(imp->n_first_rejections, 5);
	const uint64_t lines[] = {3, 4, 5, 6, 7};
	for (int i = 0; i < 5; i++)
		assert_int_equal(imp->first_rejections[i]->line, lines[i]);
	assert_non_null(strstr(imp->first_rejections[0]->reason, "12.345"));
	assert_non_null(strstr(imp->first_rejections[1]->reason, "2030-02-30"));
	assert_non_null(strstr(imp->first_rejections[2]->reason, "not-an-address"));
	assert_non_null(strstr(imp->first_rejections[3]->reason, "found 5"));
	assert_string_equal(imp->first_rejections[4]->reason, "debtId d1 repeats line 2 with other values");
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__BILLING); /* nothing bills here */
	import_free(imp);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 2);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts WHERE debt_id = 'd6'"
							 " AND name = 'Fay' AND email = 'fay@example.com'"
							 " AND amount_cents = 750"),
			 1);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT amount_cents FROM billing_debts WHERE debt_id = 'd1'"),
			 1000);
	/* Page by page, the same lines; a token no page gave is refused. */
	char *token = NULL;
	int seen = 0, pages = 0;
	do {
		Rpcq__Billing__ListRejectionsResponse *r = list_rejections(cl[0], id, 2, token ? token : "", RPCQ_OK);
		for (size_t k = 0; k < r->n_rejections && seen < 5; k++)
			assert_int_equal(r->rejections[k]->line, lines[seen++]);
		free(token);
		token = r->next_page_token[0] ? strdup(r->next_page_token) : NULL;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	} while (token != NULL && ++pages < 5);
	assert_int_equal(seen, 5);
	assert_int_equal(pages, 2); /* pages of 2, 2 and 1 */
	assert_null(token);
	assert_null(list_rejections(cl[0], id, 0, "-5", RPCQ_INVALID_ARGUMENT));
	assert_null(list_rejections(cl[0], id, 0, "7x", RPCQ_INVALID_ARGUMENT));
	/* Past the last one, an empty page; an import no one started, NOT_FOUND. */
	Rpcq__Billing__ListRejectionsResponse *past = list_rejections(cl[0], id, 0, "1000", RPCQ_OK);
	assert_int_equal(past->n_rejections, 0);
	assert_string_equal(past->next_page_token, "");
	protobuf_c_message_free_unpacked(&past->base, NULL);
	assert_null(list_rejections(cl[0], "999999", 0, "", RPCQ_NOT_FOUND));

	/* A later file that names a known debt with other values. */
	imp = start_import(cl[0], NULL, "later.csv");
	const char later[] =
		"name,governmentId,email,debtAmount,debtDueDate,debtId\nAnn,1,ann@example.com,11,2030-01-01,d1\n";
	send_from(cl[0], imp->import_id, later, 0, strlen(later), 100);
	Rpcq__Billing__Import *l = get_import(cl[0], imp->import_id);
	assert_int_equal(l->rejected, 1);
	char want[128];
	snprintf(want, sizeof(want), "debtId d1 is known with other values (line 2 of import %s)", id);
	assert_string_equal(l->first_rejections[0]->reason, want);
	import_free(l);
	import_free(imp);

	/* A wrong header: the chunk is refused, nothing taken. */
	imp = start_import(cl[0], NULL, "header.csv");
	rpcq_error err;
	assert_int_equal(send_chunk(cl[0], imp->import_id, 0, "a,b\n1,2\n", 8, 1, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "header.csv: line 1: "));
	Rpcq__Billing__Import *h = get_import(cl[0], imp->import_id);
	assert_int_equal(h->received_bytes, 0);
	import_free(h);
	import_free(imp);
	free(id);
}

static void test_an_upload_cut_by_kill_9_resumes_on_the_other_process(void **state)
{
	(void)state;
	server_up(0, "none");
	server_up(1, "none");
	size_t len;
	char *text = read_sample(&len);
	char *id = start_import_id(cl[0], "cut", NULL);
	Rpcq__Billing__Import *imp;
	rpcq_error err;
	/* Two chunks, the second cut inside a record, then kill -9. */
	assert_int_equal(send_chunk(cl[0], id, 0, text, 50000, 0, &err), RPCQ_OK);
	assert_int_equal(send_chunk(cl[0], id, 50000, text + 50000, 33333, 0, &err), RPCQ_OK);
	server_down(0, SIGKILL);
	imp = start_import(cl[1], "cut", NULL);
	assert_string_equal(imp->import_id, id);
	assert_int_equal(imp->received_bytes, 83333);
	uint64_t from = imp->received_bytes;
	import_free(imp);
	/* A resent chunk changes nothing; a gap is refused. */
	assert_int_equal(send_chunk(cl[1], id, 50000, text + 50000, 33333, 0, &err), RPCQ_OK);
	assert_int_equal(send_chunk(cl[1], id, from + 10, text + from + 10, 10, 0, &err), RPCQ_FAILED_PRECONDITION);
	send_from(cl[1], id, text, from, len, 20000);
	imp = get_import(cl[1], id);
	assert_true(imp->complete);
	assert_int_equal(imp->rows, 2053);
	assert_int_equal(imp->new_debts, 1999);
	assert_int_equal(imp->repeated, 54);
	import_free(imp);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT sum(n) FROM billing_bill_ranges"), 1999);
	free(id);
	free(text);
}

/* A generated file of n debts for name@example.com-style recipients. */
static char *generate(int n, const char *prefix, const char *local)
{
	size_t cap = (size_t)n * 100 + 100, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	len += (size_t)snprintf(s, cap, "name,governmentId,email,debtAmount,debtDueDate,debtId\n");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len,
					"Name %d,%d,%s%d@example.com,%d.%02d,2031-%02d-%02d,%s-%d\n", i, 1000 + i,
					local, i, 10 + i, i % 100, 1 + i % 12, 1 + i % 28, prefix, i);
	return s;
}

static void test_kill_9_during_dispatch_with_two_processes_loses_nothing(void **state)
{
	(void)state;
	sink_start(&smtp);
	server_up(0, "smtp");
	server_up(1, "smtp");
	const int n = 1500;
	char *text = generate(n, "k", "user");
	char *id = import_file(cl[1], NULL, "kill.csv", text, strlen(text), 30000);
	Rpcq__Billing__Import *imp;
	/* Once e-mails are going out, kill -9 one process, then start it again. */
	for (int64_t deadline = now_ms() + 30000; now_ms() < deadline; sleep_ms(20)) {
		int total, dups;
		if (sink_count(&smtp, &total, &dups) >= 100)
			break;
	}
	server_down(0, SIGKILL);
	sleep_ms(300);
	server_up(0, "smtp");
	imp = wait_state(cl[1], id, RPCQ__BILLING__IMPORT_STATE__DONE, 120000);
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__DONE);
	assert_int_equal(imp->emails_sent, n);
	assert_int_equal(imp->emails_failed, 0);
	import_free(imp);
	int total, dups;
	int distinct = sink_count(&smtp, &total, &dups);
	print_message("dispatch: %d messages, %d distinct, %d duplicate(s)\n", total, distinct, dups);
	assert_int_equal(distinct, n);
	/* One kill: at most the one e-mail it was sending can come twice. */
	assert_true(dups <= 1);
	/* Both processes sent (each keeps one SMTP connection: distinct client ports). */
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "cut -d' ' -f2 '%s/log' | sort -u | wc -l", smtp.dir);
	const char *argv[] = {"sh", "-c", cmd, NULL};
	char *out = NULL;
	harness_run(argv, NULL, &out, NULL, 10000);
	assert_true((int)strtol(out, NULL, 10) >= 2);
	free(out);
	free(id);
	free(text);
}

/* rpcqd's merge lock (server/services/billing/sql.h, BILLING_MERGE_LOCK_KEY). */
#define MERGE_LOCK_SQL "SELECT pg_advisory_xact_lock(7401005)"

/* kill -9 of the only rpcqd while the sample is being imported, billed and
 * mailed: one chunk inside its transaction (its rows staged, waiting to
 * merge), a biller inside its range's (bills written, their e-mails not),
 * the dispatcher between two e-mails, earlier e-mails delivered. The
 * outbox is locked meanwhile, so that no SMTP transaction is open at the
 * kill (the README's one duplicate window): then not even one e-mail may
 * come twice. Restarted as it was, the upload resumes from the last
 * acknowledged offset. */
static void test_kill_9_while_an_import_merges_and_bills_loses_and_duplicates_nothing(void **state)
{
	(void)state;
	sink_start(&smtp);
	server_up(0, "smtp");
	size_t len;
	char *text = read_sample(&len);
	const size_t chunk = 20000;
	char *id = start_import_id(cl[0], "kill-merge", "debts_sample.csv");
	Rpcq__Billing__Import *imp;
	rpcq_error err;
	/* Two chunks taken, and e-mails going out. */
	for (size_t off = 0; off < 2 * chunk; off += chunk)
		assert_int_equal(send_chunk(cl[0], id, off, text + off, chunk, 0, &err), RPCQ_OK);
	assert_true(sink_wait(&smtp, 1, 30000) >= 1);

	/* The outbox locked: dispatchers stop between two e-mails; two more
	 * chunks are merged and a biller waits inside its transaction. */
	PGconn *hold = hold_begin();
	hold_exec(hold, "LOCK TABLE billing_notifications IN EXCLUSIVE MODE");
	for (size_t off = 2 * chunk; off < 4 * chunk; off += chunk)
		assert_int_equal(send_chunk(cl[0], id, off, text + off, chunk, 0, &err), RPCQ_OK);
	wait_for_lock_waiter("relation", "COPY billing_notifications", 10000);
	/* The merge lock held too: the fifth chunk waits inside its own. */
	hold_exec(hold, MERGE_LOCK_SQL);
	chunk_call cc = {srv[0].rpc_url, id, 4 * chunk, text + 4 * chunk, chunk, RPCQ_OK, 0};
	assert_int_equal(pthread_create(&cc.thread, NULL, chunk_call_run, &cc), 0);
	wait_for_lock_waiter("advisory", MERGE_LOCK_SQL, 10000);
	int total, dups;
	int before = sink_count(&smtp, &total, &dups);
	server_down(0, SIGKILL);
	hold_end(hold);
	pthread_join(cc.thread, NULL);
	assert_int_not_equal(cc.st, RPCQ_OK);
	print_message("killed with %d e-mail(s) delivered, a chunk and a range of bills open\n", before);
	assert_true(before < 1999);

	/* Restarted as it was: the fifth chunk was not taken. */
	server_up(0, "smtp");
	imp = start_import(cl[0], "kill-merge", NULL);
	assert_string_equal(imp->import_id, id);
	assert_int_equal(imp->received_bytes, 4 * chunk);
	import_free(imp);
	send_from(cl[0], id, text, 4 * chunk, len, chunk);
	expect_the_sample_billed_and_mailed_once(id);
	free(id);
	free(text);
}

/* kill -9 of the only rpcqd while it writes bills: the sample imported by
 * a process that bills nothing, then half its queue billed and mailed
 * (the other half held back by the test's row locks), then, the outbox
 * locked and the rest let go, a biller inside a range's transaction.
 * Restarted as it was, every debt is billed once and mailed once. */
static void test_kill_9_while_bills_are_written_loses_and_duplicates_nothing(void **state)
{
	(void)state;
	sink_start(&smtp);
	server_up(0, "none");
	size_t len;
	char *text = read_sample(&len);
	char *id = import_file(cl[0], "kill-bills", "debts_sample.csv", text, len, 20000);
	Rpcq__Billing__Import *imp; /* a range per chunk */
	server_down(0, SIGTERM);
	assert_true(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bill_ranges") >= 8);
	static const char later_sql[] = "(SELECT lo FROM billing_bill_ranges ORDER BY lo OFFSET 4 LIMIT 1)";
	char sql[300];
	snprintf(sql, sizeof(sql), "SELECT coalesce(sum(n), 0) FROM billing_bill_ranges WHERE lo < %s", later_sql);
	long long first = harness_sql_scalar(pg.conninfo, sql);
	assert_true(first > 0 && first < 1999);
	PGconn *later = hold_begin();
	snprintf(sql, sizeof(sql), "SELECT lo FROM billing_bill_ranges WHERE lo >= %s FOR UPDATE", later_sql);
	hold_exec(later, sql);

	server_up(0, "smtp");
	assert_int_equal(sink_wait(&smtp, (int)first, 60000), (int)first);
	imp = get_import(cl[0], id);
	assert_int_equal(imp->bills, first);
	import_free(imp);

	/* The outbox locked, the rest of the queue let go: the biller claims
	 * a range, writes its bills and waits to queue their e-mails. */
	PGconn *outbox = hold_begin();
	hold_exec(outbox, "LOCK TABLE billing_notifications IN EXCLUSIVE MODE");
	hold_end(later);
	wait_for_lock_waiter("relation", "COPY billing_notifications", 10000);
	server_down(0, SIGKILL);
	hold_end(outbox);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bills"), first);

	server_up(0, "smtp");
	expect_the_sample_billed_and_mailed_once(id);
	free(id);
	free(text);
}

/* A JSON field's number (proto3 JSON writes 64-bit numbers as strings). */
static long long json_number(const char *json, const char *name)
{
	char key[64];
	snprintf(key, sizeof(key), "\"%s\":", name);
	const char *at = strstr(json, key);
	if (at == NULL)
		return 0;
	at += strlen(key);
	if (*at == '"')
		at++;
	return strtoll(at, NULL, 10);
}

/* billing.imports.<id> over SSE carries the import's progress while it
 * runs: after each chunk, an Import with what has been read so far, in
 * order and growing, before the next chunk is sent; the last one says
 * complete. */
static void test_the_imports_stream_carries_its_progress_while_it_runs(void **state)
{
	(void)state;
	server_up(0, "none");
	size_t len;
	char *text = read_sample(&len);
	char *id = start_import_id(cl[0], "progress", "debts_sample.csv");
	char sse_url[300];
	snprintf(sse_url, sizeof(sse_url), "%s/streams/billing.imports.%s", srv[0].http_url, id);
	harness_sse *sse = harness_sse_open(sse_url, NULL, 10000);
	assert_int_equal(harness_sse_status(sse), 200);
	const size_t chunk = 40000;
	long long rows = 0;
	int steps = 0;
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		int last = off + n == len;
		rpcq_error err;
		if (send_chunk(cl[0], id, off, text + off, n, last, &err) != RPCQ_OK)
			fail_msg("chunk at %zu: %s", off, err.message);
		/* Its progress, before the next chunk goes. */
		for (;;) {
			harness_sse_event ev;
			if (harness_sse_next(sse, 10000, &ev) != 1)
				fail_msg("no progress on %s within 10 s of the chunk at %zu", sse_url, off);
			long long got = json_number(ev.data, "rows"), at = json_number(ev.data, "receivedBytes");
			int complete = strstr(ev.data, "\"complete\":true") != NULL;
			if (got < rows)
				fail_msg("progress went back from %lld to %lld rows: %s", rows, got, ev.data);
			if (complete && !last)
				fail_msg("complete before the last chunk: %s", ev.data);
			rows = got;
			harness_sse_event_free(&ev);
			if (at == (long long)(off + n)) {
				if (!last && (rows == 0 || rows >= 2053))
					fail_msg("after %lld bytes the stream says %lld rows of 2,053", at, rows);
				if (last && !complete)
					fail_msg("the last chunk's progress does not say complete");
				break;
			}
		}
		steps++;
	}
	assert_true(steps > 3);
	assert_int_equal(rows, 2053);
	harness_sse_close(sse);
	free(id);
	free(text);
}

static int curl(const char *const *args, char **out, char **err, const char *stdin_text)
{
	const char *argv[24] = {"curl", "-s", "-S", "--max-time", "60", "-w", "\n%{http_code}"};
	int n = 7;
	for (int i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return harness_run(argv, stdin_text, out, err, 90000);
}

/* The HTTP status curl printed last (-w), and the body before it. */
static long curl_status(char *out)
{
	char *nl = strrchr(out, '\n');
	assert_non_null(nl);
	*nl = '\0';
	return strtol(nl + 1, NULL, 10);
}

static void test_the_http_upload_streams_a_file_into_an_import(void **state)
{
	(void)state;
	server_up(0, "none");
	char url[200], path[512];
	snprintf(url, sizeof(url), "%s/billing/imports", srv[0].http_url);
	harness_shared_path("data/billing/debts_sample.csv", path, sizeof(path));

	/* As an HTML form sends it (curl -F): the file part's name names the import. */
	char form[600];
	snprintf(form, sizeof(form), "file=@%s;type=text/csv", path);
	const char *a1[] = {"-F", "note=hello", "-F", form, url, NULL};
	char *out = NULL, *err = NULL;
	assert_int_equal(curl(a1, &out, &err, NULL), 0);
	assert_int_equal(curl_status(out), 201);
	assert_non_null(strstr(out, "\"name\":\"debts_sample.csv\""));
	assert_int_equal(json_number(out, "newDebts"), 1999);
	assert_int_equal(json_number(out, "repeated"), 54);
	assert_int_equal(json_number(out, "rows"), 2053);
	long long first = json_number(out, "importId");
	free(out);
	free(err);

	/* A CSV body larger than any message (5.6 MB against the 4 MiB limit),
	 * sent chunked from stdin: streamed, one chunk at a time. */
	const int n = 80000;
	char *text = generate(n, "h", "http");
	assert_true(strlen(text) > 4u << 20);
	char url2[300];
	snprintf(url2, sizeof(url2), "%s?name=big.csv&key=http-big", url);
	const char *a2[] = {"-X", "POST", "-T", "-", "-H", "Content-Type: text/csv", url2, NULL};
	assert_int_equal(curl(a2, &out, &err, text), 0);
	assert_int_equal(curl_status(out), 201);
	assert_int_equal(json_number(out, "newDebts"), n);
	assert_int_equal(json_number(out, "receivedBytes"), (long long)strlen(text));
	long long big = json_number(out, "importId");
	free(out);
	free(err);
	/* The same key again: the import as it stands, nothing added. */
	assert_int_equal(curl(a2, &out, &err, text), 0);
	assert_int_equal(curl_status(out), 201);
	assert_int_equal(json_number(out, "importId"), big);
	assert_int_equal(json_number(out, "newDebts"), n);
	free(out);
	free(err);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999 + n);

	/* An HTML form's file of several 1 MiB chunks (about 3 MB): its part
	 * is streamed into the import chunk by chunk as well. */
	const int m = 40000;
	char *form_text = generate(m, "f", "form");
	char form_path[300], form_arg[400];
	snprintf(form_path, sizeof(form_path), "%s/form.csv", pg.dir);
	FILE *ff = fopen(form_path, "wb");
	assert_non_null(ff);
	assert_int_equal(fwrite(form_text, 1, strlen(form_text), ff), strlen(form_text));
	assert_int_equal(fclose(ff), 0);
	assert_true(strlen(form_text) > 2u << 20);
	snprintf(form_arg, sizeof(form_arg), "file=@%s;type=text/csv", form_path);
	const char *a7[] = {"-F", form_arg, url, NULL};
	assert_int_equal(curl(a7, &out, &err, NULL), 0);
	assert_int_equal(curl_status(out), 201);
	assert_non_null(strstr(out, "\"name\":\"form.csv\""));
	assert_int_equal(json_number(out, "newDebts"), m);
	assert_int_equal(json_number(out, "receivedBytes"), (long long)strlen(form_text));
	free(out);
	free(err);
	free(form_text);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999 + n + m);

	/* Its status as JSON, and its progress as Server-Sent Events. */
	char status_url[300];
	snprintf(status_url, sizeof(status_url), "%s/%lld", url, first);
	harness_http_reply r;
	assert_int_equal(harness_http("GET", status_url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_number(r.body, "importId"), first);
	assert_int_equal(json_number(r.body, "newDebts"), 1999);
	harness_http_reply_free(&r);
	snprintf(status_url, sizeof(status_url), "%s/999999", url);
	assert_int_equal(harness_http("GET", status_url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 404);
	harness_http_reply_free(&r);
	char sse_url[300];
	snprintf(sse_url, sizeof(sse_url), "%s/streams/billing.imports.%lld?after_seq=0", srv[0].http_url, first);
	harness_sse *sse = harness_sse_open(sse_url, NULL, 10000);
	assert_int_equal(harness_sse_status(sse), 200);
	harness_sse_event ev;
	assert_int_equal(harness_sse_next(sse, 10000, &ev), 1);
	assert_non_null(strstr(ev.data, "newDebts"));
	harness_sse_event_free(&ev);
	harness_sse_close(sse);

	/* Refusals: another media type, a form without a file, a wrong header. */
	const char *a3[] = {"-X", "POST", "-H", "Content-Type: image/png", "--data-binary", "x", url, NULL};
	assert_int_equal(curl(a3, &out, &err, NULL), 0);
	assert_int_equal(curl_status(out), 415);
	free(out);
	free(err);
	const char *a4[] = {"-F", "note=hello", url, NULL};
	assert_int_equal(curl(a4, &out, &err, NULL), 0);
	assert_int_equal(curl_status(out), 400);
	assert_non_null(strstr(out, "no file part"));
	free(out);
	free(err);
	const char *a5[] = {"-X", "POST", "-H", "Content-Type: text/csv", "--data-binary", "a,b\n1,2\n", url, NULL};
	assert_int_equal(curl(a5, &out, &err, NULL), 0);
	assert_int_equal(curl_status(out), 400);
	assert_non_null(strstr(out, "line 1: the header must be"));
	free(out);
	free(err);
	const char *a6[] = {"-X", "PUT", "--data-binary", "x", url, NULL};
	assert_int_equal(curl(a6, &out, &err, NULL), 0);
	assert_int_equal(curl_status(out), 405);
	free(out);
	free(err);
	free(text);
}

/* GET /billing/imports/<id>, waiting (at most ms) until it says DONE; the
 * JSON it last answered, malloc'd. */
static char *http_wait_done(const char *status_url, int ms)
{
	harness_http_reply r;
	for (int64_t deadline = now_ms() + ms;; sleep_ms(100)) {
		assert_int_equal(harness_http("GET", status_url, NULL, NULL, 0, &r), 0);
		assert_int_equal(r.status, 200);
		if (strstr(r.body, "\"state\":\"DONE\"") || now_ms() > deadline)
			break;
		harness_http_reply_free(&r);
	}
	char *body = strdup(r.body);
	harness_http_reply_free(&r);
	return body;
}

/* The sample through curl, as the README shows it, with a process that
 * bills and mails: 1,999 debts, bills and e-mails, which the import's JSON
 * status shows and the SMTP server receives; the same file again adds no
 * debt, bill or e-mail. */
/* GET /billing/bills/<debtId> and .../slip.pdf for the sample's first
 * debt (Elijah Santos, 7811 due 2024-01-19): the bill as JSON; the slip as a
 * PDF that pdftotext reads the same fields from; errors as on every route. */
static void http_bill_and_its_pdf_slip(void)
{
	const char *debt = "ea23f2ca-663a-4266-a742-9da4c9f4fcb3";
	char url[300], pdf_url[320], pdf_path[] = "/tmp/rpcq-test-slip-XXXXXX";
	snprintf(url, sizeof(url), "%s/billing/bills/%s", srv[0].http_url, debt);
	snprintf(pdf_url, sizeof(pdf_url), "%s/slip.pdf", url);
	harness_http_reply r;
	assert_int_equal(harness_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(harness_http_header(&r, "Content-Type"), "application/json"));
	char code[80] = "";
	const char *at = strstr(r.body, "\"paymentCode\":\"");
	assert_non_null(at);
	sscanf(at + 15, "%79[^\"]", code);
	assert_int_equal(strlen(code), 54);
	assert_non_null(strstr(r.body, "\"name\":\"Elijah Santos\""));
	assert_null(strstr(r.body, "slipPdf"));
	harness_http_reply_free(&r);

	assert_int_equal(harness_http("GET", pdf_url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(harness_http_header(&r, "Content-Type"), "application/pdf");
	assert_true(r.body_len > 1000);
	assert_memory_equal(r.body, "%PDF-1.", 7);
	int fd = mkstemp(pdf_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, r.body, r.body_len), (ssize_t)r.body_len);
	close(fd);
	harness_http_reply_free(&r);
	const char *argv[] = {"pdftotext", pdf_path, "-", NULL};
	char *out = NULL, *err = NULL;
	if (harness_run(argv, NULL, &out, &err, 30000) != 0)
		fail_msg("pdftotext: %s", err);
	unlink(pdf_path);
	assert_non_null(strstr(out, code));
	assert_non_null(strstr(out, debt));
	assert_non_null(strstr(out, "Elijah Santos"));
	assert_non_null(strstr(out, "7811.00"));
	assert_non_null(strstr(out, "2024-01-19"));
	free(out);
	free(err);

	/* An unknown debt, another method. */
	snprintf(pdf_url, sizeof(pdf_url), "%s/billing/bills/no-such-debt/slip.pdf", srv[0].http_url);
	assert_int_equal(harness_http("GET", pdf_url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "\"code\":\"not_found\""));
	assert_non_null(strstr(r.body, "no-such-debt"));
	harness_http_reply_free(&r);
	assert_int_equal(harness_http("DELETE", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 405);
	harness_http_reply_free(&r);
}

static void test_curl_posting_the_sample_bills_and_mails_1999_debts_and_again_adds_none(void **state)
{
	(void)state;
	sink_start(&smtp);
	server_up(0, "smtp");
	char url[200], path[512], form[600], status_url[300];
	snprintf(url, sizeof(url), "%s/billing/imports", srv[0].http_url);
	harness_shared_path("data/billing/debts_sample.csv", path, sizeof(path));
	snprintf(form, sizeof(form), "file=@%s", path);
	const char *args[] = {"-F", form, url, NULL};
	char *out = NULL, *err = NULL;
	assert_int_equal(curl(args, &out, &err, NULL), 0);
	assert_int_equal(curl_status(out), 201);
	assert_int_equal(json_number(out, "rows"), 2053);
	assert_int_equal(json_number(out, "newDebts"), 1999);
	assert_int_equal(json_number(out, "repeated"), 54);
	long long first = json_number(out, "importId");
	free(out);
	free(err);

	snprintf(status_url, sizeof(status_url), "%s/%lld", url, first);
	char *body = http_wait_done(status_url, 120000);
	assert_non_null(strstr(body, "\"state\":\"DONE\""));
	assert_int_equal(json_number(body, "newDebts"), 1999);
	assert_int_equal(json_number(body, "bills"), 1999);
	assert_int_equal(json_number(body, "emailsSent"), 1999);
	assert_int_equal(json_number(body, "emailsFailed"), 0);
	assert_int_equal(json_number(body, "emailsPending"), 0);
	free(body);
	int total, dups;
	assert_int_equal(sink_count(&smtp, &total, &dups), 1999);
	assert_int_equal(total, 1999);

	http_bill_and_its_pdf_slip();

	/* Again: another import, of nothing new. */
	assert_int_equal(curl(args, &out, &err, NULL), 0);
	assert_int_equal(curl_status(out), 201);
	long long second = json_number(out, "importId");
	assert_true(second != first);
	assert_int_equal(json_number(out, "rows"), 2053);
	assert_int_equal(json_number(out, "accepted"), 2053);
	assert_int_equal(json_number(out, "repeated"), 2053);
	assert_int_equal(json_number(out, "newDebts"), 0);
	free(out);
	free(err);
	snprintf(status_url, sizeof(status_url), "%s/%lld", url, second);
	body = http_wait_done(status_url, 10000);
	assert_non_null(strstr(body, "\"state\":\"DONE\""));
	assert_int_equal(json_number(body, "bills"), 0);
	assert_int_equal(json_number(body, "emailsSent"), 0);
	free(body);
	/* Nothing queued to bill or send, so the sink's count is final. */
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bills"), 1999);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bill_ranges"), 0);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_notifications"), 1999);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_notifications WHERE state = 1"),
			 0);
	assert_int_equal(sink_count(&smtp, &total, &dups), 1999);
	assert_int_equal(total, 1999);
}

/* ---- the HTTP upload's failures ---- */

/* What an HTTP client is told by a refused upload: the HTTP status, a JSON
 * Connect error ({"code": code, "message": ...}) whose message holds msg,
 * and, once an import had been started, its "importId" and "receivedBytes"
 * in the body and a Location of its status. Returns the importId, 0 when
 * the body names none (then it has no Location either). */
static long long expect_refusal(const char *what, long status, const char *ctype, const char *location,
				const char *body, long want, const char *code, const char *msg)
{
	if (status != want)
		fail_msg("%s: HTTP %ld, wanted %ld; body: %.300s", what, status, want, body ? body : "");
	if (ctype == NULL || strncmp(ctype, "application/json", 16) != 0)
		fail_msg("%s: Content-Type %s, wanted application/json", what, ctype ? ctype : "(none)");
	char start[96];
	snprintf(start, sizeof(start), "{\"code\":\"%s\",\"message\":\"", code);
	if (strncmp(body, start, strlen(start)) != 0 || (msg && strstr(body, msg) == NULL))
		fail_msg("%s: error body %.300s, wanted code \"%s\" and a message with \"%s\"", what, body, code,
			 msg ? msg : "");
	long long id = json_number(body, "importId");
	if (id == 0) {
		if (location != NULL || strstr(body, "importId") || strstr(body, "receivedBytes"))
			fail_msg("%s: no import, but Location %s and body %.300s", what, location ? location : "-",
				 body);
		return 0;
	}
	char want_location[64];
	snprintf(want_location, sizeof(want_location), "/billing/imports/%lld", id);
	if (location == NULL || strcmp(location, want_location) != 0)
		fail_msg("%s: import %lld but Location %s", what, id, location ? location : "(none)");
	if (strstr(body, "\"receivedBytes\":\"") == NULL)
		fail_msg("%s: import %lld but no receivedBytes: %.300s", what, id, body);
	return id;
}

static long long expect_http_refusal(const char *what, const harness_http_reply *r, long want, const char *code,
				     const char *msg)
{
	return expect_refusal(what, r->status, harness_http_header(r, "Content-Type"),
			      harness_http_header(r, "Location"), r->body ? r->body : "", want, code, msg);
}

/* POST through libcurl, bounded far above what a loaded machine needs (an
 * upload of a few chunks); nothing is asserted about time. */
static int post(const char *url, const char *const *headers, const void *body, size_t len, harness_http_reply *r)
{
	return harness_http_timeout("POST", url, headers, body, len, 120000, r);
}

/* A header's value in a response read off a raw socket, or NULL. */
static const char *raw_header(const char *resp, const char *name, char *out, size_t cap)
{
	const char *end = strstr(resp, "\r\n\r\n");
	size_t nl = strlen(name);
	for (const char *p = strstr(resp, "\r\n"); p && end && p < end; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			size_t n = strcspn(v, "\r");
			snprintf(out, cap, "%.*s", (int)n, v);
			return out;
		}
	}
	return NULL;
}

/* A response read off a raw socket, as expect_refusal checks it. */
static long long expect_raw_refusal(const char *what, const char *resp, long want, const char *code, const char *msg)
{
	char ctype[128], location[128];
	const char *body = strstr(resp, "\r\n\r\n");
	if (strncmp(resp, "HTTP/1.1 ", 9) != 0 || body == NULL)
		fail_msg("%s: not an HTTP response: \"%.300s\"", what, resp);
	return expect_refusal(what, strtol(resp + 9, NULL, 10), raw_header(resp, "Content-Type", ctype, sizeof(ctype)),
			      raw_header(resp, "Location", location, sizeof(location)), body + 4, want, code, msg);
}

static long long imports_keyed(const char *key)
{
	char sql[300];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM billing_imports WHERE key = '%s'", key);
	return harness_sql_scalar(pg.conninfo, sql);
}

/* An upload's answer once the file is whole: HTTP status, the Import of
 * id (0: any) with rows and new debts, all len bytes received, complete. */
static void expect_complete(const harness_http_reply *r, long status, long long id, long long rows, long long new_debts,
			    size_t len)
{
	if (r->status != status || (id != 0 && json_number(r->body, "importId") != id) ||
	    json_number(r->body, "rows") != rows || json_number(r->body, "newDebts") != new_debts ||
	    json_number(r->body, "receivedBytes") != (long long)len || !strstr(r->body, "\"complete\":true"))
		fail_msg("HTTP %ld %.400s, wanted %ld: import %lld complete with %lld rows, %lld new debts, %zu bytes",
			 r->status, r->body, status, id, rows, new_debts, len);
}

/* GET /billing/imports/<id> of an upload that was cut: RECEIVING, not
 * complete, holding received bytes; its JSON (free it). */
static char *expect_receiving(const char *what, long long id, long long received)
{
	char url[300];
	snprintf(url, sizeof(url), "%s/billing/imports/%lld", srv[0].http_url, id);
	harness_http_reply r;
	assert_int_equal(harness_http("GET", url, NULL, NULL, 0, &r), 0);
	if (r.status != 200 || !strstr(r.body, "\"state\":\"RECEIVING\"") || strstr(r.body, "\"complete\":true") ||
	    json_number(r.body, "receivedBytes") != received)
		fail_msg("%s: import %lld is HTTP %ld %.400s, wanted RECEIVING with %lld bytes", what, id, r.status,
			 r.body, received);
	char *body = strdup(r.body);
	harness_http_reply_free(&r);
	return body;
}

/* The multipart/form-data body of an HTML form with text as its file
 * part (boundary XyZ; closed: with the closing delimiter), malloc'd. */
#define FORM_TYPE "Content-Type: multipart/form-data; boundary=XyZ"
static char *form_body(const char *filename, const char *text, size_t len, int closed, size_t *out_len)
{
	char head[300];
	int hn = snprintf(head, sizeof(head),
			  "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
			  "Content-Type: text/csv\r\n\r\n",
			  filename);
	static const char tail[] = "\r\n--XyZ--\r\n";
	char *b = malloc((size_t)hn + len + sizeof(tail));
	assert_non_null(b);
	memcpy(b, head, (size_t)hn);
	memcpy(b + hn, text, len);
	*out_len = (size_t)hn + len;
	if (closed) {
		memcpy(b + *out_len, tail, sizeof(tail) - 1);
		*out_len += sizeof(tail) - 1;
	}
	return b;
}

/* A refusal from the head while the client is still sending its body: the
 * gateway reads and drops the rest (CONN_LINGER) rather than closing on
 * unread bytes, which resets the connection: a client that sends on (as
 * curl does until it reads the answer) would fail with a send error and
 * never read the answer. Here the client sends half the body, waits long
 * enough for the server to have answered and closed, sends the other half,
 * then reads. */
static void test_a_refused_upload_is_answered_even_while_its_body_is_still_coming(void **state)
{
	(void)state;
	server_up(0, "none");
	const size_t sent = 512 * 1024;
	char *body = malloc(sent);
	assert_non_null(body);
	memset(body, 'x', sent);
	for (int i = 0; i < 3; i++) {
		int fd = harness_raw_connect(srv[0].http_url);
		char head[256];
		int n = snprintf(head, sizeof(head),
				 "POST /billing/imports HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
				 "Content-Length: %zu\r\n\r\n",
				 2 * sent);
		assert_int_equal(harness_raw_send(fd, head, (size_t)n), 0);
		assert_int_equal(harness_raw_send(fd, body, sent), 0);
		sleep_ms(300);
		if (harness_raw_send(fd, body, sent) != 0)
			fail_msg("round %d: the connection was reset while the body was still being sent", i);
		size_t len;
		int closed;
		char *reply = harness_raw_read(fd, 5000, 1, &len, &closed);
		if (strncmp(reply, "HTTP/1.1 415 ", 13) != 0)
			fail_msg("round %d: wanted the 415, got %zu bytes%s: %.200s", i, len,
				 closed ? " and the connection closed" : "", reply);
		assert_non_null(strstr(reply, "Connection: close\r\n"));
		free(reply);
		close(fd);
	}
	free(body);
}

/* A request refused before its first chunk was taken (its Content-Type, a
 * form's boundary, an empty body or file, a form cut short) answers 4xx
 * with Connect's error and no import id, and stores nothing: no import, no
 * debt. A malformed import id is 400, an unknown one 404. */
static void test_an_http_upload_refused_before_its_first_chunk_stores_no_import(void **state)
{
	(void)state;
	server_up(0, "none");
	char url[300];
	snprintf(url, sizeof(url), "%s/billing/imports?key=refused", srv[0].http_url);
	harness_http_reply r;
	const char *csv[] = {"Content-Type: text/csv", NULL};
	assert_int_equal(post(url, csv, "", 0, &r), 0);
	expect_http_refusal("an empty body", &r, 400, "invalid_argument", "the body is empty");
	harness_http_reply_free(&r);

	const char *json[] = {"Content-Type: application/json", NULL};
	assert_int_equal(post(url, json, "{}", 2, &r), 0);
	expect_http_refusal("application/json", &r, 415, "invalid_argument",
			    "content type \\\"application/json\\\" is not supported");
	harness_http_reply_free(&r);

	size_t len;
	char *text = read_sample(&len);
	size_t blen;
	/* A large form (4 MB): the gateway refuses a bad boundary from the
	 * head, then reads and drops what the client still sends until it
	 * closes (CONN_LINGER), so the answer is not lost to a reset of the
	 * connection on unread data. */
	char *big = generate(70000, "b", "big");
	char *form = form_body("s.csv", big, strlen(big), 1, &blen);
	assert_true(blen > 4000000);
	struct {
		const char *type, *msg;
	} bad[] = {
		{"Content-Type: multipart/form-data", "no boundary parameter"},
		{"Content-Type: multipart/form-data; charset=utf-8", "no boundary parameter"},
		{"Content-Type: multipart/form-data; boundary=", "a parameter without a value"},
		{"Content-Type: multipart/form-data; boundary=\"\"", "the boundary is empty"},
		{"Content-Type: multipart/form-data; boundary=\"a<b>\"", "does not allow"},
		{"Content-Type: multipart/form-data; boundary="
		 "12345678901234567890123456789012345678901234567890123456789012345678901",
		 "longer than 70 characters"},
		{"Content-Type: multipart/form-data; boundary=XyZ; boundary=XyZ", "given twice"},
		/* Well-formed, but not the body's: no boundary line is found. */
		{"Content-Type: multipart/form-data; boundary=Other", "no boundary line \\\"--Other\\\""},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *h[] = {bad[i].type, NULL};
		assert_int_equal(post(url, h, form, blen, &r), 0);
		expect_http_refusal(bad[i].type, &r, 400, "invalid_argument", bad[i].msg);
		harness_http_reply_free(&r);
	}
	free(form);
	free(big);

	/* A form cut short: the sample's part without its closing delimiter. */
	const char *mp[] = {FORM_TYPE, NULL};
	form = form_body("s.csv", text, len, 0, &blen);
	assert_int_equal(post(url, mp, form, blen, &r), 0);
	expect_http_refusal("a form without its closing delimiter", &r, 400, "invalid_argument",
			    "the body ended inside part 1, before the closing delimiter \\\"--XyZ--\\\"");
	harness_http_reply_free(&r);
	free(form);
	/* A form whose file is empty. */
	form = form_body("e.csv", "", 0, 1, &blen);
	assert_int_equal(post(url, mp, form, blen, &r), 0);
	expect_http_refusal("an empty file part", &r, 400, "invalid_argument", "the form's file is empty");
	harness_http_reply_free(&r);
	free(form);

	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 0);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 0);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_rejections"), 0);

	/* Status: a malformed id, an unknown one. */
	snprintf(url, sizeof(url), "%s/billing/imports/abc", srv[0].http_url);
	assert_int_equal(harness_http("GET", url, NULL, NULL, 0, &r), 0);
	expect_http_refusal("GET /billing/imports/abc", &r, 400, "invalid_argument",
			    "import_id \\\"abc\\\" is not an import id");
	harness_http_reply_free(&r);
	snprintf(url, sizeof(url), "%s/billing/imports/999999", srv[0].http_url);
	assert_int_equal(harness_http("GET", url, NULL, NULL, 0, &r), 0);
	expect_http_refusal("GET /billing/imports/999999", &r, 404, "not_found", "import 999999 not found");
	harness_http_reply_free(&r);
	free(text);
}

/* A request refused once its import was started answers the import's id
 * (body and Location) with the error, and the file sent again with the same
 * key completes that import: refused in its first chunk (the CSV's header
 * row), then a form cut short after some chunks. */
static void test_an_http_upload_refused_after_its_import_began_answers_its_id_and_resumes_with_its_key(void **state)
{
	(void)state;
	server_up(0, "none");
	char url[300];
	harness_http_reply r;
	snprintf(url, sizeof(url), "%s/billing/imports?key=bad-head", srv[0].http_url);
	const char *csv[] = {"Content-Type: text/csv", NULL};
	assert_int_equal(post(url, csv, "a,b\n1,2\n", 8, &r), 0);
	long long id = expect_http_refusal("a CSV with a wrong header", &r, 400, "invalid_argument",
					   "line 1: the header must be");
	harness_http_reply_free(&r);
	assert_true(id > 0);
	free(expect_receiving("after a wrong header", id, 0));
	assert_int_equal(imports_keyed("bad-head"), 1);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 0);
	size_t len;
	char *text = read_sample(&len);
	assert_int_equal(post(url, csv, text, len, &r), 0);
	assert_int_equal(r.status, 201);
	assert_int_equal(json_number(r.body, "importId"), id);
	assert_int_equal(json_number(r.body, "newDebts"), 1999);
	assert_int_equal(json_number(r.body, "repeated"), 54);
	assert_int_equal(json_number(r.body, "rows"), 2053);
	harness_http_reply_free(&r);
	free(text);

	/* A form of about 2.5 MiB cut short: its first two chunks are taken. */
	const int n = 40000;
	text = generate(n, "t", "trunc");
	len = strlen(text);
	size_t blen;
	char *form = form_body("t.csv", text, len, 0, &blen);
	snprintf(url, sizeof(url), "%s/billing/imports?key=trunc", srv[0].http_url);
	const char *mp[] = {FORM_TYPE, NULL};
	assert_int_equal(post(url, mp, form, blen, &r), 0);
	long long tid = expect_http_refusal("a big form without its closing delimiter", &r, 400, "invalid_argument",
					    "the body ended inside part 1");
	long long received = json_number(r.body, "receivedBytes");
	harness_http_reply_free(&r);
	free(form);
	assert_true(tid > id);
	assert_true(received >= 2 << 20 && received < (long long)len);
	char *status = expect_receiving("after a cut form", tid, received);
	long long rows = json_number(status, "rows");
	free(status);
	assert_true(rows > 0 && rows < n);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999 + rows);
	form = form_body("t.csv", text, len, 1, &blen);
	assert_int_equal(post(url, mp, form, blen, &r), 0);
	expect_complete(&r, 201, tid, n, n, len);
	harness_http_reply_free(&r);
	free(form);
	free(text);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999 + n);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 2);
}

/* The head of a text/csv upload of len bytes with key, for a raw socket. */
static int raw_upload_head(char *buf, size_t cap, const char *key, size_t len)
{
	return snprintf(buf, cap,
			"POST /billing/imports?key=%s HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
			"Content-Length: %zu\r\n\r\n",
			key, len);
}

/* Sends the head and the first part bytes of text, then nothing: the
 * answer (read until the server closes), malloc'd. */
static char *send_and_stall(const char *key, const char *text, size_t len, size_t part)
{
	char head[300];
	int fd = harness_raw_connect(srv[0].http_url);
	int hn = raw_upload_head(head, sizeof(head), key, len);
	assert_int_equal(harness_raw_send(fd, head, (size_t)hn), 0);
	assert_int_equal(harness_raw_send(fd, text, part), 0);
	size_t n;
	int closed;
	/* Bounded far above the read timeout; nothing is asserted about time. */
	char *out = harness_raw_read(fd, 120000, 0, &n, &closed);
	close(fd);
	if (!closed)
		fail_msg("%s: the stalled upload's connection stayed open: \"%.300s\"", key, out);
	return out;
}

/* A body that stops coming is answered 408 once the read timeout passes,
 * and the connection closed: within its first chunk nothing is stored;
 * later the answer names the import, which holds the chunks taken, and the
 * file sent whole again with the same key (to a restarted rpcqd) completes
 * it with the totals of one import. */
static void test_a_stalled_http_upload_is_answered_408_and_resumes_with_its_key(void **state)
{
	(void)state;
	server_up(0, "read-timeout");
	const int n = 30000;
	char *text = generate(n, "s", "stall");
	size_t len = strlen(text);
	char *out = send_and_stall("stall-early", text, len, 1000);
	expect_raw_refusal("stalled after 1000 bytes", out, 408, "deadline_exceeded", "read timeout");
	free(out);
	assert_int_equal(imports_keyed("stall-early"), 0);

	out = send_and_stall("stall", text, len, (3u << 20) / 2);
	long long id = expect_raw_refusal("stalled after 1.5 MiB", out, 408, "deadline_exceeded", "read timeout");
	const char *body = strstr(out, "\r\n\r\n");
	long long received = json_number(body, "receivedBytes");
	free(out);
	assert_true(id > 0);
	assert_true(received >= 1 << 20 && received < (3 << 20) / 2);
	free(expect_receiving("after a stall", id, received));
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 1);

	server_down(0, SIGTERM);
	server_up(0, "none");
	char url[300];
	snprintf(url, sizeof(url), "%s/billing/imports?key=stall", srv[0].http_url);
	const char *csv[] = {"Content-Type: text/csv", NULL};
	harness_http_reply r;
	assert_int_equal(post(url, csv, text, len, &r), 0);
	expect_complete(&r, 201, id, n, n, len);
	harness_http_reply_free(&r);
	free(text);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), n);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 1);
}

/* POST url with text/csv body; the reply in *r. */
static void post_csv(const char *url, const char *body, size_t len, harness_http_reply *r)
{
	const char *csv[] = {"Content-Type: text/csv", NULL};
	assert_int_equal(post(url, csv, body, len, r), 0);
}

/* An upload made without key=, stalled after 1.5 MiB: its import id and
 * the bytes it holds, as the 408 answered them. */
static long long stall_without_key(const char *text, size_t len, long long *received)
{
	char *out = send_and_stall("", text, len, (3u << 20) / 2);
	long long id = expect_raw_refusal("stalled without a key", out, 408, "deadline_exceeded", "read timeout");
	*received = json_number(strstr(out, "\r\n\r\n"), "receivedBytes");
	free(out);
	assert_true(id > 0);
	assert_true(*received >= 1 << 20 && *received < (3 << 20) / 2);
	return id;
}

/* POST /billing/imports/<id> of text (len bytes) from byte offset (< 0: the
 * whole file, no offset=): the import completes with rows new debts. */
static void resume_by_id(long long id, long long offset, const char *text, size_t len, long long rows)
{
	char url[300];
	harness_http_reply r;
	if (offset < 0)
		snprintf(url, sizeof(url), "%s/billing/imports/%lld", srv[0].http_url, id);
	else
		snprintf(url, sizeof(url), "%s/billing/imports/%lld?offset=%lld", srv[0].http_url, id, offset);
	size_t from = offset < 0 ? 0 : (size_t)offset;
	post_csv(url, text + from, len - from, &r);
	expect_complete(&r, 200, id, rows, rows, len);
	harness_http_reply_free(&r);
}

/* An upload made without key= and cut resumes by the id its failure
 * answered: POST /billing/imports/<id> with the whole file again, or with
 * the rest of it from ?offset=<receivedBytes>: 200 and one import with the
 * file's totals. Refused, storing nothing: an id that names no import (404)
 * or is not one, an offset past what the import holds (the gap named), an
 * offset that is not a number, name= or key= on the resume, offset= on a
 * new upload. */
static void test_an_http_upload_without_a_key_resumes_by_its_import_id(void **state)
{
	(void)state;
	server_up(0, "read-timeout");
	char url[300];
	harness_http_reply r;
	const int n = 30000;
	char *text = generate(n, "w", "whole");
	size_t len = strlen(text);
	long long received, id = stall_without_key(text, len, &received);
	resume_by_id(id, -1, text, len, n);
	free(text);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 1);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), n);

	const int m = 25000;
	text = generate(m, "o", "offset");
	len = strlen(text);
	id = stall_without_key(text, len, &received);
	/* Past what it holds: the gap is named, and nothing changes. */
	snprintf(url, sizeof(url), "%s/billing/imports/%lld?offset=%lld", srv[0].http_url, id, received + 10);
	post_csv(url, text + received + 10, len - (size_t)received - 10, &r);
	assert_int_equal(expect_http_refusal("offset past the import", &r, 400, "failed_precondition", "leaves a gap"),
			 id);
	assert_int_equal(json_number(r.body, "receivedBytes"), received);
	harness_http_reply_free(&r);
	free(expect_receiving("after an offset past it", id, received));
	static const struct {
		const char *before, *after; /* the path: before, the import id, after */
		long status;
		const char *code, *message;
	} bad[] = {
		{"/billing/imports/", "?offset=1k", 400, "invalid_argument", "1k\\\" is not a byte offset (a number)"},
		{"/billing/imports/", "?offset=0&key=k", 400, "invalid_argument", "keeps the name and key"},
		{"/billing/imports/", "?name=x.csv", 400, "invalid_argument", "keeps the name and key"},
		{"/billing/imports?offset=", "", 400, "invalid_argument", "offset= resumes an import"},
		{"/billing/imports/9", "", 404, "not_found", "not found"},
		{"/billing/imports/x", "", 400, "invalid_argument", "is not an import id"},
		{"/billing/imports/", "?offset=0&offset=5", 400, "invalid_argument", "offset= is given more than once"},
		{"/billing/imports?key=a&key=b", "", 400, "invalid_argument", "key= is given more than once"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char path[120];
		snprintf(path, sizeof(path), "%s%lld%s", bad[i].before, id, bad[i].after);
		snprintf(url, sizeof(url), "%.150s%s", srv[0].http_url, path);
		post_csv(url, text, len, &r);
		assert_int_equal(expect_http_refusal(path, &r, bad[i].status, bad[i].code, bad[i].message), 0);
		harness_http_reply_free(&r);
	}
	free(expect_receiving("after the refusals", id, received));
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 2);
	/* The rest from where it stands; then, sent again whole, nothing changes. */
	resume_by_id(id, received, text, len, m);
	resume_by_id(id, -1, text, len, m);
	free(text);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 2);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), n + m);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_rejections"), 0);
	/* An import's URL takes GET and POST. */
	snprintf(url, sizeof(url), "%s/billing/imports/%lld", srv[0].http_url, id);
	assert_int_equal(harness_http("PUT", url, NULL, "x", 1, &r), 0);
	assert_int_equal(r.status, 405);
	assert_string_equal(harness_http_header(&r, "Allow"), "GET, POST");
	harness_http_reply_free(&r);
}

/* Sends the head and the first part bytes of text, then hangs up. */
static void send_and_hang_up(const char *key, const char *text, size_t len, size_t part)
{
	char head[300];
	int fd = harness_raw_connect(srv[0].http_url);
	int hn = raw_upload_head(head, sizeof(head), key, len);
	assert_int_equal(harness_raw_send(fd, head, (size_t)hn), 0);
	assert_int_equal(harness_raw_send(fd, text, part), 0);
	close(fd);
}

/* An upload whose client hangs up midway, then sent whole with the same
 * key: the second completes, with the totals of one import. The sample cut
 * within its first chunk stores nothing; a 5 MiB file cut after 2.5 MiB
 * leaves the two chunks that were taken. */
static void test_an_http_upload_cut_midway_and_sent_again_with_its_key_is_one_import(void **state)
{
	(void)state;
	server_up(0, "none");
	const char *csv[] = {"Content-Type: text/csv", NULL};
	char url[300];
	harness_http_reply r;
	size_t len;
	char *text = read_sample(&len);
	send_and_hang_up("cut-sample", text, len, len / 2);
	snprintf(url, sizeof(url), "%s/billing/imports?key=cut-sample", srv[0].http_url);
	assert_int_equal(post(url, csv, text, len, &r), 0);
	assert_int_equal(r.status, 201);
	assert_int_equal(json_number(r.body, "rows"), 2053);
	assert_int_equal(json_number(r.body, "newDebts"), 1999);
	assert_int_equal(json_number(r.body, "repeated"), 54);
	assert_int_equal(json_number(r.body, "rejected"), 0);
	harness_http_reply_free(&r);
	free(text);
	/* The cut one started no import (it never had a whole chunk). */
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 1);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999);

	const int n = 80000;
	text = generate(n, "c", "cut");
	len = strlen(text);
	assert_true(len > 4u << 20);
	send_and_hang_up("cut-big", text, len, (5u << 20) / 2);
	/* The bytes sent before the hang-up are read: two chunks are taken,
	 * and the rest, less than a chunk, is dropped with the connection. */
	long long received = 0;
	for (int64_t deadline = now_ms() + 120000; received < 2 << 20 && now_ms() < deadline; sleep_ms(100))
		received = harness_sql_scalar(
			pg.conninfo, "SELECT coalesce(max(received), 0) FROM billing_imports WHERE key = 'cut-big'");
	assert_true(received >= 2 << 20 && received < (5 << 20) / 2);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports WHERE key = 'cut-big'"
							 " AND NOT complete"),
			 1);
	snprintf(url, sizeof(url), "%s/billing/imports?key=cut-big", srv[0].http_url);
	assert_int_equal(post(url, csv, text, len, &r), 0);
	expect_complete(&r, 201, 0, n, n, len);
	assert_int_equal(json_number(r.body, "repeated"), 0);
	harness_http_reply_free(&r);
	free(text);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_imports"), 2);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"), 1999 + n);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT sum(new_debts) FROM billing_imports"), 1999 + n);
}

static Rpcq__Billing__Bill *get_bill(rpcq_client *c, const char *debt)
{
	Rpcq__Billing__GetBillRequest req = RPCQ__BILLING__GET_BILL_REQUEST__INIT;
	req.debt_id = (char *)debt;
	Rpcq__Billing__Bill *b = NULL;
	rpcq_error err;
	if (rpcq_billing_get_bill(c, &req, &b, NULL, &err) != RPCQ_OK)
		fail_msg("GetBill %s: %s", debt, err.message);
	return b;
}

static rpcq_status pay(rpcq_client *c, const char *debt, const char *amount, const char *at,
		       Rpcq__Billing__Payment **out, rpcq_error *err)
{
	Rpcq__Billing__RecordPaymentRequest req = RPCQ__BILLING__RECORD_PAYMENT_REQUEST__INIT;
	req.debt_id = (char *)debt;
	req.amount = (char *)amount;
	req.paid_at = (char *)at;
	req.payer = "bank";
	*out = NULL;
	return rpcq_billing_record_payment(c, &req, out, NULL, err);
}

/* A failed e-mail as reported: its debt, line, address, attempts, and the
 * sender's last answer (its code). */
static void expect_failed(const Rpcq__Billing__FailedEmail *f, const char *debt, uint64_t line, const char *email,
			  uint32_t attempts, const char *code)
{
	assert_string_equal(f->debt_id, debt);
	assert_int_equal(f->line, line);
	assert_string_equal(f->email, email);
	assert_int_equal(f->attempts, attempts);
	if (strncmp(f->last_error, code, strlen(code)) != 0 && strstr(f->last_error, code) == NULL)
		fail_msg("debt %s: last error \"%s\" has no %s", debt, f->last_error, code);
}

/* ListFailedEmails; the reply, or NULL when it fails with want. */
static Rpcq__Billing__ListFailedEmailsResponse *list_failed(rpcq_client *c, const char *id, uint32_t size,
							    const char *token, rpcq_status want)
{
	Rpcq__Billing__ListFailedEmailsRequest req = RPCQ__BILLING__LIST_FAILED_EMAILS_REQUEST__INIT;
	req.import_id = (char *)id;
	req.page_size = size;
	req.page_token = (char *)token;
	Rpcq__Billing__ListFailedEmailsResponse *r = NULL;
	rpcq_error err;
	rpcq_status st = rpcq_billing_list_failed_emails(c, &req, &r, NULL, &err);
	if (st != want)
		fail_msg("ListFailedEmails(%s, \"%s\"): %d (%s), not %d", id, token, st, st ? err.message : "", want);
	return r;
}

static uint32_t bill_attempts(const char *debt, Rpcq__Billing__NotificationState *state);

/* RetryFailedEmails of an import or a debt (to a corrected address when
 * email is not NULL): how many went back, or -1 when it fails with want. */
static long long retry_to(rpcq_client *c, const char *import, const char *debt, const char *email, rpcq_status want)
{
	Rpcq__Billing__RetryFailedEmailsRequest req = RPCQ__BILLING__RETRY_FAILED_EMAILS_REQUEST__INIT;
	req.import_id = (char *)(import ? import : "");
	req.debt_id = (char *)(debt ? debt : "");
	req.email = (char *)(email ? email : "");
	Rpcq__Billing__RetryFailedEmailsResponse *r = NULL;
	rpcq_error err;
	rpcq_status st = rpcq_billing_retry_failed_emails(c, &req, &r, NULL, &err);
	if (st != want)
		fail_msg("RetryFailedEmails(%s, %s): %d (%s), not %d", req.import_id, req.debt_id, st,
			 st ? err.message : "", want);
	long long n = r ? (long long)r->retried : -1;
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return n;
}

static long long retry_failed(rpcq_client *c, const char *import, const char *debt, rpcq_status want)
{
	return retry_to(c, import, debt, NULL, want);
}

static void test_failures_retry_then_fail_and_a_payment_stops_an_email(void **state)
{
	(void)state;
	Rpcq__Billing__NotificationState ns_after;
	sink_start(&smtp);
	server_up(0, "smtp");
	const char text[] = "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
			    "Ok,1,ok@example.com,1,2030-01-01,ok\n"
			    "Busy,2,busy@example.com,2,2030-01-01,busy\n"
			    "Reject,3,reject@example.com,3,2030-01-01,reject\n";
	char *id = import_file(cl[0], NULL, "f.csv", text, strlen(text), 1000);
	Rpcq__Billing__Import *imp;
	imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 30000);
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__DONE);
	assert_int_equal(imp->emails_sent, 1);
	assert_int_equal(imp->emails_failed, 2);
	/* Reported with the import, by bill number (the chunk's debtIds in
	 * order: busy, ok, reject), and page by page. */
	assert_int_equal(imp->n_first_failed_emails, 2);
	expect_failed(imp->first_failed_emails[0], "busy", 3, "busy@example.com", 3, "451");
	expect_failed(imp->first_failed_emails[1], "reject", 4, "reject@example.com", 1, "550");
	import_free(imp);
	Rpcq__Billing__ListFailedEmailsResponse *page = list_failed(cl[0], id, 1, "", RPCQ_OK);
	assert_int_equal(page->n_failed_emails, 1);
	expect_failed(page->failed_emails[0], "busy", 3, "busy@example.com", 3, "451");
	assert_string_not_equal(page->next_page_token, "");
	Rpcq__Billing__ListFailedEmailsResponse *rest = list_failed(cl[0], id, 1, page->next_page_token, RPCQ_OK);
	assert_int_equal(rest->n_failed_emails, 1);
	expect_failed(rest->failed_emails[0], "reject", 4, "reject@example.com", 1, "550");
	assert_string_equal(rest->next_page_token, "");
	protobuf_c_message_free_unpacked(&page->base, NULL);
	protobuf_c_message_free_unpacked(&rest->base, NULL);
	assert_null(list_failed(cl[0], id, 0, "x", RPCQ_INVALID_ARGUMENT));
	assert_null(list_failed(cl[0], "999999", 0, "", RPCQ_NOT_FOUND));
	assert_null(list_failed(cl[0], "seven", 0, "", RPCQ_INVALID_ARGUMENT));
	/* The same over HTTP: the import's status, and the method's route. */
	char url[300];
	snprintf(url, sizeof(url), "%s/billing/imports/%s", srv[0].http_url, id);
	harness_http_reply r;
	assert_int_equal(harness_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	if (strstr(r.body, "\"firstFailedEmails\":[{\"debtId\":\"busy\",\"line\":\"3\",\"email\":\"busy@example.com\","
			   "\"attempts\":3,\"lastError\":\"RESOURCE_EXHAUSTED: SMTP ") == NULL)
		fail_msg("no failed e-mail of busy first in %s", r.body);
	harness_http_reply_free(&r);
	snprintf(url, sizeof(url), "%s/rpc/rpcq.billing.BillingService/ListFailedEmails", srv[0].http_url);
	char body[100];
	snprintf(body, sizeof(body), "{\"importId\": \"%s\", \"pageSize\": 1}", id);
	const char *hdr[] = {"Content-Type: application/json", NULL};
	assert_int_equal(harness_http("POST", url, hdr, body, strlen(body), &r), 0);
	assert_int_equal(r.status, 200);
	if (strstr(r.body, "{\"failedEmails\":[{\"debtId\":\"busy\",") != r.body ||
	    strstr(r.body, "\"nextPageToken\":\"") == NULL || strstr(r.body, "reject") != NULL)
		fail_msg("not a page of busy alone: %s", r.body);
	harness_http_reply_free(&r);
	Rpcq__Billing__Bill *b = get_bill(cl[0], "busy");
	assert_int_equal(b->notification, RPCQ__BILLING__NOTIFICATION_STATE__FAILED);
	assert_int_equal(b->attempts, 3); /* --mail-max-attempts */
	assert_non_null(strstr(b->last_error, "451"));
	protobuf_c_message_free_unpacked(&b->base, NULL);
	b = get_bill(cl[0], "reject");
	assert_int_equal(b->notification, RPCQ__BILLING__NOTIFICATION_STATE__FAILED);
	assert_int_equal(b->attempts, 1); /* a 550 is not retried */
	protobuf_c_message_free_unpacked(&b->base, NULL);
	b = get_bill(cl[0], "ok");
	assert_int_equal(b->notification, RPCQ__BILLING__NOTIFICATION_STATE__SENT);
	assert_int_equal(strlen(b->barcode), 44);
	assert_non_null(strstr(b->slip, b->payment_code));
	assert_string_equal(b->amount, "1.00");
	protobuf_c_message_free_unpacked(&b->base, NULL);

	/* Failed e-mails back in the outbox: of a debt paid since, none; the
	 * other one is tried anew (and refused again); a sent one, or one
	 * retried already, is not counted twice. */
	Rpcq__Billing__Payment *paid = NULL;
	rpcq_error perr;
	assert_int_equal(pay(cl[0], "busy", "2.00", "", &paid, &perr), RPCQ_OK);
	assert_false(paid->cancelled_notification); /* it had failed: nothing to cancel */
	protobuf_c_message_free_unpacked(&paid->base, NULL);
	assert_int_equal(retry_failed(cl[0], id, NULL, RPCQ_OK), 1);
	assert_int_equal(retry_failed(cl[0], NULL, "ok", RPCQ_OK), 0);
	imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 30000);
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__DONE);
	assert_int_equal(imp->emails_failed, 2);
	assert_int_equal(imp->emails_sent, 1);
	import_free(imp);
	assert_int_equal(bill_attempts("reject", &ns_after), 1); /* counted from 0 again */
	assert_int_equal(ns_after, RPCQ__BILLING__NOTIFICATION_STATE__FAILED);
	assert_int_equal(bill_attempts("busy", &ns_after), 3);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_notifications"), 3);
	assert_int_equal(retry_failed(cl[0], NULL, "nobody", RPCQ_NOT_FOUND), -1);
	assert_int_equal(retry_failed(cl[0], "999999", NULL, RPCQ_NOT_FOUND), -1);
	assert_int_equal(retry_failed(cl[0], id, "ok", RPCQ_INVALID_ARGUMENT), -1);
	assert_int_equal(retry_failed(cl[0], NULL, NULL, RPCQ_INVALID_ARGUMENT), -1);

	/* The refused address corrected: that e-mail goes to the new one, once,
	 * with its Message-ID; the debt keeps its file's address, so the same
	 * file again is all repeats. A bad address, or one for a whole import,
	 * is refused and changes nothing. */
	assert_int_equal(retry_to(cl[0], NULL, "reject", "fixed@example", RPCQ_INVALID_ARGUMENT), -1);
	assert_int_equal(retry_to(cl[0], NULL, "reject", "fixed example.com", RPCQ_INVALID_ARGUMENT), -1);
	assert_int_equal(retry_to(cl[0], id, NULL, "fixed@example.com", RPCQ_INVALID_ARGUMENT), -1);
	assert_int_equal(retry_to(cl[0], NULL, "ok", "fixed@example.com", RPCQ_OK), 0); /* sent: stays */
	assert_int_equal(
		harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_notifications WHERE email IS NOT NULL"),
		0);
	/* Refused at the new address too: reported with that one. */
	assert_int_equal(retry_to(cl[0], NULL, "reject", "reject-moved@example.com", RPCQ_OK), 1);
	imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 30000);
	assert_int_equal(imp->emails_failed, 2);
	assert_int_equal(imp->n_first_failed_emails, 2);
	expect_failed(imp->first_failed_emails[1], "reject", 4, "reject-moved@example.com", 1, "550");
	import_free(imp);
	assert_int_equal(retry_to(cl[0], NULL, "reject", "fixed@example.com", RPCQ_OK), 1);
	imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 30000);
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__DONE);
	assert_int_equal(imp->emails_sent, 2);
	assert_int_equal(imp->emails_failed, 1); /* busy, paid since */
	assert_int_equal(imp->n_first_failed_emails, 1);
	expect_failed(imp->first_failed_emails[0], "busy", 3, "busy@example.com", 3, "451");
	import_free(imp);
	b = get_bill(cl[0], "reject");
	assert_int_equal(b->notification, RPCQ__BILLING__NOTIFICATION_STATE__SENT);
	assert_string_equal(b->email, "fixed@example.com");
	char fixed_id[200];
	snprintf(fixed_id, sizeof(fixed_id), "%s", b->message_id);
	protobuf_c_message_free_unpacked(&b->base, NULL);
	assert_int_equal(sink_sent_to(&smtp, "fixed@example.com"), 1);
	{
		char *msgs = sink_messages(&smtp);
		char want_line[260];
		snprintf(want_line, sizeof(want_line), "reject %s\n", fixed_id);
		if (strstr(msgs, want_line) == NULL)
			fail_msg("no e-mail of reject with %s in:\n%s", fixed_id, msgs);
		free(msgs);
	}
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts WHERE debt_id = 'reject'"
							 " AND email = 'reject@example.com'"),
			 1);
	{
		char *again = import_file(cl[0], NULL, "f-again.csv", text, strlen(text), 1000);
		Rpcq__Billing__Import *a = wait_state(cl[0], again, RPCQ__BILLING__IMPORT_STATE__DONE, 30000);
		assert_int_equal(a->repeated, 3);
		assert_int_equal(a->rejected, 0);
		import_free(a);
		free(again);
	}

	/* A debt paid while its e-mail waits: the e-mail never goes. */
	server_down(0, SIGTERM);
	server_up(0, "none");
	const char more[] =
		"name,governmentId,email,debtAmount,debtDueDate,debtId\nLate,4,late@example.com,4,2030-01-01,late\n";
	imp = start_import(cl[0], NULL, "g.csv");
	send_from(cl[0], imp->import_id, more, 0, strlen(more), 1000);
	import_free(imp);
	/* Bill it (a process with background work), but send nothing yet: the
	 * sink answers that recipient only after a pause... simpler: bill with
	 * a process that has no sender. */
	server_down(0, SIGTERM);
	{
		const char *args[] = {"--billing-schedule", "1", NULL};
		harness_server_start(&srv[0], &pg, args);
		rpcq_client_options o = {.servers = srv[0].rpc_url, .timeout_ms = 60000};
		rpcq_error err;
		assert_int_equal(rpcq_client_create(&cl[0], &o, &err), RPCQ_OK);
		running[0] = 1;
	}
	for (int64_t deadline = now_ms() + 20000; now_ms() < deadline; sleep_ms(100))
		if (harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bills b JOIN billing_debts d ON "
						    "d.id = b.debt WHERE d.debt_id = 'late'") == 1)
			break;
	Rpcq__Billing__Payment *p = NULL;
	rpcq_error err;
	assert_int_equal(pay(cl[0], "late", "4.00", "2030-01-01T10:00:00Z", &p, &err), RPCQ_OK);
	assert_true(p->cancelled_notification);
	assert_false(p->replayed);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_int_equal(pay(cl[0], "late", "4.00", "2030-01-01T10:00:00Z", &p, &err), RPCQ_OK);
	assert_true(p->replayed);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_int_equal(pay(cl[0], "late", "5.00", "", &p, &err), RPCQ_ALREADY_EXISTS);
	assert_int_equal(pay(cl[0], "nobody", "5.00", "", &p, &err), RPCQ_NOT_FOUND);
	assert_int_equal(pay(cl[0], "late", "5.001", "", &p, &err), RPCQ_INVALID_ARGUMENT);
	/* Now with a sender: still nothing goes to that debtor. */
	server_down(0, SIGTERM);
	server_up(0, "smtp");
	sleep_ms(2500);
	b = get_bill(cl[0], "late");
	assert_int_equal(b->notification, RPCQ__BILLING__NOTIFICATION_STATE__CANCELLED);
	assert_true(b->paid);
	protobuf_c_message_free_unpacked(&b->base, NULL);
	assert_int_equal(sink_sent_to(&smtp, "late@example.com"), 0);
	free(id);
}

/* Whether the sink got a message for the debt (its Subject's last word). */
static int sink_has_debt(const sink *s, const char *debt)
{
	char *lines = sink_messages(s);
	int found = 0;
	char *save = NULL;
	for (char *l = strtok_r(lines, "\n", &save); l && !found; l = strtok_r(NULL, "\n", &save)) {
		size_t n = strcspn(l, " ");
		found = n == strlen(debt) && strncmp(l, debt, n) == 0;
	}
	free(lines);
	return found;
}

/* A debt paid before it has a bill: it gets its bill, but never an e-mail. */
static void test_a_debt_paid_before_its_bill_exists_gets_no_email(void **state)
{
	(void)state;
	sink_start(&smtp);
	server_up(0, "none");
	const char text[] = "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
			    "Early,1,early@example.com,10,2030-01-01,early\n"
			    "Ann,2,ann@example.com,20,2030-01-01,ann\n"
			    "Bob,3,bob@example.com,30,2030-01-01,bob\n";
	char *id = import_file(cl[0], NULL, "early.csv", text, strlen(text), 1000);
	Rpcq__Billing__Import *imp;
	Rpcq__Billing__GetBillRequest req = RPCQ__BILLING__GET_BILL_REQUEST__INIT;
	req.debt_id = "early";
	Rpcq__Billing__Bill *b = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_billing_get_bill(cl[0], &req, &b, NULL, &err), RPCQ_FAILED_PRECONDITION);
	Rpcq__Billing__Payment *p = NULL;
	assert_int_equal(pay(cl[0], "early", "10.00", "2029-12-01T09:00:00Z", &p, &err), RPCQ_OK);
	assert_false(p->cancelled_notification); /* there was none yet */
	assert_false(p->replayed);
	protobuf_c_message_free_unpacked(&p->base, NULL);

	/* Now a process that bills and mails. */
	server_down(0, SIGTERM);
	server_up(0, "smtp");
	imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 30000);
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__DONE);
	assert_int_equal(imp->bills, 3);
	assert_int_equal(imp->emails_sent, 2);
	assert_int_equal(imp->emails_failed, 0);
	assert_int_equal(imp->emails_pending, 0);
	import_free(imp);
	b = get_bill(cl[0], "early");
	assert_true(b->paid);
	assert_int_equal(b->notification, RPCQ__BILLING__NOTIFICATION_STATE__CANCELLED);
	protobuf_c_message_free_unpacked(&b->base, NULL);
	/* Every e-mail is settled, so the sink holds all it will ever get. */
	int total, dups;
	assert_int_equal(sink_count(&smtp, &total, &dups), 2);
	assert_int_equal(total, 2);
	assert_true(sink_has_debt(&smtp, "ann"));
	assert_true(sink_has_debt(&smtp, "bob"));
	assert_false(sink_has_debt(&smtp, "early"));
	free(id);
}

static uint32_t bill_attempts(const char *debt, Rpcq__Billing__NotificationState *state)
{
	Rpcq__Billing__Bill *b = get_bill(cl[0], debt);
	uint32_t n = b->attempts;
	*state = b->notification;
	protobuf_c_message_free_unpacked(&b->base, NULL);
	return n;
}

/* A debt paid while its e-mail waits for a retry (the SMTP server answered
 * 451): no further attempt, ever. The retry falls due at least 3.3 s after
 * the first attempt (--mail-retry-base-ms 5000, a third of jitter); the
 * payment comes as soon as the first attempt shows. */
static void test_a_debt_paid_between_retries_gets_no_further_attempt(void **state)
{
	(void)state;
	sink_start(&smtp);
	server_up(0, "smtp-slow-retry");
	const char text[] = "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
			    "Busy,1,busy-paid@example.com,10,2030-01-01,busy-paid\n";
	char *id = import_file(cl[0], NULL, "busy.csv", text, strlen(text), 1000);
	Rpcq__Billing__Import *imp;
	Rpcq__Billing__NotificationState ns = RPCQ__BILLING__NOTIFICATION_STATE__NOTIFICATION_STATE_UNSPECIFIED;
	uint32_t attempts = 0;
	for (int64_t deadline = now_ms() + 20000; now_ms() < deadline; sleep_ms(20)) {
		Rpcq__Billing__GetBillRequest req = RPCQ__BILLING__GET_BILL_REQUEST__INIT;
		req.debt_id = "busy-paid";
		Rpcq__Billing__Bill *b = NULL;
		rpcq_error e;
		if (rpcq_billing_get_bill(cl[0], &req, &b, NULL, &e) != RPCQ_OK)
			continue; /* no bill yet */
		attempts = b->attempts;
		ns = b->notification;
		if (attempts > 0)
			assert_non_null(strstr(b->last_error, "451"));
		protobuf_c_message_free_unpacked(&b->base, NULL);
		if (attempts > 0)
			break;
	}
	assert_int_equal(attempts, 1);
	assert_int_equal(ns, RPCQ__BILLING__NOTIFICATION_STATE__PENDING);
	Rpcq__Billing__Payment *p = NULL;
	rpcq_error err;
	assert_int_equal(pay(cl[0], "busy-paid", "10.00", "", &p, &err), RPCQ_OK);
	assert_true(p->cancelled_notification);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_int_equal(bill_attempts("busy-paid", &ns), 1);
	assert_int_equal(ns, RPCQ__BILLING__NOTIFICATION_STATE__CANCELLED);

	/* Until well past the retry's time (two --billing-schedule periods
	 * after it), the bill stays as it was. */
	long long due_ms = harness_sql_scalar(
		pg.conninfo, "SELECT (extract(epoch FROM n.next_at - now()) * 1000)::int8 FROM billing_notifications n"
			     " JOIN billing_debts d ON d.id = n.debt WHERE d.debt_id = 'busy-paid'");
	assert_true(due_ms > 0);
	for (int64_t until = now_ms() + due_ms + 2000; now_ms() < until; sleep_ms(100)) {
		assert_int_equal(bill_attempts("busy-paid", &ns), 1);
		assert_int_equal(ns, RPCQ__BILLING__NOTIFICATION_STATE__CANCELLED);
	}
	/* And the dispatcher was at work all along: an e-mail billed after
	 * the retry's time goes out. */
	const char fence[] = "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
			     "Fence,2,fence@example.com,10,2030-01-01,fence\n";
	imp = start_import(cl[0], NULL, "fence.csv");
	send_from(cl[0], imp->import_id, fence, 0, strlen(fence), 1000);
	Rpcq__Billing__Import *f = wait_state(cl[0], imp->import_id, RPCQ__BILLING__IMPORT_STATE__DONE, 20000);
	assert_int_equal(f->emails_sent, 1);
	import_free(f);
	import_free(imp);
	assert_int_equal(bill_attempts("busy-paid", &ns), 1);
	assert_int_equal(ns, RPCQ__BILLING__NOTIFICATION_STATE__CANCELLED);
	imp = get_import(cl[0], id);
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__DONE);
	assert_int_equal(imp->emails_sent, 0);
	assert_int_equal(imp->emails_failed, 0);
	import_free(imp);
	assert_true(sink_has_debt(&smtp, "fence"));
	assert_false(sink_has_debt(&smtp, "busy-paid"));
	free(id);
}

/* Each delivered e-mail's Message-ID is the one GetBill reports for its
 * bill, so a resend can be matched to its bill downstream. */
static void test_a_delivered_emails_message_id_is_the_one_its_bill_reports(void **state)
{
	(void)state;
	sink_start(&smtp);
	server_up(0, "smtp");
	const int n = 25;
	char *text = generate(n, "m", "mid");
	char *id = import_file(cl[0], NULL, "mid.csv", text, strlen(text), 700);
	Rpcq__Billing__Import *imp;
	imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 30000);
	assert_int_equal(imp->emails_sent, n);
	import_free(imp);
	char *lines = sink_messages(&smtp);
	char *save = NULL;
	int seen = 0;
	for (char *l = strtok_r(lines, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(l, ' ');
		assert_non_null(sp);
		*sp = '\0';
		Rpcq__Billing__Bill *b = get_bill(cl[0], l);
		assert_true(b->message_id[0] == '<');
		assert_string_equal(sp + 1, b->message_id);
		protobuf_c_message_free_unpacked(&b->base, NULL);
		seen++;
	}
	assert_int_equal(seen, n);
	free(lines);
	free(id);
	free(text);
}

/* The same bill number in two databases (here: the tables emptied and
 * their ids restarted, then a new rpcqd) gets two Message-IDs, so a
 * receiver that sees mail of both never takes one for a resend of the
 * other: "<bill-N.TAG@domain>", TAG 16 hex digits random to the process
 * that made the bill. */
static void test_the_same_bill_number_in_two_databases_has_two_message_ids(void **state)
{
	(void)state;
	const int n = 5;
	char *text = generate(n, "t", "tag");
	const char *shape = "SELECT count(*) FROM billing_notifications n WHERE n.message_id ~"
			    " ('^<bill-' || n.debt || '\\.[0-9a-f]{16}@localhost>$')";
	for (int round = 0; round < 2; round++) {
		harness_sql(pg.conninfo, "TRUNCATE billing_payments, billing_notifications, billing_bills,"
					 " billing_bill_ranges, billing_debts, billing_rejections, billing_imports"
					 " RESTART IDENTITY");
		server_up(0, "spool");
		char *id = import_file(cl[0], NULL, "tag.csv", text, strlen(text), 4000);
		Rpcq__Billing__Import *imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 30000);
		assert_int_equal(imp->emails_sent, n);
		import_free(imp);
		free(id);
		assert_int_equal(harness_sql_scalar(pg.conninfo, shape), n);
		assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT max(debt) FROM billing_notifications"), n);
		if (round == 0) {
			harness_sql(pg.conninfo,
				    "CREATE TABLE tag_before AS SELECT debt, message_id FROM billing_notifications");
			server_down(0, SIGTERM);
		}
	}
	assert_int_equal(harness_sql_scalar(pg.conninfo,
					    "SELECT count(*) FROM billing_notifications n JOIN tag_before b"
					    " USING (debt) WHERE n.message_id <> b.message_id"),
			 n);
	harness_sql(pg.conninfo, "DROP TABLE tag_before");
	free(text);
}

/* A chunk sent by a thread of the test's own, on cl[0]. */
typedef struct window_call {
	const char *id;
	uint64_t offset;
	const char *data;
	size_t len;
	int last;
	rpcq_status st;
	rpcq_error err;
	pthread_t thread;
} window_call;

static void *window_call_run(void *arg)
{
	window_call *wc = arg;
	wc->st = send_chunk(cl[0], wc->id, wc->offset, wc->data, wc->len, wc->last, &wc->err);
	return NULL;
}

/* A client may have two chunks in flight (rpcq billing import does): the
 * second is read while the first merges, and one that reaches the server
 * before the chunk ahead of it waits for that one instead of being refused
 * as a gap. The import is the one chunks sent one after another make, line
 * numbers included (chunks cut inside records); a gap that nothing fills
 * is still refused. */
static void test_chunks_sent_together_or_out_of_order_import_as_one_after_another(void **state)
{
	(void)state;
	server_up(0, "none");
	const int n = 3000;
	const size_t chunk = 7001;
	char *text = generate(n, "w", "window");
	size_t len = strlen(text);
	char *id = start_import_id(cl[0], NULL, "window.csv");
	int pair = 0;
	for (size_t off = 0; off < len; off += 2 * chunk, pair++) {
		window_call w[2];
		for (int k = 0; k < 2; k++) {
			size_t o = off + (size_t)k * chunk;
			size_t m = o >= len ? 0 : (len - o < chunk ? len - o : chunk);
			w[k] = (window_call){id, o, text + o, m, o + m >= len, RPCQ_OK, {0}, 0};
		}
		int two = w[0].offset + w[0].len < len;
		/* Even pairs: the later chunk first; odd pairs: both at once. */
		int first = two && pair % 2 == 0 ? 1 : 0;
		assert_int_equal(pthread_create(&w[first].thread, NULL, window_call_run, &w[first]), 0);
		if (two) {
			sleep_ms(pair % 2 == 0 ? 30 : 0);
			assert_int_equal(pthread_create(&w[1 - first].thread, NULL, window_call_run, &w[1 - first]), 0);
		}
		for (int k = 0; k < 1 + two; k++) {
			pthread_join(w[k].thread, NULL);
			if (w[k].st != RPCQ_OK)
				fail_msg("ImportChunk at %" PRIu64 ": %s", w[k].offset, w[k].err.message);
		}
	}
	Rpcq__Billing__Import *imp = get_import(cl[0], id);
	assert_true(imp->complete);
	assert_int_equal(imp->received_bytes, len);
	assert_int_equal(imp->rows, n);
	assert_int_equal(imp->new_debts, n);
	assert_int_equal(imp->rejected, 0);
	import_free(imp);
	/* debtId w-i is on line i + 2 */
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_debts"
							 " WHERE line = substr(debt_id, 3)::int + 2"),
			 n);

	/* A chunk after a gap that no chunk fills. */
	char *gap = start_import_id(cl[0], NULL, "gap.csv");
	rpcq_error err;
	int64_t t0 = now_ms();
	assert_int_equal(send_chunk(cl[0], gap, 100, text + 100, 100, 0, &err), RPCQ_FAILED_PRECONDITION);
	assert_non_null(strstr(err.message, "the upload has 0 bytes"));
	print_message("the gap was refused after %" PRId64 " ms\n", now_ms() - t0);
	free(gap);
	free(id);
	free(text);
}

/* New debts wait for their bills in ranges of at most --billing-batch ids,
 * each within an aligned block of that many ids;
 * a slip is rendered from its bill when read, the same bytes in GetBill
 * and in the e-mail; a slip stored by an rpcqd before migration 0008 is
 * returned as stored. */
static void test_bills_come_in_ranges_and_a_slip_reads_the_same_everywhere(void **state)
{
	(void)state;
	server_up(0, "none7");
	const int n = 50;
	char *text = generate(n, "r", "range");
	char *id = import_file(cl[0], NULL, "ranges.csv", text, strlen(text), 1 << 20);
	Rpcq__Billing__Import *imp;
	imp = get_import(cl[0], id);
	assert_int_equal(imp->new_debts, n);
	assert_int_equal(imp->bills, 0);
	assert_int_equal(imp->state, RPCQ__BILLING__IMPORT_STATE__BILLING);
	import_free(imp);
	long long ranges = harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bill_ranges");
	assert_true(ranges >= (n + 6) / 7 && ranges <= (n + 6) / 7 + 1);
	assert_int_equal(
		harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bill_ranges WHERE lo / 7 <> hi / 7"), 0);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT max(n) FROM billing_bill_ranges"), 7);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT sum(n) FROM billing_bill_ranges"), n);
	server_down(0, SIGTERM);

	server_up(0, "spool");
	imp = wait_state(cl[0], id, RPCQ__BILLING__IMPORT_STATE__DONE, 60000);
	assert_int_equal(imp->bills, n);
	assert_int_equal(imp->emails_sent, n);
	import_free(imp);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bill_ranges"), 0);
	assert_int_equal(
		harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bills WHERE stored_slip IS NULL"), n);

	Rpcq__Billing__Bill *b = get_bill(cl[0], "r-3");
	assert_non_null(strstr(b->slip, b->payment_code));
	assert_non_null(strstr(b->slip, "Name 3"));
	assert_non_null(strstr(b->slip, "r-3"));
	char cmd[700];
	snprintf(cmd, sizeof(cmd),
		 "import email, email.policy, glob, sys\n"
		 "for f in glob.glob('%s/*.eml'):\n"
		 "    m = email.message_from_bytes(open(f, 'rb').read(), policy=email.policy.strict)\n"
		 "    if m['Subject'].split()[-1] == 'r-3':\n"
		 "        sys.stdout.write(m.get_content().replace('\\r\\n', '\\n'))\n",
		 spool);
	const char *argv[] = {PYTHON, "-c", cmd, NULL};
	char *out = NULL, *err = NULL;
	if (harness_run(argv, NULL, &out, &err, 60000) != 0)
		fail_msg("reading the spool: %s", err);
	assert_string_equal(out, b->slip);
	free(out);
	free(err);
	protobuf_c_message_free_unpacked(&b->base, NULL);

	/* A bill of before: its stored slip. A layout this rpcqd does not
	 * know: an error that says so, not some other slip. */
	harness_sql(pg.conninfo, "UPDATE billing_bills b SET stored_slip = 'the slip as it was stored'"
				 " FROM billing_debts d WHERE d.id = b.debt AND d.debt_id = 'r-4'");
	b = get_bill(cl[0], "r-4");
	assert_string_equal(b->slip, "the slip as it was stored");
	protobuf_c_message_free_unpacked(&b->base, NULL);
	harness_sql(pg.conninfo, "UPDATE billing_bills b SET slip_layout = 9"
				 " FROM billing_debts d WHERE d.id = b.debt AND d.debt_id = 'r-5'");
	Rpcq__Billing__GetBillRequest req = RPCQ__BILLING__GET_BILL_REQUEST__INIT;
	req.debt_id = "r-5";
	rpcq_error e;
	b = NULL;
	assert_int_equal(rpcq_billing_get_bill(cl[0], &req, &b, NULL, &e), RPCQ_INTERNAL);
	assert_non_null(strstr(e.message, "slip layout 9"));
	free(id);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_the_sample_gives_1999_debts_bills_and_emails_and_a_second_import_adds_none,
				       reset),
		cmocka_unit_test_setup(test_the_spool_holds_one_rfc_5322_file_per_email, reset),
		cmocka_unit_test_setup(test_bad_rows_are_rejected_with_their_line_and_store_nothing, reset),
		cmocka_unit_test_setup(test_an_upload_cut_by_kill_9_resumes_on_the_other_process, reset),
		cmocka_unit_test_setup(test_kill_9_during_dispatch_with_two_processes_loses_nothing, reset),
		cmocka_unit_test_setup(test_kill_9_while_an_import_merges_and_bills_loses_and_duplicates_nothing,
				       reset),
		cmocka_unit_test_setup(test_kill_9_while_bills_are_written_loses_and_duplicates_nothing, reset),
		cmocka_unit_test_setup(test_the_http_upload_streams_a_file_into_an_import, reset),
		cmocka_unit_test_setup(test_the_imports_stream_carries_its_progress_while_it_runs, reset),
		cmocka_unit_test_setup(test_curl_posting_the_sample_bills_and_mails_1999_debts_and_again_adds_none,
				       reset),
		cmocka_unit_test_setup(test_an_http_upload_refused_before_its_first_chunk_stores_no_import, reset),
		cmocka_unit_test_setup(test_a_refused_upload_is_answered_even_while_its_body_is_still_coming, reset),
		cmocka_unit_test_setup(
			test_an_http_upload_refused_after_its_import_began_answers_its_id_and_resumes_with_its_key,
			reset),
		cmocka_unit_test_setup(test_a_stalled_http_upload_is_answered_408_and_resumes_with_its_key, reset),
		cmocka_unit_test_setup(test_an_http_upload_without_a_key_resumes_by_its_import_id, reset),
		cmocka_unit_test_setup(test_an_http_upload_cut_midway_and_sent_again_with_its_key_is_one_import, reset),
		cmocka_unit_test_setup(test_failures_retry_then_fail_and_a_payment_stops_an_email, reset),
		cmocka_unit_test_setup(test_a_debt_paid_before_its_bill_exists_gets_no_email, reset),
		cmocka_unit_test_setup(test_a_debt_paid_between_retries_gets_no_further_attempt, reset),
		cmocka_unit_test_setup(test_a_delivered_emails_message_id_is_the_one_its_bill_reports, reset),
		cmocka_unit_test_setup(test_the_same_bill_number_in_two_databases_has_two_message_ids, reset),
		cmocka_unit_test_setup(test_chunks_sent_together_or_out_of_order_import_as_one_after_another, reset),
		cmocka_unit_test_setup(test_bills_come_in_ranges_and_a_slip_reads_the_same_everywhere, reset),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
