/*
 * Instants as RecordPayment's paid_at writes them (RFC 3339, and the ISO 8601
 * forms people type): a date "2024-03-01" (its midnight, UTC), or a date and
 * a time "2024-03-01T14:30", "2024-03-01T14:30:05", with an optional fraction
 * of a second (up to 9 digits; kept to the millisecond, the rest truncated)
 * and an optional zone "Z", "+02:00", "-0300" or "+02". Without a zone the
 * time is taken as UTC, which is what a server without a user's zone can do.
 * 't' or ' ' may stand for 'T' and 'z' for 'Z'. A second of 60 (a leap
 * second) is the first millisecond of the next minute, as POSIX time counts.
 * The instant, zone applied, must lie within 0001-01-01 and 9999-12-31 UTC.
 * Values are milliseconds since 1970-01-01T00:00:00Z. Pure, thread-safe.
 */
#ifndef RPCQ_BILLING_TIMESTAMP_H
#define RPCQ_BILLING_TIMESTAMP_H

#include <stddef.h>
#include <stdint.h>

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" and a NUL. */
#define TIMESTAMP_FORMAT_MAX 25

/* Earliest and latest instants (0001-01-01T00:00:00Z, 9999-12-31T23:59:59.999Z). */
#define TIMESTAMP_MIN_MS INT64_C(-62135596800000)
#define TIMESTAMP_MAX_MS INT64_C(253402300799999)

/* Parses exactly len bytes of s into *ms. Returns 0, or -1 with a reason in
 * why (errlen bytes, may be NULL), such as "month 13 is out of range" or
 * "expected a date-time such as 2024-03-01T14:30:00Z". */
int timestamp_parse(const char *s, size_t len, int64_t *ms, char *why, size_t errlen);

/* Writes ms (within TIMESTAMP_MIN_MS..TIMESTAMP_MAX_MS; outside, the nearest
 * end of that range) in UTC as "2024-03-01T14:30:05Z", with ".mmm" before the
 * Z when it has milliseconds, plus a NUL; returns the length. */
size_t timestamp_format(int64_t ms, char out[TIMESTAMP_FORMAT_MAX]);

#endif
