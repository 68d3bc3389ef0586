/*
 * Amounts as int64 cents (money.h). The parser reads the integer digits with
 * an overflow guard that stops well before int64 (any value past
 * MONEY_MAX_CENTS is refused as such, however many digits it has), then at
 * most two decimals (more only as trailing zeros: 12.340 is 12.34); the checks go from form to value, so a malformed text
 * is called malformed before it could be called too large.
 */
#include "money.h"

static int is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

money_result money_parse(const char *s, size_t len, int64_t *cents)
{
	size_t i = 0, int_digits = 0, dec_digits = 0;
	int negative = 0, big = 0;
	int64_t v = 0;
	if (len == 0)
		return MONEY_EMPTY;
	if (s[0] == '-') {
		negative = 1;
		i = 1;
	}
	for (; i < len && is_digit(s[i]); i++, int_digits++) {
		if (v > MONEY_MAX_CENTS)
			big = 1; /* keeps reading to tell the form, v stays bounded */
		else
			v = v * 10 + (s[i] - '0');
	}
	if (int_digits == 0)
		return MONEY_MALFORMED;
	int64_t frac = 0;
	int past_cents = 0; /* a nonzero digit after the second decimal */
	if (i < len && s[i] == '.') {
		for (i++; i < len && is_digit(s[i]); i++, dec_digits++) {
			if (dec_digits < 2)
				frac = frac * 10 + (s[i] - '0');
			else if (s[i] != '0')
				past_cents = 1;
		}
		if (dec_digits == 0)
			return MONEY_MALFORMED;
	}
	if (i != len)
		return MONEY_MALFORMED;
	if (past_cents)
		return MONEY_DECIMALS;
	if (dec_digits > 2)
		dec_digits = 2; /* 12.340: trailing zeros, the same cents */
	if (dec_digits == 1)
		frac *= 10;
	/* v <= MONEY_MAX_CENTS * 10 + 9 here, so v * 100 cannot overflow. */
	int64_t total = v * 100 + frac;
	if (negative || total == 0)
		return MONEY_NOT_POSITIVE;
	if (big || total > MONEY_MAX_CENTS)
		return MONEY_TOO_LARGE;
	*cents = total;
	return MONEY_OK;
}

size_t money_format(int64_t cents, char out[MONEY_FORMAT_MAX])
{
	char tmp[24];
	size_t n = 0, o = 0;
	/* The magnitude as unsigned, so INT64_MIN has one too. */
	uint64_t u = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0 || n < 3);
	if (cents < 0)
		out[o++] = '-';
	while (n > 2)
		out[o++] = tmp[--n];
	out[o++] = '.';
	out[o++] = tmp[1];
	out[o++] = tmp[0];
	out[o] = '\0';
	return o;
}

const char *money_result_phrase(money_result r)
{
	switch (r) {
	case MONEY_OK:
		return "is an amount";
	case MONEY_EMPTY:
		return "is empty";
	case MONEY_MALFORMED:
		return "is not a decimal amount such as 1234.56";
	case MONEY_DECIMALS:
		return "has more than 2 decimals";
	case MONEY_NOT_POSITIVE:
		return "is not positive";
	case MONEY_TOO_LARGE:
		return "is more than " MONEY_MAX_TEXT;
	}
	return "is not an amount";
}
