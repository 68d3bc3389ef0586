/*
 * Billing e-mail senders (server/services/billing/mail.h) against a real
 * SMTP server on loopback: aiosmtpd run by the test (tests/integration/
 * smtp_sink.py), which keeps every message it accepts. Many messages through
 * one sender arrive once each and intact over one connection; a refused
 * connection, a 4xx and a timeout are temporary, a refused recipient
 * permanent, a missing STARTTLS the configuration's fault; a connection the
 * server dropped is replaced. Over TLS (smtps:// and smtp+starttls://, with
 * a throwaway CA and server certificate that openssl makes at test time)
 * messages arrive intact when the sender trusts that CA (mail_config.ca_file,
 * rpcqd's --smtp-ca-file), and nothing is sent, with a certificate error,
 * when it does not; through rpcqd (a real PostgreSQL, `rpcq billing import`),
 * --smtp-ca-file decides the same, and an e-mail held back by a certificate
 * that is not trusted waits, uncounted, until rpcqd trusts it; an e-mail
 * resent by an rpcqd with another --mail-from carries the Message-ID its
 * bill reports, and one that another rpcqd claimed and put back for a
 * retry is not sent early by a round that outlived its lease. The spool
 * backend's files parse as RFC 5322
 * (tests/integration/mail_check.py) and a resend leaves one file. Prints the
 * send rate of one sender.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <rpcq/alloc.h>

#include "harness.h"
#include "smtp_sink.h"
#include "mail.h"

#define PYTHON "/usr/bin/python3"
#define MESSAGES 300
#define CHECK_EVERY 15

typedef smtp_sink sink;

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

static int have_aiosmtpd(void)
{
	return system(PYTHON " -c 'import aiosmtpd.controller' >/dev/null 2>&1") == 0;
}

static void rm_rf(const char *dir)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* The test's PKI, made once by certs_make (openssl) and removed by the
 * group teardown: a CA that signed the sink's certificate (for 127.0.0.1,
 * as an IP SAN) and another CA that signed nothing the sink shows. */
static struct certs {
	char dir[64];
	char ca[128], other_ca[128], cert[128], key[128];
} certs;

static const char certs_config[] = "[req]\n"
				   "distinguished_name = dn\n"
				   "[dn]\n"
				   "[ca]\n"
				   "basicConstraints = critical,CA:TRUE\n"
				   "keyUsage = critical,keyCertSign,cRLSign\n"
				   "subjectKeyIdentifier = hash\n"
				   "[server]\n"
				   "basicConstraints = critical,CA:FALSE\n"
				   "keyUsage = critical,digitalSignature\n"
				   "extendedKeyUsage = serverAuth\n"
				   "subjectAltName = IP:127.0.0.1\n"
				   "subjectKeyIdentifier = hash\n"
				   "authorityKeyIdentifier = keyid\n";

static int have_openssl(void)
{
	return system("openssl version >/dev/null 2>&1") == 0;
}

static void put(const char *dir, const char *name, const char *text)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* A fresh migrated cluster in *pg, with a debts.csv of text in its
 * directory; the file's path in csv. */
static void fresh_cluster_with_debts(harness_pg *pg, char *csv, size_t len, const char *text)
{
	harness_pg_start(pg);
	assert_int_equal(harness_migrate(pg), 0);
	snprintf(csv, len, "%s/debts.csv", pg->dir);
	put(pg->dir, "debts.csv", text);
}

/* What certs_make runs in its directory ($1): the two CAs (EC P-256, two
 * days), then the server's key and request, signed by the first CA. */
static const char certs_script[] =
	"set -e; cd \"$1\"\n"
	"new() { openssl req -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \"$@\"; }\n"
	"new -x509 -days 2 -subj '/CN=rpcq test CA' -extensions ca -keyout ca.key -out ca.crt\n"
	"new -x509 -days 2 -subj '/CN=rpcq another CA' -extensions ca -keyout other-ca.key -out other-ca.crt\n"
	"new -subj /CN=127.0.0.1 -keyout server.key -out server.csr\n"
	"openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2 -days 2 \\\n"
	"	-extfile openssl.cnf -extensions server -out server.crt\n";

static void certs_make(void)
{
	if (certs.dir[0])
		return;
	snprintf(certs.dir, sizeof(certs.dir), "/tmp/rpcq-smtp-tls-XXXXXX");
	assert_non_null(mkdtemp(certs.dir));
	put(certs.dir, "openssl.cnf", certs_config);
	const char *argv[] = {"sh", "-c", certs_script, "sh", certs.dir, NULL};
	char *errs = NULL;
	int rc = harness_run(argv, NULL, NULL, &errs, 20000);
	if (rc != 0)
		fail_msg("making the test certificates with openssl failed (%d): %s", rc, errs ? errs : "");
	free(errs);
	snprintf(certs.ca, sizeof(certs.ca), "%s/ca.crt", certs.dir);
	snprintf(certs.other_ca, sizeof(certs.other_ca), "%s/other-ca.crt", certs.dir);
	snprintf(certs.cert, sizeof(certs.cert), "%s/server.crt", certs.dir);
	snprintf(certs.key, sizeof(certs.key), "%s/server.key", certs.dir);
}

/* Every sink started and not stopped yet: a test that fails half-way jumps
 * past its own sink_stop, and its teardown stops what is left here. */
static sink live[8];

static void sink_remember(const sink *s)
{
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		if (live[i].pid == 0) {
			live[i] = *s;
			return;
		}
	}
	fail_msg("more than %zu SMTP sinks at once", sizeof(live) / sizeof(live[0]));
}

static void sink_forget(pid_t pid)
{
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (pid > 0 && live[i].pid == pid)
			live[i].pid = 0;
}

/* Starts smtp_sink.py on a free port (another one if that was taken
 * meanwhile) and waits until it is ready. idle_timeout: the server's, in
 * seconds (NULL: 300); tls: NULL, "starttls" (then url is
 * smtp+starttls://) or "implicit" (smtps://), with the certs' server
 * certificate. */
static void sink_start_tls(sink *s, const char *idle_timeout, const char *tls)
{
	char dir[] = "/tmp/rpcq-smtp-sink-XXXXXX";
	assert_non_null(mkdtemp(dir));
	const char *args[] = {"--idle-timeout",
			      idle_timeout ? idle_timeout : "300",
			      tls ? "--tls" : NULL, /* without TLS, the arguments end here */
			      tls,
			      "--tls-cert",
			      certs.cert,
			      "--tls-key",
			      certs.key,
			      NULL};
	const char *scheme = tls == NULL ? "smtp" : strcmp(tls, "implicit") == 0 ? "smtps" : "smtp+starttls";
	smtp_sink_start(s, dir, 0, scheme, args);
	sink_remember(s);
}

