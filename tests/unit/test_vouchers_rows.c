/*
 * Reading the rows of the vouchers exports (server/services/vouchers/rows.h)
 * and chunked uploads at byte offsets (server/services/common/upload.h):
 * the header, each check of a row with its reason, line numbers across
 * chunks, and upload_take's duplicates, gaps, overlaps, carries and end of
 * file, including a file cut at every byte giving the rows of the whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv.h"
#include "rows.h"
#include "upload.h"
#include "utf8.h"

/* Every row of text as "line:a|b|reason\n" (a file's whole text, or what
 * the reader refused as "error: ..."). */
static void describe(vouchers_file file, const char *text, char *out, size_t cap)
{
	char *copy = strdup(text);
	assert_non_null(copy);
	vouchers_reader r;
	vouchers_row row;
	rpcq_error err;
	int k;
	size_t len = 0;
	out[0] = '\0';
	vouchers_reader_init(&r, file, copy, strlen(copy), 1, 0);
	while ((k = vouchers_reader_next(&r, &row, &err)) == 1)
		len += (size_t)snprintf(out + len, cap - len, "%llu:%.*s|%.*s|%s\n", (unsigned long long)row.line,
					(int)row.a_len, row.a, (int)row.b_len, row.b ? row.b : "",
					row.reason ? row.reason : "");
	if (k < 0)
		snprintf(out + len, cap - len, "error: %s", err.message);
	free(copy);
}

static void test_rows_of_orders_and_barcodes_with_their_reasons(void **state)
{
	(void)state;
	char out[2048];
	describe(VOUCHERS_ORDERS, " Order_ID , customer_id\r\n1,10\n\n2, 11 \n,12\n3,\n4,5,6\n\"7,8\",9\n", out,
		 sizeof(out));
	assert_string_equal(out, "2:1|10|\n"
				 "4:2|11|\n"
				 "5:|12|order_id is empty\n"
				 "6:3||customer_id is empty\n"
				 "7:4||expected 2 fields (order_id,customer_id), found 3\n"
				 "8:7,8|9|\n");
	describe(VOUCHERS_BARCODES, "barcode,order_id\nA,1\nB,\n,3\nC\x01,4\nD,\xff\n", out, sizeof(out));
	assert_string_equal(out, "2:A|1|\n"
				 "3:B||\n"
				 "4:|3|barcode is empty\n"
				 "5:C\x01|4|barcode holds a control character\n"
				 "6:D|\xff|order_id is not valid UTF-8\n");
	char longid[200];
	memset(longid, 'x', 65);
	snprintf(longid + 65, sizeof(longid) - 65, ",1\n");
	char text[300];
	snprintf(text, sizeof(text), "barcode,order_id\n%s", longid);
	describe(VOUCHERS_BARCODES, text, out, sizeof(out));
	assert_non_null(strstr(out, "|barcode is longer than 64 bytes\n"));
}

static void test_a_file_without_its_header_cannot_be_read(void **state)
{
	(void)state;
	char out[1024];
	describe(VOUCHERS_ORDERS, "1,10\n2,11\n", out, sizeof(out));
	assert_string_equal(
		out, "error: line 1: the header must be order_id,customer_id (found 2 field(s), the first \"1\")");
	describe(VOUCHERS_BARCODES, "\n\nbarcode\n", out, sizeof(out));
	assert_string_equal(
		out, "error: line 3: the header must be barcode,order_id (found 1 field(s), the first \"barcode\")");
	/* Malformed CSV after the header is a rejected row, and the file reads
	 * on; a byte order mark before the header is not part of it. */
	describe(VOUCHERS_BARCODES,
		 "\xef\xbb\xbf"
		 "barcode,order_id\nA,\"1\"x\nB,2\nC,\"1\n",
		 out, sizeof(out));
	assert_string_equal(out, "2:A||field 2: text after the closing quote\n"
				 "3:B|2|\n"
				 "4:C||a quoted field is not closed before the end of the input\n");
	char q[64];
	utf8_quote("a\"b\n", 4, q, sizeof(q));
	assert_string_equal(q, "\"a\\\"b\\x0a\"");
}

