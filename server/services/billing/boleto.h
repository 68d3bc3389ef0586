/*
 * The payment code of a bill, laid out as a Brazilian boleto bancário
 * (FEBRABAN's "ficha de compensação" barcode and typeable line), so that its
 * check digits are the ones every bank and payment app verifies:
 *
 * The barcode, 44 digits:
 *   1-3    bank code (FEBRABAN compensation code)
 *   4      currency code, 9 (real)
 *   5      general check digit: mod 11 of the other 43 digits, weights 2..9
 *          from the right, 11 - (sum mod 11), with 0, 10 and 11 written as 1
 *   6-9    due-date factor (below)
 *   10-19  amount in cents, zero-padded
 *   20-44  free field, 25 digits, the bank's to define (below)
 *
 * The typeable line ("linha digitável"), 47 digits, printed in five groups
 * as AAABC.CCCCX DDDDD.DDDDDY EEEEE.EEEEEZ K UUUUVVVVVVVVVV:
 *   field 1  bank, currency, free field 1-5, check digit X
 *   field 2  free field 6-15, check digit Y
 *   field 3  free field 16-25, check digit Z
 *   field 4  K, the barcode's general check digit
 *   field 5  factor and amount
 * X, Y and Z are mod 10: digits weighted 2, 1, 2, ... from the right, the
 * digits of each product summed, 10 - (sum mod 10), 10 written as 0.
 *
 * The due-date factor counts days from 1997-10-07 (1997-10-08 is 0001).
 * After 9999 (2025-02-21) it restarts at 1000 (2025-02-22 is 1000 again, per
 * FEBRABAN's 2025 rule), and every 9000 days after that. 0000 means "no due
 * date" on a real slip, so the earliest date a bill can carry is 1997-10-08.
 *
 * The free field is ours to define as the bank's agreement would: the
 * beneficiary's 5-digit agreement code (boleto_input.agreement, the same for
 * every bill of a deployment) followed by the bill number zero-padded to 20
 * digits (every uint64 fits). Distinct bill numbers under one agreement give
 * distinct free fields, hence distinct barcodes and lines.
 *
 * Pure functions, thread-safe.
 */
#ifndef RPCQ_BILLING_BOLETO_H
#define RPCQ_BILLING_BOLETO_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>

#define BOLETO_BARCODE_LEN 44
#define BOLETO_LINE_LEN 47
#define BOLETO_PRINTED_LEN 54
#define BOLETO_AMOUNT_MAX INT64_C(9999999999)
#define BOLETO_AGREEMENT_MAX 99999u

typedef struct boleto_input {
	unsigned bank;	      /* 0..999: the bank's compensation code (e.g. 1, 237, 341) */
	unsigned agreement;   /* 0..BOLETO_AGREEMENT_MAX: the first 5 digits of the free field */
	uint64_t number;      /* the bill number: the other 20 digits of the free field */
	int32_t due_day;      /* days since 1970-01-01 (date.h), from 1997-10-08 */
	int64_t amount_cents; /* 0..BOLETO_AMOUNT_MAX */
} boleto_input;

typedef struct boleto {
	char barcode[BOLETO_BARCODE_LEN + 1]; /* 44 digits, NUL-terminated */
	char line[BOLETO_LINE_LEN + 1];	      /* the typeable line, 47 digits */
	char printed[BOLETO_PRINTED_LEN + 1]; /* the line grouped as printed */
	unsigned factor;		      /* the due-date factor, 1..9999 */
} boleto;

/* Makes the barcode and line of in. INVALID_ARGUMENT for a bank, agreement
 * or amount out of range or a due date before 1997-10-08; *out is filled
 * only on success. */
rpcq_status boleto_make(const boleto_input *in, boleto *out, rpcq_error *err) RPCQ_NODISCARD;

/* The due-date factor of a day (days since 1970-01-01): 1..9999, or 0 for
 * a day before 1997-10-08. */
unsigned boleto_factor(int32_t day);

/* The mod 10 check digit of digits[0..n) (ASCII digits). */
int boleto_mod10(const char *digits, size_t n);

/* The general check digit of a barcode: mod 11 over its 44 digits leaving
 * out the fifth (which may hold anything). */
int boleto_mod11(const char *barcode44);

/* 1 if s is exactly 47 ASCII digits (NUL-terminated) whose three field check
 * digits and general check digit are right, else 0. */
int boleto_check_line(const char *digits47);

/* The barcode (45 bytes with its NUL) that a 47-digit line stands for,
 * check digits not verified: 0, or -1 when s is not 47 ASCII digits. */
int boleto_line_to_barcode(const char *digits47, char barcode[BOLETO_BARCODE_LEN + 1]);

/* Writes the 47 digits as printed (55 bytes with the NUL). */
void boleto_print_line(const char *digits47, char printed[BOLETO_PRINTED_LEN + 1]);

#endif
