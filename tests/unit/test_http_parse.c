/*
 * HTTP/1.x request framing (server/gateway/http_parse.h) as the gateway sees
 * it: requests as bytes in, whole requests out, whichever way the bytes are
 * split across reads, and every limit and malformation answered with the
 * status a server should send. No sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rpcq/alloc.h>

#include "http_parse.h"

static const http_limits limits = {.max_head_bytes = 8192, .max_body_bytes = 65536};

#define GET_ECHO                                                    \
	"GET /rpc/rpcq.Health/Echo?message=aGk%3D&x=1 HTTP/1.1\r\n" \
	"Host: localhost:8080\r\n"                                  \
	"Authorization: Bearer abc\r\n"                             \
	"\r\n"

#define POST_ECHO                                 \
	"POST /rpc/rpcq.Health/Echo HTTP/1.1\r\n" \
	"Host: localhost\r\n"                     \
	"Content-Type: application/json\r\n"      \
	"Content-Length: 18\r\n"                  \
	"\r\n"                                    \
	"{\"payload\":\"aGk=\"}"

#define POST_CHUNKED                     \
	"POST /rpc/x HTTP/1.1\r\n"       \
	"Transfer-Encoding: chunked\r\n" \
	"\r\n"                           \
	"5\r\nhello\r\n"                 \
	"7;ext=1\r\n, world\r\n"         \
	"0\r\n"                          \
	"X-Trailer: t\r\n"               \
	"\r\n"

/* Feeds all of s (len bytes) in one piece to r, which must have been set up. */
static int feed(http_reader *r, const char *s, size_t len, size_t *used)
{
	return http_reader_feed(r, s, len, used);
}

/* One request, fed whole to a new reader that the caller finishes. */
static const http_request *parse_one(http_reader *r, const char *s)
{
	size_t used = 0;
	http_reader_init(r, &limits);
	int rc = feed(r, s, strlen(s), &used);
	if (rc != HTTP_READ_DONE) {
		const char *msg;
		int status = http_reader_error(r, &msg);
		fail_msg("expected a request, got %d (%d %s)", rc, status, msg);
	}
	assert_int_equal(used, strlen(s));
	return http_reader_request(r);
}

/* The status that s, fed whole, is refused with; the message is checked to
 * hold words. */
static void expect_error(const http_limits *lim, const char *s, size_t len, int status, const char *words)
{
	http_reader r;
	size_t used;
	const char *msg = NULL;
	http_reader_init(&r, lim);
	int rc = feed(&r, s, len, &used);
	if (rc != HTTP_READ_ERROR)
		fail_msg("expected %d for \"%s\", got result %d", status, s, rc);
	assert_int_equal(http_reader_error(&r, &msg), status);
	if (words != NULL && strstr(msg, words) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", msg, words);
	/* After an error, nothing more is read. */
	assert_int_equal(feed(&r, "GET", 3, &used), HTTP_READ_ERROR);
	assert_int_equal(used, 0);
	http_reader_fini(&r);
}

static void expect_status(const char *s, int status, const char *words)
{
	expect_error(&limits, s, strlen(s), status, words);
}

static void test_a_simple_get_gives_method_target_path_query_and_headers(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req = parse_one(&r, GET_ECHO);
	assert_string_equal(req->method, "GET");
	assert_string_equal(req->target, "/rpc/rpcq.Health/Echo?message=aGk%3D&x=1");
	assert_string_equal(req->path, "/rpc/rpcq.Health/Echo");
	assert_string_equal(req->query, "message=aGk%3D&x=1");
	assert_int_equal(req->nheaders, 2);
	assert_string_equal(req->headers[0].name, "host");
	assert_string_equal(req->headers[0].value, "localhost:8080");
	assert_string_equal(req->headers[1].name, "authorization");
	assert_string_equal(req->headers[1].value, "Bearer abc");
	assert_int_equal(req->body_len, 0);
	assert_string_equal(req->body, "");
	assert_int_equal(req->http_minor, 1);
	assert_true(req->keep_alive);
	assert_false(req->expect_continue);
	http_reader_fini(&r);
}

static void test_a_request_without_a_query_has_an_empty_one(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req = parse_one(&r, "GET / HTTP/1.1\r\n\r\n");
	assert_string_equal(req->path, "/");
	assert_string_equal(req->query, "");
	assert_int_equal(req->nheaders, 0);
	http_reader_fini(&r);
}

static void test_every_method_is_allowed_at_this_layer(void **state)
{
	(void)state;
	static const char *const methods[] = {"HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"};
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		char s[128];
		snprintf(s, sizeof s, "%s /x HTTP/1.1\r\nHost: a\r\n\r\n", methods[i]);
		http_reader r;
		const http_request *req = parse_one(&r, s);
		assert_string_equal(req->method, methods[i]);
		http_reader_fini(&r);
	}
}

