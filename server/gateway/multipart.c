/*
 * multipart/form-data bodies read as they arrive (multipart.h). A part's data
 * is searched for the delimiter "\r\n--boundary" with memchr to the next CR
 * and a byte-by-byte match from there. A boundary holds no CR (RFC 2046's
 * characters exclude it), so when a byte breaks a match no later start can
 * lie inside the bytes matched so far: the search simply resumes at that
 * byte. The bytes held back are therefore always a prefix of the delimiter
 * and need no buffer; when they turn out to be data they are passed on from
 * the delimiter itself. Everything else (the boundary line's padding, the
 * header section) is a small state machine over single bytes; a header
 * section is gathered whole and parsed in place at its empty line.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

enum state {
	ST_PREAMBLE,	   /* before the first boundary: skipped */
	ST_AFTER_BOUNDARY, /* "--boundary" just matched */
	ST_DASH,	   /* "--boundary-": the closing delimiter's second '-' must follow */
	ST_PADDING,	   /* transport padding after a boundary */
	ST_LF,		   /* the CR ending a boundary line was read */
	ST_HEAD,	   /* a part's header section */
	ST_DATA,	   /* a part's data */
	ST_EPILOGUE,	   /* after the closing delimiter: ignored */
	ST_ERROR,
	ST_STOPPED,
};

static int fail(multipart_parser *mp, uint64_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Puts mp in its error state with "byte AT: what". */
static int fail(multipart_parser *mp, uint64_t at, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(mp->error, sizeof mp->error, "byte %llu: %s", (unsigned long long)at, what);
	mp->error_offset = at;
	mp->state = ST_ERROR;
	return MULTIPART_ERROR;
}

static int stopped(multipart_parser *mp, uint64_t at)
{
	fail(mp, at, "stopped by the caller");
	mp->state = ST_STOPPED;
	return MULTIPART_STOPPED;
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 7230's tchar: the characters of a token (header names, parameter
 * names, media types). */
static int is_tchar(char c)
{
	unsigned char u = (unsigned char)c;
	return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
	       (u != 0 && strchr("!#$%&'*+-.^_`|~", u) != NULL);
}

/* RFC 2046's bcharsnospace. */
static int is_bchar_nospace(char c)
{
	unsigned char u = (unsigned char)c;
	return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
	       (u != 0 && strchr("'()+_,-./:=?", u) != NULL);
}

/* Why b[0..len) is not a boundary, or NULL when it is one. */
static const char *boundary_check(const char *b, size_t len)
{
	if (len == 0)
		return "the boundary is empty";
	if (len > MULTIPART_BOUNDARY_MAX)
		return "the boundary is longer than 70 characters (RFC 2046)";
	for (size_t i = 0; i < len; i++)
		if (b[i] != ' ' && !is_bchar_nospace(b[i]))
			return "the boundary holds a character RFC 2046 does not allow";
	if (b[len - 1] == ' ')
		return "the boundary ends in a space (RFC 2046 does not allow it)";
	return NULL;
}

/* One parameter of a header value: "; name=value", the value as sent (inside
 * the quotes when quoted). */
typedef struct param {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
	int quoted;
} param;

static int param_is(const param *p, const char *name)
{
	return p->name_len == strlen(name) && strncasecmp(p->name, name, p->name_len) == 0;
}

/* Reads the next parameter at *s (moved past it). escapes: a backslash in a
 * quoted value escapes the next character (HTTP's quoted-pair, for
 * Content-Type) rather than being itself (the HTML standard's form-data
 * names). Returns 1 with *p, 0 at the end (a trailing ';' allowed), -1 with
 * *msg when malformed. */
static int next_param(const char **s, param *p, int escapes, const char **msg)
{
	const char *q = *s;
	while (is_ows(*q))
		q++;
	if (*q == '\0')
		return 0;
	if (*q != ';') {
		*msg = "expected ';' before a parameter";
		return -1;
	}
	q++;
	while (is_ows(*q))
		q++;
	if (*q == '\0') {
		*s = q;
		return 0;
	}
	p->name = q;
	while (is_tchar(*q))
		q++;
	p->name_len = (size_t)(q - p->name);
	if (p->name_len == 0) {
		*msg = "a parameter without a name";
		return -1;
	}
	while (is_ows(*q))
		q++;
	if (*q != '=') {
		*msg = "a parameter without '='";
		return -1;
	}
	q++;
	while (is_ows(*q))
		q++;
	if (*q == '"') {
		p->value = ++q;
		p->quoted = 1;
		while (*q != '"') {
			if (*q == '\0') {
				*msg = "a quoted value without its closing '\"'";
				return -1;
			}
			if (escapes && *q == '\\' && q[1] != '\0')
				q++;
			q++;
		}
		p->value_len = (size_t)(q - p->value);
		q++;
	} else {
		p->value = q;
		p->quoted = 0;
		while ((unsigned char)*q > ' ' && *q != 0x7f && *q != ';' && *q != '"')
			q++;
		p->value_len = (size_t)(q - p->value);
		if (p->value_len == 0) {
			*msg = "a parameter without a value";
			return -1;
		}
	}
	*s = q;
	return 1;
}

/* Writes p's value, unquoted, into out (cap bytes, NUL-terminated,
 * truncated to fit) and returns its whole length, as snprintf does. */
static size_t unquote(const param *p, int escapes, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < p->value_len; i++) {
		char c = p->value[i];
		if (p->quoted && escapes && c == '\\' && i + 1 < p->value_len)
			c = p->value[++i];
		if (n + 1 < cap)
			out[n] = c;
		n++;
	}
	if (cap > 0)
		out[n < cap ? n : cap - 1] = '\0';
	return n;
}

