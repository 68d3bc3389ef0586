/*
 * Interleaved 2 of 5 (itf.h).
 */
#include <string.h>

#include "itf.h"

/* Each digit's five elements, 'w' wide and 'n' narrow. */
static const char pattern[10][6] = {"nnwwn", "wnnnw", "nwnnw", "wwnnn", "nnwnw",
				    "wnwnn", "nwwnn", "nnnww", "wnnwn", "nwnwn"};

static unsigned char width_of(char c)
{
	return c == 'w' ? ITF_WIDE : ITF_NARROW;
}

size_t itf_encode(const char *digits, size_t n, unsigned char *widths, size_t cap)
{
	if (n == 0 || n % 2 != 0 || cap < ITF_ELEMENTS(n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (digits[i] < '0' || digits[i] > '9')
			return 0;
	size_t k = 0;
	for (int i = 0; i < 4; i++)
		widths[k++] = ITF_NARROW;
	for (size_t i = 0; i < n; i += 2) {
		const char *bars = pattern[digits[i] - '0'], *spaces = pattern[digits[i + 1] - '0'];
		for (int j = 0; j < 5; j++) {
			widths[k++] = width_of(bars[j]);
			widths[k++] = width_of(spaces[j]);
		}
	}
	widths[k++] = ITF_WIDE;
	widths[k++] = ITF_NARROW;
	widths[k++] = ITF_NARROW;
	return k;
}

/* The digit whose pattern the five widths w[0], w[step], ... draw, or -1. */
static int digit_of(const unsigned char *w, size_t step)
{
	char p[6];
	for (int j = 0; j < 5; j++) {
		if (w[j * step] != ITF_NARROW && w[j * step] != ITF_WIDE)
			return -1;
		p[j] = w[j * step] == ITF_WIDE ? 'w' : 'n';
	}
	p[5] = '\0';
	for (int d = 0; d < 10; d++)
		if (memcmp(p, pattern[d], 6) == 0)
			return d;
	return -1;
}

size_t itf_decode(const unsigned char *widths, size_t count, char *out, size_t cap)
{
	if (count < ITF_ELEMENTS(2) || (count - 7) % 10 != 0)
		return 0;
	size_t n = (count - 7) / 5;
	if (cap < n + 1)
		return 0;
	for (int i = 0; i < 4; i++)
		if (widths[i] != ITF_NARROW)
			return 0;
	const unsigned char *stop = widths + count - 3;
	if (stop[0] != ITF_WIDE || stop[1] != ITF_NARROW || stop[2] != ITF_NARROW)
		return 0;
	for (size_t i = 0; i < n; i += 2) {
		const unsigned char *w = widths + 4 + 5 * i;
		int a = digit_of(w, 2), b = digit_of(w + 1, 2);
		if (a < 0 || b < 0)
			return 0;
		out[i] = (char)('0' + a);
		out[i + 1] = (char)('0' + b);
	}
	out[n] = '\0';
	return n;
}