static void test_a_post_with_content_length_carries_its_body(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req = parse_one(&r, POST_ECHO);
	assert_string_equal(req->method, "POST");
	assert_int_equal(req->body_len, 18);
	assert_string_equal(req->body, "{\"payload\":\"aGk=\"}");
	assert_string_equal(http_request_header(req, "content-length"), "18");
	http_reader_fini(&r);
}

static void test_a_body_may_hold_nul_bytes_and_is_nul_terminated_after_them(void **state)
{
	(void)state;
	static const char s[] = "PUT /b HTTP/1.1\r\nContent-Length: 5\r\n\r\na\0b\0c";
	http_reader r;
	size_t used;
	http_reader_init(&r, &limits);
	assert_int_equal(feed(&r, s, sizeof s - 1, &used), HTTP_READ_DONE);
	assert_int_equal(used, sizeof s - 1);
	const http_request *req = http_reader_request(&r);
	assert_int_equal(req->body_len, 5);
	assert_memory_equal(req->body, "a\0b\0c", 6);
	http_reader_fini(&r);
}

static void test_a_chunked_body_is_joined_and_its_trailers_dropped(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req = parse_one(&r, POST_CHUNKED);
	assert_int_equal(req->body_len, 12);
	assert_string_equal(req->body, "hello, world");
	assert_int_equal(req->nheaders, 1);
	assert_null(http_request_header(req, "x-trailer"));
	http_reader_fini(&r);
}

static void test_two_pipelined_requests_in_one_buffer_come_out_one_after_the_other(void **state)
{
	(void)state;
	static const char s[] = POST_ECHO GET_ECHO;
	http_reader r;
	size_t used;
	http_reader_init(&r, &limits);
	assert_int_equal(feed(&r, s, strlen(s), &used), HTTP_READ_DONE);
	assert_int_equal(used, strlen(POST_ECHO));
	assert_string_equal(http_reader_request(&r)->method, "POST");
	assert_string_equal(http_reader_request(&r)->body, "{\"payload\":\"aGk=\"}");

	/* A done reader takes nothing more until it is reset. */
	size_t again;
	assert_int_equal(feed(&r, s + used, strlen(s) - used, &again), HTTP_READ_DONE);
	assert_int_equal(again, 0);

	http_reader_reset(&r);
	assert_null(http_reader_request(&r));
	size_t rest;
	assert_int_equal(feed(&r, s + used, strlen(s) - used, &rest), HTTP_READ_DONE);
	assert_int_equal(rest, strlen(GET_ECHO));
	assert_string_equal(http_reader_request(&r)->method, "GET");
	assert_string_equal(http_reader_request(&r)->path, "/rpc/rpcq.Health/Echo");
	http_reader_fini(&r);
}

static void test_three_pipelined_requests_with_bodies_and_chunks_each_use_their_own_bytes(void **state)
{
	(void)state;
	static const char s[] = POST_CHUNKED POST_ECHO POST_CHUNKED;
	const size_t lens[] = {strlen(POST_CHUNKED), strlen(POST_ECHO), strlen(POST_CHUNKED)};
	http_reader r;
	http_reader_init(&r, &limits);
	size_t off = 0;
	for (int i = 0; i < 3; i++) {
		size_t used;
		assert_int_equal(feed(&r, s + off, strlen(s) - off, &used), HTTP_READ_DONE);
		assert_int_equal(used, lens[i]);
		off += used;
		http_reader_reset(&r);
	}
	assert_int_equal(off, strlen(s));
	http_reader_fini(&r);
}

