/*
 * CSV record splitter and writer. The reader is a single forward pass: the
 * common unquoted field is a byte scan for ',' or '\n'; a quoted field jumps
 * from quote to quote with memchr and closes the gap left by each "" escape
 * with memmove. Line numbers count every '\n', also those inside quoted
 * fields, so errors name the line a text editor shows.
 */
#include <stdio.h>
#include <string.h>

#include "csv.h"
#include "utf8.h"

static inline int is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

static uint64_t count_newlines(const char *p, const char *end)
{
	uint64_t n = 0;
	for (; p < end; p++)
		n += (*p == '\n');
	return n;
}

void csv_init(csv_reader *r, char *buf, size_t len, uint64_t first_line)
{
	r->p = buf;
	r->end = buf + len;
	r->line = first_line;
}

/* Blanks after a closing quote: those around any field, and the no-break
 * spaces (utf8.h). */
static char *skip_blanks_after_quote(char *p, const char *end)
{
	for (;;) {
		size_t k;
		if (p < end && is_blank(*p))
			p++;
		else if ((k = utf8_nbsp_at(p, end)) != 0)
			p += k;
		else
			return p;
	}
}

/* Reads a quoted field whose opening quote is at r->p. On success the field
 * is [*start, *stop) and r->p is just past the closing quote; -1 when the
 * field is not closed, with r->p at the end of the input. */
static int read_quoted(csv_reader *r, char **start, char **stop)
{
	char *p = r->p + 1;
	char *w = p;
	*start = p;
	for (;;) {
		char *q = memchr(p, '"', (size_t)(r->end - p));
		if (q == NULL) {
			r->line += count_newlines(p, r->end);
			r->p = r->end;
			return -1;
		}
		r->line += count_newlines(p, q);
		if (w != p)
			memmove(w, p, (size_t)(q - p));
		w += q - p;
		if (q + 1 < r->end && q[1] == '"') {
			*w++ = '"';
			p = q + 2;
			continue;
		}
		r->p = q + 1;
		*stop = w;
		return 0;
	}
}

int csv_next(csv_reader *r, csv_record *rec, rpcq_error *err)
{
	char *p = r->p;
	char *end = r->end;

	/* Skip lines that are empty or blank. */
	for (;;) {
		char *q = p;
		while (q < end && is_blank(*q))
			q++;
		if (q == end) {
			r->p = end;
			return 0;
		}
		if (*q != '\n')
			break;
		p = q + 1;
		r->line++;
	}

	rec->line = r->line;
	rec->bad[0] = '\0';
	char *first = p;
	size_t nf = 0;
	for (;;) {
		char *start, *stop;
		while (p < end && is_blank(*p))
			p++;
		if (p < end && *p == '"') {
			r->p = p;
			if (read_quoted(r, &start, &stop) != 0) {
				/* The field (what was read of it) takes the rest of the input. */
				snprintf(rec->bad, sizeof(rec->bad),
					 "a quoted field is not closed before the end of the input");
				stop = end;
				p = end;
			} else {
				p = skip_blanks_after_quote(r->p, end);
			}
			if (p < end && *p != ',' && *p != '\n') {
				if (rec->bad[0] == '\0')
					snprintf(rec->bad, sizeof(rec->bad), "field %zu: text after the closing quote",
						 nf + 1);
				while (p < end && *p != ',' && *p != '\n')
					p++;
			}
		} else {
			start = p;
			while (p < end && *p != ',' && *p != '\n')
				p++;
			stop = p;
			while (stop > start && is_blank(stop[-1]))
				stop--;
		}
		if (nf < CSV_MAX_FIELDS) {
			rec->field[nf].ptr = start;
			rec->field[nf].len = (size_t)(stop - start);
		}
		nf++;
		if (p == end)
			break;
		if (*p == ',') {
			p++;
			continue;
		}
		p++; /* '\n' */
		r->line++;
		break;
	}
	rec->nfields = nf;
	rec->bytes = (size_t)(p - first);
	r->p = p;
	if (rec->bad[0] != '\0') {
		rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: %s", (unsigned long long)rec->line, rec->bad);
		return -1;
	}
	return 1;
}

