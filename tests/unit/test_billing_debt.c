/*
 * The billing domain's input side: the rows of a debts file
 * (server/services/billing/debt.h) with every rule and its reason, the
 * header, no-break spaces, line numbers across chunks taken through
 * upload_take, the shared sample file end to end (whole and chunked); the
 * amounts as cents (money.h) and RecordPayment's paid_at (timestamp.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "date.h"
#include "debt.h"
#include "mail.h"
#include "money.h"
#include "timestamp.h"
#include "upload.h"
#include "utf8.h"

#define HEADER BILLING_HEADER "\n"

/* Appends one row as "line:name|gid|email|amount|due|id|cents|day|reason\n". */
static void describe_row(strbuf *b, const billing_row *row)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%llu:%.*s|%.*s|%.*s|%.*s|%.*s|%.*s|%lld|%d|%s\n",
			 (unsigned long long)row->line, (int)row->name_len, row->name ? row->name : "",
			 (int)row->government_id_len, row->government_id ? row->government_id : "", (int)row->email_len,
			 row->email ? row->email : "", (int)row->amount_len, row->amount ? row->amount : "",
			 (int)row->due_len, row->due ? row->due : "", (int)row->debt_id_len,
			 row->debt_id ? row->debt_id : "", (long long)row->amount_cents, (int)row->due_day,
			 row->reason ? row->reason : "");
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	strbuf_append(b, buf, (size_t)n);
}

/* Reads text[0..len) (a copy: reading unescapes in place) into b, and
 * "error: ..." when it cannot be read. Returns the rows read. */
static size_t describe_n(const char *text, size_t len, strbuf *b)
{
	char *copy = malloc(len + 1);
	assert_non_null(copy);
	memcpy(copy, text, len);
	billing_reader r;
	billing_row row;
	rpcq_error err;
	int k;
	size_t rows = 0;
	billing_reader_init(&r, copy, len, 1, 0);
	while ((k = billing_reader_next(&r, &row, &err)) == 1) {
		describe_row(b, &row);
		rows++;
	}
	if (k < 0) {
		strbuf_append(b, "error: ", 7);
		strbuf_append(b, err.message, strlen(err.message));
	}
	strbuf_putc(b, '\0');
	free(copy);
	return rows;
}

/* The description of text, in out (freed by the caller). */
static char *describe(const char *text)
{
	strbuf b = STRBUF_INIT;
	describe_n(text, strlen(text), &b);
	assert_false(b.failed);
	return b.data;
}

/* The reason of the one row of HEADER + line. */
static char *reason_of(const char *line)
{
	static char out[256];
	char text[1024];
	snprintf(text, sizeof(text), HEADER "%s\n", line);
	billing_reader r;
	billing_row row;
	rpcq_error err;
	billing_reader_init(&r, text, strlen(text), 1, 0);
	assert_int_equal(billing_reader_next(&r, &row, &err), 1);
	snprintf(out, sizeof(out), "%s", row.reason ? row.reason : "valid");
	assert_int_equal(billing_reader_next(&r, &row, &err), 0);
	return out;
}

static void test_rows_are_read_with_cents_days_and_trimmed_fields(void **state)
{
	(void)state;
	char *out = describe("\xef\xbb\xbf Name , GOVERNMENTID,email ,\tdebtAmount,debtduedate,debtId\r\n"
			     "John Doe,11111111111,johndoe@example.com,1000000.00,2022-10-12,1adb6ccf\r\n"
			     "\n"
			     "\xc2\xa0 Ana \xc2\xa0,\xc2\xa0"
			     "22\xc2\xa0,ana@ex.com.br, 0.5 ,2024-02-29,\xc2\xa0x-1\xc2\xa0\xc2\xa0\r\n"
			     "\"Doe, Jane\",3,j@d.io,7,1997-10-08,\"id,2\"");
	assert_string_equal(out, "2:John Doe|11111111111|johndoe@example.com|1000000.00|2022-10-12|1adb6ccf|100000000|"
				 "19277|\n"
				 "4:Ana|22|ana@ex.com.br|0.5|2024-02-29|x-1|50|19782|\n"
				 "5:Doe, Jane|3|j@d.io|7|1997-10-08|id,2|700|10142|\n");
	free(out);
	/* A no-break space inside a value is kept. */
	assert_string_equal(reason_of("Jo\xc2\xa0\x44oe,1,a@b.co,1,2024-01-01,x"), "valid");
	/* U+202F NARROW NO-BREAK SPACE and U+2007 FIGURE SPACE, as locales
	 * write around numbers, are trimmed like U+00A0; inside, kept. */
	out = describe("name,governmentId,email,debtAmount,debtDueDate,debtId\n"
		       "\xe2\x80\xaf"
		       "Bea\xe2\x80\x87,\xe2\x80\x87"
		       "7\xe2\x80\xaf,b@c.de,\xe2\x80\xaf"
		       "12.5\xe2\x80\x87,2024-03-01,\xe2\x80\xaf\xc2\xa0y-2\xe2\x80\x87\xe2\x80\xaf\n"
		       "A\xe2\x80\xaf"
		       "B,8,a@c.de,1,2024-03-02,y-3\n");
	assert_string_equal(out, "2:Bea|7|b@c.de|12.5|2024-03-01|y-2|1250|19783|\n"
				 "3:A\xe2\x80\xaf"
				 "B|8|a@c.de|1|2024-03-02|y-3|100|19784|\n");
	free(out);
}