/* Two requests are the same when every field is. */
static void assert_same_request(const http_request *a, const http_request *b)
{
	assert_string_equal(a->method, b->method);
	assert_string_equal(a->target, b->target);
	assert_string_equal(a->path, b->path);
	assert_string_equal(a->query, b->query);
	assert_int_equal(a->nheaders, b->nheaders);
	for (int i = 0; i < a->nheaders; i++) {
		assert_string_equal(a->headers[i].name, b->headers[i].name);
		assert_string_equal(a->headers[i].value, b->headers[i].value);
	}
	assert_int_equal(a->body_len, b->body_len);
	assert_memory_equal(a->body, b->body, a->body_len + 1);
	assert_int_equal(a->http_minor, b->http_minor);
	assert_int_equal(a->keep_alive, b->keep_alive);
	assert_int_equal(a->expect_continue, b->expect_continue);
}

/* Feeds s in pieces of at most step bytes, or split in two at split. */
static void parse_in_pieces(http_reader *r, const char *s, size_t len, size_t split, size_t step)
{
	http_reader_init(r, &limits);
	size_t off = 0;
	int rc = HTTP_READ_MORE;
	while (off < len) {
		size_t n = step != 0 ? step : (off < split ? split - off : len - off);
		if (n > len - off)
			n = len - off;
		size_t used;
		rc = feed(r, s + off, n, &used);
		off += used;
		if (rc != HTTP_READ_MORE)
			break;
		assert_int_equal(used, n);
	}
	assert_int_equal(rc, HTTP_READ_DONE);
	assert_int_equal(off, len);
}

static void test_a_request_split_at_every_byte_parses_the_same(void **state)
{
	(void)state;
	static const char *const requests[] = {
		GET_ECHO,
		POST_ECHO,
		POST_CHUNKED,
		"GET /a%20b?q=1 HTTP/1.0\r\nX-Long:   spaced out value  \r\nX-Empty:\r\nConnection: keep-alive\r\n\r\n",
	};
	for (size_t k = 0; k < sizeof requests / sizeof requests[0]; k++) {
		const char *s = requests[k];
		size_t len = strlen(s);
		http_reader whole;
		const http_request *want = parse_one(&whole, s);
		for (size_t split = 1; split < len; split++) {
			http_reader r;
			parse_in_pieces(&r, s, len, split, 0);
			assert_same_request(http_reader_request(&r), want);
			http_reader_fini(&r);
		}
		http_reader r;
		parse_in_pieces(&r, s, len, 0, 1);
		assert_same_request(http_reader_request(&r), want);
		http_reader_fini(&r);
		http_reader_fini(&whole);
	}
}

static void test_header_names_are_lower_cased_and_values_trimmed(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req =
		parse_one(&r, "GET / HTTP/1.1\r\nX-Request-ID: \t id-1 \t \r\nX-EMPTY:\r\nx-blank:   \r\n\r\n");
	assert_int_equal(req->nheaders, 3);
	assert_string_equal(req->headers[0].name, "x-request-id");
	assert_string_equal(req->headers[0].value, "id-1");
	assert_string_equal(req->headers[1].name, "x-empty");
	assert_string_equal(req->headers[1].value, "");
	assert_string_equal(req->headers[2].name, "x-blank");
	assert_string_equal(req->headers[2].value, "");
	http_reader_fini(&r);
}

