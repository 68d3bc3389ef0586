/*
 * Exact decimals as text, for prices: validated, normalized and compared
 * without binary floating point anywhere between the feed and the JSON.
 */
#ifndef RPCQ_EVENTS_DECIMAL_H
#define RPCQ_EVENTS_DECIMAL_H

#include <stddef.h>

/* Validates in as a non-negative decimal ("20", "20.00", "0.5"; at most 18
 * integer digits and 6 fraction digits, no sign, exponent or blanks) and
 * writes it to out with leading zeros of the integer part removed (one kept:
 * "007.50" -> "7.50", ".5" is refused), the fraction digits as given.
 * Returns 0, or -1 when invalid or it does not fit in outlen. */
int decimal_normalize(const char *in, char *out, size_t outlen);

/* Compares two normalized decimals by value: <0, 0, >0 ("7.5" == "7.50"). */
int decimal_cmp(const char *a, const char *b);

#endif
