/*
 * The services' CSV reader and writer (server/services/common/csv.c): plain and quoted fields, "" escapes,
 * blanks and '\r' around fields, blank lines, line numbers that count the
 * line breaks inside quoted fields, the two malformed cases, the chunk cut
 * and carry helpers agreeing with the reader, and the writer's quoting
 * reading back to the same text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv.h"

typedef struct parsed {
	char buf[512];
	csv_reader r;
	csv_record rec;
	rpcq_error err;
} parsed;

static void start(parsed *p, const char *text)
{
	size_t n = strlen(text);
	assert_true(n < sizeof(p->buf));
	memcpy(p->buf, text, n);
	csv_init(&p->r, p->buf, n, 1);
}

static void assert_field(const csv_record *rec, size_t i, const char *want)
{
	assert_true(i < rec->nfields);
	assert_int_equal(rec->field[i].len, strlen(want));
	assert_memory_equal(rec->field[i].ptr, want, strlen(want));
}

static void test_plain_fields_are_split_at_commas(void **state)
{
	(void)state;
	parsed p;
	start(&p, "VEST,E001,Alice Smith,ISO-001,2020-01-01,1000\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_int_equal(p.rec.nfields, 6);
	assert_field(&p.rec, 0, "VEST");
	assert_field(&p.rec, 2, "Alice Smith");
	assert_field(&p.rec, 5, "1000");
	assert_int_equal(p.rec.line, 1);
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 0);
}

static void test_blanks_and_carriage_returns_around_fields_are_ignored(void **state)
{
	(void)state;
	parsed p;
	start(&p, "  VEST ,\tE001\t, Alice Smith ,ISO-001,2020-01-01,1000\r\nCANCEL,E2,B,A,2020-01-01,5\r");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_field(&p.rec, 0, "VEST");
	assert_field(&p.rec, 1, "E001");
	assert_field(&p.rec, 2, "Alice Smith");
	assert_field(&p.rec, 5, "1000");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_field(&p.rec, 5, "5");
	assert_int_equal(p.rec.line, 2);
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 0);
}

static void test_empty_and_blank_lines_are_skipped_but_counted(void **state)
{
	(void)state;
	parsed p;
	start(&p, "\n  \r\n\nA,B\n\n\r\nC\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_int_equal(p.rec.line, 4);
	assert_field(&p.rec, 1, "B");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_int_equal(p.rec.line, 7);
	assert_int_equal(p.rec.nfields, 1);
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 0);
}

static void test_quoted_fields_keep_commas_quotes_and_line_breaks(void **state)
{
	(void)state;
	parsed p;
	start(&p, "VEST, \"Smith, Alice\" ,\"say \"\"hi\"\"\",\"two\nlines\",x\nnext\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_int_equal(p.rec.nfields, 5);
	assert_field(&p.rec, 1, "Smith, Alice");
	assert_field(&p.rec, 2, "say \"hi\"");
	assert_field(&p.rec, 3, "two\nlines");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_int_equal(p.rec.line, 3);
}

static void test_a_quote_inside_an_unquoted_field_is_an_ordinary_character(void **state)
{
	(void)state;
	parsed p;
	start(&p, "a\"b,c\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_field(&p.rec, 0, "a\"b");
}

static void test_an_unclosed_quote_is_an_error_naming_the_record_line(void **state)
{
	(void)state;
	parsed p;
	start(&p, "ok\n\"never\nclosed\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), -1);
	assert_int_equal(p.err.code, RPCQ_INVALID_ARGUMENT);
	assert_string_equal(p.err.message, "line 2: a quoted field is not closed before the end of the input");
}

static void test_text_after_a_closing_quote_is_an_error(void **state)
{
	(void)state;
	parsed p;
	start(&p, "a,\"b\"c,d\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), -1);
	assert_string_equal(p.err.message, "line 1: field 2: text after the closing quote");
	assert_string_equal(p.rec.bad, "field 2: text after the closing quote");
	assert_int_equal(p.rec.line, 1);
}

static void test_the_reader_goes_on_after_a_malformed_record(void **state)
{
	(void)state;
	parsed p;
	/* The text after the quote runs to the field's end, as csv_cut reads
	 * it: the ',' inside the second quoted field does not end the record. */
	start(&p, "\"a\n1\"x\"y,\"b,\nc\"\nnext,row\n\"open\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), -1);
	assert_int_equal(p.rec.line, 1);
	assert_string_equal(p.err.message, "line 1: field 1: text after the closing quote");
	assert_int_equal(p.rec.nfields, 2);
	assert_field(&p.rec, 1, "b,\nc");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_int_equal(p.rec.line, 4);
	assert_field(&p.rec, 0, "next");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), -1);
	assert_int_equal(p.rec.line, 5);
	assert_string_equal(p.err.message, "line 5: a quoted field is not closed before the end of the input");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 0);
	assert_int_equal(p.r.line, 6);
}

