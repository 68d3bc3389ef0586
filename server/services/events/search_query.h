/*
 * The query of GET /search (starts_at, ends_at; both optional, ISO 8601
 * date-times), parsed into the bounds Search takes. Pure; fuzzed.
 */
#ifndef RPCQ_EVENTS_SEARCH_QUERY_H
#define RPCQ_EVENTS_SEARCH_QUERY_H

#include <stddef.h>

typedef struct search_bounds {
	char starts_at[20]; /* wall-clock "YYYY-MM-DDTHH:MM:SS"; "" when not given */
	char ends_at[20];
} search_bounds;

/* Parses query (after '?', not decoded; "" when none). Returns 0, or -1
 * with a message naming the parameter and what is wrong in why (errlen
 * bytes), e.g. 'starts_at "2021-13-01": month 13 is out of range', for: a
 * malformed date-time, a parameter given twice, bad percent-encoding, or
 * an empty value. Other parameters are ignored, as HTTP APIs usually do
 * (a cache-busting "_=123" must not fail a search). */
int search_query_parse(const char *query, search_bounds *out, char *why, size_t errlen);

#endif
