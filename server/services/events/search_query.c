/*
 * The query of GET /search (search_query.h). Values are found and decoded
 * by the gateway's query_get, so /search reads percent-encoding and '+'
 * exactly as every other GET of the gateway does; this file adds what is
 * particular to the search: each bound at most once, never empty, and an
 * ISO 8601 date-time (datetime_bound_parse), every message naming the
 * parameter.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "datetime.h"
#include "query.h"
#include "search_query.h"

/* Longer than any date-time datetime_bound_parse accepts
 * ("2021-07-21T17:32:28.123456789+02:00" is 35 bytes) with room to quote a
 * wrong value in a message. */
#define SEARCH_VALUE_MAX 64

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t errlen, const char *fmt, ...)
{
	if (why != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* 1 when the len bytes at s are well percent-encoded: every '%' starts an
 * escape of two hex digits, and none is %00. */
static int well_encoded(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%')
			continue;
		if (len - i < 3 || !is_hex(s[i + 1]) || !is_hex(s[i + 2]) || (s[i + 1] == '0' && s[i + 2] == '0'))
			return 0;
		i += 2;
	}
	return 1;
}

/* What a scan of the pairs says about key: how many pairs name it, the
 * undecoded value of the first, and whether some name is not well encoded
 * (query_get refuses such a query, whatever the key). */
typedef struct scan {
	unsigned count;
	const char *value;
	size_t value_len;
	int bad_name;
} scan;

static void scan_query(const char *query, const char *key, scan *out)
{
	char name[SEARCH_VALUE_MAX];
	memset(out, 0, sizeof *out);
	for (const char *s = query; *s != '\0';) {
		size_t len = strcspn(s, "&"), nlen = strcspn(s, "=&");
		if (!well_encoded(s, nlen)) {
			out->bad_name = 1;
		} else if (len > 0 && query_decode(s, nlen, name, sizeof name, 1) >= 0 && strcmp(name, key) == 0) {
			if (out->count++ == 0) {
				out->value = nlen < len ? s + nlen + 1 : s + len;
				out->value_len = nlen < len ? len - nlen - 1 : 0;
			}
		}
		s += len;
		if (*s == '&')
			s++;
	}
}

/* One bound: absent (out is ""), or a valid date-time (lower: starts_at,
 * datetime_lower_bound_parse). */
static int parse_bound(const char *query, const char *key, int lower, char out[20], char *why, size_t errlen)
{
	char value[SEARCH_VALUE_MAX], reason[96];
	scan sc;
	out[0] = '\0';
	int rc = query_get(query, key, value, sizeof value);
	if (rc == 0)
		return 0;
	scan_query(query, key, &sc);
	if (rc < 0) {
		if (sc.bad_name)
			return fail(why, errlen, "the query is not well percent-encoded");
		if (!well_encoded(sc.value, sc.value_len))
			return fail(why, errlen, "%s is not well percent-encoded", key);
		return fail(why, errlen, "%s is longer than %d bytes", key, SEARCH_VALUE_MAX - 1);
	}
	if (sc.count > 1)
		return fail(why, errlen, "%s is given more than once", key);
	if (value[0] == '\0')
		return fail(why, errlen, "%s is empty", key);
	if ((lower ? datetime_lower_bound_parse : datetime_upper_bound_parse)(value, out, reason, sizeof reason) != 0) {
		out[0] = '\0';
		return fail(why, errlen, "%s \"%s\": %s", key, value, reason);
	}
	return 0;
}

int search_query_parse(const char *query, search_bounds *out, char *why, size_t errlen)
{
	if (why != NULL && errlen > 0)
		why[0] = '\0';
	if (query == NULL)
		query = "";
	if (parse_bound(query, "starts_at", 1, out->starts_at, why, errlen) != 0 ||
	    parse_bound(query, "ends_at", 0, out->ends_at, why, errlen) != 0) {
		out->starts_at[0] = '\0';
		out->ends_at[0] = '\0';
		return -1;
	}
	return 0;
}
