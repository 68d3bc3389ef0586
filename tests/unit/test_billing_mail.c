/*
 * Billing e-mails, composed (server/services/billing/mail.h): the exact
 * bytes of one message; display names and subjects as atoms, quoted strings
 * and encoded-words; folding that keeps every header line under 998 bytes;
 * Message-IDs that are dot-atom-text whatever the bill's id holds; the
 * quoted-printable body; refusals of what cannot be sent; and every message
 * read back by Python's e-mail parser (tests/integration/mail_check.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "mail.h"

#define DEBT "1adb6ccf-ff16-467f-bea7-5f05d494280f"
#define OCT_12_2022_10H 1665568800 /* Wed, 12 Oct 2022 10:00:00 +0000 */

/* Composes m into a NUL-terminated malloc'd string (asserting success). */
static char *compose(const mail_message *m)
{
	strbuf b = STRBUF_INIT;
	rpcq_error err;
	rpcq_status st = mail_compose(m, &b, &err);
	if (st != RPCQ_OK)
		fail_msg("mail_compose: %s", err.message);
	char *s = malloc(b.len + 1);
	assert_non_null(s);
	memcpy(s, b.data, b.len);
	s[b.len] = '\0';
	strbuf_fini(&b);
	return s;
}

/* The header line(s) of name, unfolded is not done: the raw text from the
 * name to the CRLF that is not followed by a space. */
static char *header(const char *msg, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = msg; *p; p = strstr(p, "\r\n") + 2) {
		if (strncmp(p, "\r\n", 2) == 0)
			break;
		if (strncmp(p, name, n) == 0 && p[n] == ':') {
			const char *e = p;
			while ((e = strstr(e, "\r\n")) != NULL && e[2] == ' ')
				e += 2;
			char *s = strndup(p, (size_t)(e - p));
			assert_non_null(s);
			return s;
		}
	}
	fail_msg("no %s header in:\n%s", name, msg);
	return NULL;
}

static void assert_lines_bounded(const char *msg, size_t max)
{
	const char *p = msg;
	while (*p) {
		const char *e = strstr(p, "\r\n");
		assert_non_null(e);
		if ((size_t)(e - p) > max)
			fail_msg("a line of %zu bytes: %.100s...", (size_t)(e - p), p);
		for (const char *q = p; q < e; q++)
			assert_true(*q != '\r' && *q != '\n' && (unsigned char)*q < 0x80);
		p = e + 2;
	}
}

static void test_one_message_is_exactly_these_bytes(void **state)
{
	(void)state;
	const char body[] = "Bill for debt " DEBT "\nAmount: 1000000.00\nPay = now \n";
	mail_message m = {.to_name = "John Doe",
			  .to_addr = "johndoe@example.com",
			  .debt_id = DEBT,
			  .date = OCT_12_2022_10H,
			  .body = body,
			  .body_len = sizeof(body) - 1};
	char *msg = compose(&m);
	assert_string_equal(msg, "From: rpcq Billing <billing@localhost>\r\n"
				 "To: John Doe <johndoe@example.com>\r\n"
				 "Subject: Your bill for debt " DEBT "\r\n"
				 "Date: Wed, 12 Oct 2022 10:00:00 +0000\r\n"
				 "Message-ID: <bill-" DEBT "@localhost>\r\n"
				 "MIME-Version: 1.0\r\n"
				 "Content-Type: text/plain; charset=utf-8\r\n"
				 "Content-Transfer-Encoding: quoted-printable\r\n"
				 "\r\n"
				 "Bill for debt " DEBT "\r\n"
				 "Amount: 1000000.00\r\n"
				 "Pay =3D now=20\r\n");
	free(msg);
	char key[MAIL_KEY_MAX], id[MAIL_MESSAGE_ID_MAX];
	assert_int_equal(mail_message_key(&m, key), strlen("bill-" DEBT));
	assert_string_equal(key, "bill-" DEBT);
	mail_message_id(&m, id);
	assert_string_equal(id, "<bill-" DEBT "@localhost>");
}

