/*
 * HTTP/1.x request framing over http-parser (http_parse.h). http-parser does
 * the grammar and calls back with pieces of the request as they arrive; every
 * piece is copied into the reader's one buffer, so that a request split over
 * many reads comes out the same as one read whole. The buffer may move while
 * it grows, so strings are kept as offsets until the message is complete, and
 * only then become the pointers of http_request. On completion the parser is
 * paused, so that the bytes of a pipelined next request stay unread.
 *
 * The limits are ours: http-parser's own cap on the head (80 KiB) stays as a
 * backstop. The head is fed to http-parser no further than max_head_bytes, so
 * a head over the limit is refused without being read past it, and the body
 * is counted against max_body_bytes both from Content-Length, before any of
 * it arrives, and as chunks come.
 */
#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <rpcq/alloc.h>

#include "http_parse.h"
#include "query.h"

/* Which string the last callback added to. */
enum { AT_NOTHING, AT_TARGET, AT_NAME, AT_VALUE };

/* A buffer grown past this for one request is given back on reset, so that
 * an idle keep-alive connection does not hold a large body's memory. */
#define KEEP_BUFFER_BYTES 16384

static int fail(http_reader *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records the first error; returns -1, which makes http-parser stop. */
static int fail(http_reader *r, int status, const char *fmt, ...)
{
	if (r->error_status == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->error, sizeof r->error, fmt, ap);
		va_end(ap);
		r->error_status = status;
	}
	return -1;
}

/* Makes room for more bytes after len. */
static int reserve(http_reader *r, size_t more)
{
	if (r->cap - r->len >= more)
		return 0;
	size_t cap = r->cap > 0 ? r->cap : 1024;
	while (cap - r->len < more) {
		if (cap > SIZE_MAX / 2)
			return fail(r, 500, "out of memory");
		cap *= 2;
	}
	char *buf = rpcq_realloc(r->buf, cap);
	if (buf == NULL)
		return fail(r, 500, "out of memory");
	r->buf = buf;
	r->cap = cap;
	return 0;
}

static int append(http_reader *r, const char *s, size_t n)
{
	if (reserve(r, n) != 0)
		return -1;
	if (n > 0)
		memcpy(r->buf + r->len, s, n);
	r->len += n;
	return 0;
}