int multipart_boundary(const char *content_type, char *out, size_t cap, char *err, size_t errlen)
{
	const char *s = content_type, *msg = NULL;
	char b[MULTIPART_BOUNDARY_MAX + 1];
	param p, found = {NULL, 0, NULL, 0, 0};
	int have = 0, k;

	if (cap > 0)
		out[0] = '\0';
	while (is_ows(*s))
		s++;
	const char *type = s;
	while (is_tchar(*s))
		s++;
	if (s - type != 9 || strncasecmp(type, "multipart", 9) != 0 || *s != '/' || !is_tchar(s[1])) {
		msg = "not a multipart media type";
		goto fail;
	}
	s++;
	while (is_tchar(*s))
		s++;
	while ((k = next_param(&s, &p, 1, &msg)) == 1) {
		if (!param_is(&p, "boundary"))
			continue;
		if (have) {
			msg = "the boundary parameter is given twice";
			goto fail;
		}
		found = p;
		have = 1;
	}
	if (k < 0)
		goto fail;
	if (!have) {
		msg = "no boundary parameter";
		goto fail;
	}
	size_t n = unquote(&found, 1, b, sizeof b);
	if (n > MULTIPART_BOUNDARY_MAX)
		msg = "the boundary is longer than 70 characters (RFC 2046)";
	else
		msg = boundary_check(b, n);
	if (msg == NULL && n + 1 > cap)
		msg = "the boundary does not fit the caller's buffer";
	if (msg != NULL)
		goto fail;
	memcpy(out, b, n + 1);
	return 0;
fail:
	if (errlen > 0)
		snprintf(err, errlen, "Content-Type: %s", msg);
	return -1;
}

int multipart_init(multipart_parser *mp, const char *boundary)
{
	size_t len = strlen(boundary);
	memset(mp, 0, sizeof *mp);
	mp->part.index = -1;
	const char *msg = boundary_check(boundary, len);
	if (msg != NULL) {
		fail(mp, 0, "%s", msg);
		return -1;
	}
	memcpy(mp->delim, "\r\n--", 4);
	memcpy(mp->delim + 4, boundary, len);
	mp->delim_len = len + 4;
	/* The first boundary may open the body without a CRLF before it:
	 * start as if one had been read. */
	mp->matched = 2;
	mp->held_from_before = 1;
	mp->state = ST_PREAMBLE;
	return 0;
}

static int emit(const multipart_callbacks *cb, void *arg, const char *data, size_t len)
{
	if (len == 0 || cb->on_data == NULL)
		return 0;
	return cb->on_data(arg, data, len);
}