static void sink_start(sink *s, const char *idle_timeout)
{
	sink_start_tls(s, idle_timeout, NULL);
}

static void sink_stop(sink *s)
{
	sink_forget(s->pid);
	smtp_sink_stop(s);
	if (s->dir[0])
		rm_rf(s->dir);
	s->dir[0] = '\0';
}

/* One sink for the tests that need no special server (each start costs a
 * Python interpreter); stopped by the group teardown. */
static sink shared;

static sink *shared_sink(void)
{
	if (shared.pid == 0)
		sink_start(&shared, NULL);
	return &shared;
}

/* Per test: stops what a failed test left running, its rpcqd, cluster and
 * sinks (the shared sink stays for the next tests). */
static int stop_leftovers(void **state)
{
	(void)harness_teardown(state);
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		if (live[i].pid > 0 && live[i].pid != shared.pid) {
			sink left = live[i];
			sink_stop(&left);
		}
	}
	return 0;
}

static int teardown(void **state)
{
	sink_stop(&shared);
	(void)stop_leftovers(state);
	if (certs.dir[0])
		rm_rf(certs.dir);
	certs.dir[0] = '\0';
	return 0;
}

/* Message i of a run: its debt, its recipient, its body. */
static void message_fields(int i, char *debt, size_t dn, char *to, size_t tn, char *body, size_t bn)
{
	snprintf(debt, dn, "debt-%04d-%08x", i, (unsigned)(i * 2654435761u));
	snprintf(to, tn, "debtor%d@example.com", i);
	snprintf(body, bn,
		 "Bill for debt %s\n"
		 "Amount: %d.%02d\n"
		 ".a line with a leading dot\n"
		 "Payer: José da Silva = %d\n",
		 debt, 1000 + i, i % 100, i);
}

/* Composes message i (a malloc'd string), its key and its Message-ID. */
static char *compose_message(int i, char *key, char *id)
{
	char debt[64], to[64], body[256];
	message_fields(i, debt, sizeof(debt), to, sizeof(to), body, sizeof(body));
	mail_message m = {.to_name = "José da Silva",
			  .to_addr = to,
			  .debt_id = debt,
			  .date = 1665568800 + i,
			  .body = body,
			  .body_len = strlen(body)};
	strbuf b = STRBUF_INIT;
	rpcq_error err;
	if (mail_compose(&m, &b, &err) != RPCQ_OK)
		fail_msg("mail_compose: %s", err.message);
	strbuf_putc(&b, '\0');
	assert_false(b.failed);
	mail_message_key(&m, key);
	mail_message_id(&m, id);
	return b.data;
}

/* Writes the want_* files of message i into dir, for mail_check.py. */
/* The message the sink k received as its n-th is msg, byte for byte. */
static void expect_arrived(const sink *k, int n, const char *msg)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/msgs/%d/message.eml", k->dir, n);
	size_t len;
	char *arrived = harness_read_file(path, &len);
	assert_non_null(arrived);
	assert_int_equal(len, strlen(msg));
	assert_memory_equal(arrived, msg, len);
	free(arrived);
}

static void want_message(const char *dir, int i)
{
	char debt[64], to[64], body[256], key[MAIL_KEY_MAX], id[MAIL_MESSAGE_ID_MAX], subject[128];
	message_fields(i, debt, sizeof(debt), to, sizeof(to), body, sizeof(body));
	char *msg = compose_message(i, key, id);
	rpcq_free(msg);
	snprintf(subject, sizeof(subject), "Your bill for debt %s", debt);
	put(dir, "want_to_name", "José da Silva");
	put(dir, "want_to_addr", to);
	put(dir, "want_from_addr", "billing@localhost");
	put(dir, "want_subject", subject);
	put(dir, "want_message_id", id);
	put(dir, "want_body", body);
}

/* Runs mail_check.py over dirs[0..n); asserts it finds nothing wrong. */
static void mail_check(char (*dirs)[400], size_t n)
{
	char script[512];
	harness_source_path("tests/integration/mail_check.py", script, sizeof(script));
	const char **argv = calloc(n + 3, sizeof(*argv));
	assert_non_null(argv);
	argv[0] = PYTHON;
	argv[1] = script;
	for (size_t i = 0; i < n; i++)
		argv[2 + i] = dirs[i];
	char *out = NULL, *errs = NULL;
	int rc = harness_run(argv, NULL, &out, &errs, 60000);
	if (rc != 0)
		fail_msg("mail_check.py: %s%s", out ? out : "", errs ? errs : "");
	free(out);
	free(errs);
	free(argv);
}

static mail_sender *smtp_sender_ca(const char *url, int timeout_ms, const char *ca_file)
{
	mail_config cfg = {.smtp_url = url, .ca_file = ca_file, .connect_timeout_ms = 2000, .timeout_ms = timeout_ms};
	mail_sender *s = NULL;
	rpcq_error err;
	if (mail_sender_create(&s, &cfg, &err) != RPCQ_OK)
		fail_msg("mail_sender_create: %s", err.message);
	return s;
}

static mail_sender *smtp_sender(const char *url, int timeout_ms)
{
	return smtp_sender_ca(url, timeout_ms, NULL);
}

static void test_many_messages_through_one_sender_arrive_once_and_intact(void **state)
{
	(void)state;
	if (!have_aiosmtpd())
		skip();
	sink *k = shared_sink();
	static smtp_sink_entry got[MESSAGES + 64];
	size_t base = smtp_sink_log(k, got, MESSAGES + 64);
	mail_sender *s = smtp_sender(k->url, 10000);
	static char *msgs[MESSAGES];
	static char keys[MESSAGES][MAIL_KEY_MAX], ids[MESSAGES][MAIL_MESSAGE_ID_MAX];
	for (int i = 0; i < MESSAGES; i++)
		msgs[i] = compose_message(i, keys[i], ids[i]);
	int64_t t0 = now_ms();
	for (int i = 0; i < MESSAGES; i++) {
		char to[64], debt[64], body[256];
		message_fields(i, debt, sizeof(debt), to, sizeof(to), body, sizeof(body));
		mail_envelope env = {.to = to, .key = keys[i]};
		rpcq_error err;
		if (mail_send(s, &env, msgs[i], strlen(msgs[i]), &err) != RPCQ_OK)
			fail_msg("message %d: %s: %s", i, rpcq_status_name(err.code), err.message);
	}
	int64_t ms = now_ms() - t0;
	printf("one sender to aiosmtpd on loopback: %d messages in %lld ms, %.0f messages/s\n", MESSAGES, (long long)ms,
	       MESSAGES * 1000.0 / (double)(ms > 0 ? ms : 1));

	size_t n = smtp_sink_log(k, got, MESSAGES + 64);
	assert_int_equal(n, base + MESSAGES);
	/* Every message byte for byte; one in CHECK_EVERY also through Python's
	 * parser (the unit test parses every kind of message already). */
	static char dirs[MESSAGES / CHECK_EVERY + 1][400];
	size_t nd = 0;
	for (int i = 0; i < MESSAGES; i++) {
		char to[64], debt[64], body[256];
		message_fields(i, debt, sizeof(debt), to, sizeof(to), body, sizeof(body));
		const smtp_sink_entry *r = &got[base + (size_t)i];
		assert_int_equal(r->n, (int)base + i);
		assert_string_equal(r->to, to);
		assert_string_equal(r->from, "billing@localhost");
		/* One connection for all of them. */
		assert_int_equal(r->client_port, got[base].client_port);
		expect_arrived(k, r->n, msgs[i]);
		if (i % CHECK_EVERY == 0) {
			snprintf(dirs[nd], sizeof(dirs[nd]), "%s/msgs/%d", k->dir, r->n);
			want_message(dirs[nd++], i);
		}
	}
	mail_check(dirs, nd);
	for (int i = 0; i < MESSAGES; i++)
		rpcq_free(msgs[i]);
	mail_sender_destroy(s);
}