/* Takes text in chunks of size n through upload_take (carry kept here, as a
 * service keeps it) and describes the rows read, as describe does. */
static void describe_chunked(vouchers_file file, const char *text, size_t n, char *out, size_t cap)
{
	upload_state st = UPLOAD_STATE_INIT;
	strbuf work = STRBUF_INIT, carry = STRBUF_INIT;
	size_t len = strlen(text), off = 0, olen = 0;
	int header = 0;
	out[0] = '\0';
	do {
		size_t k = len - off < n ? len - off : n;
		upload_piece pc;
		rpcq_error err;
		assert_int_equal(upload_take(&st, carry.data, carry.len, off, text + off, k, off + k == len, 64, &work,
					     &pc, &err),
				 RPCQ_OK);
		assert_int_equal(pc.action, UPLOAD_TAKEN);
		vouchers_reader r;
		vouchers_row row;
		int got;
		vouchers_reader_init(&r, file, pc.records, pc.records_len, pc.first_line, header);
		while ((got = vouchers_reader_next(&r, &row, &err)) == 1)
			olen += (size_t)snprintf(out + olen, cap - olen, "%llu:%.*s|%.*s|%s\n",
						 (unsigned long long)row.line, (int)row.a_len, row.a, (int)row.b_len,
						 row.b ? row.b : "", row.reason ? row.reason : "");
		assert_int_equal(got, 0);
		header = r.header_seen;
		carry.len = 0;
		strbuf_append(&carry, pc.carry, pc.carry_len);
		off += k;
	} while (off < len);
	assert_true(st.complete);
	assert_int_equal(st.received, len);
	strbuf_fini(&work);
	strbuf_fini(&carry);
}

static void test_a_file_cut_at_every_size_reads_as_the_whole(void **state)
{
	(void)state;
	const char text[] = "barcode,order_id\r\nA,1\r\n\"B\nB\",2\n\nC,\n\"D,\"\"x\"\"\",3\r\nE,4";
	char whole[2048], cut[2048];
	describe(VOUCHERS_BARCODES, text, whole, sizeof(whole));
	assert_string_equal(whole, "2:A|1|\n3:B\nB|2|barcode holds a control character\n6:C||\n7:D,\"x\"|3|\n8:E|4|\n");
	for (size_t n = 1; n <= sizeof(text); n++) {
		describe_chunked(VOUCHERS_BARCODES, text, n, cut, sizeof(cut));
		assert_string_equal(cut, whole);
	}
}

