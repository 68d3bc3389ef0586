/*
 * libFuzzer target for multipart/form-data bodies (server/gateway/multipart.h):
 * any Content-Type and body a client may send to POST /billing/imports. The
 * input's first line is the Content-Type value (its boundary taken by
 * multipart_boundary; when it has none, "boundary" is used, so the body is
 * still read), the next byte seeds the piece sizes, the rest is the body.
 * The body is fed whole, in pieces of sizes drawn from the seed, and one byte
 * at a time: all three must give the same callbacks, result, error and
 * offset. Every piece of data must be the body's bytes at the part's offset
 * plus what came before (so a part's data is exactly a slice of the body,
 * ending where its delimiter starts), and fed byte by byte no more than the
 * delimiter's length less one may be held back. Run under ASan+UBSan:
 * crashes, leaks and undefined behaviour are the findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_hash.h"
#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One run: a digest of the callbacks (independent of how data was cut) and
 * what the oracle needs. */
typedef struct run {
	const char *body;
	size_t body_len;
	const char *delim; /* "\r\n--" boundary */
	size_t delim_len;
	const multipart_parser *mp;
	uint64_t h;
	int parts, ends, open;
	uint64_t part_offset, emitted; /* of the open part */
} run;

static void mix(run *r, const void *p, size_t n)
{
	r->h = fuzz_hash(r->h, p, n);
}

static void mix_str(run *r, const char *s)
{
	if (s == NULL) {
		mix(r, "\1", 1);
		return;
	}
	mix(r, s, strlen(s) + 1);
}

static int on_part(void *arg, const multipart_part *p)
{
	run *r = arg;
	if (r->open || p->index != r->parts || r->ends != r->parts || p->offset > r->body_len)
		abort();
	if (p->nheaders < 0 || p->nheaders > MULTIPART_MAX_HEADERS)
		abort();
	mix(r, "P", 1);
	mix(r, &p->index, sizeof p->index);
	mix(r, &p->offset, sizeof p->offset);
	for (int i = 0; i < p->nheaders; i++) {
		mix_str(r, p->headers[i].name);
		mix_str(r, p->headers[i].value);
	}
	mix_str(r, p->disposition);
	mix_str(r, p->name);
	mix_str(r, p->filename);
	mix_str(r, p->content_type);
	r->parts++;
	r->open = 1;
	r->part_offset = p->offset;
	r->emitted = 0;
	return 0;
}

static int on_data(void *arg, const char *data, size_t len)
{
	run *r = arg;
	if (!r->open || len == 0)
		abort();
	/* Either the caller's bytes or the held-back delimiter prefix. */
	const char *mp_lo = (const char *)r->mp, *mp_hi = mp_lo + sizeof *r->mp;
	int in_body = data >= r->body && data + len <= r->body + r->body_len;
	int in_mp = data >= mp_lo && data + len <= mp_hi;
	if (!in_body && !in_mp)
		abort();
	/* The data is the body's bytes from the part's offset on. */
	if (r->part_offset + r->emitted + len > r->body_len ||
	    memcmp(data, r->body + r->part_offset + r->emitted, len) != 0)
		abort();
	r->emitted += len;
	mix(r, data, len);
	return 0;
}

static int on_part_end(void *arg, const multipart_part *p)
{
	run *r = arg;
	if (!r->open || p->index != r->ends)
		abort();
	/* The part ends where its delimiter starts. */
	uint64_t end = r->part_offset + r->emitted;
	if (end + r->delim_len > r->body_len || memcmp(r->body + end, r->delim, r->delim_len) != 0)
		abort();
	mix(r, "E", 1);
	r->ends++;
	r->open = 0;
	return 0;
}

static const multipart_callbacks callbacks = {on_part, on_data, on_part_end};

typedef struct outcome {
	uint64_t h;
	int rc, done, parts, ends;
	uint64_t at;
	char error[sizeof(((multipart_parser *)0)->error)];
} outcome;

/* Feeds the body in pieces: piece 0 whole, 1 byte by byte, else sizes
 * from an LCG seeded by seed. */