static void test_each_rule_rejects_a_row_naming_its_field(void **state)
{
	(void)state;
	static const struct {
		const char *line, *reason;
	} cases[] = {
		{"a,1,a@b.co,1,2024-01-01", "expected 6 fields (" BILLING_HEADER "), found 5"},
		{"a,1,a@b.co,1,2024-01-01,x,y", "expected 6 fields (" BILLING_HEADER "), found 7"},
		{",1,a@b.co,1,2024-01-01,x", "name is empty"},
		{"\xc2\xa0,1,a@b.co,1,2024-01-01,x", "name is empty"},
		{"a\x01,1,a@b.co,1,2024-01-01,x", "name holds a control character"},
		{"a\x7f,1,a@b.co,1,2024-01-01,x", "name holds a control character"},
		{"\"a\nb\",1,a@b.co,1,2024-01-01,x", "name holds a control character"},
		{"a\xff,1,a@b.co,1,2024-01-01,x", "name is not valid UTF-8"},
		{"a,1,a@b.co,1,2024-01-01,\xc0\xaf", "debtId is not valid UTF-8"},
		{"a,,a@b.co,1,2024-01-01,x", "governmentId is empty"},
		{"a,123456789012345678901234567890123,a@b.co,1,2024-01-01,x", "governmentId is longer than 32 bytes"},
		{"a,1,,1,2024-01-01,x", "email is empty"},
		{"a,1,x,1,2024-01-01,x", "email \"x\" is not an address"},
		{"a,1,@b.co,1,2024-01-01,x", "email \"@b.co\" is not an address"},
		{"a,1,a@b,1,2024-01-01,x", "email \"a@b\" is not an address"},
		{"a,1,a@@b.co,1,2024-01-01,x", "email \"a@@b.co\" is not an address"},
		{"a,1,a@b@c.co,1,2024-01-01,x", "email \"a@b@c.co\" is not an address"},
		{"a,1,a b@c.co,1,2024-01-01,x", "email \"a b@c.co\" is not an address"},
		{"a,1,a@.b.co,1,2024-01-01,x", "email \"a@.b.co\" is not an address"},
		{"a,1,a@b.co.,1,2024-01-01,x", "email \"a@b.co.\" is not an address"},
		{"a,1,a@b..co,1,2024-01-01,x", "email \"a@b..co\" is not an address"},
		{"a,1,<a@b.co>,1,2024-01-01,x", "email \"<a@b.co>\" is not an address"},
		{"a,1,a@b.co,,2024-01-01,x", "debtAmount is empty"},
		{"a,1,a@b.co,12.345,2024-01-01,x", "debtAmount \"12.345\" has more than 2 decimals"},
		{"a,1,a@b.co,12.341,2024-01-01,x", "debtAmount \"12.341\" has more than 2 decimals"},
		{"a,1,a@b.co,0,2024-01-01,x", "debtAmount \"0\" is not positive"},
		{"a,1,a@b.co,0.00,2024-01-01,x", "debtAmount \"0.00\" is not positive"},
		{"a,1,a@b.co,-5,2024-01-01,x", "debtAmount \"-5\" is not positive"},
		{"a,1,a@b.co,1e3,2024-01-01,x", "debtAmount \"1e3\" is not a decimal amount such as 1234.56"},
		{"a,1,a@b.co,\"1,5\",2024-01-01,x", "debtAmount \"1,5\" is not a decimal amount such as 1234.56"},
		{"a,1,a@b.co,.5,2024-01-01,x", "debtAmount \".5\" is not a decimal amount such as 1234.56"},
		{"a,1,a@b.co,5.,2024-01-01,x", "debtAmount \"5.\" is not a decimal amount such as 1234.56"},
		{"a,1,a@b.co,+5,2024-01-01,x", "debtAmount \"+5\" is not a decimal amount such as 1234.56"},
		{"a,1,a@b.co,100000000.00,2024-01-01,x", "debtAmount \"100000000.00\" is more than 99999999.99"},
		{"a,1,a@b.co,99999999999999999999999999,2024-01-01,x",
		 "debtAmount \"99999999999999999999999999\" is more than 99999999.99"},
		{"a,1,a@b.co,99999999.99,2024-01-01,x", "valid"},
		{"a,1,a@b.co,1,,x", "debtDueDate is empty"},
		{"a,1,a@b.co,1,2021-02-30,x", "debtDueDate \"2021-02-30\" is not a date"},
		{"a,1,a@b.co,1,2021-02-29,x", "debtDueDate \"2021-02-29\" is not a date"},
		{"a,1,a@b.co,1,2021-13-01,x", "debtDueDate \"2021-13-01\" is not a date"},
		{"a,1,a@b.co,1,12/10/2022,x", "debtDueDate \"12/10/2022\" is not a date YYYY-MM-DD"},
		{"a,1,a@b.co,1,2022-10-12T00:00,x", "debtDueDate \"2022-10-12T00:00\" is not a date YYYY-MM-DD"},
		{"a,1,a@b.co,1,1997-10-07,x",
		 "debtDueDate \"1997-10-07\" is before 1997-10-08, the first due date a boleto carries"},
		{"a,1,a@b.co,1,2024-01-01,", "debtId is empty"},
		{"a,1,a@b.co,1,2024-01-01,\xc2\xa0\xc2\xa0", "debtId is empty"},
		{"a,1,a@b.co,1,2024-01-01,12345678901234567890123456789012345678901234567890123456789012345",
		 "debtId is longer than 64 bytes"},
		{"a,1,a@b.co,1,2024-01-01,1234567890123456789012345678901234567890123456789012345678901234", "valid"},
		/* The first field found wrong is the one named. */
		{",,x,0,nope,", "name is empty"},
		{"a,1,a@b.co,0,nope,", "debtAmount \"0\" is not positive"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = reason_of(cases[i].line);
		if (strcmp(got, cases[i].reason) != 0)
			fail_msg("%s: got \"%s\", expected \"%s\"", cases[i].line, got, cases[i].reason);
	}
	char name[260];
	char line[400];
	memset(name, 'n', 201);
	name[201] = '\0';
	snprintf(line, sizeof(line), "%s,1,a@b.co,1,2024-01-01,x", name);
	assert_string_equal(reason_of(line), "name is longer than 200 bytes");
	name[200] = '\0';
	snprintf(line, sizeof(line), "%s,1,a@b.co,1,2024-01-01,x", name);
	assert_string_equal(reason_of(line), "valid");
	/* Long values are cut in the message, not in the middle of a character. */
	snprintf(line, sizeof(line), "a,1,%s\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9,1,2024-01-01,x",
		 "01234567890123456789012345678901234567");
	assert_string_equal(reason_of(line),
			    "email \"01234567890123456789012345678901234567\xc3\xa9...\" is not an address");
}

static void test_a_file_without_its_header_cannot_be_read(void **state)
{
	(void)state;
	char *out = describe("John,1,j@d.io,1,2024-01-01,x\n");
	assert_string_equal(out, "error: line 1: the header must be " BILLING_HEADER
				 " (found 6 field(s), the first \"John\")");
	free(out);
	out = describe("\n\nname,governmentId,email,debtAmount,debtDueDate\n");
	assert_string_equal(out, "error: line 3: the header must be " BILLING_HEADER
				 " (found 5 field(s), the first \"name\")");
	free(out);
	out = describe("name,governmentId,email,debtAmount,debtDueDate,debtId,extra\n");
	assert_non_null(strstr(out, "error: line 1: the header must be"));
	free(out);
	out = describe("name,governmentId,email,amount,debtDueDate,debtId\n");
	assert_non_null(strstr(out, "error: line 1: the header must be"));
	free(out);
	/* Malformed CSV after the header is a rejected row, on its line, and the
	 * reading goes on: text after a closing quote ends where the record
	 * does; an unclosed quote takes the rest of the input. */
	out = describe(HEADER "a,1,a@b.co,1,2024-01-01,x\n\"b,1\n");
	assert_string_equal(out, "2:a|1|a@b.co|1|2024-01-01|x|100|19723|\n"
				 "3:||||||0|0|a quoted field is not closed before the end of the input\n");
	free(out);
	out = describe(HEADER "\"Ann\"x,1,a@b.co,1,2024-01-01,x\n\"Bo\"\xc2\xa0 ,2,b@b.co,2,2024-01-02,y\n");
	assert_string_equal(out, "2:||||||0|0|field 1: text after the closing quote\n"
				 "3:Bo|2|b@b.co|2|2024-01-02|y|200|19724|\n");
	free(out);
	/* Before the header it is the file's error, as a bad header is. */
	out = describe("\"name\"x,governmentId,email,debtAmount,debtDueDate,debtId\n");
	assert_string_equal(out, "error: line 1: field 1: text after the closing quote");
	free(out);
	/* A header alone, and nothing at all, are files without rows. */
	out = describe(HEADER);
	assert_string_equal(out, "");
	free(out);
	out = describe("");
	assert_string_equal(out, "");
	free(out);
}

/* Takes text[0..len) in chunks of n bytes through upload_take (the carry
 * kept here, as the service keeps it) and describes the rows read into b,
 * as describe_n does. Returns the rows read. */
static size_t describe_chunked(const char *text, size_t len, size_t n, strbuf *b)
{
	upload_state st = UPLOAD_STATE_INIT;
	strbuf work = STRBUF_INIT, carry = STRBUF_INIT;
	size_t off = 0, rows = 0;
	int header = 0;
	do {
		size_t k = len - off < n ? len - off : n;
		upload_piece pc;
		rpcq_error err;
		assert_int_equal(upload_take(&st, carry.data, carry.len, off, text + off, k, off + k == len,
					     BILLING_MAX_RECORD, &work, &pc, &err),
				 RPCQ_OK);
		assert_int_equal(pc.action, UPLOAD_TAKEN);
		billing_reader r;
		billing_row row;
		int got;
		billing_reader_init(&r, pc.records, pc.records_len, pc.first_line, header);
		while ((got = billing_reader_next(&r, &row, &err)) == 1) {
			describe_row(b, &row);
			rows++;
		}
		assert_int_equal(got, 0);
		header = r.header_seen;
		if (pc.overlong_line != 0) {
			/* The service's rejection of a record too long to carry:
			 * the row the reader makes of it read whole. */
			billing_row over = {0};
			over.line = pc.overlong_line;
			over.reason = BILLING_OVERLONG_REASON;
			describe_row(b, &over);
			rows++;
		}
		carry.len = 0;
		strbuf_append(&carry, pc.carry, pc.carry_len);
		off += k;
	} while (off < len);
	assert_true(st.complete);
	assert_int_equal(st.received, len);
	strbuf_putc(b, '\0');
	strbuf_fini(&work);
	strbuf_fini(&carry);
	return rows;
}

static void test_a_file_cut_at_every_size_reads_as_the_whole(void **state)
{
	(void)state;
	const char text[] = "name,governmentId,email,debtAmount,debtDueDate,debtId\r\n"
			    "A,1,a@b.co,1.5,2024-01-01,x\r\n"
			    "\"B\r\nB\",2,b@b.co,2,2024-01-02,y\n\n"
			    "\xc2\xa0"
			    "C\xc2\xa0,3,c@b.co,3.03,2024-01-03,\"z\"\"\"\r\n"
			    "D,4,d,4,2024-01-04,w";
	strbuf whole = STRBUF_INIT;
	assert_int_equal(describe_n(text, sizeof(text) - 1, &whole), 4);
	assert_string_equal(whole.data, "2:A|1|a@b.co|1.5|2024-01-01|x|150|19723|\n"
					"3:B\r\nB|2|b@b.co|2|2024-01-02|y|0|0|name holds a control character\n"
					"6:C|3|c@b.co|3.03|2024-01-03|z\"|303|19725|\n"
					"7:D|4|d|4|2024-01-04|w|0|0|email \"d\" is not an address\n");
	for (size_t n = 1; n <= sizeof(text); n++) {
		strbuf cut = STRBUF_INIT;
		describe_chunked(text, sizeof(text) - 1, n, &cut);
		assert_string_equal(cut.data, whole.data);
		strbuf_fini(&cut);
	}
	strbuf_fini(&whole);
}

/* ../shared/data/billing/debts_sample.csv, which CTest names in RPCQ_SHARED_DIR. */
static char *read_sample(size_t *len)
{
	const char *dir = getenv("RPCQ_SHARED_DIR");
	char path[1024];
	assert_non_null(dir);
	snprintf(path, sizeof path, "%s/data/billing/debts_sample.csv", dir);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	assert_non_null(buf);
	*len = fread(buf, 1, cap, f);
	assert_true(*len > 0 && *len < cap);
	fclose(f);
	return buf;
}

typedef struct kept {
	char *id;
	char *content; /* the row's fields, as the import compares them */
} kept;

static int by_id(const void *a, const void *b)
{
	return strcmp(((const kept *)a)->id, ((const kept *)b)->id);
}

/* The sample: 2,053 rows after the header (the last without a '\n'), every
 * one valid; 54 of them repeat an earlier row exactly (30 rows appear twice,
 * 8 four times), which leaves the issue's 1,999 debts; no debtId comes
 * back with other content. Read in chunks of any size it gives the same
 * rows. */
static void test_the_sample_gives_1999_debts_from_2053_valid_rows(void **state)
{
	(void)state;
	size_t len;
	char *text = read_sample(&len);
	/* NUL-terminated after the text, so that strndup of a field at its end
	 * (the sample's last line has no line break) never reads past it. */
	char *copy = malloc(len + 1);
	assert_non_null(copy);
	memcpy(copy, text, len);
	copy[len] = '\0';
	kept *rows = calloc(4096, sizeof(kept));
	assert_non_null(rows);
	size_t n = 0, valid = 0;
	billing_reader r;
	billing_row row;
	rpcq_error err;
	int k;
	uint64_t last_line = 0;
	billing_reader_init(&r, copy, len, 1, 0);
	while ((k = billing_reader_next(&r, &row, &err)) == 1) {
		assert_true(n < 4096);
		if (row.reason != NULL)
			fail_msg("line %llu: %s", (unsigned long long)row.line, row.reason);
		valid++;
		last_line = row.line;
		char content[512];
		snprintf(content, sizeof(content), "%.*s|%.*s|%.*s|%lld|%d", (int)row.name_len, row.name,
			 (int)row.government_id_len, row.government_id, (int)row.email_len, row.email,
			 (long long)row.amount_cents, (int)row.due_day);
		rows[n].id = strndup(row.debt_id, row.debt_id_len);
		rows[n].content = strdup(content);
		n++;
	}
	assert_int_equal(k, 0);
	assert_int_equal(n, 2053);
	assert_int_equal(valid, 2053);
	assert_int_equal(last_line, 2054);

	qsort(rows, n, sizeof(kept), by_id);
	size_t distinct = 0, repeats = 0, conflicts = 0, twice = 0, four = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && strcmp(rows[j].id, rows[i].id) == 0) {
			if (strcmp(rows[j].content, rows[i].content) != 0)
				conflicts++;
			j++;
		}
		distinct++;
		repeats += j - i - 1;
		twice += j - i == 2;
		four += j - i == 4;
		i = j;
	}
	assert_int_equal(distinct, 1999);
	assert_int_equal(repeats, 54);
	assert_int_equal(conflicts, 0);
	assert_int_equal(twice, 30);
	assert_int_equal(four, 8);
	for (size_t i = 0; i < n; i++) {
		free(rows[i].id);
		free(rows[i].content);
	}
	free(rows);
	free(copy);

	strbuf whole = STRBUF_INIT;
	assert_int_equal(describe_n(text, len, &whole), 2053);
	static const size_t sizes[] = {1, 7, 100, 997, 4096, 65536};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		strbuf cut = STRBUF_INIT;
		assert_int_equal(describe_chunked(text, len, sizes[i], &cut), 2053);
		assert_string_equal(cut.data, whole.data);
		strbuf_fini(&cut);
	}
	strbuf_fini(&whole);
	free(text);
}