/* Looks for the delimiter in p[*pos..n), moving *pos past what it used. When
 * data is set, bytes are passed to on_data as soon as they cannot be part of
 * the delimiter. Returns 1 when the delimiter is complete (*pos just past
 * it), 0 when the input ran out first, MULTIPART_STOPPED when on_data asked. */
static int scan(multipart_parser *mp, const char *p, size_t n, size_t *pos, int data, const multipart_callbacks *cb,
		void *arg)
{
	size_t i = *pos, run = i;			      /* p[run..) is data not passed on yet */
	size_t held = mp->held_from_before ? mp->matched : 0; /* of those matched, from earlier feeds */
	int found = 0;

	while (i < n) {
		if (mp->matched == 0) {
			const char *cr = memchr(p + i, '\r', n - i);
			if (cr == NULL) {
				i = n;
				break;
			}
			i = (size_t)(cr - p) + 1;
			mp->matched = 1;
			mp->held_from_before = 0;
			continue;
		}
		if (p[i] == mp->delim[mp->matched]) {
			i++;
			if (++mp->matched == mp->delim_len) {
				found = 1;
				break;
			}
			continue;
		}
		/* Not the delimiter: the bytes held back were data. Those from
		 * earlier feeds go first; the rest are in p, in the run. */
		if (mp->held_from_before) {
			if (data && emit(cb, arg, mp->delim, held) != 0)
				return MULTIPART_STOPPED;
			mp->held_from_before = 0;
		}
		mp->matched = 0;
	}

	size_t end = i;
	if (mp->matched > 0 && mp->held_from_before)
		end = run; /* everything read from p is (still) the delimiter */
	else if (mp->matched > 0)
		end = i - mp->matched; /* the delimiter started in p */
	if (data && emit(cb, arg, p + run, end - run) != 0)
		return MULTIPART_STOPPED;
	if (found) {
		mp->matched = 0;
		mp->held_from_before = 0;
	} else {
		mp->held_from_before = mp->matched > 0;
	}
	*pos = i;
	return found;
}

static void end_value(char **w, const char *value)
{
	while (*w > value && is_ows((*w)[-1]))
		(*w)--;
	*(*w)++ = '\0';
}

/* Splits the header section (complete in head: lines ending in CRLF, then
 * CRLF) into mp->headers, in place. Returns the number of headers, or -1
 * with *msg and the offending line's offset in head in *bad. */
static int split_head(multipart_parser *mp, const char **msg, size_t *bad)
{
	char *h = mp->head, *w = h, *value = NULL;
	size_t r = 0;
	int n = 0;

	for (;;) {
		/* Every CR in head is followed by LF, every LF follows a CR
		 * (feed checked that), and head ends with CRLF. */
		char *line = h + r;
		char *eol = memchr(line, '\r', mp->head_len - r);
		size_t len = (size_t)(eol - line);
		if (len == 0)
			break;
		*bad = r;
		for (size_t k = 0; k < len; k++) {
			unsigned char c = (unsigned char)line[k];
			if ((c < ' ' && c != '\t') || c == 0x7f) {
				*msg = "a control character in a header line";
				return -1;
			}
		}
		if (is_ows(line[0])) {
			/* A folded line continues the value before it. */
			if (value == NULL) {
				*msg = "a continuation line before any header";
				return -1;
			}
			memmove(w, line, len);
			w += len;
		} else {
			if (value != NULL)
				end_value(&w, value);
			if (n == MULTIPART_MAX_HEADERS) {
				*msg = "more than 16 header lines";
				return -1;
			}
			char *colon = memchr(line, ':', len);
			size_t name_len = colon ? (size_t)(colon - line) : 0;
			if (name_len == 0) {
				*msg = "a header line without a name and ':'";
				return -1;
			}
			for (size_t k = 0; k < name_len; k++) {
				if (!is_tchar(line[k])) {
					*msg = "a header name with a character other than a token's";
					return -1;
				}
			}
			/* w never passes the byte being read, so copying forward
			 * is safe. */
			const char *v = colon + 1, *vend = line + len;
			char *name = w;
			for (size_t k = 0; k < name_len; k++)
				w[k] = (char)tolower((unsigned char)line[k]);
			w += name_len;
			*w++ = '\0';
			while (v < vend && is_ows(*v))
				v++;
			value = w;
			memmove(w, v, (size_t)(vend - v));
			w += vend - v;
			mp->headers[n].name = name;
			mp->headers[n].value = value;
			n++;
		}
		r += len + 2;
	}
	if (value != NULL)
		end_value(&w, value);
	return n;
}

