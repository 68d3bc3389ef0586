/*
 * `rpcq billing` as its users run it: the real sample of
 * ../shared/data/billing/ and files of the tests' own through a real rpcqd
 * (its biller and dispatcher writing .eml files into a spool directory) on
 * a real PostgreSQL; `pay` also through a TCP relay that loses its first
 * reply, as a network can.
 *
 * One cluster for the file, migrated once; each test empties the billing
 * tables and starts an rpcqd of its own (the per-test teardown stops it
 * whatever happened), with the billing flags it needs. Files and spool
 * directories are written into the cluster's directory, which goes with it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"
#include "smtp_sink.h"

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

static harness_pg pg;
static harness_server *server; /* the current test's */
static smtp_sink sink;	       /* the current test's, if it has one */
static int spool_counter;

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

static char *sample_path(void)
{
	char buf[1024];
	char *p = strdup(harness_shared_path("data/billing/debts_sample.csv", buf, sizeof(buf)));
	assert_non_null(p);
	return p;
}

static long file_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		fail_msg("cannot stat %s: %s", path, strerror(errno));
	return (long)st.st_size;
}

/* The .eml files in dir. */
static int count_eml(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		fail_msg("cannot open %s: %s", dir, strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		n += l > 4 && strcmp(e->d_name + l - 4, ".eml") == 0;
	}
	closedir(d);
	return n;
}

/* The value of a proto3 JSON member "name" (a number, or a string such as
 * a 64-bit number or an enum name), copied into buf; fails the test when
 * json has none. */
static const char *json_value(const char *json, const char *name, char *buf, size_t len)
{
	char *key = fmt("\"%s\":", name);
	const char *p = json ? strstr(json, key) : NULL;
	if (p == NULL)
		fail_msg("no \"%s\" in the JSON:\n%s", name, json ? json : "(null)");
	p += strlen(key);
	free(key);
	while (*p == ' ')
		p++;
	if (*p == '"')
		p++;
	size_t n = strcspn(p, "\",\n}");
	if (n >= len)
		n = len - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

static long long json_u64(const char *json, const char *name)
{
	char buf[64];
	return strtoll(json_value(json, name, buf, sizeof(buf)), NULL, 10);
}

/* Lines of text starting with prefix. */
static int count_lines_starting(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	int count = 0;
	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, n) == 0)
			count++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return count;
}

/* The line of text starting with prefix (malloc'd, without the newline), or
 * NULL. */
