/*
 * Chunked uploads at byte offsets (upload.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "upload.h"

static uint64_t count_newlines(const char *p, size_t n)
{
	uint64_t k = 0;
	const char *end = p + n;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		k++;
		p++;
	}
	return k;
}

static int only_blanks(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return 0;
	return 1;
}

/* The bytes of the whole lines of blanks at the start of p[0..n). */
static size_t blank_lines(const char *p, size_t n)
{
	size_t lead = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			lead = i + 1;
		else if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			break;
	}
	return lead;
}

rpcq_status upload_take(upload_state *st, const char *carry, size_t carry_len, uint64_t offset, const void *data,
			size_t len, int last, size_t max_carry, strbuf *work, upload_piece *out, rpcq_error *err)
{
	memset(out, 0, sizeof(*out));
	work->len = 0;
	if (offset > st->received)
		return rpcq_error_set(err, RPCQ_FAILED_PRECONDITION,
				      "chunk at byte %" PRIu64 " leaves a gap: the upload has %" PRIu64
				      " bytes, send from there",
				      offset, st->received);
	if (len > UINT64_MAX - offset)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "chunk offset and length overflow");
	uint64_t end = offset + len;
	if (end <= st->received && !(last && !st->complete && end == st->received)) {
		if (last && end < st->received)
			return rpcq_error_set(err, RPCQ_FAILED_PRECONDITION,
					      "a last chunk ending at byte %" PRIu64 " but %" PRIu64
					      " bytes were received",
					      end, st->received);
		out->action = UPLOAD_DUPLICATE;
		return RPCQ_OK;
	}
	if (st->complete)
		return rpcq_error_set(err, RPCQ_FAILED_PRECONDITION,
				      "the file ended at byte %" PRIu64 " (its last chunk was sent)", st->received);

	size_t skip = (size_t)(st->received - offset);
	strbuf_append(work, carry, carry_len);
	strbuf_append(work, (const char *)data + skip, len - skip);
	strbuf_putc(work, '\0'); /* room for readers that like a terminator; not part of the text */
	if (work->failed)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a chunk");
	work->len--;

	char *text = work->data;
	size_t n = work->len;
	uint64_t line = st->line;
	int q = st->skip;
	if (q) {
		/* The rest of an overlong record (meanwhile the carry is empty). */
		size_t e = n;
		int ended = csv_record_end(text, n, &q, &e);
		line += count_newlines(text, e);
		if (ended || last)
			q = 0;
		text += e;
		n -= e;
	}
	size_t done = last ? n : csv_complete(text, n);
	size_t rest = n - done;
	size_t carry_at = done;
	uint64_t rest_line = line + count_newlines(text, done);
	/* A file whose last line has no line break still has that line: the
	 * state's line is the one after the file's last, whichever way it
	 * ends (the lines a service reports are line - 1). */
	if (last && done > 0 && text[done - 1] != '\n')
		rest_line++;
	uint64_t overlong = 0;
	if (!q && rest > max_carry) {
		/* The record starts after the blank lines csv_next skips. */
		const char *r = text + done;
		size_t lead = blank_lines(r, rest);
		if (rest - lead > max_carry && only_blanks(r + lead, rest - lead)) {
			/* A line of blanks not ended yet: a blank line if it ends
			 * so (csv_next skips it), else a record too long whatever
			 * comes; max_carry of its blanks tell either as well. */
			rest_line += count_newlines(r, lead);
			carry_at = done + lead;
			rest = max_carry;
		} else if (rest - lead > max_carry) {
			overlong = rest_line + count_newlines(r, lead);
			size_t e;
			q = CSV_AT_FIELD;
			csv_record_end(r + lead, rest - lead, &q, &e); /* it does not end here: csv_complete */
			rest_line += count_newlines(r, rest);
			rest = 0;
		}
	}
	out->action = UPLOAD_TAKEN;
	out->records = text;
	out->records_len = done;
	out->first_line = line;
	out->carry = text + carry_at;
	out->carry_len = rest;
	out->overlong_line = overlong;
	st->line = rest_line;
	st->skip = q;
	st->received = end;
	st->complete = last;
	return RPCQ_OK;
}

int upload_parse_id(const char *text, int64_t *id)
{
	char *end = NULL;
	errno = 0;
	long long v = text && text[0] >= '1' && text[0] <= '9' ? strtoll(text, &end, 10) : 0;
	if (v <= 0 || errno != 0 || *end != '\0')
		return -1;
	*id = v;
	return 0;
}