/* Content-Disposition's type and its name= and filename= parameters, into
 * mp->params. Returns 0, or -1 with *msg. */
static int parse_disposition(multipart_parser *mp, const char *cd, const char **msg)
{
	char *out = mp->params, *end = mp->params + sizeof mp->params;
	const char *s = cd;
	param p;
	int k;

	while (is_tchar(*s))
		s++;
	size_t type_len = (size_t)(s - cd);
	if (type_len == 0) {
		*msg = "no disposition type";
		return -1;
	}
	memcpy(out, cd, type_len);
	out[type_len] = '\0';
	mp->part.disposition = out;
	out += type_len + 1;
	/* What is stored is never longer than the value it comes from, and
	 * that fits in params. */
	while ((k = next_param(&s, &p, 0, msg)) == 1) {
		const char **slot = NULL;
		if (param_is(&p, "name"))
			slot = &mp->part.name;
		else if (param_is(&p, "filename"))
			slot = &mp->part.filename;
		if (slot == NULL || *slot != NULL)
			continue;
		*slot = out;
		out += unquote(&p, 0, out, (size_t)(end - out)) + 1;
	}
	return k;
}

/* The header section is complete: parse it and start the part's data. */
static int begin_part(multipart_parser *mp, uint64_t data_at, const multipart_callbacks *cb, void *arg)
{
	multipart_part *part = &mp->part;
	const char *msg = NULL;
	size_t bad = 0;
	int n = split_head(mp, &msg, &bad);
	if (n < 0)
		return fail(mp, mp->head_at + bad, "part %d: %s", part->index + 1, msg);
	part->offset = data_at;
	part->headers = mp->headers;
	part->nheaders = n;
	for (int k = 0; k < n; k++) {
		const multipart_header *hd = &mp->headers[k];
		if (part->content_type == NULL && strcmp(hd->name, "content-type") == 0)
			part->content_type = hd->value;
		if (part->disposition == NULL && strcmp(hd->name, "content-disposition") == 0 &&
		    parse_disposition(mp, hd->value, &msg) < 0)
			return fail(mp, mp->head_at, "part %d: malformed Content-Disposition: %s", part->index + 1,
				    msg);
	}
	mp->state = ST_DATA;
	mp->matched = 0;
	mp->held_from_before = 0;
	if (cb->on_part != NULL && cb->on_part(arg, part) != 0)
		return stopped(mp, data_at);
	return MULTIPART_OK;
}

/* Reads header bytes from p[*pos..len) into head. */
static int read_head(multipart_parser *mp, const char *p, size_t len, size_t *pos, const multipart_callbacks *cb,
		     void *arg)
{
	int index = mp->part.index + 1;
	for (size_t i = *pos; i < len;) {
		char c = p[i];
		uint64_t at = mp->offset + i;
		char last = mp->head_len > 0 ? mp->head[mp->head_len - 1] : '\0';
		if (last == '\r' && c != '\n')
			return fail(mp, at, "part %d: a CR without LF in its headers", index);
		if (c == '\n' && last != '\r')
			return fail(mp, at, "part %d: a header line ends in a bare LF (CRLF is required)", index);
		if (mp->head_len == MULTIPART_MAX_HEAD)
			return fail(mp, at, "part %d: its header section is longer than %d bytes", index,
				    MULTIPART_MAX_HEAD);
		mp->head[mp->head_len++] = c;
		*pos = ++i;
		if (c == '\n' && (mp->head_len == 2 ||
				  (mp->head_len >= 4 && memcmp(mp->head + mp->head_len - 4, "\r\n\r\n", 4) == 0)))
			return begin_part(mp, mp->offset + i, cb, arg);
	}
	return MULTIPART_OK;
}