static char *line_starting(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, n) == 0) {
			size_t l = strcspn(p, "\n");
			return fmt("%.*s", (int)l, p);
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* ---- state, servers, the CLI ---- */

static void empty_billing(void)
{
	harness_sql(pg.conninfo,
		    "TRUNCATE billing_payments, billing_notifications, billing_bills, billing_bill_ranges, "
		    "billing_debts, billing_rejections, billing_imports CASCADE");
}

static long long sql(const char *fmt_, ...) PRINTF_LIKE(1, 2);

static long long sql(const char *fmt_, ...)
{
	char q[1024];
	va_list ap;
	va_start(ap, fmt_);
	vsnprintf(q, sizeof(q), fmt_, ap);
	va_end(ap);
	return harness_sql_scalar(pg.conninfo, q);
}

/* Empty billing tables and an rpcqd with the billing flags given
 * (--billing-schedule S, and --mail-spool a fresh directory returned in
 * *spool unless spool is NULL: then no mail backend, e-mails stay pending,
 * unless the flags in extra, NULL-terminated, give one). */
static harness_server *start_with(const char *schedule, char **spool, const char *const *extra)
{
	empty_billing();
	harness_server *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	const char *args[16];
	int n = 0;
	args[n++] = "--billing-schedule";
	args[n++] = schedule;
	if (spool != NULL) {
		*spool = fmt("%s/spool%d", pg.dir, ++spool_counter);
		if (mkdir(*spool, 0700) != 0)
			fail_msg("cannot create %s: %s", *spool, strerror(errno));
		args[n++] = "--mail-spool";
		args[n++] = *spool;
	}
	for (; extra && *extra; extra++) {
		assert_true(n < 15);
		args[n++] = *extra;
	}
	args[n] = NULL;
	harness_server_start(s, &pg, args);
	server = s;
	return s;
}

static harness_server *start(const char *schedule, char **spool)
{
	return start_with(schedule, spool, NULL);
}

static int teardown_test(void **state)
{
	(void)state;
	smtp_sink_stop(&sink);
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

/* rpcq [--timeout MS] billing ARGS... against s (timeout_ms 0: none given):
 * exit status, stdout and stderr (freed by the caller). */
static int billing_v(const harness_server *s, int timeout_ms, char **out, char **err, va_list ap)
{
	const char *args[32];
	char t[24];
	int n = 0;
	if (timeout_ms > 0) {
		snprintf(t, sizeof(t), "%d", timeout_ms);
		args[n++] = "--timeout";
		args[n++] = t;
	}
	args[n++] = "billing";
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL) {
		assert_true(n < 31);
		args[n++] = a;
	}
	args[n] = NULL;
	*out = *err = NULL;
	return harness_cli(s->rpc_url, args, NULL, out, err);
}

static int billing(const harness_server *s, char **out, char **err, ...)
{
	va_list ap;
	va_start(ap, err);
	int rc = billing_v(s, 0, out, err, ap);
	va_end(ap);
	return rc;
}

static int billing_timeout(const harness_server *s, int timeout_ms, char **out, char **err, ...)
{
	va_list ap;
	va_start(ap, err);
	int rc = billing_v(s, timeout_ms, out, err, ap);
	va_end(ap);
	return rc;
}

/* The same as billing(), failing the test unless it exits 0. */
static void billing_ok(const harness_server *s, char **out, char **err, const char *what, ...)
{
	va_list ap;
	va_start(ap, what);
	int rc = billing_v(s, 0, out, err, ap);
	va_end(ap);
	if (rc != 0)
		fail_msg("rpcq billing %s: exit %d\nstdout: %s\nstderr: %s", what, rc, *out, *err);
}

/* ---- tests ---- */

static void test_the_sample_gives_1999_debts_bills_and_emails_and_importing_it_again_adds_none(void **state)
{
	(void)state;
	char *spool = NULL;
	harness_server *s = start("1", &spool);
	char *sample = sample_path();
	char *out, *err;
	billing_ok(s, &out, &err, "import --wait emails --json", "import", sample, "--wait", "emails", "--json", NULL);
	char st[32];
	assert_string_equal(json_value(out, "state", st, sizeof(st)), "DONE");
	assert_int_equal(json_u64(out, "newDebts"), 1999);
	assert_int_equal(json_u64(out, "bills"), 1999);
	assert_int_equal(json_u64(out, "emailsSent"), 1999);
	assert_int_equal(json_u64(out, "emailsFailed"), 0);
	assert_int_equal(json_u64(out, "emailsPending"), 0);
	assert_non_null(strstr(out, "\"complete\": true"));
	long long rows = json_u64(out, "rows"), accepted = json_u64(out, "accepted");
	long long repeated = json_u64(out, "repeated"), rejected = json_u64(out, "rejected");
	char *text = harness_read_file(sample, NULL);
	assert_non_null(text);
	char **lines = calloc(4096, sizeof(*lines));
	assert_non_null(lines);
	int n = 0;
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	assert_true(n > 2000 && n < 4096);
	assert_int_equal(rows, n - 1); /* the sample's lines but its header */
	assert_int_equal(accepted, 1999 + repeated);
	assert_int_equal(rows, accepted + rejected);
	assert_int_equal(json_u64(out, "receivedBytes"), file_size(sample));
	/* Every rejection on stderr, then the summary. */
	assert_int_equal(count_lines_starting(err, "debts_sample.csv:"), (int)rejected);
	char *summary = fmt("imported (DONE): %lld rows, %lld accepted (1999 new debts, %lld repeated), %lld "
			    "rejected; 1999 bills; e-mails 1999 sent, 0 failed, 0 pending\n",
			    rows, accepted, repeated, rejected);
	if (strstr(err, summary) == NULL)
		fail_msg("no summary \"%s\" in stderr:\n%s", summary, err);
	assert_int_equal(count_eml(spool), 1999);
	assert_int_equal(sql("SELECT count(*) FROM billing_debts"), 1999);
	assert_int_equal(sql("SELECT count(*) FROM billing_bills"), 1999);
	assert_int_equal(sql("SELECT count(*) FROM billing_notifications WHERE state = 2"), 1999);
	long long id = json_u64(out, "importId");
	free(out), free(err), free(summary);

	/* The same command again: the same import (its key is the file's
	 * contents), nothing sent, nothing added. */
	billing_ok(s, &out, &err, "import again", "import", sample, "--wait", "emails", "--json", NULL);
	assert_int_equal(json_u64(out, "importId"), id);
	assert_int_equal(json_u64(out, "newDebts"), 1999);
	assert_int_equal(json_u64(out, "emailsSent"), 1999);
	assert_non_null(strstr(err, "was already received (DONE)"));
	assert_null(strstr(err, "resuming"));
	assert_int_equal(sql("SELECT count(*) FROM billing_imports"), 1);
	free(out), free(err);

	/* The same rows in another order: another file, another import, whose
	 * every accepted row repeats a known debt. */
	char *path = fmt("%s/debts_reversed.csv", pg.dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fprintf(f, "%s\n", lines[0]);
	for (int i = n - 1; i >= 1; i--)
		fprintf(f, "%s\n", lines[i]);
	assert_int_equal(fclose(f), 0);
	billing_ok(s, &out, &err, "import reversed", "import", path, "--wait", "emails", "--json", NULL);
	assert_int_equal(json_u64(out, "importId"), id + 1); /* the run that found its import took no id */
	assert_string_equal(json_value(out, "state", st, sizeof(st)), "DONE");
	assert_int_equal(json_u64(out, "newDebts"), 0);
	assert_int_equal(json_u64(out, "rows"), rows);
	assert_int_equal(json_u64(out, "repeated"), json_u64(out, "accepted"));
	assert_int_equal(json_u64(out, "accepted"), accepted);
	assert_int_equal(json_u64(out, "bills"), 0);
	assert_int_equal(json_u64(out, "emailsSent"), 0);
	assert_int_equal(sql("SELECT count(*) FROM billing_debts"), 1999);
	assert_int_equal(sql("SELECT count(*) FROM billing_bills"), 1999);
	sleep_ms(300); /* a stray e-mail would have been written by now */
	assert_int_equal(count_eml(spool), 1999);
	free(out), free(err);

	/* status, readable and as JSON. */
	char ids[24];
	snprintf(ids, sizeof(ids), "%lld", id);
	billing_ok(s, &out, &err, "status", "status", ids, NULL);
	char *head = fmt("import %lld: DONE\n", id);
	assert_non_null(strstr(out, head));
	assert_non_null(strstr(out, "file:     debts_sample.csv\n"));
	assert_non_null(strstr(out, "bills:    1999 of 1999\n"));
	assert_non_null(strstr(out, "e-mails:  1999 sent, 0 failed, 0 pending\n"));
	free(out), free(err), free(head);
	billing_ok(s, &out, &err, "status --json", "status", ids, "--json", NULL);
	assert_int_equal(json_u64(out, "importId"), id);
	assert_int_equal(json_u64(out, "emailsSent"), 1999);
	free(out), free(err);

	free(lines), free(text), free(path), free(sample), free(spool);
}

static void test_bad_rows_are_reported_with_file_and_line_and_nothing_is_stored_for_them(void **state)
{
	(void)state;
	harness_server *s = start("1", NULL);
	char *path =
		write_file("bad.csv", "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
				      "Ana Lima,11111111111,ana@example.com,100.50,2024-03-01,good-1\n"		 /* 2 */
				      "Bad Amount,22222222222,amount@example.com,12.345,2024-03-01,bad-amount\n" /* 3 */
				      "Bad Date,33333333333,date@example.com,10.00,2023-02-29,bad-date\n"	 /* 4 */
				      "Bad Email,44444444444,not-an-address,10.00,2024-03-01,bad-email\n"	 /* 5 */
				      "Five Fields,55555555555,five@example.com,10.00,2024-03-01\n"		 /* 6 */
				      "Ana Lima,11111111111,ana@example.com,999.99,2024-03-01,good-1\n"		 /* 7 */
				      "Ana Lima,11111111111,ana@example.com,100.50,2024-03-01,good-1\n"		 /* 8 */
				      "Bruno Dias,66666666666,bruno@example.com,7,2024-12-31,good-2\n");	 /* 9 */
	char *out, *err;
	billing_ok(s, &out, &err, "import bad.csv", "import", path, "--wait", "bills", "--json", NULL);
	assert_int_equal(json_u64(out, "rows"), 8);
	assert_int_equal(json_u64(out, "newDebts"), 2);
	assert_int_equal(json_u64(out, "repeated"), 1);
	assert_int_equal(json_u64(out, "accepted"), 3);
	assert_int_equal(json_u64(out, "rejected"), 5);
	assert_int_equal(json_u64(out, "bills"), 2);
	static const char *const rejected_lines[] = {
		"bad.csv:3: ", "bad.csv:4: ", "bad.csv:5: ", "bad.csv:6: ", "bad.csv:7: "};
	for (size_t i = 0; i < sizeof(rejected_lines) / sizeof(rejected_lines[0]); i++)
		if (count_lines_starting(err, rejected_lines[i]) != 1)
			fail_msg("no line \"%s...\" in stderr:\n%s", rejected_lines[i], err);
	assert_int_equal(count_lines_starting(err, "bad.csv:"), 5);
	char *conflict = line_starting(err, "bad.csv:7: ");
	assert_non_null(strstr(conflict, "good-1"));
	/* Nothing stored for the rejected rows: the good debts only, with the
	 * first values of good-1. */
	assert_int_equal(sql("SELECT count(*) FROM billing_debts"), 2);
	assert_int_equal(sql("SELECT count(*) FROM billing_debts WHERE debt_id IN ('bad-amount', 'bad-date', "
			     "'bad-email', 'Five Fields', '')"),
			 0);
	assert_int_equal(sql("SELECT amount_cents FROM billing_debts WHERE debt_id = 'good-1'"), 10050);
	assert_int_equal(sql("SELECT count(*) FROM billing_rejections"), 5);
	assert_int_equal(sql("SELECT count(*) FROM billing_bills"), 2);
	free(conflict), free(out), free(err);

	/* Usage errors exit 2 without a server; --help exits 0. */
	char *o2, *e2;
	assert_int_equal(billing(s, &o2, &e2, "import", NULL), 2);
	free(o2), free(e2);
	assert_int_equal(billing(s, &o2, &e2, "import", path, "--wait", "forever", NULL), 2);
	free(o2), free(e2);
	assert_int_equal(billing(s, &o2, &e2, "pay", "good-1", NULL), 2);
	free(o2), free(e2);
	assert_int_equal(billing(s, &o2, &e2, "frobnicate", NULL), 2);
	free(o2), free(e2);
	static const char *const cmds[] = {"import", "status", "bill", "pay"};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(billing(s, &o2, &e2, cmds[i], "--help", NULL), 0);
		assert_non_null(strstr(o2, "usage: rpcq billing"));
		free(o2), free(e2);
	}
	assert_int_equal(billing(s, &o2, &e2, "--help", NULL), 0);
	free(o2), free(e2);
	/* A missing file, a file without the header: exit 1. */
	assert_int_equal(billing(s, &o2, &e2, "import", "/nonexistent/debts.csv", NULL), 1);
	assert_non_null(strstr(e2, "rpcq: INVALID_ARGUMENT: cannot open /nonexistent/debts.csv"));
	free(o2), free(e2);
	char *headless = write_file("headless.csv", "Ana Lima,11111111111,ana@example.com,1.00,2024-03-01,x\n");
	assert_int_equal(billing(s, &o2, &e2, "import", headless, NULL), 1);
	assert_non_null(strstr(e2, "rpcq: INVALID_ARGUMENT: headless.csv: line 1"));
	free(o2), free(e2), free(headless);
	free(path);
}

/* Writes n data rows: every 1000th with a bad amount, every other 50th an
 * identical repeat of the row before it, the rest new debts. */
static void generate(const char *path, int n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs("name,governmentId,email,debtAmount,debtDueDate,debtId\n", f);
	char prev[256] = "";
	for (int i = 1; i <= n; i++) {
		char row[256];
		if (i % 1000 == 0)
			snprintf(row, sizeof(row), "Bad Amount %d,%011d,bad%d@example.com,12.3.4,2024-01-19,bad-%08d",
				 i, i, i, i);
		else if (i % 50 == 0)
			snprintf(row, sizeof(row), "%s", prev);
		else
			snprintf(row, sizeof(row),
				 "Debtor Number %d,%011d,debtor%d@example.com,%d.%02d,2024-%02d-%02d,"
				 "3c9e1a52-0000-4000-8000-%012d",
				 i, i, i, 1 + i % 9000, i % 100, 1 + i % 12, 1 + i % 28, i);
		fprintf(f, "%s\n", row);
		snprintf(prev, sizeof(prev), "%s", row);
	}
	assert_int_equal(fclose(f), 0);
}

static void test_an_import_killed_midway_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(void **state)
{
	(void)state;
	/* Nothing billed: this test is about the upload. */
	harness_server *s = start("0", NULL);
	char *path = fmt("%s/big.csv", pg.dir);
	const int n = 200000;
	generate(path, n);
	long size = file_size(path);
	assert_true(size > 15 * 1024 * 1024);

	/* Start the import and kill it once the server has some chunks. */
	const char *cli = getenv("RPCQ_CLI");
	assert_non_null(cli);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(cli, cli, "--server", s->rpc_url, "billing", "import", path, (char *)NULL);
		_exit(127);
	}
	int64_t deadline = now_ms() + 30000;
	long long got = 0;
	int status, exited = 0;
	while (now_ms() < deadline) {
		got = sql("SELECT coalesce(max(received), 0) FROM billing_imports");
		if (got >= 2 * 1024 * 1024)
			break;
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
		fail_msg("the import sent nothing within 30 s");
	/* A chunk in flight when the command died may still land: wait until
	 * the server's count stands still. */
	for (long long prev = -1; prev != got;) {
		prev = got;
		sleep_ms(300);
		got = sql("SELECT received FROM billing_imports");
	}
	if (got >= size)
		fail_msg("the server had all %lld bytes when the import was killed: no longer midway", got);
	assert_int_equal(sql("SELECT count(*) FROM billing_imports WHERE NOT complete"), 1);
	long long id = sql("SELECT id FROM billing_imports");
	long long rows_then = sql("SELECT rows FROM billing_imports");
	assert_true(rows_then > 0 && rows_then < n);

	/* Run again: it resumes from the bytes the server has. */
	char *out, *err;
	billing_ok(s, &out, &err, "import (resumed)", "import", path, "--json", NULL);
	/* It resumes where the server stands: at least what was counted above (a
	 * chunk the killed command had sent may have landed since, however long
	 * we waited), never from the start and never past the end. */
	char *resume = fmt("rpcq: resuming import %lld of big.csv at byte ", id);
	const char *at = strstr(err, resume);
	if (at == NULL)
		fail_msg("no \"%s\" in stderr:\n%s", resume, err);
	long long from = strtoll(at + strlen(resume), NULL, 10);
	if (from < got || from >= size)
		fail_msg("resumed from byte %lld; the server had %lld of %ld when it was killed", from, got, size);

	/* What the file gives uninterrupted, by generate()'s pattern. */
	const long long bad = n / 1000, repeats = n / 50 - n / 1000, fresh = n - bad - repeats;
	assert_int_equal(json_u64(out, "importId"), id);
	assert_int_equal(json_u64(out, "receivedBytes"), size);
	assert_non_null(strstr(out, "\"complete\": true"));
	assert_int_equal(json_u64(out, "rows"), n);
	assert_int_equal(json_u64(out, "newDebts"), fresh);
	assert_int_equal(json_u64(out, "repeated"), repeats);
	assert_int_equal(json_u64(out, "accepted"), fresh + repeats);
	assert_int_equal(json_u64(out, "rejected"), bad);
	assert_int_equal(sql("SELECT count(*) FROM billing_debts"), fresh);
	assert_int_equal(sql("SELECT count(*) FROM billing_rejections"), bad);
	assert_int_equal(sql("SELECT count(*) FROM billing_imports"), 1);
	/* More rejections than come with the import: paged through
	 * ListRejections. */
	assert_int_equal(count_lines_starting(err, "big.csv:"), (int)bad);
	assert_int_equal(count_lines_starting(err, "big.csv:1001: "), 1);
	assert_int_equal(count_lines_starting(err, "big.csv:200001: "), 1);
	free(resume), free(out), free(err), free(path);
}

/* Imports generate(n)'s rows into a server started with extra flags and
 * checks the summary --json prints and what is stored. */
static void import_generated_with(const char *const *extra, const char *name, int n)
{
	harness_server *s = start_with("0", NULL, extra);
	char *path = fmt("%s/%s", pg.dir, name);
	generate(path, n);
	char *out, *err;
	billing_ok(s, &out, &err, "import", "import", path, "--json", NULL);
	const long long bad = n / 1000, repeats = n / 50 - n / 1000, fresh = n - bad - repeats;
	assert_int_equal(json_u64(out, "receivedBytes"), file_size(path));
	assert_non_null(strstr(out, "\"complete\": true"));
	assert_int_equal(json_u64(out, "rows"), n);
	assert_int_equal(json_u64(out, "newDebts"), fresh);
	assert_int_equal(json_u64(out, "rejected"), bad);
	assert_int_equal(sql("SELECT count(*) FROM billing_debts"), fresh);
	free(out), free(err), free(path);
}

/* Two chunks in flight to a server with one worker: the second one may
 * reach the worker first and wait there for the first, which then runs on a
 * spare thread (server_wait_begin) instead of queueing behind it until the
 * second is refused as a gap (it was, in most runs of this file). */
static void test_an_import_into_a_server_with_one_worker_completes(void **state)
{
	(void)state;
	const char *const extra[] = {"--workers", "1", NULL};
	import_generated_with(extra, "one-worker.csv", 200000);
}

/* Against a server with a small --max-message-bytes the command cuts its
 * chunks to the limit rpcq.Health/Check reports, instead of sending 1 MiB
 * chunks the server cannot take. */
static void test_an_import_into_a_server_with_a_small_message_limit_completes(void **state)
{
	(void)state;
	const char *const extra[] = {"--max-message-bytes", "131072", NULL};
	import_generated_with(extra, "small-limit.csv", 20000);
}

/* The bar the CLI draws for done of total: "[###---...]  42% text". */
static char *bar_line(uint64_t done, uint64_t total, const char *text)
{
	unsigned pct = (unsigned)(done * 100 / total);
	char bar[25];
	for (unsigned i = 0; i < 24; i++)
		bar[i] = i < pct * 24 / 100 ? '#' : '-';
	bar[24] = '\0';
	return fmt("[%s] %3u%% %s", bar, pct, text);
}

/* The first chunk's merge waits for the merge lock (BILLING_MERGE_LOCK_KEY,
 * server/services/billing/sql.h) 0.8 s once it waits: longer than the CLI
 * waits (0.3 s) before it draws, whatever the machine. */
static harness_hold *hold_merges(void)
{
	return harness_hold_start(pg.conninfo, "SELECT pg_advisory_xact_lock(7401005)",
				  "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory'"
				  " AND objid = 7401005",
				  800, 30000);
}

/* The summary of an import of generate(n)'s rows, without billing. */
static char *generated_summary(long long id, const char *name, int n, int known)
{
	const long long bad = n / 1000, repeats = n / 50 - n / 1000, fresh = n - bad - repeats;
	return fmt("import %lld of %s imported (BILLING): %d rows, %lld accepted (%lld new debts, %lld repeated), "
		   "%lld rejected; 0 bills; e-mails 0 sent, 0 failed, 0 pending\n",
		   id, name, n, fresh + repeats, fresh - known, repeats + known, bad);
}

static void test_an_import_that_takes_a_while_shows_a_progress_bar_on_a_terminal_and_none_on_a_pipe(void **state)
{
	(void)state;
	/* Nothing billed: the bar is the upload's. */
	harness_server *s = start("0", NULL);
	const int n = 40000;
	char *path = fmt("%s/tty.csv", pg.dir);
	generate(path, n);
	long size = file_size(path);
	assert_true(size > 3 * 1024 * 1024); /* four chunks or more */

	harness_hold *h = hold_merges();
	const char *args[] = {"billing", "import", path, NULL};
	char *out, *tty;
	int rc = harness_cli_tty(s->rpc_url, args, &out, &tty);
	assert_int_equal(harness_hold_finish(h), 1);
	if (rc != 0)
		fail_msg("rpcq billing import on a terminal: exit %d\nstdout: %s\nterminal: %s", rc, out, tty);
	assert_string_equal(out, "");
	/* Once the first chunk is in (it waited), its bar, drawn over the
	 * line before. */
	char a[32], b[32], text[128];
	harness_human_bytes(1024 * 1024, a, sizeof(a));
	harness_human_bytes((uint64_t)size, b, sizeof(b));
	snprintf(text, sizeof(text), "sending tty.csv: %s / %s", a, b);
	char *bar = bar_line(1024 * 1024, (uint64_t)size, text);
	char *drawn = fmt("\r%s", bar);
	if (strstr(tty, drawn) == NULL)
		fail_msg("no \"%s\" on the terminal:\n%s", bar, tty);
	/* Every line drawn is a bar of the upload. */
	int bars = 0;
	for (const char *p = strchr(tty, '\r'); p != NULL; p = strchr(p + 1, '\r')) {
		if (p[1] != '[')
			continue;
		bars++;
		if (p[26] != ']' || strncmp(p + 31, "% sending tty.csv: ", 19) != 0)
			fail_msg("a line drawn on the terminal is not the upload's bar: %.80s", p + 1);
	}
	assert_true(bars >= 1);
	/* Then the bar is wiped ("\r", spaces, "\r"): the rejections and the
	 * summary stay on the screen. */
	long long id = sql("SELECT max(id) FROM billing_imports");
	const char *cr = strrchr(tty, '\r');
	assert_true(cr > tty && cr[-1] == ' ');
	assert_int_equal(count_lines_starting(cr + 1, "tty.csv:"), n / 1000);
	assert_int_equal(strncmp(cr + 1, "tty.csv:1001: ", 14), 0); /* row 1000, after the header */
	char *summary = generated_summary(id, "tty.csv", n, 0);
	const char *at = strstr(cr + 1, "import ");
	if (at == NULL || strcmp(at, summary) != 0)
		fail_msg("the terminal does not end with \"%s\":\n%s", summary, cr + 1);
	free(drawn), free(bar), free(summary), free(out), free(tty);

	/* A file as slow with stderr on a pipe (another one, a row longer, so
	 * that it is another import): the rejections and the summary alone. */
	char *err;
	char *path2 = fmt("%s/pipe.csv", pg.dir);
	generate(path2, n + 1);
	h = hold_merges();
	const char *args2[] = {"billing", "import", path2, NULL};
	rc = harness_cli(s->rpc_url, args2, NULL, &out, &err);
	assert_int_equal(harness_hold_finish(h), 1);
	if (rc != 0)
		fail_msg("rpcq billing import on a pipe: exit %d\nstdout: %s\nstderr: %s", rc, out, err);
	assert_null(strchr(err, '\r'));
	assert_null(strstr(err, "sending "));
	assert_int_equal(count_lines_starting(err, "pipe.csv:"), (n + 1) / 1000);
	id = sql("SELECT max(id) FROM billing_imports");
	/* Its rows but the last are the first file's: known debts, repeated. */
	const int known = n - n / 1000 - (n / 50 - n / 1000);
	summary = generated_summary(id, "pipe.csv", n + 1, known);
	at = strstr(err, "import ");
	if (at == NULL || strcmp(at, summary) != 0)
		fail_msg("stderr does not end with \"%s\":\n%s", summary, err);
	free(summary), free(out), free(err), free(path), free(path2);
}

static const char two_debts[] = "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
				"Ana Lima,11111111111,ana@example.com,100.50,2024-03-01,debt-ana\n"
				"Bruno Dias,22222222222,bruno@example.com,7,2024-12-31,debt-bruno\n";

static void test_bill_prints_the_slip_and_pay_marks_the_debt_paid_once(void **state)
{
	(void)state;
	char *spool = NULL;
	harness_server *s = start("1", &spool);
	char *path = write_file("two.csv", two_debts);
	char *out, *err;
	billing_ok(s, &out, &err, "import two.csv", "import", path, "--wait", "emails", NULL);
	assert_non_null(
		strstr(err, "2 rows, 2 accepted (2 new debts, 0 repeated), 0 rejected; 2 bills; e-mails 2 sent"));
	free(out), free(err);
	assert_int_equal(count_eml(spool), 2);

	billing_ok(s, &out, &err, "bill --json", "bill", "debt-ana", "--json", NULL);
	char code[128], slip_amount[32];
	json_value(out, "paymentCode", code, sizeof(code));
	assert_string_equal(json_value(out, "amount", slip_amount, sizeof(slip_amount)), "100.50");
	int digits = 0;
	for (const char *p = code; *p; p++)
		digits += *p >= '0' && *p <= '9';
	assert_int_equal(digits, 47);
	free(out), free(err);

	billing_ok(s, &out, &err, "bill", "bill", "debt-ana", NULL);
	assert_non_null(strstr(out, code)); /* the slip's typeable line */
	assert_non_null(strstr(out, "debt-ana"));
	assert_non_null(strstr(out, "Ana Lima"));
	assert_non_null(strstr(out, "100.50"));
	char *want = fmt("payment code %s, e-mail sent, not paid\n", code);
	if (strstr(out, want) == NULL)
		fail_msg("no \"%s\" in:\n%s", want, out);
	free(want), free(out), free(err);

	/* The slip as a PDF: to a file next to the usual output, or alone to
	 * stdout; pdftotext reads the bill's fields from it. */
	char *pdf = fmt("%s.pdf", path);
	billing_ok(s, &out, &err, "bill --pdf", "bill", "debt-ana", "--pdf", pdf, NULL);
	assert_non_null(strstr(out, "payment code "));
	free(out), free(err);
	const char *text_argv[] = {"pdftotext", pdf, "-", NULL};
	if (harness_run(text_argv, NULL, &out, &err, 30000) != 0)
		fail_msg("pdftotext: %s", err);
	assert_non_null(strstr(out, code));
	assert_non_null(strstr(out, "debt-ana"));
	assert_non_null(strstr(out, "Ana Lima"));
	assert_non_null(strstr(out, "100.50"));
	free(out), free(err);
	billing_ok(s, &out, &err, "bill --pdf -", "bill", "debt-ana", "--pdf", "-", NULL);
	assert_memory_equal(out, "%PDF-1.", 7);
	assert_null(strstr(out, "payment code "));
	free(out), free(err);
	assert_int_equal(billing(s, &out, &err, "bill", "debt-ana", "--pdf", "/nonexistent/dir/slip.pdf", NULL), 1);
	assert_non_null(strstr(err, "/nonexistent/dir/slip.pdf"));
	free(out), free(err);
	unlink(pdf);
	free(pdf);

	/* A payment: its e-mail was sent already, so nothing is cancelled. */
	billing_ok(s, &out, &err, "pay", "pay", "debt-ana", "--amount", "100.50", "--paid-at", "2024-03-01T10:00:00Z",
		   "--payer", "Ana Lima", NULL);
	assert_string_equal(out, "paid debt-ana 100.50 at 2024-03-01T10:00:00Z\n");
	free(out), free(err);
	billing_ok(s, &out, &err, "bill after pay", "bill", "debt-ana", NULL);
	want = fmt("payment code %s, e-mail sent, paid\n", code);
	if (strstr(out, want) == NULL)
		fail_msg("no \"%s\" in:\n%s", want, out);
	free(want), free(out), free(err);

	/* The same payment again changes nothing; another one is refused. */
	billing_ok(s, &out, &err, "pay again", "pay", "debt-ana", "--amount", "100.50", "--paid-at",
		   "2024-03-01T10:00:00Z", "--payer", "Ana Lima", NULL);
	assert_string_equal(out, "paid debt-ana 100.50 at 2024-03-01T10:00:00Z\n");
	assert_non_null(strstr(err, "recorded before"));
	free(out), free(err);
	assert_int_equal(billing(s, &out, &err, "pay", "debt-ana", "--amount", "50", "--payer", "Someone", NULL), 1);
	assert_non_null(strstr(err, "rpcq: ALREADY_EXISTS: "));
	assert_string_equal(out, "");
	free(out), free(err);
	assert_int_equal(sql("SELECT count(*) FROM billing_payments"), 1);
	assert_int_equal(sql("SELECT amount_cents FROM billing_payments"), 10050);

	/* Unknown debts and bad amounts: exit 1 with the server's reason. */
	assert_int_equal(billing(s, &out, &err, "bill", "no-such-debt", NULL), 1);
	assert_non_null(strstr(err, "rpcq: NOT_FOUND: "));
	free(out), free(err);
	assert_int_equal(billing(s, &out, &err, "pay", "debt-bruno", "--amount", "-3", NULL), 1);
	assert_non_null(strstr(err, "rpcq: INVALID_ARGUMENT: "));
	free(out), free(err);
	assert_int_equal(billing(s, &out, &err, "pay", "debt-bruno", "--amount", "7", "--json", NULL), 0);
	assert_string_equal(json_value(out, "debtId", code, sizeof(code)), "debt-bruno");
	assert_string_equal(json_value(out, "amount", code, sizeof(code)), "7.00");
	free(out), free(err);
	free(path), free(spool);
}

static void test_paying_a_debt_whose_email_is_pending_cancels_it(void **state)
{
	(void)state;
	/* Bills are made, but with no mail backend every e-mail stays
	 * pending (with --billing-schedule 0 no bill, and so no e-mail to
	 * cancel, would exist). */
	harness_server *s = start("1", NULL);
	char *path = write_file("pending.csv", two_debts);
	char *out, *err;
	billing_ok(s, &out, &err, "import --wait bills", "import", path, "--wait", "bills", "--json", NULL);
	char st[32];
	assert_string_equal(json_value(out, "state", st, sizeof(st)), "MAILING");
	assert_int_equal(json_u64(out, "bills"), 2);
	assert_int_equal(json_u64(out, "emailsPending"), 2);
	char ids[24];
	json_value(out, "importId", ids, sizeof(ids));
	free(out), free(err);
	billing_ok(s, &out, &err, "bill", "bill", "debt-bruno", NULL);
	assert_non_null(strstr(out, ", e-mail pending, not paid\n"));
	free(out), free(err);

	/* --wait emails never ends here: bounded by --timeout. */
	int64_t t0 = now_ms();
	assert_int_equal(billing_timeout(s, 1500, &out, &err, "import", path, "--wait", "emails", NULL), 1);
	assert_true(now_ms() - t0 < 10000);
	assert_non_null(strstr(err, "rpcq: DEADLINE_EXCEEDED: import "));
	assert_non_null(strstr(err, " is MAILING after 1500 ms"));
	free(out), free(err);

	billing_ok(s, &out, &err, "pay", "pay", "debt-bruno", "--amount", "7.00", "--paid-at", "2024-12-30T09:30:00Z",
		   NULL);
	assert_string_equal(out, "paid debt-bruno 7.00 at 2024-12-30T09:30:00Z\ne-mail cancelled\n");
	free(out), free(err);
	billing_ok(s, &out, &err, "bill after pay", "bill", "debt-bruno", NULL);
	assert_non_null(strstr(out, ", e-mail cancelled, paid\n"));
	free(out), free(err);
	assert_int_equal(sql("SELECT count(*) FROM billing_notifications WHERE state = 4"), 1);
	assert_int_equal(sql("SELECT count(*) FROM billing_notifications WHERE state = 1"), 1);
	billing_ok(s, &out, &err, "status", "status", ids, NULL);
	assert_non_null(strstr(out, "e-mails:  0 sent, 0 failed, 1 pending\n"));
	free(out), free(err);
	free(path);
}

static void test_malformed_csv_rows_are_rejected_on_their_line_and_the_rest_of_the_file_is_imported(void **state)
{
	(void)state;
	harness_server *s = start("0", NULL);
	/* Three malformed records: text after a closing quote in the first
	 * chunk and again past the first 1 MiB (the second chunk), and a quote
	 * never closed at the end, which takes the rest of the file; and a
	 * record too long to carry across the chunks' cut. A no-break space
	 * after a closing quote is a blank. */
	char *path = fmt("%s/malformed.csv", pg.dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs("name,governmentId,email,debtAmount,debtDueDate,debtId\n", f);
	fputs("\"Ana\"x,1,ana@example.com,1.00,2024-03-01,m-bad-1\n", f);     /* 2 */
	fputs("\"Bo\"\xc2\xa0,2,bo@example.com,2.00,2024-03-01,m-nbsp\n", f); /* 3 */
	int n = 16000, line = 4, overlong = 0;
	for (int i = 0; i < n; i++, line++) {
		if (overlong == 0 && ftell(f) >= 1024 * 1024 - 10000) {
			/* 20 kB in quotes over 100 lines, cut by the first chunk's
			 * end 10 kB in: too long to carry to the next chunk. */
			overlong = line;
			fputs("\"Long", f);
			for (int j = 0; j < 100; j++, line++)
				fprintf(f, "%0199d\n", j);
			fputs("\",9,long@example.com,9.00,2024-03-01,m-bad-long\n", f);
			line++;
		}
		fprintf(f, "Row Number %d,%d,row%d@example.com,%d.00,2024-03-01,m-%06d\n", i, i, i, 1 + i % 90, i);
	}
	const int bad2 = line++;
	fputs("Cid,3,cid@example.com,3.00,\"2024-03-01\"\"\" junk,m-bad-2\n", f);
	fputs("Dee,4,dee@example.com,4.00,2024-03-01,m-last-good\n", f);
	line++;
	const int bad3 = line;
	fputs("\"Eve, never "
	      "closed,5,eve@example.com,5.00,2024-03-01,m-bad-3\nFay,6,fay@example.com,6.00,2024-03-01,m-fay\n",
	      f);
	assert_int_equal(fclose(f), 0);
	assert_true(file_size(path) > 1024 * 1024);

	char *out, *err;
	billing_ok(s, &out, &err, "import malformed.csv", "import", path, "--json", NULL);
	assert_int_equal(json_u64(out, "rows"), n + 6);
	assert_int_equal(json_u64(out, "newDebts"), n + 2);
	assert_int_equal(json_u64(out, "rejected"), 4);
	char *r1 = line_starting(err, "malformed.csv:2: ");
	char *want2 = fmt("malformed.csv:%d: ", bad2), *want3 = fmt("malformed.csv:%d: ", bad3);
	char *r2 = line_starting(err, want2), *r3 = line_starting(err, want3);
	if (r1 == NULL || r2 == NULL || r3 == NULL)
		fail_msg("no rejections on lines 2, %d and %d in stderr:\n%s", bad2, bad3, err);
	assert_non_null(strstr(r1, "field 1: text after the closing quote"));
	assert_non_null(strstr(r2, "field 5: text after the closing quote"));
	assert_non_null(strstr(r3, "a quoted field is not closed before the end of the input"));
	char *want_long = fmt("malformed.csv:%d: a record longer than 8192 bytes", overlong);
	if (!count_lines_starting(err, want_long))
		fail_msg("no \"%s\" in stderr:\n%s", want_long, err);
	free(want_long);
	assert_int_equal(count_lines_starting(err, "malformed.csv:"), 4);
	/* Nothing stored for them; the rows around them are. */
	assert_int_equal(sql("SELECT count(*) FROM billing_debts WHERE debt_id LIKE 'm-bad-%%' OR debt_id = 'm-fay'"),
			 0);
	assert_int_equal(sql("SELECT count(*) FROM billing_debts WHERE debt_id IN ('m-nbsp', 'm-last-good')"), 2);
	assert_int_equal(sql("SELECT count(*) FROM billing_debts WHERE name = 'Bo'"), 1);
	assert_int_equal(sql("SELECT count(*) FROM billing_rejections"), 4);
	free(r1), free(r2), free(r3), free(want2), free(want3), free(out), free(err), free(path);
}

/* An address the sender would refuse (not ASCII, a dot at either end of
 * its local part) is a row rejected by the import, with its file and line,
 * not a bill whose e-mail fails after its first attempt. */
static void test_an_email_address_the_sender_refuses_is_rejected_at_import(void **state)
{
	(void)state;
	char *spool = NULL;
	harness_server *s = start("1", &spool);
	char *path = write_file("addresses.csv", "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
						 "Ana Lima,1,ana@example.com,10.00,2030-01-01,addr-good\n"     /* 2 */
						 "Jos\xc3\xa9,2,jos\xc3\xa9@b.co,10.00,2030-01-01,addr-utf8\n" /* 3 */
						 "Lead,3,.lead@example.com,10.00,2030-01-01,addr-lead\n"       /* 4 */
						 "Trail,4,trail.@example.com,10.00,2030-01-01,addr-trail\n");  /* 5 */
	char *out, *err;
	billing_ok(s, &out, &err, "import addresses.csv", "import", path, "--wait", "emails", NULL);
	static const char *const want[] = {
		"addresses.csv:3: email \"jos\xc3\xa9@b.co\" is not an address",
		"addresses.csv:4: email \".lead@example.com\" is not an address",
		"addresses.csv:5: email \"trail.@example.com\" is not an address",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (count_lines_starting(err, want[i]) != 1)
			fail_msg("no line \"%s\" in stderr:\n%s", want[i], err);
	assert_int_equal(count_lines_starting(err, "addresses.csv:"), 3);
	if (strstr(err,
		   "4 rows, 1 accepted (1 new debts, 0 repeated), 3 rejected; 1 bills; e-mails 1 sent, 0 failed") ==
	    NULL)
		fail_msg("no summary of 3 rejected rows and 1 e-mail sent in:\n%s", err);
	free(out), free(err);
	assert_int_equal(sql("SELECT count(*) FROM billing_debts"), 1);
	assert_int_equal(sql("SELECT count(*) FROM billing_notifications WHERE state = 2"), 1);
	assert_int_equal(count_eml(spool), 1);
	free(path), free(spool);
}

/* rpcq billing import PATH --wait emails --json, which must succeed (the
 * server's log is shown when it does not). */
static void import_waiting_for_emails(const harness_server *s, const char *path, char **out, char **err)
{
	int rc = billing(s, out, err, "import", path, "--wait", "emails", "--json", NULL);
	if (rc != 0) {
		char *log = harness_read_file(s->log_path, NULL);
		fail_msg("import: exit %d\n%s\nserver log:\n%s", rc, *err, log);
	}
}

static void test_emails_that_fail_for_good_are_listed_with_their_line_and_the_senders_answer(void **state)
{
	(void)state;
	/* A real SMTP server that refuses every recipient here (550 for a
	 * local part starting "reject"): more failed e-mails than GetImport
	 * names, so the command pages through ListFailedEmails. */
	char *dir = fmt("%s/smtp", pg.dir);
	mkdir(dir, 0755);
	smtp_sink_start(&sink, dir, 0, "smtp", NULL);
	const char *extra[] = {"--smtp-url", sink.url, NULL};
	harness_server *s = start_with("1", NULL, extra);
	char *path = fmt("%s/fails.csv", pg.dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs("name,governmentId,email,debtAmount,debtDueDate,debtId\n", f);
	for (int i = 1; i <= 150; i++) /* line i + 1 */
		fprintf(f, "Debtor %d,%d,reject-%03d@example.com,%d.00,2030-01-01,fail-%03d\n", i, i, i, i, i);
	assert_int_equal(fclose(f), 0);
	char *out, *err;
	import_waiting_for_emails(s, path, &out, &err);
	assert_int_equal(json_u64(out, "emailsFailed"), 150);
	assert_int_equal(count_lines_starting(err, "fails.csv:"), 150);
	for (int i = 1; i <= 150; i++) {
		char *want = fmt("fails.csv:%d: e-mail of debt fail-%03d to reject-%03d@example.com failed after 1 "
				 "attempt: FAILED_PRECONDITION: SMTP %s: RCPT TO <reject-%03d@example.com>: 550 ",
				 i + 1, i, i, sink.url, i);
		if (count_lines_starting(err, want) != 1)
			fail_msg("no line \"%s...\" in stderr:\n%s", want, err);
		free(want);
	}
	if (strstr(err, "150 rows, 150 accepted (150 new debts, 0 repeated), 0 rejected; 150 bills; e-mails 0 sent, "
			"150 failed, 0 pending\n") == NULL)
		fail_msg("no summary of 150 failed e-mails in stderr:\n%s", err);
	char id[24];
	snprintf(id, sizeof(id), "%lld", json_u64(out, "importId"));
	free(out), free(err);

	/* status names the first hundred, as GetImport does. */
	billing_ok(s, &out, &err, "status", "status", id, NULL);
	assert_non_null(strstr(out, "e-mails:  0 sent, 150 failed, 0 pending\n"));
	assert_non_null(strstr(out, "\nfailed e-mails (the first):\n  fails.csv:2: debt fail-001 to "
				    "reject-001@example.com, 1 attempt: FAILED_PRECONDITION: SMTP "));
	assert_int_equal(count_lines_starting(out, "  fails.csv:"), 100);
	assert_non_null(strstr(out, "  fails.csv:101: debt fail-100 to"));
	assert_null(strstr(out, "fail-101"));
	free(out), free(err);
	free(dir), free(path);
}

/* A recipient the server defers (451 at RCPT TO: greylisting, a full
 * mailbox) is that e-mail's retry alone: the e-mails claimed with it go out
 * now, not when their claim's lease (10 minutes here) runs out. */
static void test_a_deferred_recipient_holds_up_no_other_email(void **state)
{
	(void)state;
	char *dir = fmt("%s/smtp-deferred", pg.dir);
	mkdir(dir, 0755);
	smtp_sink_start(&sink, dir, 0, "smtp", NULL);
	const char *extra[] = {
		"--smtp-url", sink.url, "--mail-lease-s", "600", "--mail-max-attempts", "2", "--mail-retry-base-ms",
		"100",	      NULL};
	harness_server *s = start_with("1", NULL, extra);
	char *path = fmt("%s/deferred.csv", pg.dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs("name,governmentId,email,debtAmount,debtDueDate,debtId\n", f);
	for (int i = 1; i <= 40; i++) /* every other recipient deferred */
		fprintf(f, "Debtor %d,%d,%s-%03d@example.com,%d.00,2030-01-01,defer-%03d\n", i, i,
			i % 2 ? "busy" : "debtor", i, i, i);
	assert_int_equal(fclose(f), 0);
	char *out, *err;
	import_waiting_for_emails(s, path, &out, &err);
	assert_int_equal(json_u64(out, "emailsSent"), 20);
	assert_int_equal(json_u64(out, "emailsFailed"), 20);
	if (count_lines_starting(err, "deferred.csv:") != 20 ||
	    strstr(err, "failed after 2 attempts: RESOURCE_EXHAUSTED: SMTP ") == NULL)
		fail_msg("the deferred e-mails as reported:\n%s", err);
	free(out), free(err);
	free(dir), free(path);
}

static void test_emails_failed_while_the_smtp_server_was_down_go_out_once_retried(void **state)
{
	(void)state;
	/* No SMTP server yet where rpcqd sends: every attempt is refused, and
	 * after two each e-mail has failed for good. */
	int port = harness_free_port();
	char *url = fmt("smtp://127.0.0.1:%d", port);
	const char *extra[] = {
		"--smtp-url", url, "--mail-max-attempts", "2", "--mail-retry-base-ms", "20", "--mail-lease-s",
		"1",	      NULL};
	harness_server *s = start_with("1", NULL, extra);
	char *path = write_file("outage.csv", "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
					      "Ana,1,ana@example.com,10.00,2030-01-01,outage-1\n"
					      "Bia,2,bia@example.com,20.00,2030-01-01,outage-2\n"
					      "Caio,3,caio@example.com,30.00,2030-01-01,outage-3\n");
	char *out, *err;
	billing_ok(s, &out, &err, "import outage.csv", "import", path, "--wait", "emails", "--json", NULL);
	assert_int_equal(json_u64(out, "emailsFailed"), 3);
	assert_int_equal(count_lines_starting(err, "outage.csv:"), 3);
	assert_non_null(strstr(err, "outage.csv:2: e-mail of debt outage-1 to ana@example.com failed after 2 attempts: "
				    "UNAVAILABLE: SMTP "));
	char id[24];
	snprintf(id, sizeof(id), "%lld", json_u64(out, "importId"));
	free(out), free(err);

	/* The server is back: retry puts the three back, and they go out once. */
	char *dir = fmt("%s/smtp", pg.dir);
	mkdir(dir, 0755);
	smtp_sink_start(&sink, dir, port, "smtp", NULL);
	billing_ok(s, &out, &err, "retry", "retry", id, NULL);
	char *want = fmt("import %s: 3 failed e-mails back in the outbox\n", id);
	assert_string_equal(out, want);
	free(out), free(err), free(want);
	billing_ok(s, &out, &err, "import outage.csv again", "import", path, "--wait", "emails", NULL);
	if (strstr(err, "3 bills; e-mails 3 sent, 0 failed, 0 pending\n") == NULL)
		fail_msg("no summary of 3 e-mails sent in stderr:\n%s", err);
	assert_int_equal(count_lines_starting(err, "outage.csv:"), 0);
	free(out), free(err);
	char *log = fmt("%s/log", dir);
	char *text = harness_read_file(log, NULL);
	assert_non_null(text);
	assert_int_equal(count_lines_starting(text, ""), 3); /* one message each */
	assert_non_null(strstr(text, " ana@example.com\n"));

	/* Retried again, nothing is sent twice; a debt's e-mail alone, by its id. */
	billing_ok(s, &out, &err, "retry again", "retry", id, NULL);
	want = fmt("import %s: 0 failed e-mails back in the outbox\n", id);
	assert_string_equal(out, want);
	free(out), free(err), free(want);
	billing_ok(s, &out, &err, "retry --debt", "retry", "--debt", "outage-2", NULL);
	assert_string_equal(out, "debt outage-2: no failed e-mail to retry\n");
	free(out), free(err);
	assert_int_equal(billing(s, &out, &err, "retry", "--debt", "nobody", NULL), 1);
	assert_non_null(strstr(err, "NOT_FOUND"));
	free(out), free(err);
	assert_int_equal(billing(s, &out, &err, "retry", id, "--debt", "outage-2", NULL), 2);
	free(out), free(err);

	/* A mistyped address, corrected: refused there (550), sent to the new
	 * one, which the bill then shows. */
	assert_int_equal(billing(s, &out, &err, "retry", id, "--email", "ana@example.com", NULL), 2);
	assert_non_null(strstr(err, "give --debt DEBT_ID with it"));
	free(out), free(err);
	assert_int_equal(billing(s, &out, &err, "retry", "--debt", "outage-2", "--email", "bia at example.com", NULL),
			 1);
	assert_non_null(strstr(err, "INVALID_ARGUMENT"));
	assert_non_null(strstr(err, "\"bia at example.com\" is not an address"));
	free(out), free(err);
	billing_ok(s, &out, &err, "retry --debt --email of a sent one", "retry", "--debt", "outage-2", "--email",
		   "bia@example.org", NULL);
	assert_string_equal(out, "debt outage-2: no failed e-mail to retry; its address is unchanged\n");
	free(out), free(err);
	char *typo = write_file("typo.csv", "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
					    "Rui,4,reject-rui@example.com,40.00,2030-01-01,outage-4\n");
	billing_ok(s, &out, &err, "import typo.csv", "import", typo, "--wait", "emails", NULL);
	assert_non_null(strstr(err, "typo.csv:2: e-mail of debt outage-4 to reject-rui@example.com failed after 1 "
				    "attempt"));
	free(out), free(err);
	billing_ok(s, &out, &err, "retry --email", "retry", "--debt", "outage-4", "--email", "rui@example.com", NULL);
	assert_string_equal(out, "debt outage-4: its failed e-mail is back in the outbox, to rui@example.com\n");
	free(out), free(err);
	billing_ok(s, &out, &err, "import typo.csv again", "import", typo, "--wait", "emails", NULL);
	if (strstr(err, "1 bills; e-mails 1 sent, 0 failed, 0 pending\n") == NULL)
		fail_msg("no summary of the e-mail sent in stderr:\n%s", err);
	free(out), free(err);
	free(text);
	text = harness_read_file(log, NULL);
	assert_non_null(strstr(text, " rui@example.com\n"));
	billing_ok(s, &out, &err, "bill outage-4", "bill", "outage-4", "--json", NULL);
	assert_non_null(strstr(out, "\"email\": \"rui@example.com\""));
	free(out), free(err);
	free(typo);
	free(text), free(log), free(dir), free(path), free(url);
}

/* ---- a connection that loses a reply ---- */

/* A TCP relay on loopback between the rpcq command and rpcqd that loses
 * the first reply: on its first connection it passes the SP handshake both
 * ways and the request on, and when the reply starts to come back it closes
 * both sides instead. Later connections pass everything. The call was
 * served; its caller saw only the connection go, and the client sends the
 * request again on the next one, as after any lost reply. One connection at
 * a time, on a thread of its own; nothing here calls cmocka. */
typedef struct relay {
	int listen_fd, port, upstream_port;
	pthread_t thread;
	atomic_int stop, lost;
} relay;

static int relay_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Relays one connection until either side closes it (or, losing, until
 * the first reply byte). */
static void relay_one(relay *r, int client, int lose)
{
	int up = relay_connect(r->upstream_port);
	size_t from_server = 0;
	struct pollfd fds[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
	while (up >= 0 && !atomic_load(&r->stop)) {
		if (poll(fds, 2, 100) <= 0)
			continue;
		char buf[65536];
		if (fds[0].revents) {
			ssize_t k = recv(client, buf, sizeof(buf), 0);
			if (k <= 0 || send_all(up, buf, (size_t)k) != 0)
				break;
		}
		if (fds[1].revents) {
			ssize_t k = recv(up, buf, sizeof(buf), 0);
			if (k <= 0)
				break;
			size_t pass = (size_t)k;
			/* The first 8 bytes are the SP handshake; what follows is the
			 * first reply. */
			if (lose && from_server + pass > 8) {
				pass = from_server < 8 ? 8 - from_server : 0;
				if (send_all(client, buf, pass) == 0)
					atomic_store(&r->lost, 1);
				break;
			}
			from_server += pass;
			if (send_all(client, buf, pass) != 0)
				break;
		}
	}
	if (up >= 0)
		close(up);
	close(client);
}

static void *relay_main(void *arg)
{
	relay *r = arg;
	for (int n = 0; !atomic_load(&r->stop);) {
		struct pollfd pl = {r->listen_fd, POLLIN, 0};
		if (poll(&pl, 1, 100) <= 0)
			continue;
		int c = accept(r->listen_fd, NULL, NULL);
		if (c >= 0)
			relay_one(r, c, n++ == 0);
	}
	return NULL;
}

static void relay_start(relay *r, const char *upstream_url)
{
	memset(r, 0, sizeof(*r));
	const char *colon = strrchr(upstream_url, ':');
	assert_non_null(colon);
	r->upstream_port = (int)strtol(colon + 1, NULL, 10);
	r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(r->listen_fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sa);
	assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(r->listen_fd, 8), 0);
	assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&sa, &len), 0);
	r->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

static void relay_stop(relay *r)
{
	atomic_store(&r->stop, 1);
	pthread_join(r->thread, NULL);
	close(r->listen_fd);
}

/* `rpcq billing pay` without --paid-at whose reply is lost on the way: the
 * client sends the call again, and the second is a replay of the first
 * (the command chose paid_at, so both calls carry the same), not another
 * payment refused with ALREADY_EXISTS. The payment is recorded once, at the
 * instant the command printed, and that payment sent again is a replay. */
static void test_a_payment_whose_reply_was_lost_is_recorded_once_and_the_command_succeeds(void **state)
{
	(void)state;
	harness_server *s = start("1", NULL);
	char *path = write_file("lost.csv", two_debts);
	char *out, *err;
	billing_ok(s, &out, &err, "import --wait bills", "import", path, "--wait", "bills", NULL);
	free(out), free(err);

	relay r;
	relay_start(&r, s->rpc_url);
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", r.port);
	const char *args[] = {"billing", "pay", "debt-ana", "--amount", "100.50", "--payer", "Ana Lima", NULL};
	int rc = harness_cli(url, args, NULL, &out, &err);
	relay_stop(&r);
	assert_int_equal(atomic_load(&r.lost), 1);
	if (rc != 0)
		fail_msg("rpcq billing pay through a lost reply: exit %d\nstdout: %s\nstderr: %s", rc, out, err);
	assert_non_null(strstr(err, "recorded before")); /* what the command saw: the resend's answer */
	assert_int_equal(sql("SELECT count(*) FROM billing_payments"), 1);
	assert_int_equal(sql("SELECT amount_cents FROM billing_payments"), 10050);
	const char *prefix = "paid debt-ana 100.50 at ";
	assert_true(strncmp(out, prefix, strlen(prefix)) == 0);
	char *paid_at = strndup(out + strlen(prefix), strcspn(out + strlen(prefix), "\n"));
	assert_int_equal(sql("SELECT count(*) FROM billing_payments WHERE paid_at = '%s'::timestamptz", paid_at), 1);
	free(out), free(err);

	/* That payment again, directly: a replay, exit 0. */
	billing_ok(s, &out, &err, "pay again", "pay", "debt-ana", "--amount", "100.50", "--paid-at", paid_at, "--payer",
		   "Ana Lima", NULL);
	assert_non_null(strstr(err, "recorded before"));
	free(out), free(err);
	assert_int_equal(sql("SELECT count(*) FROM billing_payments"), 1);
	free(paid_at), free(path);
}

static int setup_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	harness_pg_start(&pg);
	if (harness_migrate(&pg) != 0)
		fail_msg("rpcqd migrate failed on %s", pg.conninfo);
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
			test_the_sample_gives_1999_debts_bills_and_emails_and_importing_it_again_adds_none,
			teardown_test),
		cmocka_unit_test_teardown(test_bad_rows_are_reported_with_file_and_line_and_nothing_is_stored_for_them,
					  teardown_test),
		cmocka_unit_test_teardown(
			test_an_import_killed_midway_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one,
			teardown_test),
		cmocka_unit_test_teardown(test_an_import_into_a_server_with_one_worker_completes, teardown_test),
		cmocka_unit_test_teardown(test_an_import_into_a_server_with_a_small_message_limit_completes,
					  teardown_test),
		cmocka_unit_test_teardown(test_bill_prints_the_slip_and_pay_marks_the_debt_paid_once, teardown_test),
		cmocka_unit_test_teardown(test_paying_a_debt_whose_email_is_pending_cancels_it, teardown_test),
		cmocka_unit_test_teardown(test_an_email_address_the_sender_refuses_is_rejected_at_import,
					  teardown_test),
		cmocka_unit_test_teardown(
			test_emails_that_fail_for_good_are_listed_with_their_line_and_the_senders_answer,
			teardown_test),
		cmocka_unit_test_teardown(test_a_deferred_recipient_holds_up_no_other_email, teardown_test),
		cmocka_unit_test_teardown(test_emails_failed_while_the_smtp_server_was_down_go_out_once_retried,
					  teardown_test),
		cmocka_unit_test_teardown(test_a_payment_whose_reply_was_lost_is_recorded_once_and_the_command_succeeds,
					  teardown_test),
		cmocka_unit_test_teardown(
			test_malformed_csv_rows_are_rejected_on_their_line_and_the_rest_of_the_file_is_imported,
			teardown_test),
		cmocka_unit_test_teardown(
			test_an_import_that_takes_a_while_shows_a_progress_bar_on_a_terminal_and_none_on_a_pipe,
			teardown_test),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
