/*
 * The vesting service end to end: a real rpcqd on a real PostgreSQL, called
 * through the rpcq command and through the generated stubs. The spec's
 * examples byte for byte, every kind of bad input with its line number, a
 * file larger than one message (chunked upload), ledger appends that are not
 * applied twice and change nothing when refused, a ledger's schedule equal to
 * Compute on the same rows for seeded random data, and the ledger's stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>

#include <rpcq/rpcq.h>

#include "harness.h"

static harness_pg pg;
static harness_server srv;
static rpcq_client *client;
static char tmpdir[300];

static int setup_all(void **state)
{
	(void)state;
	harness_pg_start(&pg);
	if (harness_migrate(&pg) != 0)
		return -1;
	/* A 1 MiB message limit makes a few-MB file take the chunked path. */
	const char *args[] = {"--max-message-bytes", "1048576", NULL};
	harness_server_start(&srv, &pg, args);
	rpcq_client_options o = {.servers = srv.rpc_url, .timeout_ms = 60000};
	rpcq_error err;
	if (rpcq_client_create(&client, &o, &err) != RPCQ_OK)
		return -1;
	snprintf(tmpdir, sizeof(tmpdir), "%s/vesting-files", pg.dir);
	char *mk[] = {"mkdir", "-p", tmpdir, NULL};
	return harness_run((const char *const *)mk, NULL, NULL, NULL, 5000) == 0 ? 0 : -1;
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

/* Writes text to a file in tmpdir; returns its path (static per call). */
static const char *write_file(const char *name, const char *text, size_t len)
{
	static char path[4][512];
	static int k;
	char *p = path[k++ % 4];
	snprintf(p, 512, "%s/%s", tmpdir, name);
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
	return p;
}

static int cli(const char *const *args, char **out, char **err)
{
	return harness_cli(srv.rpc_url, args, NULL, out, err);
}

static void test_the_examples_print_exactly_the_expected_files_through_the_cli(void **state)
{
	(void)state;
	struct {
		const char *csv, *expected, *date;
	} ex[] = {
		{"data/vesting/example1.csv", "data/vesting/example1.2020-04-01.expected", "2020-04-01"},
		{"data/vesting/example2.csv", "data/vesting/example2.2021-01-01.expected", "2021-01-01"},
	};
	for (size_t i = 0; i < 2; i++) {
		char csv[512], exp[512];
		harness_shared_path(ex[i].csv, csv, sizeof(csv));
		harness_shared_path(ex[i].expected, exp, sizeof(exp));
		char *want = harness_read_file(exp, NULL);
		char *out = NULL, *err = NULL;
		const char *args[] = {"vesting", csv, ex[i].date, NULL};
		assert_int_equal(cli(args, &out, &err), 0);
		assert_string_equal(out, want);
		assert_string_equal(err, "");
		free(out);
		free(err);
		/* The same file as a spreadsheet saves it, with a UTF-8 byte
		 * order mark: the same schedule. */
		size_t len;
		char *text = harness_read_file(csv, &len);
		char *bom = malloc(len + 3);
		assert_non_null(bom);
		memcpy(bom, "\xEF\xBB\xBF", 3);
		memcpy(bom + 3, text, len);
		const char *bom_path = write_file("bom.csv", bom, len + 3);
		const char *bom_args[] = {"vesting", bom_path, ex[i].date, NULL};
		if (cli(bom_args, &out, &err) != 0)
			fail_msg("%s with a byte order mark: %s", ex[i].csv, err);
		assert_string_equal(out, want);
		free(out);
		free(err);
		free(bom);
		free(text);
		free(want);
	}
}

static void test_the_third_example_truncates_at_each_precision(void **state)
{
	(void)state;
	char csv[512];
	harness_shared_path("data/vesting/example3.csv", csv, sizeof(csv));
	const char *want[] = {"E001,Alice Smith,ISO-001,300\nE002,Bobby Jones,ISO-002,234",
			      "E001,Alice Smith,ISO-001,299.8\nE002,Bobby Jones,ISO-002,234.0",
			      "E001,Alice Smith,ISO-001,299.75\nE002,Bobby Jones,ISO-002,234.00"};
	const char *prec[] = {"0", "1", "2"};
	for (int p = 0; p < 3; p++) {
		char *out = NULL;
		const char *args[] = {"vesting", csv, "2021-01-01", prec[p], NULL};
		assert_int_equal(cli(args, &out, NULL), 0);
		assert_string_equal(out, want[p]);
		free(out);
	}
}