static money_result parse_money(const char *s, int64_t *cents)
{
	return money_parse(s, strlen(s), cents);
}

static void test_amounts_are_exact_cents_and_format_with_two_decimals(void **state)
{
	(void)state;
	int64_t c = -1;
	assert_int_equal(parse_money("1000000.00", &c), MONEY_OK);
	assert_int_equal(c, 100000000);
	assert_int_equal(parse_money("0.01", &c), MONEY_OK);
	assert_int_equal(c, 1);
	assert_int_equal(parse_money("007.5", &c), MONEY_OK);
	assert_int_equal(c, 750);
	assert_int_equal(parse_money("99999999.99", &c), MONEY_OK);
	assert_int_equal(c, MONEY_MAX_CENTS);
	assert_int_equal(parse_money("100000000", &c), MONEY_TOO_LARGE);
	assert_int_equal(parse_money("9223372036854775807", &c), MONEY_TOO_LARGE);
	assert_int_equal(parse_money("92233720368547758070000000.1", &c), MONEY_TOO_LARGE);
	assert_int_equal(parse_money("92233720368547758070000000.123", &c), MONEY_DECIMALS);
	assert_int_equal(parse_money("", &c), MONEY_EMPTY);
	assert_int_equal(parse_money("-", &c), MONEY_MALFORMED);
	assert_int_equal(parse_money("-0", &c), MONEY_NOT_POSITIVE);
	assert_int_equal(parse_money("1.2.3", &c), MONEY_MALFORMED);
	assert_int_equal(parse_money("1 000", &c), MONEY_MALFORMED);
	assert_int_equal(parse_money("0.001", &c), MONEY_DECIMALS);
	assert_int_equal(parse_money("12.3401", &c), MONEY_DECIMALS);
	assert_int_equal(c, MONEY_MAX_CENTS); /* untouched when refused */
	/* Trailing zeros past the cents name the same cents. */
	assert_int_equal(parse_money("12.340", &c), MONEY_OK);
	assert_int_equal(c, 1234);
	assert_int_equal(parse_money("5.000000", &c), MONEY_OK);
	assert_int_equal(c, 500);
	assert_int_equal(parse_money("0.000", &c), MONEY_NOT_POSITIVE);
	c = MONEY_MAX_CENTS;
	assert_int_equal(money_parse("12.34", 4, &c), MONEY_OK); /* exactly len bytes */
	assert_int_equal(c, 1230);

	char out[MONEY_FORMAT_MAX];
	assert_int_equal(money_format(123456, out), 7);
	assert_string_equal(out, "1234.56");
	money_format(0, out);
	assert_string_equal(out, "0.00");
	money_format(5, out);
	assert_string_equal(out, "0.05");
	money_format(-5, out);
	assert_string_equal(out, "-0.05");
	money_format(MONEY_MAX_CENTS, out);
	assert_string_equal(out, "99999999.99");
	money_format(INT64_MAX, out);
	assert_string_equal(out, "92233720368547758.07");
	money_format(INT64_MIN, out);
	assert_string_equal(out, "-92233720368547758.08");
	/* Every amount reads back as itself. */
	for (int64_t v = 1; v < MONEY_MAX_CENTS; v = v * 3 + 7) {
		size_t n = money_format(v, out);
		assert_int_equal(money_parse(out, n, &c), MONEY_OK);
		assert_int_equal(c, v);
	}
}