static void test_a_refused_connection_is_temporary(void **state)
{
	(void)state;
	char url[96];
	snprintf(url, sizeof(url), "smtp://user:s3cret@127.0.0.1:%d", harness_free_port());
	mail_sender *s = smtp_sender(url, 5000);
	assert_null(strstr(mail_sender_describe(s), "s3cret"));
	char key[MAIL_KEY_MAX], id[MAIL_MESSAGE_ID_MAX];
	char *msg = compose_message(1, key, id);
	mail_envelope env = {.to = "debtor1@example.com", .key = key};
	rpcq_error err;
	int64_t t0 = now_ms();
	assert_int_equal(mail_send(s, &env, msg, strlen(msg), &err), RPCQ_UNAVAILABLE);
	assert_true(now_ms() - t0 < 3000);
	assert_null(strstr(err.message, "s3cret"));
	assert_true(mail_error_is_temporary(err.code));
	rpcq_free(msg);
	mail_sender_destroy(s);
}

static void test_refusals_are_permanent_for_5xx_and_temporary_for_4xx(void **state)
{
	(void)state;
	if (!have_aiosmtpd())
		skip();
	sink *k = shared_sink();
	static smtp_sink_entry got[MESSAGES + 64];
	size_t base = smtp_sink_log(k, got, MESSAGES + 64);
	mail_sender *s = smtp_sender(k->url, 10000);
	char key[MAIL_KEY_MAX], id[MAIL_MESSAGE_ID_MAX];
	char *msg = compose_message(7, key, id);
	rpcq_error err;

	mail_envelope rejected = {.to = "reject-7@example.com", .key = key};
	rpcq_status st = mail_send(s, &rejected, msg, strlen(msg), &err);
	if (st != RPCQ_FAILED_PRECONDITION)
		fail_msg("%s: %s", rpcq_status_name(st), err.message);
	assert_non_null(strstr(err.message, "RCPT TO <reject-7@example.com>: 550"));
	assert_false(mail_error_is_temporary(err.code));

	/* A 4xx to RCPT TO defers this message alone (temporary, but the
	 * server is up: RESOURCE_EXHAUSTED, not UNAVAILABLE). */
	mail_envelope busy = {.to = "busy-7@example.com", .key = key};
	assert_int_equal(mail_send(s, &busy, msg, strlen(msg), &err), RPCQ_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(err.message, "RCPT TO <busy-7@example.com>: 451"));
	assert_true(mail_error_is_temporary(err.code));

	/* The sender goes on with the next message as if nothing happened. */
	mail_envelope ok = {.to = "debtor7@example.com", .key = key};
	assert_int_equal(mail_send(s, &ok, msg, strlen(msg), &err), RPCQ_OK);
	assert_int_equal(smtp_sink_log(k, got, MESSAGES + 64), base + 1);
	assert_string_equal(got[base].to, "debtor7@example.com");

	/* Nothing sendable: refused before the server hears of it. */
	mail_envelope bad = {.to = "not an address", .key = key};
	assert_int_equal(mail_send(s, &bad, msg, strlen(msg), &err), RPCQ_INVALID_ARGUMENT);
	assert_int_equal(mail_send(s, &ok, msg, 0, &err), RPCQ_INVALID_ARGUMENT);
	rpcq_free(msg);
	mail_sender_destroy(s);
}

static void test_a_server_that_does_not_answer_in_time_is_temporary(void **state)
{
	(void)state;
	if (!have_aiosmtpd())
		skip();
	mail_sender *s = smtp_sender(shared_sink()->url, 600);
	char key[MAIL_KEY_MAX], id[MAIL_MESSAGE_ID_MAX];
	char *msg = compose_message(3, key, id);
	mail_envelope env = {.to = "slow@example.com", .key = key};
	rpcq_error err;
	int64_t t0 = now_ms();
	assert_int_equal(mail_send(s, &env, msg, strlen(msg), &err), RPCQ_UNAVAILABLE);
	int64_t took = now_ms() - t0;
	assert_true(took >= 500 && took < 2500);
	assert_non_null(strstr(err.message, "600 ms"));
	rpcq_free(msg);
	mail_sender_destroy(s);
}

static void test_a_connection_the_server_closed_is_replaced(void **state)
{
	(void)state;
	if (!have_aiosmtpd())
		skip();
	sink k;
	sink_start(&k, "0.3");
	mail_sender *s = smtp_sender(k.url, 5000);
	char key[MAIL_KEY_MAX], id[MAIL_MESSAGE_ID_MAX];
	char *msg = compose_message(4, key, id);
	mail_envelope env = {.to = "debtor4@example.com", .key = key};
	rpcq_error err;
	for (int round = 0; round < 2; round++) {
		if (mail_send(s, &env, msg, strlen(msg), &err) != RPCQ_OK)
			fail_msg("round %d: %s", round, err.message);
		if (round == 0)
			sleep_ms(700); /* past the server's idle timeout: it hangs up */
	}
	smtp_sink_entry got[4];
	assert_int_equal(smtp_sink_log(&k, got, 4), 2);
	assert_int_not_equal(got[0].client_port, got[1].client_port);
	rpcq_free(msg);
	mail_sender_destroy(s);
	sink_stop(&k);
}