static void test_upload_take_resends_gaps_overlaps_and_the_end(void **state)
{
	(void)state;
	upload_state st = UPLOAD_STATE_INIT;
	strbuf work = STRBUF_INIT;
	upload_piece pc;
	rpcq_error err;
	const char text[] = "a,1\nb,2\nc,3\n";
	/* "a,1\nb," : one whole record, "b," carried. */
	assert_int_equal(upload_take(&st, "", 0, 0, text, 6, 0, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(pc.records_len, 4);
	assert_int_equal(pc.carry_len, 2);
	assert_int_equal(st.received, 6);
	assert_int_equal(st.line, 2);
	/* Resent: nothing. */
	assert_int_equal(upload_take(&st, "b,", 2, 0, text, 6, 0, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(pc.action, UPLOAD_DUPLICATE);
	assert_int_equal(upload_take(&st, "b,", 2, 2, text + 2, 3, 0, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(pc.action, UPLOAD_DUPLICATE);
	/* A gap. */
	assert_int_equal(upload_take(&st, "b,", 2, 7, text + 7, 2, 0, 64, &work, &pc, &err), RPCQ_FAILED_PRECONDITION);
	assert_string_equal(err.message, "chunk at byte 7 leaves a gap: the upload has 6 bytes, send from there");
	assert_int_equal(st.received, 6);
	/* Overlapping: bytes 4..9, of which 6..9 are new. */
	assert_int_equal(upload_take(&st, "b,", 2, 4, text + 4, 5, 0, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(pc.action, UPLOAD_TAKEN);
	assert_int_equal(pc.first_line, 2);
	assert_memory_equal(pc.records, "b,2\n", 4);
	assert_int_equal(pc.records_len, 4);
	assert_memory_equal(pc.carry, "c", 1);
	/* The last chunk: everything is records. A zero-length last chunk at
	 * the end also ends a file. */
	assert_int_equal(upload_take(&st, "c", 1, 9, text + 9, 3, 1, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(pc.records_len, 4);
	assert_int_equal(pc.carry_len, 0);
	assert_true(st.complete);
	assert_int_equal(st.line, 4);
	/* After the end: a resend is a duplicate, new bytes are refused, and a
	 * last chunk that ends earlier contradicts the file. */
	assert_int_equal(upload_take(&st, "", 0, 9, text + 9, 3, 1, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(pc.action, UPLOAD_DUPLICATE);
	assert_int_equal(upload_take(&st, "", 0, 12, "d", 1, 1, 64, &work, &pc, &err), RPCQ_FAILED_PRECONDITION);
	assert_int_equal(upload_take(&st, "", 0, 0, text, 4, 1, 64, &work, &pc, &err), RPCQ_FAILED_PRECONDITION);
	upload_state empty = UPLOAD_STATE_INIT;
	assert_int_equal(upload_take(&empty, "", 0, 0, "", 0, 1, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(pc.action, UPLOAD_TAKEN);
	assert_true(empty.complete);
	assert_int_equal(empty.line, 1); /* no lines */
	/* A last line without a line break is a line too. */
	upload_state open_end = UPLOAD_STATE_INIT;
	assert_int_equal(upload_take(&open_end, "", 0, 0, "a,1\nb,2", 7, 0, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(open_end.line, 2);
	assert_int_equal(pc.carry_len, 3);
	assert_memory_equal(pc.carry, "b,2", 3);
	assert_int_equal(upload_take(&open_end, "b,2", 3, 7, "", 0, 1, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(pc.records_len, 3);
	assert_int_equal(open_end.line, 3);
	/* A record longer than the carry allows is named and not carried: the
	 * next chunks skip the rest of it, a quoted line break included. */
	upload_state big = UPLOAD_STATE_INIT;
	char longrec[100];
	memset(longrec, 'x', sizeof(longrec));
	memcpy(longrec, "a,b\n  \nx,\"", 10); /* a record, a blank line, a long one */
	assert_int_equal(upload_take(&big, "", 0, 0, longrec, sizeof(longrec), 0, 64, &work, &pc, &err), RPCQ_OK);
	assert_int_equal(pc.records_len, 7);
	assert_int_equal(pc.carry_len, 0);
	assert_int_equal(pc.overlong_line, 3);
	assert_int_equal(big.skip, CSV_IN_QUOTED);
	assert_int_equal(big.received, sizeof(longrec));
	const char more[] = "x\n\" still quoted\",y\nA,1\n";
	assert_int_equal(upload_take(&big, "", 0, sizeof(longrec), more, strlen(more), 0, 64, &work, &pc, &err),
			 RPCQ_OK);
	assert_int_equal(pc.overlong_line, 0);
	assert_int_equal(big.skip, 0);
	assert_int_equal(pc.first_line, 5);
	assert_int_equal(pc.records_len, 4);
	assert_memory_equal(pc.records, "A,1\n", 4);
	assert_int_equal(big.line, 6);
	strbuf_fini(&work);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows_of_orders_and_barcodes_with_their_reasons),
		cmocka_unit_test(test_a_file_without_its_header_cannot_be_read),
		cmocka_unit_test(test_a_file_cut_at_every_size_reads_as_the_whole),
		cmocka_unit_test(test_upload_take_resends_gaps_overlaps_and_the_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