/* Compute through the stubs; returns the lines joined as the CLI prints them. */
static char *compute_text(const char *csv, size_t len, const char *date, uint32_t precision, rpcq_error *err)
{
	Rpcq__Vesting__Events ev = RPCQ__VESTING__EVENTS__INIT;
	Rpcq__Vesting__ComputeRequest req = RPCQ__VESTING__COMPUTE_REQUEST__INIT;
	ev.csv.data = (uint8_t *)csv;
	ev.csv.len = len;
	req.events = &ev;
	req.target_date = (char *)date;
	req.precision = precision;
	Rpcq__Vesting__ScheduleResponse *r = NULL;
	if (rpcq_vesting_compute(client, &req, &r, NULL, err) != RPCQ_OK)
		return NULL;
	size_t cap = 64 + r->n_entries * 128, n = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	s[0] = '\0';
	for (size_t i = 0; i < r->n_entries; i++) {
		const Rpcq__Vesting__ScheduleEntry *e = r->entries[i];
		n += (size_t)snprintf(s + n, cap - n, "%s%s,%s,%s,%s", i ? "\n" : "", e->employee_id, e->employee_name,
				      e->award_id, e->quantity);
	}
	assert_string_equal(r->next_page_token, "");
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return s;
}

static void test_the_examples_compute_the_same_through_the_stubs(void **state)
{
	(void)state;
	char csv[512], exp[512];
	size_t len;
	harness_shared_path("data/vesting/example1.csv", csv, sizeof(csv));
	harness_shared_path("data/vesting/example1.2020-04-01.expected", exp, sizeof(exp));
	char *text = harness_read_file(csv, &len);
	char *want = harness_read_file(exp, NULL);
	rpcq_error err;
	char *got = compute_text(text, len, "2020-04-01", 0, &err);
	if (got == NULL)
		fail_msg("compute: %s", err.message);
	assert_string_equal(got, want);
	free(got);
	free(text);
	free(want);
}