static void test_starttls_required_but_not_offered_is_the_configurations_fault(void **state)
{
	(void)state;
	if (!have_aiosmtpd())
		skip();
	sink *k = shared_sink();
	static smtp_sink_entry got[MESSAGES + 64];
	size_t base = smtp_sink_log(k, got, MESSAGES + 64);
	char url[96];
	snprintf(url, sizeof(url), "smtp+starttls://127.0.0.1:%d", k->port);
	mail_sender *s = smtp_sender(url, 5000);
	assert_string_equal(mail_sender_describe(s), url);
	char key[MAIL_KEY_MAX], id[MAIL_MESSAGE_ID_MAX];
	char *msg = compose_message(5, key, id);
	mail_envelope env = {.to = "debtor5@example.com", .key = key};
	rpcq_error err;
	assert_int_equal(mail_send(s, &env, msg, strlen(msg), &err), RPCQ_PERMISSION_DENIED);
	assert_int_equal(smtp_sink_log(k, got, MESSAGES + 64), base);
	rpcq_free(msg);
	mail_sender_destroy(s);
}

/* Sends messages 20.. 20+n through a new sender trusting ca_file to the TLS
 * sink k; asserts that each arrived once, intact, over one connection. */
static void send_over_tls_and_check(sink *k, const char *ca_file, int n)
{
	enum { MAX = 8 };
	assert_true(n <= MAX);
	smtp_sink_entry got[MAX + 1];
	mail_sender *s = smtp_sender_ca(k->url, 10000, ca_file);
	assert_string_equal(mail_sender_describe(s), k->url);
	char *msgs[MAX], keys[MAX][MAIL_KEY_MAX], ids[MAX][MAIL_MESSAGE_ID_MAX];
	char dirs[MAX][400];
	for (int i = 0; i < n; i++) {
		char to[64], debt[64], body[256];
		message_fields(20 + i, debt, sizeof(debt), to, sizeof(to), body, sizeof(body));
		msgs[i] = compose_message(20 + i, keys[i], ids[i]);
		mail_envelope env = {.to = to, .key = keys[i]};
		rpcq_error err;
		if (mail_send(s, &env, msgs[i], strlen(msgs[i]), &err) != RPCQ_OK)
			fail_msg("%s, message %d: %s: %s", k->url, i, rpcq_status_name(err.code), err.message);
	}
	assert_int_equal(smtp_sink_log(k, got, MAX + 1), (size_t)n);
	for (int i = 0; i < n; i++) {
		char to[64], debt[64], body[256];
		message_fields(20 + i, debt, sizeof(debt), to, sizeof(to), body, sizeof(body));
		assert_int_equal(got[i].n, i);
		assert_string_equal(got[i].to, to);
		assert_string_equal(got[i].from, "billing@localhost");
		assert_int_equal(got[i].client_port, got[0].client_port); /* one TLS session for all */
		snprintf(dirs[i], sizeof(dirs[i]), "%s/msgs/%d", k->dir, i);
		expect_arrived(k, i, msgs[i]);
		want_message(dirs[i], 20 + i);
		rpcq_free(msgs[i]);
	}
	mail_check(dirs, (size_t)n);
	mail_sender_destroy(s);
}

/* Skips the test without aiosmtpd or openssl; makes the certificates. */
static void need_tls_sink(void)
{
	if (!have_aiosmtpd() || !have_openssl())
		skip();
	certs_make();
}

static void test_smtps_delivers_intact_to_a_server_whose_ca_is_trusted(void **state)
{
	(void)state;
	need_tls_sink();
	sink k;
	sink_start_tls(&k, NULL, "implicit");
	assert_int_equal(strncmp(k.url, "smtps://", 8), 0);
	send_over_tls_and_check(&k, certs.ca, 3);
	sink_stop(&k);
}

static void test_starttls_delivers_intact_to_a_server_whose_ca_is_trusted(void **state)
{
	(void)state;
	need_tls_sink();
	sink k;
	sink_start_tls(&k, NULL, "starttls"); /* it answers 530 to MAIL FROM before STARTTLS */
	assert_int_equal(strncmp(k.url, "smtp+starttls://", 16), 0);
	send_over_tls_and_check(&k, certs.ca, 3);
	sink_stop(&k);
}

/* A sender to url trusting ca_file (NULL: the system's store) sends
 * nothing: the configuration's fault (every message would fail alike), with
 * an error that says what is wrong with the certificate. */
static void expect_certificate_refused(sink *k, const char *url, const char *ca_file, const char *why)
{
	mail_sender *s = smtp_sender_ca(url, 5000, ca_file);
	char key[MAIL_KEY_MAX], id[MAIL_MESSAGE_ID_MAX];
	char *msg = compose_message(9, key, id);
	mail_envelope env = {.to = "debtor9@example.com", .key = key};
	rpcq_error err;
	int64_t t0 = now_ms();
	rpcq_status st = mail_send(s, &env, msg, strlen(msg), &err);
	if (st != RPCQ_PERMISSION_DENIED || strstr(err.message, why) == NULL || strstr(err.message, url) == NULL)
		fail_msg("%s with CA %s: %s: %s (wanted PERMISSION_DENIED naming the URL and \"%s\")", url,
			 ca_file ? ca_file : "(system)", rpcq_status_name(st), err.message, why);
	assert_true(now_ms() - t0 < 3000); /* refused at the handshake, not timed out */
	smtp_sink_entry got[2];
	assert_int_equal(smtp_sink_log(k, got, 2), 0);
	rpcq_free(msg);
	mail_sender_destroy(s);
}

static void test_a_certificate_not_trusted_or_for_another_host_sends_nothing(void **state)
{
	(void)state;
	need_tls_sink();
	const char *modes[] = {"implicit", "starttls"};
	for (size_t i = 0; i < 2; i++) {
		sink k;
		sink_start_tls(&k, NULL, modes[i]);
		/* The system's store does not know the test's CA, nor does another CA. */
		expect_certificate_refused(&k, k.url, NULL, "SSL certificate problem: unable to get local issuer");
		expect_certificate_refused(&k, k.url, certs.other_ca,
					   "SSL certificate problem: unable to get local issuer");
		/* A trusted certificate that names 127.0.0.1, reached as localhost:
		 * the name is checked too. */
		char url[96];
		snprintf(url, sizeof(url), "%s://localhost:%d", i == 0 ? "smtps" : "smtp+starttls", k.port);
		expect_certificate_refused(&k, url, certs.ca, "localhost");
		sink_stop(&k);
	}
}

/* Runs `rpcq billing ARGS...` against srv; fails the test unless it exits
 * 0. Returns its stderr (the summary), malloc'd. */
static char *billing_cli(const harness_server *srv, const char *const *args)
{
	char *out = NULL, *errs = NULL;
	int rc = harness_cli(srv->rpc_url, args, NULL, &out, &errs);
	if (rc != 0) {
		char *log = harness_read_file(srv->log_path, NULL);
		size_t n = log ? strlen(log) : 0;
		fail_msg("rpcq billing %s (--wait %s): exit %d\nstdout: %s\nstderr: %s\nrpcqd's log (its end):\n%s",
			 args[1], args[3] && args[4] ? args[4] : "", rc, out, errs,
			 log ? log + (n > 4000 ? n - 4000 : 0) : "");
	}
	free(out);
	return errs;
}