static void feed(const char *boundary, const char *body, size_t len, int mode, uint32_t seed, outcome *out)
{
	static multipart_parser mp; /* 16 KiB: not on the stack */
	run r;
	memset(&r, 0, sizeof r);
	r.body = body;
	r.body_len = len;
	r.mp = &mp;
	r.h = 1469598103934665603ull;
	if (multipart_init(&mp, boundary) != 0)
		abort();
	r.delim = mp.delim;
	r.delim_len = mp.delim_len;
	if (r.delim_len != strlen(boundary) + 4)
		abort();
	int rc = MULTIPART_OK;
	for (size_t off = 0; off < len && rc == MULTIPART_OK;) {
		size_t n = len - off;
		if (mode == 1) {
			n = 1;
		} else if (mode == 2) {
			seed = seed * 1103515245u + 12345u;
			size_t k = 1 + (seed >> 16) % (1 + (seed & 0xff));
			n = k < n ? k : n;
		}
		rc = multipart_feed(&mp, body + off, n, &callbacks, &r);
		off += n;
		/* Fed one byte at a time, a part's data is held back only
		 * while it may still be the delimiter. */
		if (mode == 1 && rc == MULTIPART_OK && r.open && off > r.part_offset &&
		    off - r.part_offset - r.emitted > r.delim_len - 1)
			abort();
	}
	if (rc == MULTIPART_OK)
		rc = multipart_finish(&mp) == 0 ? MULTIPART_OK : MULTIPART_ERROR;
	else if (multipart_finish(&mp) == 0)
		abort();
	out->h = r.h;
	out->rc = rc;
	out->done = multipart_done(&mp);
	out->parts = r.parts;
	out->ends = r.ends;
	snprintf(out->error, sizeof out->error, "%s", multipart_error(&mp, &out->at));
	if ((rc == MULTIPART_OK) != (out->error[0] == '\0') || (rc == MULTIPART_OK) != out->done)
		abort();
	if (rc != MULTIPART_OK && (strncmp(out->error, "byte ", 5) != 0 || out->at > len))
		abort();
	if (rc == MULTIPART_OK && r.ends != r.parts)
		abort();
	if (r.ends != r.parts && r.ends + 1 != r.parts)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size < 512 ? size : 512);
	if (nl == NULL || (size_t)(nl - in) + 2 > size)
		return 0;
	char ct[512], b[MULTIPART_BOUNDARY_MAX + 1], small[8], err[256];
	size_t ct_len = (size_t)(nl - in);
	memcpy(ct, in, ct_len);
	ct[ct_len] = '\0';
	if (memchr(ct, '\0', ct_len) != NULL)
		return 0;
	uint32_t seed = (unsigned char)nl[1];
	const char *body = nl + 2;
	size_t len = size - ct_len - 2;

	/* The boundary: valid when found, the same in a smaller buffer when it
	 * fits, and an error always says something. */
	int rc = multipart_boundary(ct, b, sizeof b, err, sizeof err);
	int rc_small = multipart_boundary(ct, small, sizeof small, err, sizeof err);
	if (rc == 0) {
		size_t n = strlen(b);
		if (n == 0 || n > MULTIPART_BOUNDARY_MAX)
			abort();
		if (n < sizeof small ? (rc_small != 0 || strcmp(small, b) != 0) : rc_small != -1)
			abort();
	} else {
		if (rc != -1 || rc_small != -1 || strncmp(err, "Content-Type: ", 14) != 0 || b[0] != '\0')
			abort();
		memcpy(b, "boundary", 9);
	}

	/* The body, three ways; the body is copied to a buffer of its own size
	 * so ASan sees any read past it. */
	char *copy = malloc(len ? len : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, body, len);
	outcome whole, cut, bytes;
	feed(b, copy, len, 0, seed, &whole);
	feed(b, copy, len, 2, seed, &cut);
	feed(b, copy, len, 1, seed, &bytes);
	free(copy);
	const outcome *o[2] = {&cut, &bytes};
	for (int i = 0; i < 2; i++) {
		if (o[i]->h != whole.h || o[i]->rc != whole.rc || o[i]->done != whole.done ||
		    o[i]->parts != whole.parts || o[i]->ends != whole.ends || o[i]->at != whole.at ||
		    strcmp(o[i]->error, whole.error) != 0)
			abort();
	}
	return 0;
}
