/*
 * Amounts of money as billing keeps them: int64 cents, never binary floating
 * point. The text form is what the debts file and RecordPayment write: ASCII
 * digits, optionally a point and one or two decimals ("1000", "1000.5",
 * "1000.50"); no sign, exponent, grouping or blanks. At most MONEY_MAX_CENTS,
 * the largest amount a boleto's 10-digit value field carries (99999999.99),
 * so that every amount billing accepts can be put on a bill.
 *
 * Why not vesting's qty.c or events' decimal.c: qty truncates digits past its
 * sixth decimal without a word and accepts ".5" and "5.", and decimal.c
 * yields normalized text, not a number; billing must refuse a third decimal
 * by name and compute with the cents. Pure functions, thread-safe.
 */
#ifndef RPCQ_BILLING_MONEY_H
#define RPCQ_BILLING_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define MONEY_MAX_CENTS INT64_C(9999999999)
#define MONEY_MAX_TEXT "99999999.99"
/* Longest formatted amount: '-', 19 digits, point, 2 decimals, NUL. */
#define MONEY_FORMAT_MAX 24

typedef enum money_result {
	MONEY_OK = 0,
	MONEY_EMPTY,	    /* no text at all */
	MONEY_MALFORMED,    /* not digits[.d[d]]: letters, a sign, ",", ".5", "5." */
	MONEY_DECIMALS,	    /* a nonzero digit past the second decimal ("12.345"; "12.340" is 12.34) */
	MONEY_NOT_POSITIVE, /* zero ("0", "0.00"), or a '-' in front of a valid amount */
	MONEY_TOO_LARGE,    /* more than MONEY_MAX_TEXT */
} money_result;

/* Parses exactly len bytes of s into *cents (1..MONEY_MAX_CENTS); *cents is
 * set only on MONEY_OK. */
money_result money_parse(const char *s, size_t len, int64_t *cents);

/* Writes cents as "1234.56" (always two decimals, "-" for a negative
 * amount; any int64) plus a NUL into out; returns the length. */
size_t money_format(int64_t cents, char out[MONEY_FORMAT_MAX]);

/* A short phrase for a result that is not MONEY_OK, to follow the quoted
 * value in a message: "has more than 2 decimals". */
const char *money_result_phrase(money_result r);

#endif
