/*
 * Boleto barcodes and typeable lines (boleto.h). The barcode is built first,
 * with a 0 where its general check digit goes (then computed); the line is the
 * barcode's digits rearranged with the three field check digits added.
 */
#include <stdio.h>
#include <string.h>

#include "boleto.h"
#include "date.h"

/* 1997-10-07, the day before factor 0001. */
static int32_t base_day(void)
{
	return date_from_civil(1997, 10, 7);
}

unsigned boleto_factor(int32_t day)
{
	int64_t d = (int64_t)day - base_day();
	if (d < 1)
		return 0;
	if (d <= 9999)
		return (unsigned)d;
	return (unsigned)(1000 + (d - 10000) % 9000);
}

int boleto_mod10(const char *digits, size_t n)
{
	unsigned sum = 0, weight = 2;
	for (size_t i = n; i-- > 0;) {
		unsigned p = (unsigned)(digits[i] - '0') * weight;
		sum += p / 10 + p % 10;
		weight = weight == 2 ? 1 : 2;
	}
	return (int)((10 - sum % 10) % 10);
}

int boleto_mod11(const char *barcode44)
{
	unsigned sum = 0, weight = 2;
	for (size_t i = BOLETO_BARCODE_LEN; i-- > 0;) {
		if (i == 4)
			continue;
		sum += (unsigned)(barcode44[i] - '0') * weight;
		weight = weight == 9 ? 2 : weight + 1;
	}
	unsigned dv = 11 - sum % 11;
	return dv == 0 || dv >= 10 ? 1 : (int)dv;
}

static int all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* The line of a barcode whose check digit is set. */
static void line_of(const char *bc, char line[BOLETO_LINE_LEN + 1])
{
	memcpy(line, bc, 4);	      /* bank, currency */
	memcpy(line + 4, bc + 19, 5); /* free field 1-5 */
	line[9] = (char)('0' + boleto_mod10(line, 9));
	memcpy(line + 10, bc + 24, 10); /* free field 6-15 */
	line[20] = (char)('0' + boleto_mod10(line + 10, 10));
	memcpy(line + 21, bc + 34, 10); /* free field 16-25 */
	line[31] = (char)('0' + boleto_mod10(line + 21, 10));
	line[32] = bc[4];	       /* general check digit */
	memcpy(line + 33, bc + 5, 14); /* factor, amount */
	line[BOLETO_LINE_LEN] = '\0';
}

rpcq_status boleto_make(const boleto_input *in, boleto *out, rpcq_error *err)
{
	if (in->bank > 999)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "bank code %u has more than 3 digits", in->bank);
	if (in->agreement > BOLETO_AGREEMENT_MAX)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "agreement code %u has more than 5 digits",
				      in->agreement);
	if (in->amount_cents < 0 || in->amount_cents > BOLETO_AMOUNT_MAX)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "amount of %lld cents does not fit the boleto's 10 digits",
				      (long long)in->amount_cents);
	unsigned factor = boleto_factor(in->due_day);
	if (factor == 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "a due date before 1997-10-08 has no boleto factor");
	char bc[BOLETO_BARCODE_LEN + 8];
	/* 3 + 1 + 1 + 4 + 10 + 5 + 20 = 44 digits. */
	snprintf(bc, sizeof(bc), "%03u9%c%04u%010lld%05u%020llu", in->bank, '0', factor, (long long)in->amount_cents,
		 in->agreement, (unsigned long long)in->number);
	bc[4] = (char)('0' + boleto_mod11(bc));
	memcpy(out->barcode, bc, BOLETO_BARCODE_LEN + 1);
	line_of(out->barcode, out->line);
	boleto_print_line(out->line, out->printed);
	out->factor = factor;
	return RPCQ_OK;
}

int boleto_line_to_barcode(const char *digits47, char barcode[BOLETO_BARCODE_LEN + 1])
{
	if (strnlen(digits47, BOLETO_LINE_LEN + 1) != BOLETO_LINE_LEN || !all_digits(digits47, BOLETO_LINE_LEN))
		return -1;
	memcpy(barcode, digits47, 4);
	barcode[4] = digits47[32];
	memcpy(barcode + 5, digits47 + 33, 14);
	memcpy(barcode + 19, digits47 + 4, 5);
	memcpy(barcode + 24, digits47 + 10, 10);
	memcpy(barcode + 34, digits47 + 21, 10);
	barcode[BOLETO_BARCODE_LEN] = '\0';
	return 0;
}

int boleto_check_line(const char *digits47)
{
	char bc[BOLETO_BARCODE_LEN + 1], line[BOLETO_LINE_LEN + 1];
	if (boleto_line_to_barcode(digits47, bc) < 0)
		return 0;
	if (bc[4] != '0' + boleto_mod11(bc))
		return 0;
	line_of(bc, line);
	return memcmp(line, digits47, BOLETO_LINE_LEN) == 0;
}

void boleto_print_line(const char *l, char p[BOLETO_PRINTED_LEN + 1])
{
	/* AAABC.CCCCX DDDDD.DDDDDY EEEEE.EEEEEZ K UUUUVVVVVVVVVV */
	snprintf(p, BOLETO_PRINTED_LEN + 1, "%.5s.%.5s %.5s.%.6s %.5s.%.6s %c %.14s", l, l + 5, l + 10, l + 15, l + 21,
		 l + 26, l[32], l + 33);
}