static int append_nul(http_reader *r)
{
	return append(r, "", 1);
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Ends the string the last callbacks added to: the target, or a header's
 * value (trimmed); a name without a value (http-parser always sends one,
 * maybe empty) gets an empty one. */
static int end_string(http_reader *r)
{
	switch (r->state) {
	case AT_NOTHING:
		r->target_at = r->len;
		r->target_len = 0;
		return append_nul(r);
	case AT_TARGET:
		r->target_len = r->len - r->target_at;
		return append_nul(r);
	case AT_NAME:
		if (append_nul(r) != 0)
			return -1;
		r->at[r->req.nheaders][1] = r->len;
		/* fall through */
	case AT_VALUE: {
		size_t *value = &r->at[r->req.nheaders][1];
		while (r->len > *value && is_blank(r->buf[r->len - 1]))
			r->len--;
		while (*value < r->len && is_blank(r->buf[*value]))
			(*value)++;
		r->req.nheaders++;
		return append_nul(r);
	}
	}
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	http_reader *r = p->data;
	if (r->state != AT_TARGET) {
		r->state = AT_TARGET;
		r->target_at = r->len;
	}
	return append(r, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	http_reader *r = p->data;
	if (r->headers_done)
		return 0; /* a trailer of a chunked body: not kept */
	if (r->state != AT_NAME) {
		/* One header too many is refused only when the head is complete:
		 * http-parser hands over a name piece by piece, at the end of each
		 * read, so refusing it here would make the answer to a head that is
		 * also malformed further on (400) depend on how it was split. */
		if (!r->too_many && end_string(r) != 0)
			return -1;
		if (r->req.nheaders == HTTP_MAX_HEADERS)
			r->too_many = 1;
		r->state = AT_NAME;
		if (!r->too_many)
			r->at[r->req.nheaders][0] = r->len;
	}
	if (r->too_many)
		return 0;
	if (reserve(r, n) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = at[i];
		r->buf[r->len++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	http_reader *r = p->data;
	if (r->headers_done)
		return 0;
	if (r->too_many) {
		r->state = AT_VALUE;
		return 0;
	}
	if (r->state != AT_VALUE) {
		if (append_nul(r) != 0)
			return -1;
		r->state = AT_VALUE;
		r->at[r->req.nheaders][1] = r->len;
	}
	return append(r, at, n);
}

/* The header's value (after end_string), by offsets; NULL when absent. */
static const char *header_at(const http_reader *r, const char *name)
{
	for (int i = 0; i < r->req.nheaders; i++)
		if (strcmp(r->buf + r->at[i][0], name) == 0)
			return r->buf + r->at[i][1];
	return NULL;
}

/* A transfer coding other than chunked is one we cannot undo, and one that
 * comes after chunked leaves the body's length unknown (RFC 9112 6.1). */
static int check_transfer_coding(http_reader *r)
{
	for (int i = 0; i < r->req.nheaders; i++)
		if (strcmp(r->buf + r->at[i][0], "transfer-encoding") == 0 &&
		    strcasecmp(r->buf + r->at[i][1], "chunked") != 0)
			return fail(r, 501, "transfer coding not supported: %.60s", r->buf + r->at[i][1]);
	return 0;
}

/* Fields a request may carry once: two Hosts are refused by RFC 9112
 * (3.2), and two Authorizations would leave it to chance which key is
 * checked (a proxy that adds its own, say). */
static int check_single_fields(http_reader *r)
{
	static const char *const once[] = {"host", "authorization"};
	for (size_t k = 0; k < sizeof(once) / sizeof(once[0]); k++) {
		int seen = 0;
		for (int i = 0; i < r->req.nheaders; i++)
			if (strcmp(r->buf + r->at[i][0], once[k]) == 0 && seen++)
				return fail(r, 400, "malformed request: %s given more than once", once[k]);
	}
	return 0;
}

/* path (decoded) and query (as sent) from the target, into the buffer. */
static int split_target(http_reader *r)
{
	struct http_parser_url u;
	http_parser_url_init(&u);
	if (http_parser_parse_url(r->buf + r->target_at, r->target_len, r->parser.method == HTTP_CONNECT, &u) != 0)
		return fail(r, 400, "malformed request: invalid target");
	if (!(u.field_set & (1 << UF_PATH)) || r->buf[r->target_at + u.field_data[UF_PATH].off] != '/')
		return fail(r, 400, "malformed request: the target's path must start with '/'");
	size_t path_off = r->target_at + u.field_data[UF_PATH].off, path_len = u.field_data[UF_PATH].len;
	if (reserve(r, path_len + 1) != 0)
		return -1;
	long n = query_decode(r->buf + path_off, path_len, r->buf + r->len, path_len + 1, 0);
	if (n < 0)
		return fail(r, 400, "malformed request: bad percent-encoding in the path");
	r->path_at = r->len;
	r->len += (size_t)n + 1;
	r->query_at = r->len;
	size_t query_len = u.field_set & (1 << UF_QUERY) ? u.field_data[UF_QUERY].len : 0;
	/* The query is copied from the buffer into itself: room first, as the
	 * buffer may move. */
	if (reserve(r, query_len + 1) != 0)
		return -1;
	if (query_len > 0)
		memcpy(r->buf + r->len, r->buf + r->target_at + u.field_data[UF_QUERY].off, query_len);
	r->len += query_len;
	return append_nul(r);
}

static void fix_request(http_reader *r, http_parser *p);

static int on_headers_complete(http_parser *p)
{
	http_reader *r = p->data;
	r->headers_done = 1;
	if (r->too_many)
		return fail(r, 431, "more than %d header fields", HTTP_MAX_HEADERS);
	if (end_string(r) != 0)
		return -1;
	if (p->http_major != 1)
		return fail(r, 505, "HTTP/%u.%u is not supported", p->http_major, p->http_minor);
	if (split_target(r) != 0 || check_transfer_coding(r) != 0 || check_single_fields(r) != 0)
		return -1;
	r->body_at = r->len;
	if (r->limits.stream_body != NULL &&
	    r->limits.stream_body(http_method_str((enum http_method)p->method), r->buf + r->path_at)) {
		r->req.http_minor = p->http_minor > 1 ? 1 : p->http_minor;
		r->req.keep_alive = http_should_keep_alive(p) != 0;
		const char *expect = header_at(r, "expect");
		r->req.expect_continue = expect != NULL && strcasecmp(expect, "100-continue") == 0;
		if (append_nul(r) != 0)
			return -1;
		fix_request(r, p);
		r->streaming = 1;
		r->head_ready = 1;
		http_parser_pause(p, 1);
		return 0;
	}
	if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX && p->content_length > r->limits.max_body_bytes)
		return fail(r, 413, "body of %llu bytes is over the limit of %zu",
			    (unsigned long long)p->content_length, r->limits.max_body_bytes);
	/* HTTP/1.2 and later minors are answered as 1.1 (RFC 9110 2.5). */
	r->req.http_minor = p->http_minor > 1 ? 1 : p->http_minor;
	r->req.keep_alive = http_should_keep_alive(p) != 0;
	const char *expect = header_at(r, "expect");
	r->req.expect_continue = expect != NULL && strcasecmp(expect, "100-continue") == 0;
	r->body_at = r->len;
	return 0;
}

static size_t body_len(const http_reader *r)
{
	return r->headers_done ? r->len - r->body_at : 0;
}

static int on_chunk_header(http_parser *p)
{
	http_reader *r = p->data;
	if (r->streaming)
		return 0;
	/* content_length is the size of the chunk about to come. */
	if (p->content_length > r->limits.max_body_bytes - body_len(r))
		return fail(r, 413, "chunked body over the limit of %zu bytes", r->limits.max_body_bytes);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	http_reader *r = p->data;
	if (r->streaming) {
		if (r->sink == NULL || r->sink(r->sink_arg, at, n) != 0) {
			r->sink_stopped = 1;
			return fail(r, 499, "the body was refused");
		}
		return 0;
	}
	if (n > r->limits.max_body_bytes - body_len(r))
		return fail(r, 413, "body over the limit of %zu bytes", r->limits.max_body_bytes);
	return append(r, at, n);
}

/* Points the request's strings into the buffer (which no longer moves). */
static void fix_request(http_reader *r, http_parser *p)
{
	http_request *req = &r->req;
	req->method = http_method_str((enum http_method)p->method);
	req->target = r->buf + r->target_at;
	req->path = r->buf + r->path_at;
	req->query = r->buf + r->query_at;
	for (int i = 0; i < req->nheaders; i++) {
		req->headers[i].name = r->buf + r->at[i][0];
		req->headers[i].value = r->buf + r->at[i][1];
	}
	req->body = r->buf + r->body_at;
	req->body_len = r->len - 1 - r->body_at;
}

static int on_message_complete(http_parser *p)
{
	http_reader *r = p->data;
	if (!r->streaming) {
		if (append_nul(r) != 0)
			return -1;
		fix_request(r, p);
	}
	r->done = 1;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
	.on_chunk_header = on_chunk_header,
};

/* Everything but the buffer, as for a new connection. */
static void start(http_reader *r)
{
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
	memset(&r->req, 0, sizeof r->req);
	r->len = 0;
	r->head_bytes = 0;
	r->state = AT_NOTHING;
	r->target_at = r->target_len = r->path_at = r->query_at = r->body_at = 0;
	r->headers_done = 0;
	r->streaming = 0;
	r->head_ready = 0;
	r->sink = NULL;
	r->sink_arg = NULL;
	r->sink_stopped = 0;
	r->too_many = 0;
	r->done = 0;
	r->error_status = 0;
	r->error[0] = '\0';
}

void http_reader_init(http_reader *r, const http_limits *limits)
{
	assert(limits != NULL);
	r->limits = *limits;
	r->buf = NULL;
	r->cap = 0;
	start(r);
}

void http_reader_fini(http_reader *r)
{
	rpcq_free(r->buf);
	r->buf = NULL;
	r->cap = 0;
	r->len = 0;
}

void http_reader_set_sink(http_reader *r, http_sink_fn sink, void *arg)
{
	r->sink = sink;
	r->sink_arg = arg;
}

void http_reader_reset(http_reader *r)
{
	if (r->cap > KEEP_BUFFER_BYTES) {
		rpcq_free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
	start(r);
}

/* Translates an error of http-parser; ours were recorded by fail(). */
static int parser_error(http_reader *r)
{
	enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
	if (r->error_status != 0)
		return HTTP_READ_ERROR;
	switch (e) {
	case HPE_HEADER_OVERFLOW:
		fail(r, 431, "request head too large");
		break;
	case HPE_INVALID_TRANSFER_ENCODING:
		fail(r, 501, "transfer coding not supported");
		break;
	default:
		fail(r, 400, "malformed request: %s", http_errno_description(e));
		break;
	}
	return HTTP_READ_ERROR;
}

int http_reader_feed(http_reader *r, const char *data, size_t len, size_t *used)
{
	size_t off = 0;
	*used = 0;
	if (r->error_status != 0)
		return HTTP_READ_ERROR;
	if (r->done)
		return HTTP_READ_DONE;
	while (off < len) {
		size_t n = len - off;
		int in_head = !r->headers_done;
		if (in_head && n > r->limits.max_head_bytes - r->head_bytes)
			n = r->limits.max_head_bytes - r->head_bytes;
		if (n == 0) {
			fail(r, 431, "request head over the limit of %zu bytes", r->limits.max_head_bytes);
			break;
		}
		size_t got = http_parser_execute(&r->parser, &settings, data + off, n);
		off += got;
		*used = off;
		if (r->done)
			return HTTP_READ_DONE;
		if (r->head_ready && r->error_status == 0) {
			r->head_ready = 0;
			http_parser_pause(&r->parser, 0);
			return HTTP_READ_HEAD;
		}
		if (r->error_status != 0 || HTTP_PARSER_ERRNO(&r->parser) != HPE_OK)
			return parser_error(r);
		if (got != n) {
			/* http-parser stops early only on an error or a pause. */
			fail(r, 400, "malformed request");
			break;
		}
		if (in_head && !r->headers_done) {
			/* The head is not over yet, so it needs another byte. */
			r->head_bytes += got;
			if (r->head_bytes >= r->limits.max_head_bytes) {
				fail(r, 431, "request head over the limit of %zu bytes", r->limits.max_head_bytes);
				break;
			}
		}
	}
	if (r->error_status != 0)
		return HTTP_READ_ERROR;
	*used = len;
	return HTTP_READ_MORE;
}

const http_request *http_reader_request(const http_reader *r)
{
	return r->done || r->streaming ? &r->req : NULL;
}

int http_reader_expects_continue(const http_reader *r)
{
	return r->headers_done && !r->done && r->error_status == 0 && r->req.expect_continue && body_len(r) == 0;
}

int http_reader_error(const http_reader *r, const char **message)
{
	if (message != NULL)
		*message = r->error;
	return r->error_status;
}

const char *http_request_header(const http_request *req, const char *name)
{
	for (int i = 0; i < req->nheaders; i++)
		if (strcmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}
