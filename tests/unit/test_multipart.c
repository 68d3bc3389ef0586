/*
 * multipart/form-data bodies (server/gateway/multipart.h) as POST
 * /billing/imports reads them: the bodies curl and browsers send, the same
 * callbacks however the body is cut into pieces, data passed on as soon as it
 * cannot be the delimiter, text that almost is the delimiter kept as data,
 * and every malformed body refused with a reason and the byte it is at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "multipart.h"

/* What the callbacks saw: a transcript (part headers, data, ends) that does
 * not depend on how the data was cut, and each part's data on its own. */
typedef struct rec {
	char *log;
	size_t log_len, log_cap;
	char *data[8];
	size_t data_len[8];
	int parts, ends, pieces, empty_pieces;
	int stop_on_part; /* on_part returns 1 for this index (-1: never) */
	uint64_t emitted; /* data bytes passed on so far */
} rec;

static void add(rec *r, const char *s, size_t n)
{
	if (r->log_len + n + 1 > r->log_cap) {
		r->log_cap = (r->log_len + n + 1) * 2;
		r->log = realloc(r->log, r->log_cap);
		assert_non_null(r->log);
	}
	memcpy(r->log + r->log_len, s, n);
	r->log_len += n;
	r->log[r->log_len] = '\0';
}

