/*
 * libFuzzer target for the HTTP gateway's request framing
 * (server/gateway/http_parse.h): any bytes a client may send on a
 * connection. The first four bytes of the input are the sizes of the pieces
 * the rest is fed in, in turn (0: all that is left), as reads from a socket
 * would cut it; after each request the reader is reset and goes on with the
 * leftover, as the gateway does on a keep-alive connection, and the request's
 * headers go through headers_to_metadata and its Origin, Host and
 * Access-Control-Request-Headers through cors.h. The same bytes fed in one piece
 * must give the same requests and the same error: a request must not depend
 * on how the network split it. Run under ASan+UBSan: crashes, leaks and
 * undefined behaviour are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cors.h"
#include "fuzz_hash.h"
#include "headers.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits, so that inputs of a few KiB reach them. */
static const http_limits limits = {.max_head_bytes = 2048, .max_body_bytes = 4096};

#define MAX_REQUESTS 64

/* What one run saw: a hash of each request, then the error, if any. */
typedef struct outcome {
	uint64_t hash[MAX_REQUESTS];
	int n;
	int error_status;
} outcome;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	return fuzz_hash_field(h, p, n);
}

static uint64_t mix_str(uint64_t h, const char *s)
{
	return mix(h, s, strlen(s));
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The Origin checks as the gateway makes them (gw_origin_check, options):
 * an origin taken for the gateway's own is a well-formed one, a listed one
 * is allowed, and a header list echoed back holds no line break. */
static void check_cors(const http_request *req)
{
	static const char *const allowed[] = {"https://app.example", "null"};
	const char *origin = http_request_header(req, "origin"), *host = http_request_header(req, "host");
	if (origin != NULL) {
		int same = cors_same_origin(origin, host);
		if (same && !cors_origin_valid(origin))
			abort();
		int listed = cors_allowed(allowed, 2, origin, host);
		if (same && !listed)
			abort();
	}
	const char *want = http_request_header(req, "access-control-request-headers");
	if (want != NULL && cors_header_list_valid(want) && strpbrk(want, "\r\n") != NULL)
		abort();
}

/* What http_parse.h promises of every request; hashes it. */
static uint64_t check_request(const http_request *req)
{
	if (req->method == NULL || req->target == NULL || req->path == NULL || req->query == NULL ||
	    req->body == NULL || req->path[0] != '/' || req->body[req->body_len] != '\0' ||
	    req->body_len > limits.max_body_bytes || req->nheaders < 0 || req->nheaders > HTTP_MAX_HEADERS ||
	    (req->http_minor != 0 && req->http_minor != 1) || strlen(req->target) + 2 > limits.max_head_bytes)
		abort();
	uint64_t h = FUZZ_HASH_INIT;
	h = mix_str(h, req->method);
	h = mix_str(h, req->target);
	h = mix_str(h, req->path);
	h = mix_str(h, req->query);
	for (int i = 0; i < req->nheaders; i++) {
		const char *name = req->headers[i].name, *value = req->headers[i].value;
		size_t vlen = strlen(value);
		for (const char *c = name; *c != '\0'; c++)
			if (*c >= 'A' && *c <= 'Z')
				abort();
		if (vlen > 0 && (is_blank(value[0]) || is_blank(value[vlen - 1])))
			abort();
		if (http_request_header(req, name) == NULL)
			abort();
		h = mix_str(h, name);
		h = mix_str(h, value);
	}
	h = mix(h, req->body, req->body_len);
	int flags[3] = {req->http_minor, req->keep_alive, req->expect_continue};
	h = mix(h, flags, sizeof flags);

	check_cors(req);
	headers_metadata md;
	char err[128];
	if (headers_to_metadata(req, &md, err, sizeof err) == 0) {
		if (md.n < 0 || md.n > HEADERS_MAX_METADATA)
			abort();
		for (int i = 0; i < md.n; i++)
			if (headers_is_protocol(md.key[i]) || md.value[i] == NULL)
				abort();
	} else if (err[0] == '\0') {
		abort();
	}
	return h;
}

/* Feeds data (size bytes) in pieces of sizes[k] bytes in turn. */
static void run(const uint8_t *sizes, const char *data, size_t size, outcome *o)
{
	http_reader r;
	http_reader_init(&r, &limits);
	memset(o, 0, sizeof *o);
	size_t off = 0;
	for (unsigned k = 0; off < size; k++) {
		size_t piece = sizes[k % 4];
		if (piece == 0 || piece > size - off)
			piece = size - off;
		size_t used = 0;
		int rc = http_reader_feed(&r, data + off, piece, &used);
		if (used > piece)
			abort();
		if (rc == HTTP_READ_MORE) {
			if (used != piece || http_reader_request(&r) != NULL)
				abort();
			off += piece;
			continue;
		}
		if (rc == HTTP_READ_ERROR) {
			const char *msg = NULL;
			int status = http_reader_error(&r, &msg);
			if ((status != 400 && status != 413 && status != 431 && status != 501 && status != 505) ||
			    msg == NULL || msg[0] == '\0')
				abort();
			o->error_status = status;
			break;
		}
		if (rc != HTTP_READ_DONE || used == 0)
			abort();
		uint64_t h = check_request(http_reader_request(&r));
		if (o->n < MAX_REQUESTS)
			o->hash[o->n] = h;
		o->n++;
		http_reader_reset(&r);
		off += used;
	}
	http_reader_fini(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t whole[4] = {0, 0, 0, 0};
	if (size < 4)
		return 0;
	outcome split, one;
	run(data, (const char *)data + 4, size - 4, &split);
	run(whole, (const char *)data + 4, size - 4, &one);
	if (split.n != one.n || split.error_status != one.error_status)
		abort();
	for (int i = 0; i < split.n && i < MAX_REQUESTS; i++)
		if (split.hash[i] != one.hash[i])
			abort();
	return 0;
}
