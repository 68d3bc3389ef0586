/*
 * Query strings and percent-encoding (RFC 3986, with '+' as a space in
 * query components as HTML forms send them). Pure functions, no allocation.
 */
#ifndef RPCQ_QUERY_H
#define RPCQ_QUERY_H

#include <stddef.h>
#include <stdint.h>

/* Percent-decodes len bytes of in into out (outlen bytes, NUL-terminated).
 * plus_is_space: '+' decodes to ' ' (query components). Returns the decoded
 * length, or -1 when a '%' is not followed by two hex digits, when the
 * result holds a NUL byte, or when it does not fit in out. */
long query_decode(const char *in, size_t len, char *out, size_t outlen, int plus_is_space);

/* Looks key up in query ("a=1&b=2", no leading '?'): the first pair whose
 * decoded name is key. A pair without '=' has the value "". Returns 1 and
 * the decoded value in buf (len bytes, NUL-terminated) when found, 0 when
 * key is absent, -1 when the query is malformed (bad percent-encoding in a
 * name or in the value found, or a value longer than len - 1). */
int query_get(const char *query, const char *key, char *buf, size_t len);

/* How many pairs of query have the decoded name key (0 when query is
 * NULL), or -1 when a name is malformed. */
int query_count(const char *query, const char *key);

/* Checks that every name of query is one of names (NULL-terminated) and
 * none appears twice. Returns 0, or -1 with the offending (decoded,
 * truncated) name in bad (badlen bytes). */
int query_check_names(const char *query, const char *const *names, char *bad, size_t badlen);

/* A count or position in a query or header: 1 to 19 decimal digits and
 * nothing else, at most INT64_MAX (what PostgreSQL's int8 holds). Returns 0
 * with the value in *out, or -1. */
int query_uint(const char *s, uint64_t *out);

/* Appends s percent-encoded (unreserved characters kept) to out; returns
 * the length it would have (like snprintf) without counting the NUL. */
size_t query_encode(const char *s, char *out, size_t outlen);

#endif