static int64_t ts(const char *s)
{
	int64_t ms = 0;
	char why[128];
	if (timestamp_parse(s, strlen(s), &ms, why, sizeof(why)) != 0)
		fail_msg("%s: %s", s, why);
	return ms;
}

static const char *ts_why(const char *s)
{
	static char why[128];
	int64_t ms = 42;
	assert_int_equal(timestamp_parse(s, strlen(s), &ms, why, sizeof(why)), -1);
	assert_int_equal(ms, 42);
	return why;
}

static void test_paid_at_reads_rfc3339_and_iso8601_instants(void **state)
{
	(void)state;
	assert_int_equal(ts("1970-01-01"), 0);
	assert_int_equal(ts("2024-03-01"), INT64_C(1709251200000));
	assert_int_equal(ts("2024-03-01T14:30:05Z"), INT64_C(1709303405000));
	assert_int_equal(ts("2024-03-01t14:30:05z"), INT64_C(1709303405000));
	assert_int_equal(ts("2024-03-01 14:30:05"), INT64_C(1709303405000));
	assert_int_equal(ts("2024-03-01T14:30"), INT64_C(1709303400000));
	assert_int_equal(ts("2024-03-01T11:30:05-03:00"), INT64_C(1709303405000));
	assert_int_equal(ts("2024-03-01T11:30:05-0300"), INT64_C(1709303405000));
	assert_int_equal(ts("2024-03-01T16:30:05+02"), INT64_C(1709303405000));
	assert_int_equal(ts("2024-03-01T14:30:05.123456789Z"), INT64_C(1709303405123));
	assert_int_equal(ts("2024-03-01T14:30:05.5Z"), INT64_C(1709303405500));
	assert_int_equal(ts("2016-12-31T23:59:60Z"), ts("2017-01-01T00:00:00Z"));
	assert_int_equal(ts("1969-12-31T23:59:59.999Z"), -1);
	assert_int_equal(ts("0001-01-01T00:00:00Z"), TIMESTAMP_MIN_MS);
	assert_int_equal(ts("9999-12-31T23:59:59.999Z"), TIMESTAMP_MAX_MS);

	assert_string_equal(ts_why("2024-02-30"), "2024-02-30 is not a date");
	assert_string_equal(ts_why("2024-03-01T24:00:00Z"), "hour 24 is out of range");
	assert_string_equal(ts_why("2024-03-01T12:60Z"), "minute 60 is out of range");
	assert_string_equal(ts_why("2024-03-01T12:00:61Z"), "second 61 is out of range");
	assert_string_equal(ts_why("2024-03-01T12:00:00+24:00"), "zone offset 24:00 is out of range");
	assert_string_equal(ts_why("2024-03-01T12:00:00+"), "a zone is Z or +HH:MM");
	assert_string_equal(ts_why("2024-03-01T12:00:00+02:"), "a zone is Z or +HH:MM");
	assert_string_equal(ts_why("2024-03-01T12:00:00."), "a fraction of a second has 1 to 9 digits");
	assert_string_equal(ts_why("0001-01-01T00:00:00+01:00"), "the instant is outside the years 0001..9999");
	static const char *const malformed[] = {"",
						"2024",
						"2024-3-01",
						"2024-03-01T",
						"2024-03-01T1",
						"2024-03-01T12",
						"2024-03-01T12:0",
						"2024-03-01T12:00:0",
						"2024-03-01T12:00Zx",
						"2024-03-01Z",
						"now",
						"1709303405"};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		assert_string_equal(ts_why(malformed[i]), "expected a date-time such as 2024-03-01T14:30:00Z");
	/* The exact length is read, not up to a NUL. */
	int64_t ms;
	assert_int_equal(timestamp_parse("2024-03-01T14:30:05Zjunk", 20, &ms, NULL, 0), 0);
	assert_int_equal(ms, INT64_C(1709303405000));

	char out[TIMESTAMP_FORMAT_MAX];
	assert_int_equal(timestamp_format(INT64_C(1709303405000), out), 20);
	assert_string_equal(out, "2024-03-01T14:30:05Z");
	timestamp_format(INT64_C(1709303405123), out);
	assert_string_equal(out, "2024-03-01T14:30:05.123Z");
	timestamp_format(-1, out);
	assert_string_equal(out, "1969-12-31T23:59:59.999Z");
	timestamp_format(TIMESTAMP_MIN_MS, out);
	assert_string_equal(out, "0001-01-01T00:00:00Z");
	timestamp_format(INT64_MAX, out);
	assert_string_equal(out, "9999-12-31T23:59:59.999Z");
	for (int64_t v = TIMESTAMP_MIN_MS; v < TIMESTAMP_MAX_MS; v += INT64_C(987654321987)) {
		size_t n = timestamp_format(v, out);
		assert_int_equal(timestamp_parse(out, n, &ms, NULL, 0), 0);
		assert_int_equal(ms, v);
	}
}

