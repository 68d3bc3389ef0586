/*
 * Exact decimals as text (decimal.h). Prices travel from the feed to the
 * JSON of /search as the digits the provider wrote, so nothing here ever
 * converts to binary floating point: validation is a scan of the bytes and
 * comparison is of digit strings, integer part by length first.
 */
#include <string.h>

#include "decimal.h"

#define DECIMAL_INT_DIGITS 18
#define DECIMAL_FRAC_DIGITS 6

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int decimal_normalize(const char *in, char *out, size_t outlen)
{
	size_t nint = 0, nfrac = 0, i = 0;
	while (is_digit(in[i])) {
		i++;
		nint++;
	}
	size_t int_end = i;
	if (in[i] == '.') {
		for (i++; is_digit(in[i]); i++)
			nfrac++;
		/* "20." says a fraction and gives none: refused, like ".5". */
		if (nfrac == 0)
			return -1;
	}
	if (in[i] != '\0' || nint == 0 || nint > DECIMAL_INT_DIGITS || nfrac > DECIMAL_FRAC_DIGITS)
		return -1;

	size_t skip = 0;
	while (skip + 1 < nint && in[skip] == '0')
		skip++;
	size_t n = (nint - skip) + (nfrac ? 1 + nfrac : 0);
	if (n + 1 > outlen)
		return -1;
	memcpy(out, in + skip, nint - skip);
	if (nfrac)
		memcpy(out + (nint - skip), in + int_end, 1 + nfrac);
	out[n] = '\0';
	return 0;
}

/* The length of the integer part of a normalized decimal. */
static size_t int_len(const char *s)
{
	const char *dot = strchr(s, '.');
	return dot != NULL ? (size_t)(dot - s) : strlen(s);
}

int decimal_cmp(const char *a, const char *b)
{
	size_t la = int_len(a), lb = int_len(b);
	/* Normalized integer parts have no leading zeros: the longer is larger. */
	if (la != lb)
		return la < lb ? -1 : 1;
	int c = memcmp(a, b, la);
	if (c != 0)
		return c < 0 ? -1 : 1;
	/* Fractions digit by digit, the shorter one padded with zeros. */
	const char *fa = a[la] == '.' ? a + la + 1 : a + la;
	const char *fb = b[lb] == '.' ? b + lb + 1 : b + lb;
	while (*fa != '\0' || *fb != '\0') {
		char da = *fa != '\0' ? *fa++ : '0';
		char db = *fb != '\0' ? *fb++ : '0';
		if (da != db)
			return da < db ? -1 : 1;
	}
	return 0;
}