/* Waits (at most 15 s) until rpcqd's log holds text; fails with the log. */
static void wait_for_log(const harness_server *srv, const char *text)
{
	char *log = NULL;
	for (int64_t deadline = now_ms() + 15000; now_ms() < deadline; sleep_ms(50)) {
		free(log);
		log = harness_read_file(srv->log_path, NULL);
		if (log && strstr(log, text)) {
			free(log);
			return;
		}
	}
	fail_msg("rpcqd did not log \"%s\" within 15 s; its log:\n%s", text, log ? log : "");
}

static void test_rpcqd_mails_over_tls_only_a_server_that_its_smtp_ca_file_trusts(void **state)
{
	(void)state;
	need_tls_sink();
	harness_pg pg;
	char csv[300], sql[400];
	fresh_cluster_with_debts(
		&pg, csv, sizeof(csv),
		"name,governmentId,email,debtAmount,debtDueDate,debtId\n"
		"John Doe,11111111111,johndoe@example.com,1000000.00,2022-10-12,1adb6ccf-ff16-467f-bea7-5f05d494280f\n"
		"Maria Souza,22222222222,maria@example.com,12.34,2022-11-01,2bdc7dd0-0017-467f-bea7-5f05d494280f\n");
	sink k;
	sink_start_tls(&k, NULL, "implicit");

	/* Another CA: the bills are made, no e-mail goes, and the log says why.
	 * Nothing counts against the e-mails (every one would fail alike); the
	 * ones it claimed come back when its lease ends (1 s here, not 60). */
	harness_server srv;
	const char *untrusted[] = {
		"--smtp-url", k.url, "--smtp-ca-file", certs.other_ca, "--billing-schedule", "1", "--mail-lease-s",
		"1",	      NULL};
	harness_server_start(&srv, &pg, untrusted);
	const char *import_bills[] = {"billing", "import", csv, "--wait", "bills", NULL};
	free(billing_cli(&srv, import_bills));
	char want[400];
	snprintf(want, sizeof(want),
		 "billing: the mail sender is refused (PERMISSION_DENIED: SMTP %s: SSL certificate problem: unable to "
		 "get local issuer certificate); e-mails wait",
		 k.url);
	wait_for_log(&srv, want);
	smtp_sink_entry got[4];
	assert_int_equal(smtp_sink_log(&k, got, 4), 0);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_bills"), 2);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM billing_notifications WHERE state = 1 AND attempts = 0");
	assert_int_equal(harness_sql_scalar(pg.conninfo, sql), 2);
	assert_int_equal(harness_server_stop(&srv), 0);

	/* The CA that signed the server's certificate: the same import, run
	 * again, returns once both e-mails are sent, each once. */
	const char *trusted[] = {"--smtp-url", k.url, "--smtp-ca-file", certs.ca, "--billing-schedule", "1", NULL};
	harness_server_start(&srv, &pg, trusted);
	const char *import_emails[] = {"billing", "import", csv, "--wait", "emails", NULL};
	char *summary = billing_cli(&srv, import_emails);
	if (strstr(summary, "2 bills; e-mails 2 sent, 0 failed, 0 pending") == NULL)
		fail_msg("no summary of 2 e-mails sent in:\n%s", summary);
	free(summary);
	assert_int_equal(smtp_sink_log(&k, got, 4), 2);
	int john = strcmp(got[0].to, "johndoe@example.com") == 0 ? 0 : 1; /* in either order */
	assert_string_equal(got[john].to, "johndoe@example.com");
	assert_string_equal(got[1 - john].to, "maria@example.com");
	/* Each message is its bill's: the Message-ID that the outbox holds. */
	for (int i = 0; i < 2; i++) {
		char path[400];
		snprintf(path, sizeof(path), "%s/msgs/%d/message.eml", k.dir, got[i].n);
		char *msg = harness_read_file(path, NULL);
		assert_non_null(msg);
		const char *id = strstr(msg, "\r\nMessage-ID: <");
		assert_non_null(id);
		id += strlen("\r\nMessage-ID: ");
		size_t n = strcspn(id, "\r");
		/* Dot-atom text (mail.h), so it may go into the SQL as it is. */
		assert_true(n < 150 &&
			    strspn(id, "<>@.=_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") >= n);
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM billing_notifications WHERE state = 2 AND message_id = '%.*s'", (int)n,
			 id);
		assert_int_equal(harness_sql_scalar(pg.conninfo, sql), 1);
		free(msg);
	}
	assert_int_equal(harness_server_stop(&srv), 0);
	sink_stop(&k);
	harness_pg_stop(&pg);
}

/* The value of header name in the message at path (malloc'd, unfolded to
 * its first line), or NULL. */
static char *header_of(const char *path, const char *name)
{
	char *msg = harness_read_file(path, NULL);
	assert_non_null(msg);
	char key[64];
	snprintf(key, sizeof(key), "\r\n%s: ", name);
	size_t skip = strlen(key);
	const char *p = strstr(msg, key);
	if (strncmp(msg, key + 2, skip - 2) == 0) { /* the first header: no line end before it */
		p = msg;
		skip -= 2;
	}
	char *v = NULL;
	if (p != NULL) {
		p += skip;
		v = strndup(p, strcspn(p, "\r"));
	}
	free(msg);
	return v;
}

/* A bill's e-mail carries the Message-ID made with the bill, the one
 * GetBill reports, whichever rpcqd sends it and whatever that one's
 * --mail-from says. The first rpcqd (From billing@a.example) makes the bills
 * and tries their e-mails against a port where nothing listens, so at least
 * one attempt is on record; it is then replaced by one with another From
 * (billing@b.example) and a real SMTP server, which delivers them all. */
