/*
 * The PDF slip (server/services/billing/slip_pdf.h) and its barcode's bars
 * (itf.h): Interleaved 2 of 5 as the symbology defines it, read back for
 * every boleto the test makes; the PDF read back by poppler's pdftotext, as
 * a reader of the slip sees it: every field, accents kept, control bytes
 * and broken UTF-8 as '?', a long name cut at its box, the same bytes for
 * the same bill; and its bars read by a barcode scanner (zbar's zbarimg on
 * the page rendered at 300 dpi by poppler's pdftoppm) as the barcode.
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

#include "boleto.h"
#include "date.h"
#include "itf.h"
#include "slip_pdf.h"

static int32_t day_of(const char *s)
{
	int32_t d;
	assert_int_equal(date_parse(s, strlen(s), &d), DATE_OK);
	return d;
}

/* The widths as the letters of the symbology's tables: n narrow, w wide. */
static void letters(const unsigned char *w, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = w[i] == ITF_WIDE ? 'w' : w[i] == ITF_NARROW ? 'n' : '?';
	out[n] = '\0';
}

static void test_itf_draws_digit_pairs_as_bars_and_spaces(void **state)
{
	(void)state;
	unsigned char w[ITF_ELEMENTS(44)];
	char s[sizeof(w) + 1];
	/* "12": 1 = wnnnw in the bars, 2 = nwnnw in the spaces between them,
	 * after the start (nnnn) and before the stop (wnn). */
	assert_int_equal(itf_encode("12", 2, w, sizeof(w)), ITF_ELEMENTS(2));
	letters(w, ITF_ELEMENTS(2), s);
	assert_string_equal(s, "nnnn"
			       "wnnwnnnnww"
			       "wnn");
	/* Every digit in both places. */
	const char *all = "0123456789"
			  "9876543210";
	assert_int_equal(itf_encode(all, 20, w, sizeof(w)), ITF_ELEMENTS(20));
	char back[64];
	assert_int_equal(itf_decode(w, ITF_ELEMENTS(20), back, sizeof(back)), 20);
	assert_string_equal(back, all);

	/* What ITF cannot draw. */
	assert_int_equal(itf_encode("123", 3, w, sizeof(w)), 0);
	assert_int_equal(itf_encode("", 0, w, sizeof(w)), 0);
	assert_int_equal(itf_encode("1a", 2, w, sizeof(w)), 0);
	assert_int_equal(itf_encode("12", 2, w, ITF_ELEMENTS(2) - 1), 0);
	/* Widths that are not ITF. */
	assert_int_equal(itf_encode("12", 2, w, sizeof(w)), ITF_ELEMENTS(2));
	w[5] = ITF_WIDE; /* a third wide bar in the pair */
	assert_int_equal(itf_decode(w, ITF_ELEMENTS(2), back, sizeof(back)), 0);
	assert_int_equal(itf_decode(w, ITF_ELEMENTS(2) - 1, back, sizeof(back)), 0);
}

static void test_every_boleto_barcode_reads_back_from_its_bars(void **state)
{
	(void)state;
	for (uint64_t number = 1; number < 5000000000ULL; number = number * 7 + 3) {
		boleto_input in = {237, 12345, number, day_of("2026-03-01") + (int32_t)(number % 900),
				   (int64_t)(number % 999999999) + 1};
		boleto b;
		rpcq_error err;
		assert_int_equal(boleto_make(&in, &b, &err), RPCQ_OK);
		unsigned char w[ITF_ELEMENTS(BOLETO_BARCODE_LEN)];
		assert_int_equal(itf_encode(b.barcode, BOLETO_BARCODE_LEN, w, sizeof(w)), sizeof(w));
		/* 44 digits: 405 modules, 103 mm at FEBRABAN's 0.254 mm. */
		size_t modules = 0;
		for (size_t i = 0; i < sizeof(w); i++)
			modules += w[i];
		assert_int_equal(modules, 405);
		char back[BOLETO_BARCODE_LEN + 1];
		assert_int_equal(itf_decode(w, sizeof(w), back, sizeof(back)), BOLETO_BARCODE_LEN);
		assert_string_equal(back, b.barcode);
	}
}

/* What pdftotext (scan 0) or a scanner reading the page's bars (scan 1)
 * makes of pdf, NUL-terminated (malloc'd). */
