/*
 * Exact decimals as text, for prices: validated, normalized and compared
 * without binary floating point anywhere between the feed and the JSON.
 */
#ifndef RPCQ_EVENTS_DECIMAL_H
#define RPCQ_EVENTS_DECIMAL_H

#include <stddef.h>

/* Bytes of the longest normalized decimal: 18 integer digits, the point, 6
 * fraction digits and the terminating NUL. */
#define DECIMAL_TEXT_MAX 26

/* A valid decimal as spans of its text: the integer digits without leading
 * zeros (one kept), and the fraction digits as given (nfrac 0: none). */
typedef struct decimal {
	const char *intp, *frac;
	size_t nint, nfrac;
} decimal;

/* Validates in as a non-negative decimal ("20", "20.00", "0.5"; at most 18
 * integer digits and 6 fraction digits, no sign, exponent or blanks) and
 * points d into it. Returns 0, or -1 when invalid. */
int decimal_parse(const char *in, decimal *d);

/* Compares two decimals by value: <0, 0, >0 ("7.5" == "7.50"). */
int decimal_compare(const decimal *a, const decimal *b);

/* Writes d's normalized text to out ("007.50" -> "7.50") and points d at
 * it. Returns 0, or -1 when it does not fit in outlen (d unchanged). */
int decimal_write(decimal *d, char *out, size_t outlen);

/* decimal_parse and decimal_write: in's normalized text in out; ".5" is
 * refused. Returns 0, or -1 when invalid or it does not fit in outlen. */
int decimal_normalize(const char *in, char *out, size_t outlen);

/* Compares two normalized decimals by value: <0, 0, >0. */
int decimal_cmp(const char *a, const char *b);

#endif
