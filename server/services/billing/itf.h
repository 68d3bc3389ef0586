/*
 * Interleaved 2 of 5 (ITF), the symbology of a boleto's barcode (FEBRABAN:
 * the 44 digits of boleto.h as ITF, narrow to wide 1:3, about 103 mm by
 * 13 mm). Digits are taken in pairs: the first of a pair is drawn by five
 * bars, the second by the five spaces between them, two of each five wide.
 * A start pattern (narrow bar, space, bar, space) comes first and a stop
 * pattern (wide bar, narrow space, narrow bar) last. Pure, thread-safe.
 */
#ifndef RPCQ_BILLING_ITF_H
#define RPCQ_BILLING_ITF_H

#include <stddef.h>

#define ITF_NARROW 1
#define ITF_WIDE 3
/* The elements of n digits: start, five bars and five spaces a digit, stop. */
#define ITF_ELEMENTS(n) (4 + 5 * (size_t)(n) + 3)

/* Writes the widths (ITF_NARROW or ITF_WIDE modules) of the bars and spaces
 * that draw digits[0..n), a bar first, bars and spaces alternating, into
 * widths[0..cap); returns their count, ITF_ELEMENTS(n), or 0 when n is odd
 * or zero, a character is not a digit, or cap is too small. */
size_t itf_encode(const char *digits, size_t n, unsigned char *widths, size_t cap);

/* The digits that widths[0..count) draw (as itf_encode writes them), into
 * out[0..cap) with a NUL; returns how many, or 0 when the widths are not
 * well-formed ITF. For tests, and for whoever checks a printed slip. */
size_t itf_decode(const unsigned char *widths, size_t count, char *out, size_t cap);

#endif