/* 1 if the quote at q opens a quoted field: only blanks lie between it and
 * the start of the buffer, a ',' or a '\n'. */
static int opens_field(const char *buf, const char *q)
{
	while (q > buf && is_blank(q[-1]))
		q--;
	return q == buf || q[-1] == ',' || q[-1] == '\n';
}

static const char *last_newline(const char *from, const char *to)
{
	while (to > from) {
		to--;
		if (*to == '\n')
			return to;
	}
	return NULL;
}

/* The offset just past the last record-ending '\n' before buf + limit, or 0. */
static size_t last_record_end(const char *buf, size_t len, size_t limit)
{
	const char *p = buf;
	const char *stop = buf + limit; /* bytes at or past stop stay in the next piece */
	const char *last = NULL;	/* last '\n' outside quotes before stop */
	for (;;) {
		const char *q = memchr(p, '"', (size_t)(stop - p));
		const char *gap_end = q ? q : stop;
		const char *nl = last_newline(p, gap_end);
		if (nl)
			last = nl;
		if (q == NULL)
			break;
		if (!opens_field(buf, q)) {
			p = q + 1;
			continue;
		}
		/* Find the closing quote before stop, stepping over "" pairs. */
		const char *c = q + 1;
		for (;;) {
			c = memchr(c, '"', (size_t)(stop - c));
			if (c == NULL || c + 1 >= stop || c[1] != '"')
				break;
			c += 2;
		}
		if (c == NULL || (c + 1 >= stop && c + 1 < buf + len && c[1] == '"')) {
			/* stop falls inside the quoted field. */
			break;
		}
		p = c + 1;
	}
	return last ? (size_t)(last - buf) + 1 : 0;
}

size_t csv_cut(const char *buf, size_t len, size_t limit, uint64_t *newlines)
{
	size_t cut = len <= limit ? len : last_record_end(buf, len, limit);
	if (newlines)
		*newlines = count_newlines(buf, buf + cut);
	return cut;
}

size_t csv_complete(const char *buf, size_t len)
{
	return last_record_end(buf, len, len);
}

int csv_record_end(const char *buf, size_t len, int *state, size_t *end)
{
	int q = *state;
	for (size_t i = 0; i < len; i++) {
		char ch = buf[i];
		switch (q) {
		case CSV_IN_QUOTED:
			if (ch == '"')
				q = CSV_IN_QUOTED_QUOTE;
			continue;
		case CSV_IN_QUOTED_QUOTE:
			if (ch == '"') {
				q = CSV_IN_QUOTED; /* a "" pair */
				continue;
			}
			q = CSV_IN_UNQUOTED; /* the field was closed: what follows it */
			break;
		case CSV_AT_FIELD:
			if (is_blank(ch))
				continue;
			if (ch == '"') {
				q = CSV_IN_QUOTED;
				continue;
			}
			q = CSV_IN_UNQUOTED;
			break;
		default:
			break;
		}
		/* Outside quotes. */
		if (ch == ',') {
			q = CSV_AT_FIELD;
		} else if (ch == '\n') {
			*end = i + 1;
			*state = CSV_AT_FIELD;
			return 1;
		}
	}
	*state = q;
	return 0;
}

void csv_write_field(strbuf *b, const char *s, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == ',' || ch == '"' || ch == '\n' || ch == '\r')
			break;
	}
	if (i == n) {
		strbuf_append(b, s, n);
		return;
	}
	strbuf_putc(b, '"');
	size_t from = 0;
	for (; i < n; i++) {
		if (s[i] == '"') {
			strbuf_append(b, s + from, i + 1 - from);
			strbuf_putc(b, '"');
			from = i + 1;
		}
	}
	strbuf_append(b, s + from, n - from);
	strbuf_putc(b, '"');
}