static void test_display_names_are_atoms_quoted_strings_or_encoded_words(void **state)
{
	(void)state;
	static const struct {
		const char *name, *to;
	} cases[] = {
		{"John Doe", "To: John Doe <j@example.com>"},
		{"O'Brien", "To: O'Brien <j@example.com>"},
		{"Doe, John", "To: \"Doe, John\" <j@example.com>"},
		{"John Q. \"Jack\" Public", "To: \"John Q. \\\"Jack\\\" Public\" <j@example.com>"},
		{"José Álvarez", "To: =?utf-8?q?Jos=C3=A9_=C3=81lvarez?= <j@example.com>"},
		{"  tabs\tand\r\nbreaks  ", "To: tabs and breaks <j@example.com>"},
		{"=?utf-8?q?x?=", "To: =?utf-8?q?=3D=3Futf-8=3Fq=3Fx=3F=3D?= <j@example.com>"},
		{"", "To: j@example.com"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mail_message m = {.to_name = cases[i].name, .to_addr = "j@example.com", .debt_id = "d1"};
		char *msg = compose(&m);
		char *to = header(msg, "To");
		assert_string_equal(to, cases[i].to);
		free(to);
		free(msg);
	}
}

static void test_the_from_mailbox_is_configurable(void **state)
{
	(void)state;
	mail_message m = {
		.from = "\"Cobrança Ltda\" <cobranca@bank.example>", .to_addr = "j@example.com", .debt_id = "d1"};
	char *msg = compose(&m);
	char *from = header(msg, "From"), *mid = header(msg, "Message-ID");
	assert_string_equal(from, "From: =?utf-8?q?Cobran=C3=A7a_Ltda?= <cobranca@bank.example>");
	assert_string_equal(mid, "Message-ID: <bill-d1@bank.example>");
	free(from);
	free(mid);
	free(msg);
	m.from = "plain@bank.example";
	m.domain = "mail.bank.example";
	msg = compose(&m);
	from = header(msg, "From");
	mid = header(msg, "Message-ID");
	assert_string_equal(from, "From: plain@bank.example");
	assert_string_equal(mid, "Message-ID: <bill-d1@mail.bank.example>");
	free(from);
	free(mid);
	free(msg);
}

static void test_a_non_ascii_subject_is_encoded_words(void **state)
{
	(void)state;
	mail_message m = {.to_addr = "j@example.com", .debt_id = "dívida-7"};
	char *msg = compose(&m);
	char *subject = header(msg, "Subject");
	assert_string_equal(subject, "Subject: =?utf-8?q?Your_bill_for_debt_d=C3=ADvida-7?=");
	free(subject);
	free(msg);
	m.subject = "Boleto  de\tcobrança";
	msg = compose(&m);
	subject = header(msg, "Subject");
	assert_string_equal(subject, "Subject: =?utf-8?q?Boleto_de_cobran=C3=A7a?=");
	free(subject);
	free(msg);
}

/* Every line of a header's block (as header() gives it) is at most 78
 * bytes, where folding aims. */
static void assert_folded(const char *block)
{
	for (const char *p = block, *e; *p; p = *e ? e + 2 : e) {
		e = strstr(p, "\r\n");
		if (e == NULL)
			e = p + strlen(p);
		if (e - p > 78)
			fail_msg("a header line of %d bytes: %.*s", (int)(e - p), (int)(e - p), p);
	}
}

static void test_long_headers_fold_and_no_line_passes_998_bytes(void **state)
{
	(void)state;
	char name[4000], subject[5000], id[3000];
	size_t n = 0;
	while (n + 3 < sizeof(name) - 1) {
		memcpy(name + n, n % 20 == 0 ? " \xc3\xa9" : "ab\xc3\xa9", 3 + (n % 20 != 0)); /* é, spaces */
		n += 3 + (n % 20 != 0);
	}
	name[n] = '\0';
	memset(subject, 'x', sizeof(subject) - 1); /* one word of 4999 bytes: cannot fold as it is */
	subject[sizeof(subject) - 1] = '\0';
	memset(id, 'y', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	mail_message m = {.to_name = name, .to_addr = "j@example.com", .subject = subject, .id = id};
	char *msg = compose(&m);
	assert_lines_bounded(msg, 998);
	char *to = header(msg, "To");
	assert_non_null(strstr(to, "\r\n =?utf-8?q?"));
	/* Folded lines aim at 78 bytes: every line of To and Subject keeps to it. */
	char *subj = header(msg, "Subject");
	assert_folded(to);
	assert_folded(subj);
	free(subj);
	free(to);
	free(msg);

	/* A name of one long word, or a long one that must be quoted, goes
	 * as encoded-words, which fold, not as one line of 200 bytes. */
	char atom[200], quoted[120];
	memset(atom, 'a', sizeof(atom) - 1);
	atom[sizeof(atom) - 1] = '\0';
	memset(quoted, 'q', sizeof(quoted) - 1);
	quoted[sizeof(quoted) - 1] = '\0';
	quoted[50] = ',';
	const char *long_names[] = {atom, quoted};
	for (int k = 0; k < 2; k++) {
		mail_message lm = {.to_name = long_names[k], .to_addr = "j@example.com", .subject = "s", .id = "1"};
		msg = compose(&lm);
		to = header(msg, "To");
		assert_non_null(strstr(to, "=?utf-8?q?"));
		assert_folded(to);
		free(to);
		free(msg);
	}

	/* A plain ASCII subject of many words folds at its spaces. */
	char words[3000] = "";
	for (int i = 0; i < 300; i++)
		strncat(words, "word ", sizeof(words) - strlen(words) - 1);
	m.subject = words;
	msg = compose(&m);
	subj = header(msg, "Subject");
	assert_non_null(strstr(subj, " word\r\n word "));
	assert_null(strstr(subj, "=?"));
	assert_folded(subj);
	free(subj);
	assert_lines_bounded(msg, 998);
	free(msg);
}

static void test_message_ids_are_dot_atom_text_and_distinct(void **state)
{
	(void)state;
	static const struct {
		const char *id, *key;
	} cases[] = {
		{"42", "bill-42"},
		{"a.b", "bill-a.b"},
		{"a..b", "bill-a.=2Eb"},
		{".a.", "bill-.a=2E"},
		{"a b@c<d>", "bill-a=20b=40c=3Cd=3E"},
		{"a=20b", "bill-a=3D20b"},
		{"x/y", "bill-x=2Fy"},
		{"ção", "bill-=C3=A7=C3=A3o"},
		{"", "bill-"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mail_message m = {.id = cases[i].id};
		char key[MAIL_KEY_MAX];
		mail_message_key(&m, key);
		assert_string_equal(key, cases[i].key);
	}
	/* Long ids: a prefix and a hash, within the limit, different ids apart. */
	char a[1000], b[1000], ka[MAIL_KEY_MAX], kb[MAIL_KEY_MAX];
	memset(a, '%', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(a));
	b[900] = '&';
	mail_message ma = {.id = a}, mb = {.id = b};
	size_t na = mail_message_key(&ma, ka), nb = mail_message_key(&mb, kb);
	assert_true(na <= MAIL_KEY_LIMIT && nb <= MAIL_KEY_LIMIT);
	assert_string_not_equal(ka, kb);
	assert_non_null(strstr(ka, "=25=25=="));
	assert_int_equal(strlen(ka), na);
	/* The domain is escaped too. */
	mail_message md = {.id = "1", .domain = "[127.0.0.1]"};
	char id[MAIL_MESSAGE_ID_MAX];
	mail_message_id(&md, id);
	assert_string_equal(id, "<bill-1@=5B127.0.0.1=5D>");
}

/* A Message-ID given (the one stored with the bill) is written as it is,
 * whatever the From; one that could break the header is refused. */
static void test_a_stored_message_id_is_written_as_it_is(void **state)
{
	(void)state;
	mail_message m = {.from = "Other <billing@other.example>",
			  .to_addr = "j@example.com",
			  .id = "7",
			  .message_id = "<bill-7@first.example>"};
	char *msg = compose(&m), *h = header(msg, "Message-ID");
	assert_string_equal(h, "Message-ID: <bill-7@first.example>");
	free(h);
	free(msg);
	m.message_id = NULL;
	msg = compose(&m);
	h = header(msg, "Message-ID");
	assert_string_equal(h, "Message-ID: <bill-7@other.example>");
	free(h);
	free(msg);
	const char *bad[] = {"",
			     "bill-7@a.example",
			     "<bill-7>",
			     "<@a.example>",
			     "<bill-7@>",
			     "<bill 7@a.example>",
			     "<bill-7@a.example>\r\nBcc: x@y.example",
			     "<.bill-7@a.example>",
			     "<bill-7@a..example>",
			     "<bill-7@a@b.example>",
			     "<b\xc3\xa9-7@a.example>"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.message_id = bad[i];
		strbuf b = STRBUF_INIT;
		rpcq_error err;
		assert_int_equal(mail_compose(&m, &b, &err), RPCQ_INVALID_ARGUMENT);
		strbuf_fini(&b);
	}
}

/* The dispatcher's wait after each failed attempt: the base, doubled per
 * attempt, at most an hour, less up to a third of jitter. */
static void test_retry_delays_double_per_attempt_up_to_an_hour_less_a_third_of_jitter(void **state)
{
	(void)state;
	static const long long want[] = {2000,	 4000,	 8000,	  16000,   32000,   64000,   128000,
					 256000, 512000, 1024000, 2048000, 3600000, 3600000, 3600000};
	for (int a = 1; a <= (int)(sizeof(want) / sizeof(want[0])); a++) {
		long long d = want[a - 1];
		assert_int_equal(mail_retry_delay_ms(2000, a, 0), d);
		/* The jitter takes at most a third off, never more. */
		assert_int_equal(mail_retry_delay_ms(2000, a, (unsigned)(d / 3)), d - d / 3);
		assert_int_equal(mail_retry_delay_ms(2000, a, (unsigned)(d / 3 + 1)), d);
		for (unsigned j = 1; j < 100000; j = j * 7 + 3) {
			long long w = mail_retry_delay_ms(2000, a, j);
			assert_true(w <= d && w >= d - d / 3);
		}
	}
	/* The cap holds for any count of attempts and any base, without overflow. */
	assert_int_equal(mail_retry_delay_ms(2000, 1000000, 0), MAIL_RETRY_MAX_MS);
	assert_int_equal(mail_retry_delay_ms(2000, 0x7fffffff, 0), MAIL_RETRY_MAX_MS);
	assert_int_equal(mail_retry_delay_ms(3600000, 1, 0), MAIL_RETRY_MAX_MS);
	assert_int_equal(mail_retry_delay_ms(3600000, 40, 0), MAIL_RETRY_MAX_MS);
	assert_int_equal(mail_retry_delay_ms(0x7fffffff, 3, 0), MAIL_RETRY_MAX_MS);
	assert_int_equal(mail_retry_delay_ms(1, 1, 12345), 1);
	assert_int_equal(mail_retry_delay_ms(1, 23, 0), MAIL_RETRY_MAX_MS); /* 4194304 */
	assert_int_equal(mail_retry_delay_ms(1, 22, 0), 2097152);
	assert_int_equal(mail_retry_delay_ms(0, 0x7fffffff, 0), 0);
}

static void test_the_body_is_quoted_printable_with_crlf(void **state)
{
	(void)state;
	char body[400];
	int n = snprintf(body, sizeof(body),
			 "crlf line\r\nlf line\nlone\rcr\ntab\t\n%s\n=== ✓\n. leading dot\nno final newline",
			 "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890");
	mail_message m = {.to_addr = "j@example.com", .debt_id = "d", .body = body, .body_len = (size_t)n};
	char *msg = compose(&m);
	const char *b = strstr(msg, "\r\n\r\n") + 4;
	assert_string_equal(b, "crlf line\r\n"
			       "lf line\r\n"
			       "lone=0Dcr\r\n"
			       "tab=09\r\n"
			       "012345678901234567890123456789012345678901234567890123456789012345678901234=\r\n"
			       "5678901234567890\r\n"
			       "=3D=3D=3D =E2=9C=93\r\n"
			       ". leading dot\r\n"
			       "no final newline\r\n");
	assert_lines_bounded(msg, 76);
	free(msg);
	/* No body at all: the headers and the blank line. */
	mail_message e = {.to_addr = "j@example.com", .debt_id = "d"};
	msg = compose(&e);
	assert_non_null(strstr(msg, "quoted-printable\r\n\r\n"));
	assert_string_equal(strstr(msg, "\r\n\r\n"), "\r\n\r\n");
	free(msg);
}

static void test_dates_are_rfc5322_in_utc(void **state)
{
	(void)state;
	static const struct {
		int64_t t;
		const char *date;
	} cases[] = {
		{0, "Date: Thu, 01 Jan 1970 00:00:00 +0000"},
		{OCT_12_2022_10H + 3661, "Date: Wed, 12 Oct 2022 11:01:01 +0000"},
		{1709164800, "Date: Thu, 29 Feb 2024 00:00:00 +0000"},
		{-1, "Date: Wed, 31 Dec 1969 23:59:59 +0000"},
		{4102444799, "Date: Thu, 31 Dec 2099 23:59:59 +0000"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mail_message m = {.to_addr = "j@example.com", .debt_id = "d", .date = cases[i].t};
		char *msg = compose(&m);
		char *date = header(msg, "Date");
		assert_string_equal(date, cases[i].date);
		free(date);
		free(msg);
	}
}

static void test_what_cannot_be_sent_is_invalid_argument(void **state)
{
	(void)state;
	const char *addrs[] = {NULL, "", "nobody", "@example.com", "a@", "a b@example.com", "a@b\r\nBcc: x@y", "<a@b>",
			       "\"a\"@b", "josé@example.com", "a@b@c",
			       /* The import's rule is this one (mail_addr_check): dots at either end
		 * of a part, "..", and a domain without a dot are refused too. */
			       ".a@example.com", "a.@example.com", "a..b@example.com", "a@example..com",
			       "a@.example.com", "a@example.com.", "a@localhost"};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		mail_message m = {.to_addr = addrs[i], .debt_id = "d"};
		strbuf b = STRBUF_INIT;
		rpcq_error err;
		assert_int_equal(mail_compose(&m, &b, &err), RPCQ_INVALID_ARGUMENT);
		strbuf_fini(&b);
	}
	const char bad_utf8[] = "Jo\xe3o";
	mail_message cases[] = {
		{.to_addr = "j@example.com", .to_name = bad_utf8, .debt_id = "d"},
		{.to_addr = "j@example.com", .subject = bad_utf8},
		{.to_addr = "j@example.com", .debt_id = "d", .body = bad_utf8, .body_len = 4},
		{.to_addr = "j@example.com", .debt_id = "d", .from = "Billing <>"},
		{.to_addr = "j@example.com", .debt_id = "d", .from = "no address here"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strbuf b = STRBUF_INIT;
		rpcq_error err;
		assert_int_equal(mail_compose(&cases[i], &b, &err), RPCQ_INVALID_ARGUMENT);
		strbuf_fini(&b);
	}
	assert_true(mail_error_is_temporary(RPCQ_UNAVAILABLE));
	assert_true(mail_error_is_temporary(RPCQ_PERMISSION_DENIED));
	assert_false(mail_error_is_temporary(RPCQ_FAILED_PRECONDITION));
	assert_false(mail_error_is_temporary(RPCQ_INVALID_ARGUMENT));
}

static void put(const char *dir, const char *name, const char *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void puts_(const char *dir, const char *name, const char *text)
{
	put(dir, name, text, strlen(text));
}

/* Every kind of message above, read back by Python's e-mail parser: names,
 * addresses, subject, Message-ID, date and the decoded body. */
static void test_every_message_parses_with_pythons_email_parser(void **state)
{
	(void)state;
	if (system("/usr/bin/python3 -c 'import email.policy' >/dev/null 2>&1") != 0)
		skip();
	const char *src = getenv("RPCQ_SOURCE_DIR");
	assert_non_null(src);
	char root[] = "/tmp/rpcq-mail-unit-XXXXXX";
	assert_non_null(mkdtemp(root));

	static char long_name[3000], long_word[2500];
	for (size_t i = 0; i + 2 < sizeof(long_name); i += 2)
		memcpy(long_name + i, i % 30 == 0 ? " \xc3" : i % 30 == 2 ? "\xa9z" : "ab", 2);
	long_name[sizeof(long_name) - 1] = '\0';
	memset(long_word, 'w', sizeof(long_word) - 1);
	static const struct {
		const char *from, *name, *want_name, *addr, *subject, *want_subject, *debt, *body, *want_body;
		int64_t date;
	} cases[] = {
		{NULL, "John Doe", "John Doe", "johndoe@example.com", NULL, "Your bill for debt " DEBT, DEBT,
		 "Amount: 1000000.00\nDue: 2022-10-12\n", "Amount: 1000000.00\nDue: 2022-10-12\n", OCT_12_2022_10H},
		{"\"Cobrança\" <c@bank.example>", "José d'Ávila, Jr.", "José d'Ávila, Jr.", "jose+bill@example.com.br",
		 "Sua cobrança — débito 7", "Sua cobrança — débito 7", "7", "Olá = José\r\nlinha\t \r\n",
		 "Olá = José\nlinha\t \n", 0},
		{NULL, "Doe, \"J\" \\ John", "Doe, \"J\" \\ John", "a@b.c", NULL, "Your bill for debt a..b c", "a..b c",
		 "x", "x\n", 1709164800},
		{NULL, long_name, NULL, "long@example.com", long_word, long_word, "d", NULL, "", 4102444799},
		{NULL, "=?utf-8?q?x?=", "=?utf-8?q?x?=", "q@example.com", "=?utf-8?q?y?=", "=?utf-8?q?y?=", "d",
		 ".\n..\nFrom here\n", ".\n..\nFrom here\n", 1},
	};
	char dirs[8][64];
	size_t nd = sizeof(cases) / sizeof(cases[0]);
	for (size_t i = 0; i < nd; i++) {
		char body[3000] = "";
		if (cases[i].body)
			snprintf(body, sizeof(body), "%s", cases[i].body);
		else /* long lines, every byte */
			for (int k = 0; k < 2000; k++)
				body[k] = (char)(k % 95 + 32);
		mail_message m = {.from = cases[i].from,
				  .to_name = cases[i].name,
				  .to_addr = cases[i].addr,
				  .subject = cases[i].subject,
				  .debt_id = cases[i].debt,
				  .date = cases[i].date,
				  .body = body,
				  .body_len = strlen(body)};
		char *msg = compose(&m);
		snprintf(dirs[i], sizeof(dirs[i]), "%s/%zu", root, i);
		assert_int_equal(mkdir(dirs[i], 0700), 0);
		put(dirs[i], "message.eml", msg, strlen(msg));
		if (cases[i].want_name)
			puts_(dirs[i], "want_to_name", cases[i].want_name);
		puts_(dirs[i], "want_to_addr", cases[i].addr);
		puts_(dirs[i], "want_subject", cases[i].want_subject);
		char id[MAIL_MESSAGE_ID_MAX], date[32];
		mail_message_id(&m, id);
		puts_(dirs[i], "want_message_id", id);
		snprintf(date, sizeof(date), "%lld", (long long)cases[i].date);
		puts_(dirs[i], "want_date", date);
		if (cases[i].body) {
			puts_(dirs[i], "want_body", cases[i].want_body);
		} else {
			body[2000] = '\n';
			body[2001] = '\0';
			puts_(dirs[i], "want_body", body);
		}
		free(msg);
	}
	char cmd[4096];
	int o = snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/integration/mail_check.py", src);
	for (size_t i = 0; i < nd; i++)
		o += snprintf(cmd + o, sizeof(cmd) - (size_t)o, " %s", dirs[i]);
	int rc = system(cmd);
	if (rc == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
		assert_int_equal(system(cmd), 0);
	} else {
		fprintf(stderr, "messages kept in %s\n", root);
	}
	assert_true(WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_message_is_exactly_these_bytes),
		cmocka_unit_test(test_display_names_are_atoms_quoted_strings_or_encoded_words),
		cmocka_unit_test(test_the_from_mailbox_is_configurable),
		cmocka_unit_test(test_a_non_ascii_subject_is_encoded_words),
		cmocka_unit_test(test_long_headers_fold_and_no_line_passes_998_bytes),
		cmocka_unit_test(test_message_ids_are_dot_atom_text_and_distinct),
		cmocka_unit_test(test_a_stored_message_id_is_written_as_it_is),
		cmocka_unit_test(test_retry_delays_double_per_attempt_up_to_an_hour_less_a_third_of_jitter),
		cmocka_unit_test(test_the_body_is_quoted_printable_with_crlf),
		cmocka_unit_test(test_dates_are_rfc5322_in_utc),
		cmocka_unit_test(test_what_cannot_be_sent_is_invalid_argument),
		cmocka_unit_test(test_every_message_parses_with_pythons_email_parser),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
