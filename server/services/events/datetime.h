/*
 * The date-times of the events service: the feed's local wall-clock times
 * ("2021-06-30T21:00:00", no zone) and the ISO 8601 date-times of search
 * bounds, whose zone suffix is accepted and dropped (the wall-clock part is
 * compared with the events' local times, as the spec says). Pure.
 */
#ifndef RPCQ_EVENTS_DATETIME_H
#define RPCQ_EVENTS_DATETIME_H

#include <stddef.h>

/* Exactly "YYYY-MM-DDTHH:MM:SS" with a real calendar date (2021-09-31 and
 * 2021-02-29 are refused; years 0001..9999), hours 00..23, minutes and
 * seconds 00..59. Returns 0 and copies it to out (20 bytes), or -1. */
int datetime_local_parse(const char *s, char out[20]);

/* A search bound: "YYYY-MM-DDTHH:MM:SS" or "YYYY-MM-DDTHH:MM", optional
 * fraction of a second (".123", dropped: the bound's second), optional zone ("Z", "+02:00",
 * "-0530", dropped); also a bare date "YYYY-MM-DD" (its 00:00:00). 't' and
 * ' ' are accepted for 'T', 'z' for 'Z'. Returns 0 with the wall-clock
 * "YYYY-MM-DDTHH:MM:SS" in out, or -1 with why (errlen bytes; e.g. "month
 * 13 is out of range", "expected a date-time such as 2021-07-21T17:32:28Z"). */
int datetime_bound_parse(const char *s, char out[20], char *why, size_t errlen);

/* The same for a lower bound (starts_at): a fraction that is not zero
 * rounds up to the next second, so that the bound, as whole seconds (which
 * every stored time is), still admits only what is at or after it:
 * 17:00:00.5 is 17:00:01. */
int datetime_lower_bound_parse(const char *s, char out[20], char *why, size_t errlen);

/* The same for an upper bound (ends_at): a bare date is its whole day,
 * "YYYY-MM-DDT23:59:59", as someone asking for the events that end by the
 * 30th means them all (as a lower bound a bare date is its 00:00:00). */
int datetime_upper_bound_parse(const char *s, char out[20], char *why, size_t errlen);

#endif