static void test_every_send_carries_the_message_id_its_bill_reports_whatever_the_from(void **state)
{
	(void)state;
	if (!have_aiosmtpd())
		skip();
	harness_pg pg;
	static const char *const debts[] = {"mid-ann", "mid-bob", "mid-cid"};
	char csv[300], dead[64];
	fresh_cluster_with_debts(&pg, csv, sizeof(csv),
				 "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
				 "Ann,1,ann@example.com,10.00,2030-01-01,mid-ann\n"
				 "Bob,2,bob@example.com,20.00,2030-01-01,mid-bob\n"
				 "Cid,3,cid@example.com,30.00,2030-01-01,mid-cid\n");
	snprintf(dead, sizeof(dead), "smtp://127.0.0.1:%d", harness_free_port());

	harness_server srv;
	const char *first[] = {"--smtp-url",
			       dead,
			       "--mail-from",
			       "Billing A <billing@a.example>",
			       "--billing-schedule",
			       "1",
			       "--mail-lease-s",
			       "1",
			       "--mail-retry-base-ms",
			       "100",
			       "--mail-max-attempts",
			       "1000",
			       NULL};
	harness_server_start(&srv, &pg, first);
	const char *import_bills[] = {"billing", "import", csv, "--wait", "bills", NULL};
	free(billing_cli(&srv, import_bills));
	long long tried = 0;
	for (int64_t deadline = now_ms() + 60000; tried == 0 && now_ms() < deadline; sleep_ms(50))
		tried = harness_sql_scalar(pg.conninfo,
					   "SELECT count(*) FROM billing_notifications WHERE attempts > 0");
	if (tried == 0)
		fail_msg("no e-mail was tried against %s within 60 s", dead);
	assert_int_equal(harness_server_stop(&srv), 0);
	/* Until it stopped, the first one kept retrying, each wait twice the
	 * last (100 ms, 200 ms, ...): on a slow machine the next could be a
	 * minute away. Their retry time is now, so the second sends at once. */
	print_message("the first rpcqd made %lld attempts of the 3 e-mails\n",
		      harness_sql_scalar(pg.conninfo, "SELECT sum(attempts) FROM billing_notifications"));
	harness_sql(pg.conninfo, "UPDATE billing_notifications SET next_at = now() WHERE state = 1");

	sink k;
	sink_start(&k, NULL);
	const char *second[] = {"--smtp-url",	      k.url, "--mail-from", "Billing B <billing@b.example>",
				"--billing-schedule", "1",   NULL};
	harness_server_start(&srv, &pg, second);
	const char *import_emails[] = {"billing", "import", csv, "--wait", "emails", NULL};
	char *summary = billing_cli(&srv, import_emails);
	if (strstr(summary, "3 bills; e-mails 3 sent, 0 failed, 0 pending") == NULL)
		fail_msg("no summary of 3 e-mails sent in:\n%s", summary);
	free(summary);

	char *reported[3];
	for (int i = 0; i < 3; i++) {
		const char *bill[] = {"billing", "bill", debts[i], "--json", NULL};
		char *out = NULL;
		assert_int_equal(harness_cli(srv.rpc_url, bill, NULL, &out, NULL), 0);
		const char *p = strstr(out, "\"messageId\": \"");
		if (p == NULL)
			fail_msg("no messageId in:\n%s", out);
		p += strlen("\"messageId\": \"");
		reported[i] = strndup(p, strcspn(p, "\""));
		free(out);
		/* Made by the first rpcqd, with its From's domain. */
		assert_non_null(strstr(reported[i], "@a.example>"));
	}
	smtp_sink_entry got[8];
	assert_int_equal(smtp_sink_log(&k, got, 8), 3);
	int seen[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++) {
		char path[400];
		snprintf(path, sizeof(path), "%s/msgs/%d/message.eml", k.dir, got[i].n);
		char *id = header_of(path, "Message-ID"), *from = header_of(path, "From");
		assert_non_null(id);
		assert_non_null(from);
		int which = -1;
		for (int j = 0; j < 3; j++)
			if (strcmp(id, reported[j]) == 0)
				which = j;
		if (which < 0)
			fail_msg("e-mail to %s has Message-ID %s, which no bill reports (%s, %s, %s)", got[i].to, id,
				 reported[0], reported[1], reported[2]);
		seen[which]++;
		/* The From is the sending process's. */
		assert_string_equal(from, "Billing B <billing@b.example>");
		free(id);
		free(from);
	}
	for (int j = 0; j < 3; j++) {
		assert_int_equal(seen[j], 1);
		free(reported[j]);
	}
	assert_int_equal(harness_server_stop(&srv), 0);
	sink_stop(&k);
	harness_pg_stop(&pg);
}

/* Progress messages of every import so far: each dispatcher round that
 * settled or tried an e-mail ends with one. */
static long long progress_messages(const harness_pg *pg)
{
	return harness_sql_scalar(pg->conninfo, "SELECT coalesce(sum(last_seq), 0)::int8 FROM stream_topics"
						" WHERE topic LIKE 'billing.imports.%'");
}

/* A dispatcher whose round outlives its lease does not send an e-mail that
 * another dispatcher claimed meanwhile, tried and put back for a retry:
 * the retry keeps its time. The first rpcqd claims three e-mails whose
 * recipients the SMTP server answers only after 5 s, and is stopped
 * (SIGSTOP) while it sends the first; a second rpcqd, whose SMTP server is
 * a closed port, claims the others once the lease has passed, tries one and
 * puts it back for minutes, and is stopped; the first one resumes and ends
 * its round. What the second tried is still pending, tried once, and not
 * delivered; whatever was delivered went at its first attempt. */
static void test_a_round_that_outlived_its_lease_leaves_an_email_retried_elsewhere_to_its_retry(void **state)
{
	(void)state;
	if (!have_aiosmtpd())
		skip();
	harness_pg pg;
	char csv[300], dead[64];
	fresh_cluster_with_debts(&pg, csv, sizeof(csv),
				 "name,governmentId,email,debtAmount,debtDueDate,debtId\n"
				 "One,1,slow-1@example.com,10.00,2030-01-01,lease-1\n"
				 "Two,2,slow-2@example.com,20.00,2030-01-01,lease-2\n"
				 "Three,3,slow-3@example.com,30.00,2030-01-01,lease-3\n");
	snprintf(dead, sizeof(dead), "smtp://127.0.0.1:%d", harness_free_port());
	sink k;
	sink_start(&k, NULL);

	harness_server a, b;
	const char *first[] = {
		"--smtp-url", k.url, "--mail-lease-s", "2", "--mail-timeout-ms", "120000", "--billing-schedule",
		"1",	      NULL};
	harness_server_start(&a, &pg, first);
	const char *import_bills[] = {"billing", "import", csv, "--wait", "bills", NULL};
	free(billing_cli(&a, import_bills));
	/* Claimed: next_at pushed a lease (2 s) past the bill's making. Each
	 * send takes 5 s, so two at least are still claimed and unsent when
	 * this sees the claim (at least one of them not being sent), however
	 * late it looks. */
	const char *claimed = "SELECT count(*) FROM billing_notifications n JOIN billing_bills b ON b.debt = n.debt"
			      " WHERE n.state = 1 AND n.attempts = 0 AND n.next_at >= b.created_at + interval '1 s'";
	long long n = 0;
	for (int64_t deadline = now_ms() + 60000; n < 2 && now_ms() < deadline; sleep_ms(20))
		n = harness_sql_scalar(pg.conninfo, claimed);
	if (n < 2)
		fail_msg("the first rpcqd did not claim the 3 e-mails within 60 s");
	assert_int_equal(kill(a.pid, SIGSTOP), 0);

	const char *second[] = {
		"--smtp-url", dead, "--mail-lease-s", "1", "--mail-retry-base-ms", "600000", "--billing-schedule",
		"1",	      NULL};
	harness_server_start(&b, &pg, second);
	const char *tried = "SELECT count(*) FROM billing_notifications WHERE state = 1 AND attempts = 1";
	n = 0;
	for (int64_t deadline = now_ms() + 60000; n == 0 && now_ms() < deadline; sleep_ms(20))
		n = harness_sql_scalar(pg.conninfo, tried);
	assert_int_equal(harness_server_stop(&b), 0);
	if (n == 0) {
		kill(a.pid, SIGCONT);
		fail_msg("the second rpcqd tried no e-mail within 60 s");
	}
	n = harness_sql_scalar(pg.conninfo, tried);
	long long before = progress_messages(&pg);
	assert_int_equal(kill(a.pid, SIGCONT), 0);
	/* The first rpcqd's round ends with its progress message. */
	for (int64_t deadline = now_ms() + 60000; progress_messages(&pg) == before && now_ms() < deadline; sleep_ms(20))
		;
	assert_true(progress_messages(&pg) > before);
	/* Still as the second rpcqd left them: pending, tried once, due in
	 * minutes. */
	assert_int_equal(harness_sql_scalar(pg.conninfo, tried), n);
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_notifications WHERE state = 1"
							 " AND attempts = 1 AND next_at > now() + interval '100 s'"),
			 n);
	smtp_sink_entry got[8];
	size_t delivered = smtp_sink_log(&k, got, 8);
	for (size_t i = 0; i < delivered; i++) {
		char sql[300];
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM billing_notifications n JOIN billing_debts d ON d.id = n.debt"
			 " WHERE d.email = '%.100s' AND (n.state <> 2 OR n.attempts <> 1)",
			 got[i].to);
		if (harness_sql_scalar(pg.conninfo, sql) != 0)
			fail_msg("%s was delivered, not at its first attempt (before its retry's time)", got[i].to);
	}
	assert_true(delivered <= 3 - (size_t)n);
	assert_int_equal(harness_server_stop(&a), 0);
	sink_stop(&k);
	harness_pg_stop(&pg);
}