static void test_bad_input_fails_with_one_line_naming_the_line_number(void **state)
{
	(void)state;
	const char *good = "VEST,E1,N,A,2020-01-01,10\n";
	struct {
		const char *row, *message;
	} cases[] = {
		{"SELL,E1,N,A,2020-01-01,1",
		 "rpcq: INVALID_ARGUMENT: line 3: unknown action \"SELL\" (expected VEST or CANCEL)\n"},
		{"VEST,E1,N,A,2020-01-01", "rpcq: INVALID_ARGUMENT: line 3: 5 fields, expected 6 "
					   "(ACTION,EMPLOYEE_ID,EMPLOYEE_NAME,AWARD_ID,DATE,QUANTITY)\n"},
		{"VEST,E1,N,A,2021-02-29,1", "rpcq: INVALID_ARGUMENT: line 3: impossible date \"2021-02-29\"\n"},
		{"VEST,E1,N,A,2021-02-28,-4", "rpcq: INVALID_ARGUMENT: line 3: negative quantity \"-4\"\n"},
		{"VEST,E1,N,A,2021-02-28,1e3", "rpcq: INVALID_ARGUMENT: line 3: malformed quantity \"1e3\" "
					       "(expected a decimal like 1000 or 0.125)\n"},
		{"CANCEL,E1,N,A,2020-01-01,11", "rpcq: INVALID_ARGUMENT: line 3: CANCEL of 11 exceeds the 10 vested by "
						"2020-01-01 for award \"A\" of employee \"E1\"\n"},
		{"VEST,E1,N,A,2020-01-01,9223372036854",
		 "rpcq: INVALID_ARGUMENT: line 3: the vested total of award \"A\" "
		 "of employee \"E1\" exceeds 9223372036854.775807 shares\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		int n = snprintf(text, sizeof(text), "%s\n%s\n", good, cases[i].row);
		const char *path = write_file("bad.csv", text, (size_t)n);
		char *out = NULL, *err = NULL;
		const char *args[] = {"vesting", path, "2021-01-01", NULL};
		assert_int_not_equal(cli(args, &out, &err), 0);
		assert_string_equal(out, "");
		assert_string_equal(err, cases[i].message);
		free(out);
		free(err);
	}
	char *err = NULL;
	const char *path = write_file("good.csv", good, strlen(good));
	const char *bad_precision[] = {"vesting", path, "2021-01-01", "7", NULL};
	assert_int_not_equal(cli(bad_precision, NULL, &err), 0);
	assert_string_equal(err, "rpcq: INVALID_ARGUMENT: precision \"7\" is not an integer 0..6\n");
	free(err);
	const char *bad_date[] = {"vesting", path, "2021-02-30", NULL};
	assert_int_not_equal(cli(bad_date, NULL, &err), 0);
	assert_string_equal(err, "rpcq: INVALID_ARGUMENT: target date \"2021-02-30\" does not exist\n");
	free(err);
}

/* Seeded random rows valid at every precision: cancels are whole shares,
 * never more than the whole shares vested before them. Also writes the CSV. */
static size_t random_rows(unsigned seed, size_t nrows, char *csv, size_t cap)
{
	srand(seed);
	size_t n = 0;
	long vested[50] = {0};
	for (size_t i = 0; i < nrows; i++) {
		int award = rand() % 50;
		int emp = award % 7;
		/* Later rows get later dates so cancels see what came before. */
		int day = 1 + (int)(i * 27 / nrows);
		if (vested[award] > 2 && rand() % 4 == 0) {
			long q = 1 + rand() % (vested[award] - 1);
			vested[award] -= q;
			n += (size_t)snprintf(csv + n, cap - n, "CANCEL,E%02d,\"Emp, %d\",AW%02d,2021-03-%02d,%ld\n",
					      emp, emp, award, day, q);
		} else {
			long whole = rand() % 1000;
			int frac = rand() % 1000000;
			vested[award] += whole;
			n += (size_t)snprintf(csv + n, cap - n, "VEST,E%02d,\"Emp, %d\",AW%02d,2021-03-%02d,%ld.%06d\n",
					      emp, emp, award, day, whole, frac);
		}
	}
	return n;
}

/* The output of rpcq args against the servers at url, which must succeed. */
static char *run_cli_text_at(const char *url, const char *const *args)
{
	char *out = NULL, *err = NULL;
	int rc = harness_cli(url, args, NULL, &out, &err);
	if (rc != 0)
		fail_msg("rpcq --server %s %s %s failed (%d): %s", url, args[0], args[1] ? args[1] : "", rc, err);
	free(err);
	return out;
}

static char *run_cli_text(const char *const *args)
{
	return run_cli_text_at(srv.rpc_url, args);
}

static void test_a_ledger_schedule_equals_compute_on_the_same_rows(void **state)
{
	(void)state;
	static char csv[200000];
	for (unsigned seed = 1; seed <= 3; seed++) {
		size_t n = random_rows(seed, 1500, csv, sizeof(csv));
		const char *path = write_file("random.csv", csv, n);
		char ledger[32];
		snprintf(ledger, sizeof(ledger), "random-%u", seed);
		const char *append[] = {"vesting", "append", ledger, path, NULL};
		free(run_cli_text(append));
		const char *dates[] = {"2021-02-28", "2021-03-05", "2021-03-14", "2021-03-31"};
		const char *precs[] = {"0", "1", "3", "6"};
		for (int d = 0; d < 4; d++) {
			for (int p = 0; p < 4; p++) {
				const char *compute[] = {"vesting", path, dates[d], precs[p], NULL};
				const char *schedule[] = {"vesting", "schedule", ledger, dates[d], precs[p], NULL};
				char *a = run_cli_text(compute);
				char *b = run_cli_text(schedule);
				assert_string_equal(a, b);
				free(a);
				free(b);
			}
		}
	}
}

/* A file of about 4 MB, four chunks at 1 MiB: rows of 9000 employees, one
 * award of three each. Returns its path; *rows the row count. */
static const char *write_large_file(int *rows)
{
	size_t cap = 4 * 1024 * 1024, n = 0;
	char *csv = malloc(cap);
	assert_non_null(csv);
	*rows = 0;
	while (n + 100 < cap - 200) {
		n += (size_t)snprintf(csv + n, cap - n, "VEST,E%05d,\"Name, %d\",A%d,2020-01-%02d,1.5\n", *rows % 9000,
				      *rows % 9000, *rows % 3, 1 + *rows % 28);
		(*rows)++;
	}
	const char *path = write_file("large.csv", csv, n);
	free(csv);
	return path;
}

/* The schedule of write_large_file's file. */
static void expect_large_schedule(const char *out)
{
	/* Row i is award (i % 9000, i % 3): 9000 distinct awards. */
	size_t lines = 1;
	for (const char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 9000);
	assert_true(strncmp(out, "E00000,\"Name, 0\",A0,", 20) == 0);
	assert_true(out[strlen(out) - 1] != '\n');
}

static void test_a_file_larger_than_a_message_is_sent_in_chunks(void **state)
{
	(void)state;
	int rows;
	const char *path = write_large_file(&rows);
	assert_true(rows > 9000);
	const char *args[] = {"vesting", path, "2020-01-31", "1", NULL};
	char *out = run_cli_text(args);
	expect_large_schedule(out);
	free(out);
}

/* A compute session lives in the memory of the rpcqd that opened it: with
 * several servers the command sends all of a session's calls to one, the
 * first it can reach. */
static void test_a_chunked_file_with_several_servers_is_computed_on_one_of_them(void **state)
{
	(void)state;
	harness_server srv2;
	const char *args2[] = {"--max-message-bytes", "1048576", NULL};
	harness_server_start(&srv2, &pg, args2);
	int rows;
	const char *path = write_large_file(&rows);
	const char *args[] = {"--timeout", "5000", "vesting", path, "2020-01-31", "1", NULL};
	char servers[512];
	snprintf(servers, sizeof(servers), "%s,%s", srv.rpc_url, srv2.rpc_url);
	for (int run = 0; run < 3; run++) {
		char *out = run_cli_text_at(servers, args);
		expect_large_schedule(out);
		free(out);
	}
	/* A first server that cannot be reached is passed over. */
	snprintf(servers, sizeof(servers), "tcp://127.0.0.1:%d,%s", harness_free_port(), srv2.rpc_url);
	char *out = run_cli_text_at(servers, args);
	expect_large_schedule(out);
	free(out);
	assert_int_equal(harness_server_stop(&srv2), 0);
}

/* Against a server with a small message limit the command cuts its chunks
 * to fit (rpcq.Health/Check says the limit): the file is computed and
 * appended rather than its connection reset. */
static void test_a_server_with_a_small_message_limit_still_takes_a_large_file(void **state)
{
	(void)state;
	harness_server small;
	const char *args_small[] = {"--max-message-bytes", "65536", NULL};
	harness_server_start(&small, &pg, args_small);
	int rows;
	const char *path = write_large_file(&rows);
	const char *compute[] = {"vesting", path, "2020-01-31", "1", NULL};
	char *out = run_cli_text_at(small.rpc_url, compute);
	expect_large_schedule(out);
	free(out);

	const char *append[] = {"vesting", "append", "small-limit", path, NULL};
	out = run_cli_text_at(small.rpc_url, append);
	char want[128];
	snprintf(want, sizeof(want), "appended %d events to ledger small-limit", rows);
	if (strstr(out, want) == NULL)
		fail_msg("vesting append against a 64 KiB limit said: %s", out);
	free(out);
	const char *schedule[] = {"vesting", "schedule", "small-limit", "2020-01-31", "1", NULL};
	out = run_cli_text_at(small.rpc_url, schedule);
	expect_large_schedule(out);
	free(out);
	assert_int_equal(harness_server_stop(&small), 0);
}

/* A record that never ends (no line break for megabytes) fails at the chunk
 * that makes it too long, naming its line, instead of being carried and
 * rescanned chunk after chunk. */
static void test_a_record_that_never_ends_fails_on_its_line(void **state)
{
	(void)state;
	size_t n = 3u << 20;
	char *csv = malloc(n);
	assert_non_null(csv);
	int head = snprintf(csv, n, "VEST,E1,Ann,A1,2020-01-01,1\nVEST,E2,Bob,A1,2020-01-01,1\nVEST,E3,\"");
	memset(csv + head, 'x', n - (size_t)head);
	const char *path = write_file("endless.csv", csv, n);
	free(csv);
	const char *args[] = {"vesting", path, "2020-01-31", NULL};
	char *out = NULL, *err = NULL;
	int rc = cli(args, &out, &err);
	if (rc != 1 || strstr(err, "INVALID_ARGUMENT: line 3: a record longer than 16384 bytes") == NULL)
		fail_msg("an endless record: exit %d: %s", rc, err);
	assert_string_equal(out, "");
	free(out);
	free(err);
}

/* A name given quoted with blanks at its edges keeps them (quoted, the
 * blanks are part of the value) and is printed quoted, so that reading the
 * line back by the same rules, which trim unquoted fields, gives it again. */
static void test_a_quoted_name_with_edge_blanks_is_printed_quoted(void **state)
{
	(void)state;
	const char *csv = "VEST,E1,\" Ann \",A1,2020-01-01,1\nVEST,E2,Bob ,A1,2020-01-01,2\n";
	const char *path = write_file("edges.csv", csv, strlen(csv));
	const char *args[] = {"vesting", path, "2020-01-31", NULL};
	char *out = run_cli_text(args);
	assert_string_equal(out, "E1,\" Ann \",A1,1\nE2,Bob,A1,2");
	free(out);
}

static void test_a_resent_batch_is_applied_once(void **state)
{
	(void)state;
	char csv[512];
	harness_shared_path("data/vesting/example2.csv", csv, sizeof(csv));
	const char *append[] = {"vesting", "append", "idem", csv, NULL};
	char *first = run_cli_text(append);
	char *second = run_cli_text(append);
	assert_non_null(strstr(first, "appended 2 events to ledger idem"));
	assert_non_null(strstr(second, "already applied"));
	assert_non_null(strstr(second, "the ledger has 2 events"));
	free(first);
	free(second);
	const char *schedule[] = {"vesting", "schedule", "idem", "2021-01-01", NULL};
	char *out = run_cli_text(schedule);
	assert_string_equal(out, "E001,Alice Smith,ISO-001,300");
	free(out);

	/* The same batch id through the stubs, in two parts: still a duplicate. */
	Rpcq__Vesting__Events ev = RPCQ__VESTING__EVENTS__INIT;
	Rpcq__Vesting__AppendEventsRequest req = RPCQ__VESTING__APPEND_EVENTS_REQUEST__INIT;
	Rpcq__Vesting__AppendEventsResponse *r = NULL;
	rpcq_error err;
	ev.csv.data = (uint8_t *)"VEST,E9,N,A,2020-01-01,5\n";
	ev.csv.len = strlen((char *)ev.csv.data);
	req.ledger = "idem";
	req.batch_id = "parts-1";
	req.events = &ev;
	req.part = 0;
	req.last = 0;
	assert_int_equal(rpcq_vesting_append_events(client, &req, &r, NULL, &err), RPCQ_OK);
	assert_false(r->applied);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	req.part = 1;
	req.last = 1;
	assert_int_equal(rpcq_vesting_append_events(client, &req, &r, NULL, &err), RPCQ_OK);
	assert_true(r->applied);
	assert_false(r->duplicate);
	assert_int_equal(r->events, 2);
	assert_int_equal(r->ledger_events, 4);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	assert_int_equal(rpcq_vesting_append_events(client, &req, &r, NULL, &err), RPCQ_OK);
	assert_true(r->duplicate);
	assert_int_equal(r->ledger_events, 4);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_a_refused_append_changes_nothing(void **state)
{
	(void)state;
	const char *text = "VEST,E1,N,A,2020-01-01,10\nCANCEL,E1,N,A,2020-01-02,4\n";
	const char *path = write_file("ok.csv", text, strlen(text));
	const char *ok[] = {"vesting", "append", "strict", path, NULL};
	free(run_cli_text(ok));
	/* A cancel earlier than the stored one makes the stored one exceed. */
	const char *bad = "VEST,E2,M,B,2020-01-01,1\nCANCEL,E1,N,A,2020-01-01,7\n";
	const char *bpath = write_file("bad-append.csv", bad, strlen(bad));
	const char *append[] = {"vesting", "append", "strict", bpath, NULL};
	char *err = NULL;
	assert_int_not_equal(cli(append, NULL, &err), 0);
	assert_non_null(strstr(err, "INVALID_ARGUMENT"));
	assert_non_null(strstr(err, "CANCEL of 4"));
	free(err);
	const char *schedule[] = {"vesting", "schedule", "strict", "2020-12-31", NULL};
	char *out = run_cli_text(schedule);
	assert_string_equal(out, "E1,N,A,6");
	free(out);
	/* A 1.5 + 1.5 vest cancelled by 3 is exact but not at precision 0. */
	const char *lossy = "VEST,E3,O,C,2020-01-01,1.5\nVEST,E3,O,C,2020-01-01,1.5\nCANCEL,E3,O,C,2020-01-02,3\n";
	const char *lpath = write_file("lossy.csv", lossy, strlen(lossy));
	const char *append2[] = {"vesting", "append", "strict", lpath, NULL};
	assert_int_not_equal(cli(append2, NULL, &err), 0);
	assert_non_null(strstr(err, "line 3: CANCEL of 3 exceeds the 2 vested by 2020-01-02"));
	assert_non_null(strstr(err, "at precision 0"));
	free(err);
	const char *missing[] = {"vesting", "schedule", "no-such-ledger", "2020-12-31", NULL};
	assert_int_not_equal(cli(missing, NULL, &err), 0);
	assert_string_equal(err, "rpcq: NOT_FOUND: no ledger \"no-such-ledger\"\n");
	free(err);
}

static void test_ledgers_are_listed_and_one_employee_can_be_asked(void **state)
{
	(void)state;
	char csv[512];
	harness_shared_path("data/vesting/example1.csv", csv, sizeof(csv));
	const char *append[] = {"vesting", "append", "listed", csv, NULL};
	free(run_cli_text(append));
	const char *one[] = {"vesting", "schedule", "listed", "2020-04-01", "2", "--employee", "E001", NULL};
	char *out = run_cli_text(one);
	assert_string_equal(out, "E001,Alice Smith,ISO-001,1000.00\nE001,Alice Smith,ISO-002,800.00");
	free(out);
	const char *list[] = {"vesting", "ledgers", NULL};
	out = run_cli_text(list);
	assert_non_null(strstr(out, "listed\t8 events\t1 batches\t"));
	free(out);
}

static void test_each_append_is_published_on_the_ledger_topic(void **state)
{
	(void)state;
	char csv[512];
	harness_shared_path("data/vesting/example2.csv", csv, sizeof(csv));
	const char *append[] = {"vesting", "append", "streamed", csv, "--batch-id", "b-1", NULL};
	free(run_cli_text(append));
	Rpcq__ReplayRequest req = RPCQ__REPLAY_REQUEST__INIT;
	Rpcq__ReplayResponse *r = NULL;
	rpcq_error err;
	req.topic = "vesting.ledgers.streamed";
	if (rpcq_streams_replay(client, &req, &r, NULL, &err) != RPCQ_OK)
		fail_msg("replay: %s", err.message);
	assert_int_equal(r->n_messages, 1);
	const Rpcq__StreamMessage *m = r->messages[0];
	assert_string_equal(m->type, "rpcq.vesting.LedgerAppended");
	Rpcq__Vesting__LedgerAppended *la =
		rpcq__vesting__ledger_appended__unpack(NULL, m->payload.len, m->payload.data);
	assert_non_null(la);
	assert_string_equal(la->ledger, "streamed");
	assert_string_equal(la->batch_id, "b-1");
	assert_int_equal(la->events, 2);
	assert_int_equal(la->ledger_events, 2);
	protobuf_c_message_free_unpacked(&la->base, NULL);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_examples_print_exactly_the_expected_files_through_the_cli),
		cmocka_unit_test(test_the_third_example_truncates_at_each_precision),
		cmocka_unit_test(test_the_examples_compute_the_same_through_the_stubs),
		cmocka_unit_test(test_bad_input_fails_with_one_line_naming_the_line_number),
		cmocka_unit_test(test_a_ledger_schedule_equals_compute_on_the_same_rows),
		cmocka_unit_test(test_a_file_larger_than_a_message_is_sent_in_chunks),
		cmocka_unit_test(test_a_chunked_file_with_several_servers_is_computed_on_one_of_them),
		cmocka_unit_test(test_a_server_with_a_small_message_limit_still_takes_a_large_file),
		cmocka_unit_test(test_a_record_that_never_ends_fails_on_its_line),
		cmocka_unit_test(test_a_quoted_name_with_edge_blanks_is_printed_quoted),
		cmocka_unit_test(test_a_resent_batch_is_applied_once),
		cmocka_unit_test(test_a_refused_append_changes_nothing),
		cmocka_unit_test(test_ledgers_are_listed_and_one_employee_can_be_asked),
		cmocka_unit_test(test_each_append_is_published_on_the_ledger_topic),
	};
	int failed = cmocka_run_group_tests(tests, setup_all, teardown_all);
	/* nng tears closed sockets down on its own threads; let it finish
	 * before exit, so the leak checker sees only what is really lost. */
	nng_fini();
	return failed;
}