static void test_a_no_break_space_after_a_closing_quote_is_a_blank(void **state)
{
	(void)state;
	parsed p;
	start(&p, "\"a\"\xc2\xa0 ,\"b\" \xc2\xa0\r\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_field(&p.rec, 0, "a");
	assert_field(&p.rec, 1, "b");
	assert_int_equal(p.rec.bytes, strlen("\"a\"\xc2\xa0 ,\"b\" \xc2\xa0\r\n"));
	/* U+202F and U+2007 too. */
	start(&p, "\"c\"\xe2\x80\xaf,\"d\"\xe2\x80\x87 \xc2\xa0\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_field(&p.rec, 0, "c");
	assert_field(&p.rec, 1, "d");
}

static void test_a_last_record_without_line_break_is_read(void **state)
{
	(void)state;
	parsed p;
	start(&p, "a,b\nc,\"d\"");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_field(&p.rec, 1, "d");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 0);
}

static void test_records_with_more_fields_than_kept_report_the_true_count(void **state)
{
	(void)state;
	parsed p;
	start(&p, "1,2,3,4,5,6,7,8,9,10\n");
	assert_int_equal(csv_next(&p.r, &p.rec, &p.err), 1);
	assert_int_equal(p.rec.nfields, 10);
}

static void test_cut_keeps_whole_records_and_never_splits_a_quoted_field(void **state)
{
	(void)state;
	const char *text = "a,b\n\"x\ny\",z\nc,d\n";
	size_t len = strlen(text);
	uint64_t nl;
	assert_int_equal(csv_cut(text, len, 100, &nl), len);
	assert_int_equal(nl, 4);
	/* A limit inside the quoted record cuts after the first record. */
	assert_int_equal(csv_cut(text, len, 8, &nl), 4);
	assert_int_equal(nl, 1);
	assert_int_equal(csv_cut(text, len, 12, &nl), 12);
	assert_int_equal(nl, 3);
	assert_int_equal(csv_cut(text, len, 2, &nl), 0);
}

static void test_complete_leaves_a_partial_record_for_the_next_chunk(void **state)
{
	(void)state;
	assert_int_equal(csv_complete("a,b\nc,d", 7), 4);
	assert_int_equal(csv_complete("a,b\nc,d\n", 8), 8);
	assert_int_equal(csv_complete("a,\"b\nc", 6), 0);
	assert_int_equal(csv_complete("x\na,\"b\nc\"\n", 10), 10);
	assert_int_equal(csv_complete("", 0), 0);
}

static void test_written_fields_are_quoted_only_when_needed_and_read_back(void **state)
{
	(void)state;
	strbuf b = STRBUF_INIT;
	csv_write_field(&b, "plain", 5);
	strbuf_putc(&b, ',');
	csv_write_field(&b, "Doe, Jane", 9);
	strbuf_putc(&b, ',');
	csv_write_field(&b, "say \"hi\"", 8);
	strbuf_putc(&b, ',');
	csv_write_field(&b, "a\nb", 3);
	strbuf_putc(&b, '\n');
	assert_false(b.failed);
	const char *want = "plain,\"Doe, Jane\",\"say \"\"hi\"\"\",\"a\nb\"\n";
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);

	csv_reader r;
	csv_record rec;
	rpcq_error err;
	csv_init(&r, b.data, b.len, 1);
	assert_int_equal(csv_next(&r, &rec, &err), 1);
	assert_int_equal(rec.nfields, 4);
	assert_field(&rec, 1, "Doe, Jane");
	assert_field(&rec, 2, "say \"hi\"");
	assert_field(&rec, 3, "a\nb");
	strbuf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_fields_are_split_at_commas),
		cmocka_unit_test(test_blanks_and_carriage_returns_around_fields_are_ignored),
		cmocka_unit_test(test_empty_and_blank_lines_are_skipped_but_counted),
		cmocka_unit_test(test_quoted_fields_keep_commas_quotes_and_line_breaks),
		cmocka_unit_test(test_a_quote_inside_an_unquoted_field_is_an_ordinary_character),
		cmocka_unit_test(test_an_unclosed_quote_is_an_error_naming_the_record_line),
		cmocka_unit_test(test_text_after_a_closing_quote_is_an_error),
		cmocka_unit_test(test_the_reader_goes_on_after_a_malformed_record),
		cmocka_unit_test(test_a_no_break_space_after_a_closing_quote_is_a_blank),
		cmocka_unit_test(test_a_last_record_without_line_break_is_read),
		cmocka_unit_test(test_records_with_more_fields_than_kept_report_the_true_count),
		cmocka_unit_test(test_cut_keeps_whole_records_and_never_splits_a_quoted_field),
		cmocka_unit_test(test_complete_leaves_a_partial_record_for_the_next_chunk),
		cmocka_unit_test(test_written_fields_are_quoted_only_when_needed_and_read_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