static const char after_boundary[] = "after a boundary: expected CRLF, or \"--\" to close the body";

int multipart_feed(multipart_parser *mp, const void *data, size_t len, const multipart_callbacks *cb, void *arg)
{
	static const multipart_callbacks none = {NULL, NULL, NULL};
	const char *p = data;
	size_t i = 0;
	int r = MULTIPART_OK, k;

	if (cb == NULL)
		cb = &none;
	if (mp->state == ST_ERROR)
		return MULTIPART_ERROR;
	if (mp->state == ST_STOPPED)
		return MULTIPART_STOPPED;
	while (i < len && r == MULTIPART_OK) {
		uint64_t at = mp->offset + i;
		char c = p[i];
		switch (mp->state) {
		case ST_PREAMBLE: {
			/* The first "--boundary" must end within this many bytes. */
			uint64_t limit = MULTIPART_MAX_PREAMBLE + mp->delim_len;
			size_t n = mp->offset + len > limit ? (size_t)(limit - mp->offset) : len;
			if (scan(mp, p, n, &i, 0, cb, arg) == 1)
				mp->state = ST_AFTER_BOUNDARY;
			else if (mp->offset + i >= limit)
				r = fail(mp, mp->offset + i, "no boundary line \"--%s\" in the first %d bytes",
					 mp->delim + 4, MULTIPART_MAX_PREAMBLE);
			break;
		}
		case ST_DATA:
			k = scan(mp, p, len, &i, 1, cb, arg);
			if (k < 0) {
				r = stopped(mp, mp->offset + i);
			} else if (k == 1) {
				mp->state = ST_AFTER_BOUNDARY;
				if (cb->on_part_end != NULL && cb->on_part_end(arg, &mp->part) != 0)
					r = stopped(mp, mp->offset + i);
			}
			break;
		case ST_AFTER_BOUNDARY:
		case ST_PADDING:
			i++;
			if (c == '-' && mp->state == ST_AFTER_BOUNDARY)
				mp->state = ST_DASH;
			else if (is_ows(c))
				mp->state = ST_PADDING;
			else if (c == '\r')
				mp->state = ST_LF;
			else
				r = fail(mp, at, "%s", after_boundary);
			break;
		case ST_DASH:
			i++;
			if (c == '-')
				mp->state = ST_EPILOGUE;
			else
				r = fail(mp, at, "%s", after_boundary);
			break;
		case ST_LF:
			i++;
			if (c != '\n') {
				r = fail(mp, at, "a boundary line ends in CR without LF");
				break;
			}
			mp->state = ST_HEAD;
			mp->head_len = 0;
			mp->head_at = at + 1;
			k = mp->part.index + 1;
			memset(&mp->part, 0, sizeof mp->part);
			mp->part.index = k;
			break;
		case ST_HEAD:
			r = read_head(mp, p, len, &i, cb, arg);
			break;
		case ST_EPILOGUE:
			i = len;
			break;
		default:
			r = MULTIPART_ERROR;
			break;
		}
	}
	mp->offset += i;
	return r;
}

int multipart_finish(multipart_parser *mp)
{
	switch (mp->state) {
	case ST_EPILOGUE:
		return 0;
	case ST_ERROR:
	case ST_STOPPED:
		return -1;
	case ST_PREAMBLE:
		return fail(mp, mp->offset, "no boundary line \"--%s\" in the body", mp->delim + 4);
	case ST_HEAD:
	case ST_DATA:
		return fail(mp, mp->offset, "the body ended inside part %d, before the closing delimiter \"--%s--\"",
			    mp->part.index + 1, mp->delim + 4);
	default:
		return fail(mp, mp->offset, "the body ended before the closing delimiter \"--%s--\"", mp->delim + 4);
	}
}

int multipart_done(const multipart_parser *mp)
{
	return mp->state == ST_EPILOGUE;
}

const char *multipart_error(const multipart_parser *mp, uint64_t *offset)
{
	if (offset != NULL)
		*offset = mp->error_offset;
	return mp->error;
}

int multipart_is_file(const multipart_part *part)
{
	return part->filename != NULL || (part->name != NULL && strcmp(part->name, "file") == 0);
}