static char *pdf_read(const strbuf *pdf, int scan)
{
	char path[] = "/tmp/rpcq-slip-pdf-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, pdf->data, pdf->len), (ssize_t)pdf->len);
	close(fd);
	char cmd[512];
	if (scan)
		snprintf(cmd, sizeof(cmd),
			 "pdftoppm -r 300 -png -singlefile %s %s && zbarimg -q %s.png 2>/dev/null; rc=$?; rm -f %s.png;"
			 " exit $rc",
			 path, path, path, path);
	else
		snprintf(cmd, sizeof(cmd), "pdftotext -enc UTF-8 %s - 2>&1", path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	char *text = calloc(1, 65536);
	assert_non_null(text);
	size_t n = fread(text, 1, 65535, f);
	text[n] = '\0';
	int rc = pclose(f);
	unlink(path);
	if (rc != 0)
		fail_msg("%s (installed by scripts/setup) failed: %s", scan ? "pdftoppm or zbarimg" : "pdftotext",
			 text);
	return text;
}

static char *pdf_text(const strbuf *pdf)
{
	return pdf_read(pdf, 0);
}

/* What a scanner reads from the page's bars: symbology and digits. */
static char *pdf_scan(const strbuf *pdf)
{
	return pdf_read(pdf, 1);
}

static void test_the_pdf_slip_shows_every_field_as_a_reader_sees_it(void **state)
{
	(void)state;
	boleto_input in = {1, 4321, 42, day_of("2024-01-19"), 781100};
	boleto b;
	rpcq_error err;
	assert_int_equal(boleto_make(&in, &b, &err), RPCQ_OK);
	slip_input s = {"rpcq Billing",
			"Jo\xc3\xa3o Gon\xc3\xa7"
			"alves \xe2\x80\x94 S\xc3\xa3o Paulo",
			"123.456.789-09",
			"ea23f2ca-663a-4266-a742-9da4c9f4fcb3",
			781100,
			in.due_day,
			&b};
	strbuf pdf = STRBUF_INIT;
	assert_int_equal(slip_pdf_render(&pdf, &s, &err), RPCQ_OK);
	assert_true(pdf.len > 1000 && pdf.len < 16384);
	assert_memory_equal(pdf.data, "%PDF-1.", 7);

	char *text = pdf_text(&pdf);
	assert_non_null(strstr(text, "rpcq Billing"));
	assert_non_null(strstr(text, "Bank 001"));
	assert_non_null(strstr(text, b.printed));
	assert_non_null(strstr(text, b.barcode));
	assert_non_null(strstr(text, "Jo\xc3\xa3o Gon\xc3\xa7"
				     "alves \xe2\x80\x94 S\xc3\xa3o Paulo"));
	assert_non_null(strstr(text, "123.456.789-09"));
	assert_non_null(strstr(text, "ea23f2ca-663a-4266-a742-9da4c9f4fcb3"));
	assert_non_null(strstr(text, "2024-01-19"));
	assert_non_null(strstr(text, "7811.00"));
	free(text);

	char expect[64];
	snprintf(expect, sizeof(expect), "I2/5:%s\n", b.barcode);
	text = pdf_scan(&pdf);
	assert_string_equal(text, expect);
	free(text);

	/* The same bill, the same bytes. */
	strbuf again = STRBUF_INIT;
	assert_int_equal(slip_pdf_render(&again, &s, &err), RPCQ_OK);
	assert_int_equal(again.len, pdf.len);
	assert_memory_equal(again.data, pdf.data, pdf.len);
	strbuf_fini(&again);
	strbuf_fini(&pdf);

	/* Control bytes, broken UTF-8 and letters outside Windows-1252 become
	 * '?'; a name wider than its box is cut there. */
	char long_name[400];
	memset(long_name, 'M', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	s.payer_name = "Ann \x1b[31m \xe4\xb8\xad";
	s.debt_id = "d\xff";
	s.government_id = long_name;
	assert_int_equal(slip_pdf_render(&pdf, &s, &err), RPCQ_OK);
	text = pdf_text(&pdf);
	assert_non_null(strstr(text, "Ann ?[31m ?"));
	assert_non_null(strstr(text, "d?"));
	assert_null(strchr(text, '\x1b'));
	assert_non_null(strstr(text, "MMMMMMMMMM"));
	assert_null(strstr(text, long_name + 200));
	free(text);
	strbuf_fini(&pdf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_itf_draws_digit_pairs_as_bars_and_spaces),
		cmocka_unit_test(test_every_boleto_barcode_reads_back_from_its_bars),
		cmocka_unit_test(test_the_pdf_slip_shows_every_field_as_a_reader_sees_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