/* One debt to address, billed by an rpcqd that mails to a sink of its own
 * with the flags given (NULL-terminated, at most 6) and --billing-schedule
 * 1; one_debt_stop stops all three. */
struct one_debt {
	harness_pg pg;
	sink k;
	harness_server a;
};

static void one_debt_start(struct one_debt *t, const char *address, const char *const *flags)
{
	char csv[300], text[300];
	snprintf(text, sizeof(text),
		 "name,governmentId,email,debtAmount,debtDueDate,debtId\nOne,1,%s,10.00,2030-01-01,d-1\n", address);
	fresh_cluster_with_debts(&t->pg, csv, sizeof(csv), text);
	sink_start(&t->k, NULL);
	const char *args[12] = {"--smtp-url", t->k.url, "--billing-schedule", "1"};
	int n = 4;
	for (; *flags && n < 10; flags++)
		args[n++] = *flags;
	args[n] = NULL;
	harness_server_start(&t->a, &t->pg, args);
	const char *import_bills[] = {"billing", "import", csv, "--wait", "bills", NULL};
	free(billing_cli(&t->a, import_bills));
}

static void one_debt_stop(struct one_debt *t)
{
	assert_int_equal(harness_server_stop(&t->a), 0);
	sink_stop(&t->k);
	harness_pg_stop(&t->pg);
}

/* An SMTP server slower than a database step's deadline (here
 * --default-deadline-ms 2000, an answer after 5 s): the e-mail is marked
 * sent all the same, in time of its own, and delivered once, not again
 * after every lease. */
static void test_an_email_a_slow_server_accepted_is_marked_sent_and_not_sent_again(void **state)
{
	(void)state;
	if (!have_aiosmtpd())
		skip();
	struct one_debt t;
	const char *flags[] = {"--default-deadline-ms", "2000", "--mail-lease-s", "2", NULL};
	one_debt_start(&t, "slow-1@example.com", flags);
	harness_pg pg = t.pg;
	const char *sent = "SELECT count(*) FROM billing_notifications WHERE state = 2 AND attempts = 1";
	long long n = 0;
	for (int64_t deadline = now_ms() + 30000; n == 0 && now_ms() < deadline; sleep_ms(50))
		n = harness_sql_scalar(pg.conninfo, sent);
	if (n == 0) {
		char *log = harness_read_file(t.a.log_path, NULL);
		fail_msg("the e-mail was not marked sent within 30 s; rpcqd's log:\n%s", log ? log : "");
	}
	/* Two leases more: nothing sends it again. */
	sleep_ms(4500);
	smtp_sink_entry got[4];
	assert_int_equal(smtp_sink_log(&t.k, got, 4), 1);
	assert_string_equal(got[0].to, "slow-1@example.com");
	assert_int_equal(harness_sql_scalar(pg.conninfo, "SELECT emails_sent FROM billing_imports"), 1);
	one_debt_stop(&t);
}

/* The wait before a retry counts from the server's answer, not from when
 * the attempt began: a 451 that came after 5 s, with a first wait of 4–6 s
 * (--mail-retry-base-ms 6000, less up to a third), is retried 4–6 s after
 * the answer, not at once. */
static void test_a_retry_waits_its_backoff_from_the_servers_answer(void **state)
{
	(void)state;
	if (!have_aiosmtpd())
		skip();
	struct one_debt t;
	const char *flags[] = {"--mail-retry-base-ms", "6000", NULL};
	one_debt_start(&t, "slowbusy-1@example.com", flags);
	harness_pg pg = t.pg;
	/* Polled every 20 ms: seen at most that long after the answer (and
	 * its commit). */
	const char *ahead = "SELECT (extract(epoch FROM next_at - clock_timestamp()) * 1000)::int8"
			    " FROM billing_notifications WHERE state = 1 AND attempts = 1";
	long long wait_ms = -1;
	int seen = 0;
	for (int64_t deadline = now_ms() + 30000; !seen && now_ms() < deadline; sleep_ms(20)) {
		if (harness_sql_scalar(pg.conninfo, "SELECT count(*) FROM billing_notifications WHERE attempts = 1")) {
			wait_ms = harness_sql_scalar(pg.conninfo, ahead);
			seen = 1;
		}
	}
	if (!seen)
		fail_msg("no attempt was recorded within 30 s");
	if (wait_ms < 3500 || wait_ms > 6000)
		fail_msg("the retry is due %lld ms after the answer; 4000-6000 ms expected", wait_ms);
	one_debt_stop(&t);
}

