/*
 * Exact decimals as text (decimal.h). Prices travel from the feed to the
 * JSON of /search as the digits the provider wrote, so nothing here ever
 * converts to binary floating point: validation is a scan of the bytes and
 * comparison is of digit strings, integer part by length first. The feed
 * parser compares every zone's price against the event's lowest and
 * highest without copying it (decimal_parse, decimal_compare), and writes
 * out only a new lowest or highest.
 */
#include <string.h>

#include "decimal.h"

#define DECIMAL_INT_DIGITS 18
#define DECIMAL_FRAC_DIGITS 6
_Static_assert(DECIMAL_INT_DIGITS + 1 + DECIMAL_FRAC_DIGITS + 1 == DECIMAL_TEXT_MAX, "decimal.h's DECIMAL_TEXT_MAX");

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int decimal_parse(const char *in, decimal *d)
{
	const char *s = in;
	while (is_digit(*s))
		s++;
	size_t nint = (size_t)(s - in);
	const char *frac = s;
	size_t nfrac = 0;
	if (*s == '.') {
		frac = ++s;
		while (is_digit(*s))
			s++;
		nfrac = (size_t)(s - frac);
		/* "20." says a fraction and gives none: refused, like ".5". */
		if (nfrac == 0)
			return -1;
	}
	if (*s != '\0' || nint == 0 || nint > DECIMAL_INT_DIGITS || nfrac > DECIMAL_FRAC_DIGITS)
		return -1;
	size_t skip = 0;
	while (skip + 1 < nint && in[skip] == '0')
		skip++;
	d->intp = in + skip;
	d->nint = nint - skip;
	d->frac = frac;
	d->nfrac = nfrac;
	return 0;
}

int decimal_compare(const decimal *a, const decimal *b)
{
	/* Integer parts have no leading zeros: the longer is larger. */
	if (a->nint != b->nint)
		return a->nint < b->nint ? -1 : 1;
	int c = memcmp(a->intp, b->intp, a->nint);
	if (c != 0)
		return c < 0 ? -1 : 1;
	/* Fractions digit by digit, the shorter one padded with zeros. */
	size_t n = a->nfrac > b->nfrac ? a->nfrac : b->nfrac;
	for (size_t i = 0; i < n; i++) {
		char da = i < a->nfrac ? a->frac[i] : '0';
		char db = i < b->nfrac ? b->frac[i] : '0';
		if (da != db)
			return da < db ? -1 : 1;
	}
	return 0;
}

int decimal_write(decimal *d, char *out, size_t outlen)
{
	size_t n = d->nint + (d->nfrac ? 1 + d->nfrac : 0);
	if (n + 1 > outlen)
		return -1;
	memmove(out, d->intp, d->nint);
	if (d->nfrac) {
		out[d->nint] = '.';
		memmove(out + d->nint + 1, d->frac, d->nfrac);
	}
	out[n] = '\0';
	d->intp = out;
	d->frac = out + d->nint + 1;
	return 0;
}

int decimal_normalize(const char *in, char *out, size_t outlen)
{
	decimal d;
	return decimal_parse(in, &d) != 0 ? -1 : decimal_write(&d, out, outlen);
}

int decimal_cmp(const char *a, const char *b)
{
	decimal da, db;
	/* Normalized decimals parse; an invalid one compares as zero. */
	if (decimal_parse(a, &da) != 0)
		da = (decimal){.intp = "0", .nint = 1};
	if (decimal_parse(b, &db) != 0)
		db = (decimal){.intp = "0", .nint = 1};
	return decimal_compare(&da, &db);
}
