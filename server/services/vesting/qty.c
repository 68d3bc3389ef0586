/*
 * Decimal quantities in micro-shares. The parser is a single pass over the
 * bytes: integer digits accumulate with an overflow bound, the first six
 * fraction digits are kept and the rest only checked to be digits.
 */
#include <string.h>

#include "qty.h"

static const int64_t pow10_table[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};

int64_t vesting_qty_unit(int precision)
{
	return pow10_table[VESTING_PRECISION_MAX - precision];
}

int64_t vesting_qty_truncate(int64_t micro, int precision)
{
	int64_t unit = vesting_qty_unit(precision);
	return micro - micro % unit;
}

static vesting_qty_result parse_unsigned(const char *s, size_t len, int64_t *micro)
{
	/* The integer part may not exceed INT64_MAX / SCALE; when it equals it,
	 * the fraction may not exceed INT64_MAX % SCALE. */
	const uint64_t int_max = (uint64_t)INT64_MAX / VESTING_QTY_SCALE;
	const uint64_t frac_max = (uint64_t)INT64_MAX % VESTING_QTY_SCALE;
	uint64_t ip = 0, fp = 0;
	size_t i = 0, nint = 0, nfrac = 0;
	int overflow = 0;

	for (; i < len; i++) {
		unsigned d = (unsigned)(unsigned char)s[i] - '0';
		if (d > 9)
			break;
		if (!overflow) {
			ip = ip * 10 + d;
			if (ip > int_max)
				overflow = 1;
		}
		nint++;
	}
	if (i < len && s[i] == '.') {
		for (i++; i < len; i++) {
			unsigned d = (unsigned)(unsigned char)s[i] - '0';
			if (d > 9)
				break;
			if (nfrac < VESTING_PRECISION_MAX)
				fp = fp * 10 + d;
			nfrac++;
		}
	}
	if (i != len || nint + nfrac == 0)
		return VESTING_QTY_MALFORMED;
	if (overflow)
		return VESTING_QTY_OVERFLOW;
	for (size_t k = nfrac; k < VESTING_PRECISION_MAX; k++)
		fp *= 10;
	if (ip == int_max && fp > frac_max)
		return VESTING_QTY_OVERFLOW;
	*micro = (int64_t)(ip * VESTING_QTY_SCALE + fp);
	return VESTING_QTY_OK;
}

vesting_qty_result vesting_qty_parse(const char *s, size_t len, int64_t *micro)
{
	if (len > 0 && s[0] == '-') {
		int64_t ignored;
		vesting_qty_result r = parse_unsigned(s + 1, len - 1, &ignored);
		return r == VESTING_QTY_MALFORMED ? r : VESTING_QTY_NEGATIVE;
	}
	return parse_unsigned(s, len, micro);
}

size_t vesting_qty_format(int64_t micro, int precision, char out[VESTING_QTY_FORMAT_MAX])
{
	char tmp[VESTING_QTY_FORMAT_MAX];
	size_t n = 0, k = 0;
	/* Work on the magnitude as unsigned so INT64_MIN is representable. */
	uint64_t mag = micro < 0 ? (uint64_t)0 - (uint64_t)micro : (uint64_t)micro;
	uint64_t ip = mag / VESTING_QTY_SCALE;
	uint64_t fp = mag % VESTING_QTY_SCALE;

	if (micro < 0 && (ip != 0 || fp / (uint64_t)vesting_qty_unit(precision) != 0))
		out[n++] = '-';
	do {
		tmp[k++] = (char)('0' + ip % 10);
		ip /= 10;
	} while (ip);
	while (k)
		out[n++] = tmp[--k];
	if (precision > 0) {
		out[n++] = '.';
		for (int i = 0; i < precision; i++) {
			fp *= 10;
			out[n++] = (char)('0' + fp / VESTING_QTY_SCALE);
			fp %= VESTING_QTY_SCALE;
		}
	}
	out[n] = '\0';
	return n;
}