static void test_http_request_header_finds_the_first_of_repeated_headers(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req = parse_one(&r, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\na: 3\r\n\r\n");
	assert_string_equal(http_request_header(req, "a"), "1");
	assert_string_equal(http_request_header(req, "b"), "2");
	assert_null(http_request_header(req, "c"));
	http_reader_fini(&r);
}

/* Two Hosts (RFC 9112 3.2) or two Authorizations (which key?) are 400. */
static void test_a_host_or_an_authorization_given_twice_is_400(void **state)
{
	(void)state;
	expect_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "host given more than once");
	expect_status("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nauthorization: Bearer y\r\n\r\n", 400,
		      "authorization given more than once");
	http_reader r;
	const http_request *req = parse_one(&r, "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\n\r\n");
	assert_string_equal(http_request_header(req, "authorization"), "Bearer x");
	http_reader_fini(&r);
}

static void test_http_1_1_keeps_the_connection_alive_unless_connection_close(void **state)
{
	(void)state;
	http_reader r;
	assert_true(parse_one(&r, "GET / HTTP/1.1\r\n\r\n")->keep_alive);
	http_reader_fini(&r);
	const http_request *req = parse_one(&r, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
	assert_false(req->keep_alive);
	assert_int_equal(req->http_minor, 1);
	http_reader_fini(&r);
}

static void test_http_1_0_closes_the_connection_unless_keep_alive_is_asked(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req = parse_one(&r, "GET / HTTP/1.0\r\n\r\n");
	assert_false(req->keep_alive);
	assert_int_equal(req->http_minor, 0);
	http_reader_fini(&r);
	assert_true(parse_one(&r, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")->keep_alive);
	http_reader_fini(&r);
}

static void test_the_path_is_percent_decoded_without_the_plus_rule(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req = parse_one(&r, "GET /a%20b/c+d/%C3%A9?x=%20+ HTTP/1.1\r\n\r\n");
	assert_string_equal(req->path, "/a b/c+d/\xc3\xa9");
	assert_string_equal(req->query, "x=%20+");
	assert_string_equal(req->target, "/a%20b/c+d/%C3%A9?x=%20+");
	http_reader_fini(&r);
}

static void test_an_absolute_form_target_gives_its_path_and_query(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req = parse_one(&r, "GET http://example.com:8080/rpc/x?a=1 HTTP/1.1\r\n\r\n");
	assert_string_equal(req->target, "http://example.com:8080/rpc/x?a=1");
	assert_string_equal(req->path, "/rpc/x");
	assert_string_equal(req->query, "a=1");
	http_reader_fini(&r);
}

static void test_a_fragment_is_not_part_of_the_query(void **state)
{
	(void)state;
	http_reader r;
	const http_request *req = parse_one(&r, "GET /p?a=1#frag HTTP/1.1\r\n\r\n");
	assert_string_equal(req->path, "/p");
	assert_string_equal(req->query, "a=1");
	http_reader_fini(&r);
}

static void test_a_target_that_is_not_a_path_is_400(void **state)
{
	(void)state;
	expect_status("OPTIONS * HTTP/1.1\r\n\r\n", 400, "path");
	expect_status("GET http://example.com HTTP/1.1\r\n\r\n", 400, "path");
	expect_status("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 400, NULL);
	expect_status("GET /a%00b HTTP/1.1\r\n\r\n", 400, "percent");
	expect_status("GET /a%zzb HTTP/1.1\r\n\r\n", 400, "percent");
	expect_status("GET /a%4 HTTP/1.1\r\n\r\n", 400, "percent");
}

static void test_what_http_parser_rejects_is_400_naming_its_error(void **state)
{
	(void)state;
	expect_status("GET / HTTP/1.1\r\nBad@Name: x\r\n\r\n", 400, "malformed request: invalid character in header");
	expect_status("G@T / HTTP/1.1\r\n\r\n", 400, "malformed request: invalid HTTP method");
	expect_status("GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "malformed request");
	expect_status("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "malformed request");
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "malformed request");
	expect_status("GET / HTTP/1.1\rX\r\n\r\n", 400, "malformed request");
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400,
		      "malformed request");
}

static void test_a_content_length_over_the_limit_is_413_before_the_body_arrives(void **state)
{
	(void)state;
	http_limits small = {.max_head_bytes = 8192, .max_body_bytes = 10};
	static const char s[] = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
	expect_error(&small, s, strlen(s), 413, "limit");
	static const char huge[] = "POST / HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n";
	expect_error(&small, huge, strlen(huge), 413, "limit");

	/* Exactly the limit is fine. */
	http_reader r;
	size_t used;
	static const char ok[] = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
	http_reader_init(&r, &small);
	assert_int_equal(feed(&r, ok, strlen(ok), &used), HTTP_READ_DONE);
	assert_int_equal(http_reader_request(&r)->body_len, 10);
	http_reader_fini(&r);
}

static void test_a_chunked_body_over_the_limit_is_413_as_soon_as_a_chunk_says_so(void **state)
{
	(void)state;
	http_limits small = {.max_head_bytes = 8192, .max_body_bytes = 10};
	/* The second chunk's size is enough: its data never has to arrive. */
	static const char s[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\n";
	expect_error(&small, s, strlen(s), 413, "limit");
	static const char ok[] =
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n";
	http_reader r;
	size_t used;
	http_reader_init(&r, &small);
	assert_int_equal(feed(&r, ok, strlen(ok), &used), HTTP_READ_DONE);
	assert_string_equal(http_reader_request(&r)->body, "abcdefghij");
	http_reader_fini(&r);
}

static void test_a_head_over_the_limit_is_431_and_exactly_the_limit_is_not(void **state)
{
	(void)state;
	static const char s[] = "GET /0123456789 HTTP/1.1\r\nX-A: 0123456789\r\n\r\n";
	size_t len = strlen(s);
	http_limits lim = {.max_head_bytes = len, .max_body_bytes = 0};
	http_reader r;
	size_t used;
	http_reader_init(&r, &lim);
	assert_int_equal(feed(&r, s, len, &used), HTTP_READ_DONE);
	http_reader_fini(&r);

	lim.max_head_bytes = len - 1;
	expect_error(&lim, s, len, 431, "head");

	/* Byte by byte, the reader stops at the limit without waiting for more. */
	http_reader_init(&r, &lim);
	size_t i;
	for (i = 0; i < len; i++)
		if (feed(&r, s + i, 1, &used) != HTTP_READ_MORE)
			break;
	assert_int_equal(i, len - 2);
	assert_int_equal(http_reader_error(&r, NULL), 431);
	http_reader_fini(&r);
}

static void test_an_endless_header_is_431_however_it_is_split(void **state)
{
	(void)state;
	http_reader r;
	size_t used;
	http_reader_init(&r, &limits);
	assert_int_equal(feed(&r, "GET / HTTP/1.1\r\nX-A: ", 21, &used), HTTP_READ_MORE);
	char chunk[1000];
	memset(chunk, 'a', sizeof chunk);
	int rc = HTTP_READ_MORE;
	for (int i = 0; i < 20 && rc == HTTP_READ_MORE; i++)
		rc = feed(&r, chunk, sizeof chunk, &used);
	assert_int_equal(rc, HTTP_READ_ERROR);
	assert_int_equal(http_reader_error(&r, NULL), 431);
	/* Nothing past the limit was kept. */
	assert_true(r.len <= limits.max_head_bytes + 2);
	http_reader_fini(&r);
}

/* A request with n headers X-<i>: v. */
static char *with_headers(int n)
{
	size_t cap = 64 + (size_t)n * 16;
	char *s = malloc(cap);
	assert_non_null(s);
	size_t len = (size_t)snprintf(s, cap, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "X-%d: v\r\n", i);
	snprintf(s + len, cap - len, "\r\n");
	return s;
}

static void test_more_than_64_headers_is_431_and_64_are_fine(void **state)
{
	(void)state;
	char *s = with_headers(HTTP_MAX_HEADERS);
	http_reader r;
	const http_request *req = parse_one(&r, s);
	assert_int_equal(req->nheaders, HTTP_MAX_HEADERS);
	assert_string_equal(req->headers[63].name, "x-63");
	http_reader_fini(&r);
	free(s);

	s = with_headers(HTTP_MAX_HEADERS + 1);
	expect_status(s, 431, "header fields");
	free(s);
}

static void test_a_65th_header_that_is_also_malformed_is_400_however_it_is_split(void **state)
{
	(void)state;
	char *s = with_headers(HTTP_MAX_HEADERS);
	size_t len = strlen(s) - 2;
	char *bad = malloc(len + 32);
	assert_non_null(bad);
	memcpy(bad, s, len);
	static const char last[] = "X-Last-One-Is-B@d: v\r\n\r\n";
	memcpy(bad + len, last, sizeof last);
	len += sizeof last - 1;
	expect_error(&limits, bad, len, 400, "invalid character in header");
	http_reader r;
	size_t used;
	http_reader_init(&r, &limits);
	int rc = HTTP_READ_MORE;
	for (size_t i = 0; i < len && rc == HTTP_READ_MORE; i++)
		rc = feed(&r, bad + i, 1, &used);
	assert_int_equal(rc, HTTP_READ_ERROR);
	assert_int_equal(http_reader_error(&r, NULL), 400);
	http_reader_fini(&r);
	free(bad);
	free(s);
}

static void test_http_versions_other_than_1_x_are_505(void **state)
{
	(void)state;
	expect_status("GET / HTTP/2.0\r\n\r\n", 505, "HTTP/2.0");
	expect_status("GET / HTTP/0.9\r\n\r\n", 505, NULL);
	expect_status("GET /\r\n\r\n", 505, NULL);
	expect_status("GET / HTTP/3.1\r\nHost: a\r\n\r\n", 505, NULL);
}

static void test_transfer_codings_other_than_chunked_are_501(void **state)
{
	(void)state;
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "gzip");
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, NULL);
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501, NULL);
	/* The coding's name is not case-sensitive. */
	http_reader r;
	const http_request *req =
		parse_one(&r, "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n");
	assert_string_equal(req->body, "x");
	http_reader_fini(&r);
}

static void test_expect_100_continue_is_recorded_and_announced_before_the_body(void **state)
{
	(void)state;
	static const char head[] = "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
	http_reader r;
	size_t used;
	http_reader_init(&r, &limits);
	assert_int_equal(feed(&r, head, 10, &used), HTTP_READ_MORE);
	assert_false(http_reader_expects_continue(&r));
	assert_int_equal(feed(&r, head + 10, strlen(head) - 10, &used), HTTP_READ_MORE);
	assert_true(http_reader_expects_continue(&r));
	assert_int_equal(feed(&r, "a", 1, &used), HTTP_READ_MORE);
	assert_false(http_reader_expects_continue(&r));
	assert_int_equal(feed(&r, "bc", 2, &used), HTTP_READ_DONE);
	assert_true(http_reader_request(&r)->expect_continue);
	assert_false(http_reader_expects_continue(&r));
	http_reader_fini(&r);

	assert_false(parse_one(&r, POST_ECHO)->expect_continue);
	http_reader_fini(&r);
}

static void test_a_reader_reset_after_a_big_body_reads_the_next_request(void **state)
{
	(void)state;
	size_t n = 60000;
	char *s = malloc(n + 100);
	assert_non_null(s);
	int head = snprintf(s, 100, "POST /big HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", n);
	memset(s + head, 'b', n);
	http_reader r;
	size_t used;
	http_reader_init(&r, &limits);
	assert_int_equal(feed(&r, s, (size_t)head + n, &used), HTTP_READ_DONE);
	assert_int_equal(http_reader_request(&r)->body_len, n);
	http_reader_reset(&r);
	assert_int_equal(feed(&r, GET_ECHO, strlen(GET_ECHO), &used), HTTP_READ_DONE);
	assert_string_equal(http_reader_request(&r)->query, "message=aGk%3D&x=1");
	http_reader_fini(&r);
	free(s);
}

static void test_an_empty_feed_uses_nothing_and_wants_more(void **state)
{
	(void)state;
	http_reader r;
	size_t used = 99;
	http_reader_init(&r, &limits);
	assert_int_equal(feed(&r, "", 0, &used), HTTP_READ_MORE);
	assert_int_equal(used, 0);
	assert_null(http_reader_request(&r));
	assert_int_equal(http_reader_error(&r, NULL), 0);
	http_reader_fini(&r);
	/* fini twice, or without a request, is harmless. */
	http_reader_fini(&r);
}

static void test_running_out_of_memory_is_500(void **state)
{
	(void)state;
	http_reader r;
	size_t used;
	http_reader_init(&r, &limits);
	rpcq_alloc_fail_after(0);
	int rc = feed(&r, GET_ECHO, strlen(GET_ECHO), &used);
	rpcq_alloc_fail_after(-1);
	assert_int_equal(rc, HTTP_READ_ERROR);
	assert_int_equal(http_reader_error(&r, NULL), 500);
	http_reader_fini(&r);
}

/* Streamed bodies: the head comes out at its end, the body, decoded, goes
 * to the sink in pieces of any size and past max_body_bytes, and the next
 * request on the connection reads as usual. */
static int streams_upload(const char *method, const char *path)
{
	return strcmp(method, "POST") == 0 && strcmp(path, "/up") == 0;
}

typedef struct collected {
	char data[300000];
	size_t len;
	int refuse_after;
} collected;

static int collect(void *arg, const char *data, size_t len)
{
	collected *k = arg;
	if (k->refuse_after && k->len + len > (size_t)k->refuse_after)
		return 1;
	assert_true(k->len + len <= sizeof(k->data));
	memcpy(k->data + k->len, data, len);
	k->len += len;
	return 0;
}

static void test_a_streamed_body_goes_to_the_sink_in_pieces_of_any_size(void **state)
{
	(void)state;
	static collected k;
	static char req[400000];
	const http_limits lim = {.max_head_bytes = 8192, .max_body_bytes = 1024, .stream_body = streams_upload};
	/* A chunked body of 200,000 bytes, then a second request. */
	size_t n = (size_t)snprintf(req, sizeof(req),
				    "POST /up?name=a HTTP/1.1\r\nHost: x\r\n"
				    "Transfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 40; i++) {
		n += (size_t)snprintf(req + n, sizeof(req) - n, "1388\r\n");
		for (int j = 0; j < 5000; j++)
			req[n++] = (char)('a' + (i + j) % 26);
		n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
	}
	n += (size_t)snprintf(req + n, sizeof(req) - n, "0\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
	const size_t pieces[] = {1, 7, 1000, 65536, sizeof(req)};
	for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
		http_reader r;
		http_reader_init(&r, &lim);
		k.len = 0;
		k.refuse_after = 0;
		size_t off = 0, used;
		int rc = HTTP_READ_MORE, heads = 0;
		while (off < n) {
			size_t m = n - off < pieces[p] ? n - off : pieces[p];
			rc = http_reader_feed(&r, req + off, m, &used);
			off += used;
			if (rc == HTTP_READ_HEAD) {
				heads++;
				const http_request *h = http_reader_request(&r);
				assert_non_null(h);
				assert_string_equal(h->path, "/up");
				assert_string_equal(h->query, "name=a");
				assert_string_equal(http_request_header(h, "host"), "x");
				http_reader_set_sink(&r, collect, &k);
				continue;
			}
			if (rc == HTTP_READ_DONE)
				break;
			assert_int_equal(rc, HTTP_READ_MORE);
		}
		assert_int_equal(rc, HTTP_READ_DONE);
		assert_int_equal(heads, 1);
		assert_int_equal(k.len, 200000);
		for (size_t i = 0; i < 200000; i++)
			if (k.data[i] != (char)('a' + (i / 5000 + i % 5000) % 26))
				fail_msg("byte %zu differs", i);
		http_reader_reset(&r);
		rc = http_reader_feed(&r, req + off, n - off, &used);
		assert_int_equal(rc, HTTP_READ_DONE);
		assert_string_equal(http_reader_request(&r)->path, "/next");
		http_reader_fini(&r);
	}
	/* A sink that refuses: an error the route answers (499 from the reader). */
	http_reader r;
	http_reader_init(&r, &lim);
	k.len = 0;
	k.refuse_after = 10;
	size_t used;
	assert_int_equal(http_reader_feed(&r, req, n, &used), HTTP_READ_HEAD);
	http_reader_set_sink(&r, collect, &k);
	assert_int_equal(http_reader_feed(&r, req + used, n - used, &used), HTTP_READ_ERROR);
	assert_int_equal(http_reader_error(&r, NULL), 499);
	http_reader_fini(&r);
	/* Other requests keep the body limit. */
	char big[3000];
	int bl = snprintf(big, sizeof(big), "POST /other HTTP/1.1\r\nContent-Length: 2000\r\n\r\n");
	expect_error(&lim, big, (size_t)bl, 413, "limit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_simple_get_gives_method_target_path_query_and_headers),
		cmocka_unit_test(test_a_request_without_a_query_has_an_empty_one),
		cmocka_unit_test(test_every_method_is_allowed_at_this_layer),
		cmocka_unit_test(test_a_post_with_content_length_carries_its_body),
		cmocka_unit_test(test_a_body_may_hold_nul_bytes_and_is_nul_terminated_after_them),
		cmocka_unit_test(test_a_chunked_body_is_joined_and_its_trailers_dropped),
		cmocka_unit_test(test_two_pipelined_requests_in_one_buffer_come_out_one_after_the_other),
		cmocka_unit_test(test_three_pipelined_requests_with_bodies_and_chunks_each_use_their_own_bytes),
		cmocka_unit_test(test_a_request_split_at_every_byte_parses_the_same),
		cmocka_unit_test(test_header_names_are_lower_cased_and_values_trimmed),
		cmocka_unit_test(test_http_request_header_finds_the_first_of_repeated_headers),
		cmocka_unit_test(test_a_host_or_an_authorization_given_twice_is_400),
		cmocka_unit_test(test_http_1_1_keeps_the_connection_alive_unless_connection_close),
		cmocka_unit_test(test_http_1_0_closes_the_connection_unless_keep_alive_is_asked),
		cmocka_unit_test(test_the_path_is_percent_decoded_without_the_plus_rule),
		cmocka_unit_test(test_an_absolute_form_target_gives_its_path_and_query),
		cmocka_unit_test(test_a_fragment_is_not_part_of_the_query),
		cmocka_unit_test(test_a_target_that_is_not_a_path_is_400),
		cmocka_unit_test(test_what_http_parser_rejects_is_400_naming_its_error),
		cmocka_unit_test(test_a_content_length_over_the_limit_is_413_before_the_body_arrives),
		cmocka_unit_test(test_a_chunked_body_over_the_limit_is_413_as_soon_as_a_chunk_says_so),
		cmocka_unit_test(test_a_head_over_the_limit_is_431_and_exactly_the_limit_is_not),
		cmocka_unit_test(test_an_endless_header_is_431_however_it_is_split),
		cmocka_unit_test(test_more_than_64_headers_is_431_and_64_are_fine),
		cmocka_unit_test(test_a_65th_header_that_is_also_malformed_is_400_however_it_is_split),
		cmocka_unit_test(test_http_versions_other_than_1_x_are_505),
		cmocka_unit_test(test_transfer_codings_other_than_chunked_are_501),
		cmocka_unit_test(test_expect_100_continue_is_recorded_and_announced_before_the_body),
		cmocka_unit_test(test_a_reader_reset_after_a_big_body_reads_the_next_request),
		cmocka_unit_test(test_an_empty_feed_uses_nothing_and_wants_more),
		cmocka_unit_test(test_running_out_of_memory_is_500),
		cmocka_unit_test(test_a_streamed_body_goes_to_the_sink_in_pieces_of_any_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
