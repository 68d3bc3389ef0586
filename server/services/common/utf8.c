/*
 * UTF-8 validation (utf8.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

int utf8_valid(const void *text, size_t n)
{
	const unsigned char *s = text;
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

void utf8_quote(const char *s, size_t n, char *out, size_t out_len)
{
	size_t o = 0;
	int ok = utf8_valid(s, n);
	if (out_len < 64)
		return;
	out[o++] = '"';
	for (size_t i = 0; i < n && o + 8 < out_len; i++) {
		unsigned char ch = (unsigned char)s[i];
		/* Cut at about 40 bytes, but not inside a UTF-8 sequence. */
		if (o >= 40 && i + 1 < n && (!ok || (ch & 0xc0) != 0x80)) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && !ok)) {
			o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

static size_t nbsp_len(const unsigned char *p, size_t n)
{
	if (n == 2 && p[0] == 0xc2 && p[1] == 0xa0)
		return 2;
	if (n == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0x87 || p[2] == 0xaf))
		return 3;
	return 0;
}

size_t utf8_nbsp_at(const char *p, const char *end)
{
	size_t left = (size_t)(end - p);
	if (left >= 2 && nbsp_len((const unsigned char *)p, 2))
		return 2;
	if (left >= 3 && nbsp_len((const unsigned char *)p, 3))
		return 3;
	return 0;
}

size_t utf8_nbsp_before(const char *start, const char *e)
{
	size_t left = (size_t)(e - start);
	if (left >= 2 && nbsp_len((const unsigned char *)e - 2, 2))
		return 2;
	if (left >= 3 && nbsp_len((const unsigned char *)e - 3, 3))
		return 3;
	return 0;
}