/* t read in chunks of sizes around a record's limit reads as whole does. */
static void expect_cut_as_whole(const strbuf *t, const char *whole)
{
	static const size_t sizes[] = {1, 7, 1000, 8191, 8192, 8193, 9000, 20000, 65536};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		strbuf cut = STRBUF_INIT;
		describe_chunked(t->data, t->len, sizes[i], &cut);
		if (strcmp(cut.data, whole) != 0)
			fail_msg("cut every %zu bytes:\n%s\nwhole:\n%s", sizes[i], cut.data, whole);
		strbuf_fini(&cut);
	}
}

static void test_a_record_too_long_is_a_rejected_row_wherever_the_chunks_cut_it(void **state)
{
	(void)state;
	/* A quoted name of 20,000 bytes holding commas and line breaks (its
	 * record starts on line 3 and spans 201 lines), then a good row; then
	 * a quote never closed that takes the rest of a long file. */
	strbuf t = STRBUF_INIT;
	strbuf_append(&t, HEADER, strlen(HEADER));
	const char *good = "a,1,a@b.co,1,2024-01-01,x\n";
	strbuf_append(&t, good, strlen(good));
	strbuf_putc(&t, '"');
	for (int i = 0; i < 200; i++)
		strbuf_append(&t, "long, long name with \"\" quotes and a line break\n", 48);
	strbuf_append(&t, "tail\",2,b@b.co,2,2024-01-02,y\n", 30);
	strbuf_append(&t, "c,3,c@b.co,3,2024-01-03,z\n", 26);
	strbuf_append(&t, "\"open", 5);
	for (int i = 0; i < 300; i++)
		strbuf_append(&t, ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,\n", 41);
	assert_false(t.failed);
	strbuf wb = STRBUF_INIT;
	describe_n(t.data, t.len, &wb);
	char *whole = wb.data;
	assert_string_equal(whole, "2:a|1|a@b.co|1|2024-01-01|x|100|19723|\n"
				   "3:||||||0|0|" BILLING_OVERLONG_REASON "\n"
				   "204:c|3|c@b.co|3|2024-01-03|z|300|19725|\n"
				   "205:||||||0|0|" BILLING_OVERLONG_REASON "\n");
	expect_cut_as_whole(&t, whole);
	free(whole);
	strbuf_fini(&t);
}

/* A line of blanks longer than a record may be is a blank line, skipped
 * (before the header too), wherever the chunks cut it; blanks that end in
 * text are a record, too long. */
static void test_a_long_blank_line_is_skipped_wherever_the_chunks_cut_it(void **state)
{
	(void)state;
	strbuf t = STRBUF_INIT;
	for (int i = 0; i < 20000; i++)
		strbuf_putc(&t, i % 7 ? ' ' : '\t');
	strbuf_append(&t, "\r\n", 2);
	strbuf_append(&t, HEADER, strlen(HEADER));
	strbuf_append(&t, "a,1,a@b.co,1,2024-01-01,x\n", 26);
	for (int i = 0; i < 20000; i++)
		strbuf_putc(&t, ' ');
	strbuf_append(&t, "\nb,2,b@b.co,2,2024-01-02,y\n", 27);
	for (int i = 0; i < 20000; i++)
		strbuf_putc(&t, ' ');
	strbuf_append(&t, "c,3,c@b.co,3,2024-01-03,z\n", 26);
	strbuf_append(&t, "d,4,d@b.co,4,2024-01-04,w\n", 26);
	for (int i = 0; i < 20000; i++)
		strbuf_putc(&t, ' ');
	assert_false(t.failed);
	strbuf wb = STRBUF_INIT;
	describe_n(t.data, t.len, &wb);
	char *whole = wb.data;
	assert_string_equal(whole, "3:a|1|a@b.co|1|2024-01-01|x|100|19723|\n"
				   "5:b|2|b@b.co|2|2024-01-02|y|200|19724|\n"
				   "6:||||||0|0|" BILLING_OVERLONG_REASON "\n"
				   "7:d|4|d@b.co|4|2024-01-04|w|400|19726|\n");
	expect_cut_as_whole(&t, whole);
	free(whole);
	strbuf_fini(&t);
}

/* The import takes exactly the addresses the sender takes (mail.h's
 * mail_addr_check, recipients' rule): non-ASCII and dots at either end of
 * the local part, which the sender refuses, are rejected here with the row,
 * not after an e-mail's first attempt. */
static void test_an_email_is_valid_exactly_when_the_sender_takes_it(void **state)
{
	(void)state;
	static const struct {
		const char *email;
		int valid;
	} cases[] = {
		{"a@b.co", 1},
		{"john.doe+bill@mail.example.com.br", 1},
		{"o'neil@b.co", 1},
		{"{x}|y=z?#$%&*/^_`~-!@b.co", 1},
		{"a@b-c.d-e", 1},
		{"jos\xc3\xa9@b.co", 0},
		{"a@b\xc3\xa9.co", 0},
		{".a@b.co", 0},
		{"a.@b.co", 0},
		{"a..b@c.co", 0},
		{"a@b", 0},
		{"a@.b.co", 0},
		{"a@b.co.", 0},
		{"a@b..co", 0},
		{"@b.co", 0},
		{"a@", 0},
		{"a@@b.co", 0},
		{"a@b@c.co", 0},
		{"a\"b@c.co", 0},
		{"a(b)@c.co", 0},
		{"a,b@c.co", 0},
		{"a:b@c.co", 0},
		{"a;b@c.co", 0},
		{"a[b]@c.co", 0},
		{"a\\b@c.co", 0},
		{"<a@b.co>", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *e = cases[i].email;
		char line[512], want[256];
		assert_int_equal(mail_addr_check(e, strlen(e), 1), cases[i].valid);
		/* A CSV field: quoted when it holds a quote or a comma. */
		if (strpbrk(e, "\",") != NULL) {
			char q[200];
			size_t o = 0;
			q[o++] = '"';
			for (const char *p = e; *p; p++) {
				if (*p == '"')
					q[o++] = '"';
				q[o++] = *p;
			}
			q[o++] = '"';
			q[o] = '\0';
			snprintf(line, sizeof(line), "a,1,%s,1,2024-01-01,x", q);
		} else {
			snprintf(line, sizeof(line), "a,1,%s,1,2024-01-01,x", e);
		}
		if (cases[i].valid) {
			snprintf(want, sizeof(want), "valid");
		} else {
			char shown[128];
			utf8_quote(e, strlen(e), shown, sizeof(shown));
			snprintf(want, sizeof(want), "email %s is not an address", shown);
		}
		assert_string_equal(reason_of(line), want);
	}
	/* Longest: 254 bytes. */
	char longest[300];
	memset(longest, 'a', sizeof(longest));
	memcpy(longest + 254 - 5, "@b.co", 6);
	assert_int_equal(mail_addr_check(longest, 254, 1), 1);
	memset(longest, 'a', sizeof(longest));
	memcpy(longest + 255 - 5, "@b.co", 6);
	assert_int_equal(mail_addr_check(longest, 255, 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_record_too_long_is_a_rejected_row_wherever_the_chunks_cut_it),
		cmocka_unit_test(test_a_long_blank_line_is_skipped_wherever_the_chunks_cut_it),
		cmocka_unit_test(test_rows_are_read_with_cents_days_and_trimmed_fields),
		cmocka_unit_test(test_each_rule_rejects_a_row_naming_its_field),
		cmocka_unit_test(test_a_file_without_its_header_cannot_be_read),
		cmocka_unit_test(test_a_file_cut_at_every_size_reads_as_the_whole),
		cmocka_unit_test(test_the_sample_gives_1999_debts_from_2053_valid_rows),
		cmocka_unit_test(test_amounts_are_exact_cents_and_format_with_two_decimals),
		cmocka_unit_test(test_paid_at_reads_rfc3339_and_iso8601_instants),
		cmocka_unit_test(test_an_email_is_valid_exactly_when_the_sender_takes_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
