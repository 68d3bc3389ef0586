/*
 * Share quantities as exact decimals: int64 micro-shares (six decimal digits),
 * never binary floating point. Parsing accepts a non-negative decimal written
 * with ASCII digits and at most one point ("1000", "1000.5", "0.125", ".5",
 * "5."); digits beyond the sixth decimal are truncated (the largest precision
 * the service recognises is 6, and truncation toward zero is the rule at
 * every precision, so nothing is lost). Sums are checked for overflow by the
 * callers with __builtin_add_overflow. Pure functions, thread-safe.
 */
#ifndef RPCQ_VESTING_QTY_H
#define RPCQ_VESTING_QTY_H

#include <stddef.h>
#include <stdint.h>

#define VESTING_QTY_SCALE 1000000 /* micro-shares per share */
#define VESTING_PRECISION_MAX 6
#define VESTING_QTY_MAX_TEXT "9223372036854.775807"
/* Longest formatted quantity: sign, 13 digits, point, 6 decimals, NUL. */
#define VESTING_QTY_FORMAT_MAX 24

typedef enum vesting_qty_result {
	VESTING_QTY_OK = 0,
	VESTING_QTY_MALFORMED, /* empty, letters, exponent, two points, ... */
	VESTING_QTY_NEGATIVE,  /* a '-' in front of an otherwise valid number */
	VESTING_QTY_OVERFLOW,  /* more than VESTING_QTY_MAX_TEXT */
} vesting_qty_result;

/* Parses exactly len bytes of s into micro-shares (*micro >= 0). */
vesting_qty_result vesting_qty_parse(const char *s, size_t len, int64_t *micro);

/* micro truncated toward zero to precision (0..6) decimals. */
int64_t vesting_qty_truncate(int64_t micro, int precision);

/* The number of micro-shares in one unit of the last recognised digit at
 * precision (0..6): 1000000 for 0, 1 for 6. */
int64_t vesting_qty_unit(int precision);

/* Writes micro with exactly precision (0..6) decimals, digits beyond the
 * precision truncated, plus a NUL; returns the length. Precision 0 prints an
 * integer ("300"), precision 1 "234.0". Negative values get a '-'. */
size_t vesting_qty_format(int64_t micro, int precision, char out[VESTING_QTY_FORMAT_MAX]);

#endif