static void addf(rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void addf(rec *r, const char *fmt, ...)
{
	char b[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof b);
	add(r, b, (size_t)n);
}

static void rec_init(rec *r)
{
	memset(r, 0, sizeof *r);
	r->stop_on_part = -1;
	add(r, "", 0);
}

static void rec_fini(rec *r)
{
	free(r->log);
	for (int i = 0; i < 8; i++)
		free(r->data[i]);
}

#define OR_NULL(s) ((s) ? (s) : "(null)")

static int on_part(void *arg, const multipart_part *p)
{
	rec *r = arg;
	assert_int_equal(p->index, r->parts);
	assert_int_equal(r->ends, r->parts);
	addf(r, "[part %d at %llu disposition=%s name=%s filename=%s type=%s", p->index, (unsigned long long)p->offset,
	     OR_NULL(p->disposition), OR_NULL(p->name), OR_NULL(p->filename), OR_NULL(p->content_type));
	for (int i = 0; i < p->nheaders; i++)
		addf(r, " {%s: %s}", p->headers[i].name, p->headers[i].value);
	add(r, "]", 1);
	r->parts++;
	return p->index == r->stop_on_part;
}

static int on_data(void *arg, const char *data, size_t len)
{
	rec *r = arg;
	int k = r->parts - 1;
	assert_true(k >= 0 && r->ends == k);
	if (len == 0)
		r->empty_pieces++;
	r->pieces++;
	r->emitted += len;
	add(r, data, len);
	if (k < 8) {
		r->data[k] = realloc(r->data[k], r->data_len[k] + len + 1);
		assert_non_null(r->data[k]);
		memcpy(r->data[k] + r->data_len[k], data, len);
		r->data_len[k] += len;
		r->data[k][r->data_len[k]] = '\0';
	}
	return 0;
}

static int on_part_end(void *arg, const multipart_part *p)
{
	rec *r = arg;
	assert_int_equal(p->index, r->ends);
	addf(r, "[end %d]", p->index);
	r->ends++;
	return 0;
}

static const multipart_callbacks callbacks = {on_part, on_data, on_part_end};

/* Feeds body to a parser for boundary in pieces of piece bytes (0: whole),
 * then finishes. Returns what failed first (MULTIPART_OK when nothing did),
 * with the error in err and *at. */
static int run(const char *boundary, const char *body, size_t len, size_t piece, rec *r, char *err, size_t errlen,
	       uint64_t *at)
{
	multipart_parser mp;
	assert_int_equal(multipart_init(&mp, boundary), 0);
	if (piece == 0)
		piece = len ? len : 1;
	int rc = MULTIPART_OK;
	for (size_t off = 0; off < len && rc == MULTIPART_OK; off += piece) {
		size_t n = len - off < piece ? len - off : piece;
		rc = multipart_feed(&mp, body + off, n, &callbacks, r);
	}
	if (rc == MULTIPART_OK)
		rc = multipart_finish(&mp);
	snprintf(err, errlen, "%s", multipart_error(&mp, at));
	assert_int_equal(r->empty_pieces, 0);
	return rc;
}

/* Runs body whole, then in pieces of every size from 1 byte up and in
 * random pieces, checking every way gives the same transcript and result.
 * Returns the whole run's result; *whole holds its transcript. */
static int run_every_way(const char *boundary, const char *body, size_t len, rec *whole, char *err, size_t errlen,
			 uint64_t *at)
{
	rec_init(whole);
	int rc = run(boundary, body, len, 0, whole, err, errlen, at);
	for (size_t piece = 1; piece <= len + 1; piece++) {
		rec cut;
		char err2[256];
		uint64_t at2 = 0;
		rec_init(&cut);
		int rc2 = run(boundary, body, len, piece, &cut, err2, sizeof err2, &at2);
		assert_int_equal(rc2, rc);
		assert_string_equal(err2, err);
		assert_int_equal(at2, *at);
		assert_int_equal(cut.log_len, whole->log_len);
		assert_memory_equal(cut.log, whole->log, whole->log_len);
		rec_fini(&cut);
	}
	/* Pieces of random sizes (a fixed seed, so a failure repeats). */
	uint32_t seed = 12345;
	for (int round = 0; round < 50; round++) {
		multipart_parser mp;
		rec cut;
		rec_init(&cut);
		assert_int_equal(multipart_init(&mp, boundary), 0);
		int rc2 = MULTIPART_OK;
		for (size_t off = 0; off < len && rc2 == MULTIPART_OK;) {
			seed = seed * 1103515245u + 12345u;
			size_t n = 1 + (seed >> 16) % 17;
			if (n > len - off)
				n = len - off;
			rc2 = multipart_feed(&mp, body + off, n, &callbacks, &cut);
			off += n;
		}
		if (rc2 == MULTIPART_OK)
			rc2 = multipart_finish(&mp);
		assert_int_equal(rc2, rc);
		assert_string_equal(multipart_error(&mp, NULL), err);
		assert_int_equal(cut.log_len, whole->log_len);
		assert_memory_equal(cut.log, whole->log, whole->log_len);
		rec_fini(&cut);
	}
	return rc;
}

#define S(lit) lit, sizeof(lit) - 1

/* Captured from `curl -F file=@x.csv -F note=hello` (curl 7.88.1) against a
 * socket on loopback; its Content-Type was
 * "multipart/form-data; boundary=------------------------ed6a185408134568". */
static const char curl_boundary[] = "------------------------ed6a185408134568";
static const char curl_body[] = "--------------------------ed6a185408134568\r\n"
				"Content-Disposition: form-data; name=\"file\"; filename=\"x.csv\"\r\n"
				"Content-Type: application/octet-stream\r\n"
				"\r\n"
				"debtId,name,amount\r\n"
				"1,Ana,10.00\r\n"
				"2,\"Bo, Jr.\",20.50\r\n"
				"\r\n"
				"--------------------------ed6a185408134568\r\n"
				"Content-Disposition: form-data; name=\"note\"\r\n"
				"\r\n"
				"hello\r\n"
				"--------------------------ed6a185408134568--\r\n";

static void test_multipart_boundary_reads_tokens_and_quoted_strings(void **state)
{
	(void)state;
	char b[MULTIPART_BOUNDARY_MAX + 1], err[128];
	assert_int_equal(multipart_boundary("multipart/form-data; boundary=------------------------ed6a185408134568", b,
					    sizeof b, err, sizeof err),
			 0);
	assert_string_equal(b, curl_boundary);
	assert_int_equal(multipart_boundary("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW", b,
					    sizeof b, err, sizeof err),
			 0);
	assert_string_equal(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW");
	/* Quoted (spaces allowed inside), the names in any case, other
	 * parameters before and after, blanks around ';' and '='. */
	assert_int_equal(multipart_boundary("Multipart/Form-Data;charset=utf-8;  BOUNDARY = \"a b:c=d?\" ; x=y", b,
					    sizeof b, err, sizeof err),
			 0);
	assert_string_equal(b, "a b:c=d?");
	/* HTTP's quoted-pair in the quoted string; a trailing ';'. */
	assert_int_equal(multipart_boundary("multipart/mixed; boundary=\"\\a\\b\";", b, sizeof b, err, sizeof err), 0);
	assert_string_equal(b, "ab");
	/* 70 characters fit exactly. */
	char ct[160], seventy[71];
	memset(seventy, 'z', 70);
	seventy[70] = '\0';
	snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", seventy);
	assert_int_equal(multipart_boundary(ct, b, sizeof b, err, sizeof err), 0);
	assert_string_equal(b, seventy);
}

static void expect_boundary_error(const char *ct, const char *why)
{
	char b[MULTIPART_BOUNDARY_MAX + 1], err[128];
	memset(b, 'x', sizeof b);
	assert_int_equal(multipart_boundary(ct, b, sizeof b, err, sizeof err), -1);
	assert_string_equal(b, "");
	if (strstr(err, why) == NULL)
		fail_msg("%s: \"%s\" does not say \"%s\"", ct, err, why);
}

static void test_multipart_boundary_refuses_bad_values_and_says_why(void **state)
{
	(void)state;
	expect_boundary_error("text/csv", "not a multipart media type");
	expect_boundary_error("text/csv; boundary=abc", "not a multipart media type");
	expect_boundary_error("multipart", "not a multipart media type");
	expect_boundary_error("multipart/", "not a multipart media type");
	expect_boundary_error("multipart/form-data", "no boundary parameter");
	expect_boundary_error("multipart/form-data; charset=utf-8", "no boundary parameter");
	expect_boundary_error("multipart/form-data; boundary=\"\"", "the boundary is empty");
	expect_boundary_error("multipart/form-data; boundary=", "a parameter without a value");
	expect_boundary_error("multipart/form-data; boundary=\"abc", "without its closing");
	expect_boundary_error("multipart/form-data; boundary=a@b", "does not allow");
	expect_boundary_error("multipart/form-data; boundary=\"ab \"", "ends in a space");
	expect_boundary_error("multipart/form-data; boundary=a; boundary=b", "given twice");
	expect_boundary_error("multipart/form-data boundary=a", "expected ';'");
	expect_boundary_error("multipart/form-data; =a", "without a name");
	expect_boundary_error("multipart/form-data; boundary", "without '='");
	char ct[160], seventy_one[72];
	memset(seventy_one, 'z', 71);
	seventy_one[71] = '\0';
	snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", seventy_one);
	expect_boundary_error(ct, "longer than 70");
	/* The caller's buffer too small for the boundary. */
	char small[4], err[128];
	assert_int_equal(multipart_boundary("multipart/form-data; boundary=abcd", small, sizeof small, err, sizeof err),
			 -1);
	assert_non_null(strstr(err, "does not fit"));
	assert_int_equal(multipart_boundary("multipart/form-data; boundary=abc", small, sizeof small, err, sizeof err),
			 0);
	assert_string_equal(small, "abc");
}

static void test_multipart_init_refuses_a_bad_boundary(void **state)
{
	(void)state;
	multipart_parser mp;
	assert_int_equal(multipart_init(&mp, ""), -1);
	assert_non_null(strstr(multipart_error(&mp, NULL), "empty"));
	assert_int_equal(multipart_feed(&mp, S("--\r\n"), &callbacks, NULL), MULTIPART_ERROR);
	assert_int_equal(multipart_finish(&mp), -1);
	assert_int_equal(multipart_init(&mp, "a\r\nb"), -1);
	assert_int_equal(multipart_init(&mp, "abc "), -1);
	char big[80];
	memset(big, 'b', 71);
	big[71] = '\0';
	assert_int_equal(multipart_init(&mp, big), -1);
	big[70] = '\0';
	assert_int_equal(multipart_init(&mp, big), 0);
}

static void test_multipart_reads_the_body_curl_sends(void **state)
{
	(void)state;
	rec r;
	char err[256];
	uint64_t at = 0;
	assert_int_equal(run_every_way(curl_boundary, S(curl_body), &r, err, sizeof err, &at), MULTIPART_OK);
	assert_string_equal(err, "");
	assert_int_equal(r.parts, 2);
	assert_int_equal(r.ends, 2);
	assert_string_equal(r.data[0], "debtId,name,amount\r\n1,Ana,10.00\r\n2,\"Bo, Jr.\",20.50\r\n");
	assert_string_equal(r.data[1], "hello");
	assert_string_equal(r.log, "[part 0 at 149 disposition=form-data name=file filename=x.csv "
				   "type=application/octet-stream {content-disposition: form-data; name=\"file\"; "
				   "filename=\"x.csv\"} {content-type: application/octet-stream}]"
				   "debtId,name,amount\r\n1,Ana,10.00\r\n2,\"Bo, Jr.\",20.50\r\n[end 0]"
				   "[part 1 at 294 disposition=form-data name=note filename=(null) type=(null) "
				   "{content-disposition: form-data; name=\"note\"}]hello[end 1]");
	assert_memory_equal(curl_body + 149, "debtId", 6);
	assert_memory_equal(curl_body + 294, "hello", 5);
	rec_fini(&r);
}

/* As Chrome sends a form with a text field, a file input with no file
 * chosen, and a file whose name holds a quote (percent-encoded by the HTML
 * standard's rule) and a backslash (literal). */
static const char chrome_body[] = "------WebKitFormBoundaryx8nIw5aYtXQ1s7Wd\r\n"
				  "Content-Disposition: form-data; name=\"comment\"\r\n"
				  "\r\n"
				  "March debts\r\n"
				  "------WebKitFormBoundaryx8nIw5aYtXQ1s7Wd\r\n"
				  "Content-Disposition: form-data; name=\"other\"; filename=\"\"\r\n"
				  "Content-Type: application/octet-stream\r\n"
				  "\r\n"
				  "\r\n"
				  "------WebKitFormBoundaryx8nIw5aYtXQ1s7Wd\r\n"
				  "Content-Disposition: form-data; name=\"file\"; filename=\"d%22e\\bts.csv\"\r\n"
				  "Content-Type: text/csv\r\n"
				  "\r\n"
				  "debtId,amount\r\n"
				  "7,1.00\r\n"
				  "\r\n"
				  "------WebKitFormBoundaryx8nIw5aYtXQ1s7Wd--\r\n";

static int first_file;
static int find_file(void *arg, const multipart_part *p)
{
	(void)arg;
	if (first_file < 0 && multipart_is_file(p))
		first_file = p->index;
	return 0;
}

static void test_multipart_reads_a_browser_form_and_finds_its_file(void **state)
{
	(void)state;
	rec r;
	char err[256];
	uint64_t at = 0;
	const char *b = "----WebKitFormBoundaryx8nIw5aYtXQ1s7Wd";
	assert_int_equal(run_every_way(b, S(chrome_body), &r, err, sizeof err, &at), MULTIPART_OK);
	assert_int_equal(r.parts, 3);
	assert_string_equal(r.data[0], "March debts");
	assert_null(r.data[1]); /* no file chosen: no data at all */
	assert_string_equal(r.data[2], "debtId,amount\r\n7,1.00\r\n");
	assert_non_null(strstr(r.log, "name=other filename= type=application/octet-stream"));
	assert_non_null(strstr(r.log, "name=file filename=d%22e\\bts.csv type=text/csv"));

	/* multipart_is_file: the first part with a filename (even "") or
	 * name="file". */
	multipart_parser mp;
	multipart_callbacks cb = {find_file, NULL, NULL};
	first_file = -1;
	assert_int_equal(multipart_init(&mp, b), 0);
	assert_int_equal(multipart_feed(&mp, S(chrome_body), &cb, NULL), MULTIPART_OK);
	assert_int_equal(multipart_finish(&mp), 0);
	assert_int_equal(first_file, 1);
	multipart_part p = {0};
	assert_false(multipart_is_file(&p));
	p.name = "file";
	assert_true(multipart_is_file(&p));
	p.name = "files";
	assert_false(multipart_is_file(&p));
	p.filename = "";
	assert_true(multipart_is_file(&p));
	rec_fini(&r);
}

/* The body of one part with data content (which must not contain the
 * delimiter), boundary "boundary". */
static size_t one_part(char *out, size_t cap, const char *content, size_t len)
{
	const char head[] = "--boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n";
	const char tail[] = "\r\n--boundary--\r\n";
	assert_true(sizeof head + len + sizeof tail < cap);
	memcpy(out, head, sizeof head - 1);
	memcpy(out + sizeof head - 1, content, len);
	memcpy(out + sizeof head - 1 + len, tail, sizeof tail - 1);
	return sizeof head - 1 + len + sizeof tail - 1;
}

static void expect_content(const char *content, size_t len)
{
	char body[512], err[256];
	uint64_t at = 0;
	rec r;
	size_t n = one_part(body, sizeof body, content, len);
	assert_int_equal(run_every_way("boundary", body, n, &r, err, sizeof err, &at), MULTIPART_OK);
	assert_int_equal(r.parts, 1);
	assert_int_equal(r.data_len[0], len);
	if (len > 0)
		assert_memory_equal(r.data[0], content, len);
	rec_fini(&r);
}

static void test_multipart_keeps_text_that_almost_is_the_delimiter(void **state)
{
	(void)state;
	expect_content(S("\r\n--boundar"));
	expect_content(S("a\r\n--boundarX and more"));
	expect_content(S("\r\n--boundar\r\n--boundar\r\n"));
	expect_content(S("\r\r\n\r\n-\r\n--\r\n--b"));
	expect_content(S("--boundary at the start of a line but without CRLF before it"));
	expect_content(S("x\n--boundary\n--boundary--\n")); /* bare LF is not a delimiter */
	expect_content(S("ends in CR\r"));
	expect_content(S("ends in CRLF\r\n"));
	expect_content(S("ends in CRLF CRLF\r\n\r\n"));
	expect_content(S("\r\n"));
	expect_content(S("\r"));
	expect_content(S(""));
	expect_content(S("bytes \0 NUL \xff and \x80"));
	/* Every prefix of the delimiter, followed by another byte. */
	const char delim[] = "\r\n--boundary";
	for (size_t k = 1; k < sizeof delim - 1; k++) {
		char c[32];
		memcpy(c, delim, k);
		c[k] = 'Q';
		memcpy(c + k + 1, delim, k); /* and again at the very end */
		expect_content(c, 2 * k + 1);
	}
}

static void test_multipart_passes_data_on_as_soon_as_it_cannot_be_the_delimiter(void **state)
{
	(void)state;
	/* Fed one byte at a time, everything but a pending prefix of the
	 * delimiter has been passed on after each byte. */
	const char content[] = "abc\r\n--boundarXdef\r\n--bo\r\nghi";
	char body[512];
	size_t n = one_part(body, sizeof body, S(content));
	size_t data_at = strstr(body, "\r\n\r\n") - body + 4;
	multipart_parser mp;
	rec r;
	rec_init(&r);
	assert_int_equal(multipart_init(&mp, "boundary"), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(multipart_feed(&mp, body + i, 1, &callbacks, &r), MULTIPART_OK);
		if (i + 1 <= data_at || i + 1 > data_at + sizeof content - 1)
			continue;
		/* Bytes of the content fed so far, less the longest tail
		 * of them that is a prefix of the delimiter. */
		size_t fed = i + 1 - data_at, pending = 0;
		for (size_t k = 1; k <= fed && k < 12; k++)
			if (memcmp(content + fed - k, "\r\n--boundary", k) == 0)
				pending = k;
		assert_int_equal(r.emitted, fed - pending);
	}
	assert_int_equal(multipart_finish(&mp), 0);
	assert_string_equal(r.data[0], content);
	/* Whole: the content comes in few pieces (runs of the input, not a
	 * callback per CRLF). */
	rec_fini(&r);
	rec_init(&r);
	assert_int_equal(multipart_init(&mp, "boundary"), 0);
	assert_int_equal(multipart_feed(&mp, body, n, &callbacks, &r), MULTIPART_OK);
	assert_int_equal(r.pieces, 1);
	rec_fini(&r);
}

static void test_multipart_reads_several_parts_no_parts_and_what_the_rfc_allows(void **state)
{
	(void)state;
	rec r;
	char err[256];
	uint64_t at = 0;

	/* No parts: the closing delimiter right after the first boundary. */
	assert_int_equal(run_every_way("b", S("--b--"), &r, err, sizeof err, &at), MULTIPART_OK);
	assert_int_equal(r.parts, 0);
	assert_string_equal(r.log, "");
	rec_fini(&r);
	assert_int_equal(run_every_way("b", S("preamble\r\n--b--\r\nepilogue --b\r\n"), &r, err, sizeof err, &at),
			 MULTIPART_OK);
	assert_int_equal(r.parts, 0);
	rec_fini(&r);

	/* A preamble and an epilogue, transport padding after boundaries,
	 * a part without headers, a folded header, a header without a
	 * value, Content-Disposition's parameters in any case, unquoted, with
	 * blanks, repeated (the first counts), filename* ignored. */
	static const char body[] = "This is the preamble.\r\n"
				   "--b \t\r\n"
				   "\r\n"
				   "no headers\r\n"
				   "--b\t\r\n"
				   "content-disposition: FORM-DATA ; NAME = x ; Name=y;filename*=UTF-8''a.csv\r\n"
				   "X-Folded: one\r\n"
				   "  two\r\n"
				   "X-Empty:\r\n"
				   "\r\n"
				   "two\r\n"
				   "--b\r\n"
				   "Content-Disposition: form-data; name=file; filename=\"C:\\dir\\x.csv\";\r\n"
				   "\r\n"
				   "3\r\n"
				   "--b--  \r\n"
				   "The epilogue, with --b in it.\r\n"
				   "--b\r\n";
	assert_int_equal(run_every_way("b", S(body), &r, err, sizeof err, &at), MULTIPART_OK);
	assert_int_equal(r.parts, 3);
	assert_int_equal(r.ends, 3);
	assert_string_equal(r.data[0], "no headers");
	assert_string_equal(r.data[1], "two");
	assert_string_equal(r.data[2], "3");
	assert_memory_equal(body + 32, "no headers", 10);
	assert_non_null(strstr(r.log, "[part 0 at 32 disposition=(null) name=(null) filename=(null) type=(null)]"));
	assert_non_null(strstr(r.log, "disposition=FORM-DATA name=x filename=(null) type=(null) "
				      "{content-disposition: FORM-DATA ; NAME = x ; Name=y;filename*=UTF-8''a.csv} "
				      "{x-folded: one  two} {x-empty: }]"));
	assert_non_null(strstr(r.log, "name=file filename=C:\\dir\\x.csv type=(null)"));
	rec_fini(&r);

	/* A part of 20,000 bytes with CRLFs everywhere, in a small body. */
	size_t big_len = 20000;
	char *big = malloc(big_len + 64);
	assert_non_null(big);
	size_t n = (size_t)snprintf(big, 64, "--b\r\n\r\n");
	for (size_t i = 0; i < big_len; i++)
		big[n + i] = "ab\r\n-"[i % 5];
	memcpy(big + n + big_len, "\r\n--b--", 7);
	multipart_parser mp;
	rec_init(&r);
	assert_int_equal(multipart_init(&mp, "b"), 0);
	for (size_t off = 0; off < n + big_len + 7; off += 1000) {
		size_t k = n + big_len + 7 - off < 1000 ? n + big_len + 7 - off : 1000;
		assert_int_equal(multipart_feed(&mp, big + off, k, &callbacks, &r), MULTIPART_OK);
	}
	assert_int_equal(multipart_finish(&mp), 0);
	assert_int_equal(r.data_len[0], big_len);
	assert_memory_equal(r.data[0], big + n, big_len);
	free(big);
	rec_fini(&r);
}

static void expect_error(const char *boundary, const char *body, size_t len, uint64_t offset, const char *why)
{
	rec r;
	char err[256];
	uint64_t at = 0;
	int rc = run_every_way(boundary, body, len, &r, err, sizeof err, &at);
	assert_int_equal(rc, MULTIPART_ERROR);
	char where[32];
	snprintf(where, sizeof where, "byte %llu: ", (unsigned long long)offset);
	if (at != offset || strncmp(err, where, strlen(where)) != 0 || strstr(err, why) == NULL)
		fail_msg("\"%s\" (offset %llu) is not at %llu or does not say \"%s\"", err, (unsigned long long)at,
			 (unsigned long long)offset, why);
	rec_fini(&r);
}

static void test_multipart_refuses_malformed_bodies_at_the_byte_that_breaks_them(void **state)
{
	(void)state;
	/* Missing first boundary: at the end of a short body, at once past
	 * the preamble's limit. */
	expect_error("b", S(""), 0, "no boundary line \"--b\" in the body");
	expect_error("b", S("debtId,amount\r\n1,2\r\n"), 20, "no boundary line \"--b\" in the body");
	expect_error("b", S("-b\r\n--c\r\n"), 9, "no boundary line");
	char *big = malloc(MULTIPART_MAX_PREAMBLE + 100);
	assert_non_null(big);
	memset(big, 'x', MULTIPART_MAX_PREAMBLE + 100);
	multipart_parser mp;
	assert_int_equal(multipart_init(&mp, "b"), 0);
	assert_int_equal(multipart_feed(&mp, big, MULTIPART_MAX_PREAMBLE + 100, NULL, NULL), MULTIPART_ERROR);
	uint64_t at;
	assert_non_null(strstr(multipart_error(&mp, &at), "no boundary line \"--b\" in the first 8192 bytes"));
	assert_int_equal(at, MULTIPART_MAX_PREAMBLE + 5);
	/* A preamble of exactly the limit is fine. */
	memcpy(big + MULTIPART_MAX_PREAMBLE, "\r\n--b--", 7);
	assert_int_equal(multipart_init(&mp, "b"), 0);
	assert_int_equal(multipart_feed(&mp, big, MULTIPART_MAX_PREAMBLE + 7, NULL, NULL), MULTIPART_OK);
	assert_int_equal(multipart_finish(&mp), 0);
	free(big);

	/* What follows a boundary. */
	expect_error("b", S("--bX\r\n\r\nx\r\n--b--"), 3, "after a boundary: expected CRLF");
	expect_error("b", S("--b\r\n\r\nx\r\n--b-x"), 14, "after a boundary");
	expect_error("b", S("--b \r\n\r\nx\r\n--b -"), 15, "after a boundary");
	expect_error("b", S("--b\n\r\nx"), 3, "after a boundary");
	expect_error("b", S("--b\rx"), 4, "CR without LF");
	/* A part that contains its own delimiter. */
	expect_error("boundary", S("--boundary\r\n\r\nabc\r\n--boundaryX\r\n--boundary--"), 29, "after a boundary");

	/* Header sections. */
	expect_error("b", S("--b\r\nContent-Type text/csv\r\n\r\nx\r\n--b--"), 5, "part 1: a header line without");
	expect_error("b", S("--b\r\n\r\nx\r\n--b\r\n: x\r\n\r\n\r\n--b--"), 15, "part 2: a header line without");
	expect_error("b", S("--b\r\nName : x\r\n\r\n\r\n--b--"), 5, "a header name with a character");
	expect_error("b", S("--b\r\nA: x\r\n  y\r\nB: \x01\r\n\r\n\r\n--b--"), 16, "a control character");
	expect_error("b", S("--b\r\n  y\r\n\r\n\r\n--b--"), 5, "a continuation line before any header");
	expect_error("b", S("--b\r\nA: x\nB: y\r\n\r\n\r\n--b--"), 9, "part 1: a header line ends in a bare LF");
	expect_error("b", S("--b\r\n\n"), 5, "bare LF");
	expect_error("b", S("--b\r\nA: x\rB: y\r\n\r\n\r\n--b--"), 10, "a CR without LF");
	expect_error("b", S("--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\n\r\n--b--"), 5,
		     "part 1: malformed Content-Disposition: a quoted value without its closing");
	expect_error("b", S("--b\r\nContent-Disposition: ; name=x\r\n\r\n\r\n--b--"), 5, "no disposition type");
	expect_error("b", S("--b\r\nContent-Disposition: form-data name=x\r\n\r\n\r\n--b--"), 5, "expected ';'");
	char many[512];
	size_t n = (size_t)snprintf(many, sizeof many, "--b\r\n");
	for (int i = 0; i < MULTIPART_MAX_HEADERS + 1; i++)
		n += (size_t)snprintf(many + n, sizeof many - n, "X-%d: %d\r\n", i, i);
	n += (size_t)snprintf(many + n, sizeof many - n, "\r\nx\r\n--b--");
	expect_error("b", many, n, 5 + 10 * 8 + 6 * 10, "part 1: more than 16 header lines");
	/* A header section over the limit fails at its first byte too many. */
	size_t head_len = MULTIPART_MAX_HEAD + 100;
	char *head = malloc(head_len + 20);
	assert_non_null(head);
	memcpy(head, "--b\r\nX: ", 8);
	memset(head + 8, 'v', head_len);
	assert_int_equal(multipart_init(&mp, "b"), 0);
	assert_int_equal(multipart_feed(&mp, head, head_len, NULL, NULL), MULTIPART_ERROR);
	assert_non_null(strstr(multipart_error(&mp, &at), "part 1: its header section is longer than 8192 bytes"));
	assert_int_equal(at, 5 + MULTIPART_MAX_HEAD);
	/* One of exactly the limit is fine. */
	memcpy(head + 5 + MULTIPART_MAX_HEAD - 4, "\r\n\r\nx\r\n--b--", 12);
	assert_int_equal(multipart_init(&mp, "b"), 0);
	assert_int_equal(multipart_feed(&mp, head, 5 + MULTIPART_MAX_HEAD + 8, NULL, NULL), MULTIPART_OK);
	assert_int_equal(multipart_finish(&mp), 0);
	free(head);

	/* The body ends before the closing delimiter. */
	expect_error("b", S("--b"), 3, "the body ended before the closing delimiter \"--b--\"");
	expect_error("b", S("--b-"), 4, "the body ended before the closing delimiter");
	expect_error("b", S("--b\r\n"), 5, "the body ended inside part 1, before the closing delimiter \"--b--\"");
	expect_error("b", S("--b\r\nA: b\r\n"), 11, "the body ended inside part 1");
	expect_error("b", S("--b\r\n\r\ndata"), 11, "the body ended inside part 1");
	expect_error("b", S("--b\r\n\r\ndata\r\n--b"), 16, "the body ended before the closing delimiter");
	expect_error("b", S("--b\r\n\r\ndata\r\n--b\r\n\r\nmore\r\n--"), 28, "the body ended inside part 2");
	/* A bare LF before the last delimiter: it is data, and the body never ends. */
	expect_error("b", S("--b\r\n\r\ndata\n--b--\n"), 18, "the body ended inside part 1");
}

static void test_multipart_errors_and_stops_are_final(void **state)
{
	(void)state;
	multipart_parser mp;
	rec r;
	rec_init(&r);
	assert_int_equal(multipart_init(&mp, "b"), 0);
	assert_int_equal(multipart_feed(&mp, S("--bX"), &callbacks, &r), MULTIPART_ERROR);
	assert_int_equal(multipart_feed(&mp, S("\r\n\r\n"), &callbacks, &r), MULTIPART_ERROR);
	assert_int_equal(multipart_finish(&mp), -1);
	assert_non_null(strstr(multipart_error(&mp, NULL), "byte 3: after a boundary"));
	assert_false(multipart_done(&mp));
	rec_fini(&r);

	/* on_part stops the parser on the second part: nothing more is called. */
	rec_init(&r);
	r.stop_on_part = 1;
	assert_int_equal(multipart_init(&mp, curl_boundary), 0);
	assert_int_equal(multipart_feed(&mp, S(curl_body), &callbacks, &r), MULTIPART_STOPPED);
	assert_int_equal(r.parts, 2);
	assert_int_equal(r.ends, 1);
	assert_null(r.data[1]);
	assert_int_equal(multipart_feed(&mp, S("x"), &callbacks, &r), MULTIPART_STOPPED);
	assert_int_equal(multipart_finish(&mp), -1);
	assert_non_null(strstr(multipart_error(&mp, NULL), "stopped by the caller"));
	rec_fini(&r);

	/* multipart_done after the closing delimiter; the epilogue is
	 * ignored whatever it holds. */
	assert_int_equal(multipart_init(&mp, "b"), 0);
	assert_int_equal(multipart_feed(&mp, S("--b\r\n\r\nx\r\n--b"), NULL, NULL), MULTIPART_OK);
	assert_false(multipart_done(&mp));
	assert_int_equal(multipart_feed(&mp, S("--"), NULL, NULL), MULTIPART_OK);
	assert_true(multipart_done(&mp));
	assert_int_equal(multipart_feed(&mp, S("\n\n\x01 --b\r\n"), NULL, NULL), MULTIPART_OK);
	assert_int_equal(multipart_finish(&mp), 0);
	assert_string_equal(multipart_error(&mp, NULL), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multipart_boundary_reads_tokens_and_quoted_strings),
		cmocka_unit_test(test_multipart_boundary_refuses_bad_values_and_says_why),
		cmocka_unit_test(test_multipart_init_refuses_a_bad_boundary),
		cmocka_unit_test(test_multipart_reads_the_body_curl_sends),
		cmocka_unit_test(test_multipart_reads_a_browser_form_and_finds_its_file),
		cmocka_unit_test(test_multipart_keeps_text_that_almost_is_the_delimiter),
		cmocka_unit_test(test_multipart_passes_data_on_as_soon_as_it_cannot_be_the_delimiter),
		cmocka_unit_test(test_multipart_reads_several_parts_no_parts_and_what_the_rfc_allows),
		cmocka_unit_test(test_multipart_refuses_malformed_bodies_at_the_byte_that_breaks_them),
		cmocka_unit_test(test_multipart_errors_and_stops_are_final),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
