/*
 * Query strings and percent-encoding (query.h). Everything is built on one
 * step, next_byte(), that decodes one character or escape; names are compared
 * while they are decoded, so no function here needs a buffer of its own and a
 * query of any length is looked at in one pass per name.
 */
#include <assert.h>
#include <string.h>

#include "query.h"

/* A name or value: len bytes at p, not decoded. */
typedef struct span {
	const char *p;
	size_t len;
} span;

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte that in[*i] starts, decoded, with *i moved past it; -1 for a '%'
 * without two hex digits and for a NUL (which no caller can hold in a C
 * string). */
static int next_byte(const char *in, size_t len, size_t *i, int plus_is_space)
{
	unsigned char c = (unsigned char)in[*i];
	int b = c;
	if (c == '%') {
		if (len - *i < 3)
			return -1;
		int hi = hex_value(in[*i + 1]), lo = hex_value(in[*i + 2]);
		if (hi < 0 || lo < 0)
			return -1;
		b = hi << 4 | lo;
		*i += 3;
	} else {
		if (c == '+' && plus_is_space)
			b = ' ';
		*i += 1;
	}
	return b == 0 ? -1 : b;
}

long query_decode(const char *in, size_t len, char *out, size_t outlen, int plus_is_space)
{
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		int b = next_byte(in, len, &i, plus_is_space);
		if (b < 0 || n + 1 >= outlen)
			return -1;
		out[n++] = (char)b;
	}
	if (outlen == 0)
		return -1;
	out[n] = '\0';
	return (long)n;
}

/* Splits the next pair off *q (moved past it and its '&'); empty pairs, as
 * in "a=1&&b=2", are skipped. Returns 0 at the end of the query. */
static int next_pair(const char **q, span *name, span *value)
{
	const char *s = *q;
	while (*s == '&')
		s++;
	if (*s == '\0') {
		*q = s;
		return 0;
	}
	const char *end = strchr(s, '&');
	if (end == NULL)
		end = s + strlen(s);
	const char *eq = memchr(s, '=', (size_t)(end - s));
	name->p = s;
	name->len = (size_t)((eq != NULL ? eq : end) - s);
	value->p = eq != NULL ? eq + 1 : end;
	value->len = (size_t)(end - value->p);
	*q = *end == '&' ? end + 1 : end;
	return 1;
}

/* 1 when name decodes to s, 0 when it decodes to something else, -1 when it
 * does not decode; the whole name is decoded in every case. */
static int span_equals(span name, const char *s)
{
	int equal = 1;
	size_t k = 0;
	for (size_t i = 0; i < name.len;) {
		int b = next_byte(name.p, name.len, &i, 1);
		if (b < 0)
			return -1;
		if (equal && (s[k] == '\0' || (unsigned char)s[k] != b))
			equal = 0;
		else if (equal)
			k++;
	}
	return equal && s[k] == '\0';
}

int query_get(const char *query, const char *key, char *buf, size_t len)
{
	assert(key != NULL);
	if (len > 0)
		buf[0] = '\0';
	if (query == NULL)
		return 0;
	int found = 0;
	span name, value;
	/* Every name is checked, so that a malformed query is refused whichever
	 * key is asked for. */
	while (next_pair(&query, &name, &value)) {
		int eq = span_equals(name, key);
		if (eq == 1 && !found) {
			if (query_decode(value.p, value.len, buf, len, 1) < 0)
				eq = -1;
			found = 1;
		}
		if (eq < 0) {
			if (len > 0)
				buf[0] = '\0';
			return -1;
		}
	}
	return found;
}

int query_count(const char *query, const char *key)
{
	assert(key != NULL);
	if (query == NULL)
		return 0;
	int n = 0;
	span name, value;
	while (next_pair(&query, &name, &value)) {
		int eq = span_equals(name, key);
		if (eq < 0)
			return -1;
		n += eq;
	}
	return n;
}

/* name decoded into out (outlen > 0 bytes), cut to fit; bytes that do not
 * decode are copied as they are, a NUL as '?'. For messages only. */
static void copy_name(span name, char *out, size_t outlen)
{
	size_t n = 0;
	for (size_t i = 0; i < name.len && n + 1 < outlen;) {
		size_t at = i;
		int b = next_byte(name.p, name.len, &i, 1);
		if (b < 0) {
			b = name.p[at] == '\0' ? '?' : (unsigned char)name.p[at];
			i = at + 1;
		}
		out[n++] = (char)b;
	}
	out[n] = '\0';
}

static void set_bad(span name, char *bad, size_t badlen)
{
	if (bad != NULL && badlen > 0)
		copy_name(name, bad, badlen);
}

int query_check_names(const char *query, const char *const *names, char *bad, size_t badlen)
{
	assert(names != NULL);
	if (bad != NULL && badlen > 0)
		bad[0] = '\0';
	if (query == NULL)
		return 0;
	const char *q = query;
	span name, value;
	while (next_pair(&q, &name, &value)) {
		size_t k;
		int eq = 0;
		for (k = 0; names[k] != NULL; k++) {
			eq = span_equals(name, names[k]);
			if (eq != 0)
				break;
		}
		if (eq != 1) {
			set_bad(name, bad, badlen);
			return -1;
		}
		/* Every pair before this one holds a distinct allowed name (or we
		 * would have stopped there), so this scan is as short as names. */
		const char *p = query;
		span before, ignored;
		while (next_pair(&p, &before, &ignored) && before.p != name.p) {
			if (span_equals(before, names[k]) == 1) {
				set_bad(name, bad, badlen);
				return -1;
			}
		}
	}
	return 0;
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c == '~';
}

size_t query_encode(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0, written = 0;
	int full = 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		size_t need = is_unreserved(c) ? 1 : 3;
		/* Only whole escapes are written, so a cut result still decodes. */
		if (!full && written + need < outlen) {
			if (need == 1) {
				out[written] = (char)c;
			} else {
				out[written] = '%';
				out[written + 1] = hex[c >> 4];
				out[written + 2] = hex[c & 15];
			}
			written += need;
		} else {
			full = 1;
		}
		n += need;
	}
	if (outlen > 0)
		out[written] = '\0';
	return n;
}

int query_uint(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;
	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 19)
			return -1;
		v = v * 10 + (uint64_t)(s[n] - '0');
	}
	if (n == 0 || v > (uint64_t)INT64_MAX)
		return -1;
	*out = v;
	return 0;
}