static void test_configurations_that_cannot_work_are_refused(void **state)
{
	(void)state;
	const mail_config bad[] = {
		{.smtp_url = "http://127.0.0.1:25"},
		{.smtp_url = "smtp://"},
		{.smtp_url = NULL, .spool_dir = NULL},
		{.smtp_url = "smtp://127.0.0.1:25", .from = "Billing without an address"},
		{.smtp_url = "smtps://127.0.0.1:465", .ca_file = "/nonexistent/ca.crt"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mail_sender *s = NULL;
		rpcq_error err;
		assert_int_equal(mail_sender_create(&s, &bad[i], &err), RPCQ_INVALID_ARGUMENT);
		assert_null(s);
		if (bad[i].ca_file) /* said when rpcqd starts, not at the first e-mail */
			assert_non_null(strstr(err.message, "SMTP CA file /nonexistent/ca.crt: No such file"));
	}
	mail_sender_destroy(NULL);
}

static int count_files(const char *dir, const char *suffix, int hidden)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name), sl = strlen(suffix);
		if ((e->d_name[0] == '.') == hidden && len > sl && strcmp(e->d_name + len - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void test_spool_files_parse_and_a_resend_replaces_the_file(void **state)
{
	(void)state;
	char root[] = "/tmp/rpcq-mail-spool-XXXXXX", dir[200], path[300], shown[256];
	assert_non_null(mkdtemp(root));
	snprintf(dir, sizeof(dir), "%s/var/mail/spool", root); /* not there yet */
	mail_config cfg = {.spool_dir = dir};
	mail_sender *s = NULL;
	rpcq_error err;
	assert_int_equal(mail_sender_create(&s, &cfg, &err), RPCQ_OK);
	mail_sender_destroy(s);

	/* What writers that died left: an old temporary file goes, a young one
	 * (a writer still at work) stays. */
	snprintf(path, sizeof(path), "%s/.bill-old.1-1.tmp", dir);
	put(dir, ".bill-old.1-1.tmp", "half a message");
	struct timespec old[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	put(dir, ".bill-young.1-1.tmp", "half a message");
	s = NULL;
	assert_int_equal(mail_sender_create(&s, &cfg, &err), RPCQ_OK);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(count_files(dir, ".tmp", 1), 1);
	snprintf(shown, sizeof(shown), "spool %s", dir);
	assert_string_equal(mail_sender_describe(s), shown);

	enum { N = 5 };
	char *msgs[N], keys[N][MAIL_KEY_MAX], ids[N][MAIL_MESSAGE_ID_MAX];
	for (int i = 0; i < N; i++) {
		msgs[i] = compose_message(i, keys[i], ids[i]);
		char to[64], debt[64], body[256];
		message_fields(i, debt, sizeof(debt), to, sizeof(to), body, sizeof(body));
		mail_envelope env = {.to = to, .key = keys[i]};
		if (mail_send(s, &env, msgs[i], strlen(msgs[i]), &err) != RPCQ_OK)
			fail_msg("spool %d: %s", i, err.message);
	}
	/* The same message again, as after a crash between the write and the
	 * record of it: the file is replaced, not doubled. */
	mail_envelope again = {.to = "debtor2@example.com", .key = keys[2]};
	assert_int_equal(mail_send(s, &again, msgs[2], strlen(msgs[2]), &err), RPCQ_OK);
	assert_int_equal(count_files(dir, ".eml", 0), N);
	assert_int_equal(count_files(dir, ".tmp", 1), 1);

	char dirs[N][400];
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "%.200s/%.80s.eml", dir, keys[i]);
		size_t len;
		char *file = harness_read_file(path, &len);
		assert_non_null(file);
		assert_int_equal(len, strlen(msgs[i]));
		assert_memory_equal(file, msgs[i], len);
		snprintf(dirs[i], sizeof(dirs[i]), "%s/check%d", root, i);
		assert_int_equal(mkdir(dirs[i], 0700), 0);
		put(dirs[i], "message.eml", file);
		want_message(dirs[i], i);
		free(file);
	}
	mail_check(dirs, N);

	/* Keys that are not message keys are refused; a spool directory
	 * removed under the sender is made again. */
	const char *bad_keys[] = {NULL, "", "../escape", ".hidden", "a/b", "sp ace"};
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		mail_envelope env = {.to = "debtor1@example.com", .key = bad_keys[i]};
		assert_int_equal(mail_send(s, &env, msgs[1], strlen(msgs[1]), &err), RPCQ_INVALID_ARGUMENT);
	}
	rm_rf(dir);
	mail_envelope env = {.to = "debtor1@example.com", .key = keys[1]};
	assert_int_equal(mail_send(s, &env, msgs[1], strlen(msgs[1]), &err), RPCQ_OK);
	assert_int_equal(count_files(dir, ".eml", 0), 1);

	for (int i = 0; i < N; i++)
		rpcq_free(msgs[i]);
	mail_sender_destroy(s);
	rm_rf(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_many_messages_through_one_sender_arrive_once_and_intact, stop_leftovers),
		cmocka_unit_test_teardown(test_a_refused_connection_is_temporary, stop_leftovers),
		cmocka_unit_test_teardown(test_refusals_are_permanent_for_5xx_and_temporary_for_4xx, stop_leftovers),
		cmocka_unit_test_teardown(test_a_server_that_does_not_answer_in_time_is_temporary, stop_leftovers),
		cmocka_unit_test_teardown(test_a_connection_the_server_closed_is_replaced, stop_leftovers),
		cmocka_unit_test_teardown(test_starttls_required_but_not_offered_is_the_configurations_fault,
					  stop_leftovers),
		cmocka_unit_test_teardown(test_smtps_delivers_intact_to_a_server_whose_ca_is_trusted, stop_leftovers),
		cmocka_unit_test_teardown(test_starttls_delivers_intact_to_a_server_whose_ca_is_trusted,
					  stop_leftovers),
		cmocka_unit_test_teardown(test_a_certificate_not_trusted_or_for_another_host_sends_nothing,
					  stop_leftovers),
		cmocka_unit_test_teardown(test_rpcqd_mails_over_tls_only_a_server_that_its_smtp_ca_file_trusts,
					  stop_leftovers),
		cmocka_unit_test_teardown(test_every_send_carries_the_message_id_its_bill_reports_whatever_the_from,
					  stop_leftovers),
		cmocka_unit_test_teardown(
			test_a_round_that_outlived_its_lease_leaves_an_email_retried_elsewhere_to_its_retry,
			stop_leftovers),
		cmocka_unit_test_teardown(test_an_email_a_slow_server_accepted_is_marked_sent_and_not_sent_again,
					  stop_leftovers),
		cmocka_unit_test_teardown(test_a_retry_waits_its_backoff_from_the_servers_answer, stop_leftovers),
		cmocka_unit_test_teardown(test_configurations_that_cannot_work_are_refused, stop_leftovers),
		cmocka_unit_test_teardown(test_spool_files_parse_and_a_resend_replaces_the_file, stop_leftovers),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
