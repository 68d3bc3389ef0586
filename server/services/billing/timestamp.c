/*
 * paid_at instants (timestamp.h). The parser walks the text once by fixed
 * positions: the date through the shared date_parse (so the calendar rules
 * are vesting's and billing's alike), then the optional time, fraction and
 * zone, each refused with the part that is wrong.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "date.h"
#include "timestamp.h"

static const char example[] = "expected a date-time such as 2024-03-01T14:30:00Z";

/* Writes why (when the caller wants it) and returns -1. */
__attribute__((format(printf, 3, 4))) static int say(char *why, size_t errlen, const char *fmt, ...)
{
	if (why != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The two ASCII digits at s[0..1] (both within len from i), or -1. */
static int two(const char *s, size_t len, size_t i)
{
	if (i + 2 > len)
		return -1;
	unsigned a = (unsigned)(unsigned char)s[i] - '0', b = (unsigned)(unsigned char)s[i + 1] - '0';
	if (a > 9 || b > 9)
		return -1;
	return (int)(a * 10 + b);
}

int timestamp_parse(const char *s, size_t len, int64_t *ms, char *why, size_t errlen)
{
	int32_t day;
	if (len < 10)
		return say(why, errlen, "%s", example);
	switch (date_parse(s, 10, &day)) {
	case DATE_OK:
		break;
	case DATE_MALFORMED:
		return say(why, errlen, "%s", example);
	case DATE_IMPOSSIBLE:
		return say(why, errlen, "%.10s is not a date", s);
	}
	int64_t secs = (int64_t)day * 86400, frac_ms = 0, offset = 0;
	size_t i = 10;
	if (i < len) {
		if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
			return say(why, errlen, "%s", example);
		int h = two(s, len, i + 1), mi = -1, se = 0;
		if (h >= 0 && i + 3 < len && s[i + 3] == ':')
			mi = two(s, len, i + 4);
		if (h < 0 || mi < 0)
			return say(why, errlen, "%s", example);
		i += 6;
		if (i < len && s[i] == ':') {
			if ((se = two(s, len, i + 1)) < 0)
				return say(why, errlen, "%s", example);
			i += 3;
			if (i < len && (s[i] == '.' || s[i] == ',')) {
				size_t n = 0;
				for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, n++)
					if (n < 3)
						frac_ms = frac_ms * 10 + (s[i] - '0');
				if (n == 0 || n > 9)
					return say(why, errlen, "a fraction of a second has 1 to 9 digits");
				for (; n < 3; n++)
					frac_ms *= 10;
			}
		}
		if (h > 23)
			return say(why, errlen, "hour %d is out of range", h);
		if (mi > 59)
			return say(why, errlen, "minute %d is out of range", mi);
		if (se > 60)
			return say(why, errlen, "second %d is out of range", se);
		secs += h * 3600 + mi * 60 + se;
		if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
			i++;
		} else if (i < len && (s[i] == '+' || s[i] == '-')) {
			int sign = s[i] == '-' ? -1 : 1, zh = two(s, len, i + 1), zm = 0;
			if (zh < 0)
				return say(why, errlen, "a zone is Z or +HH:MM");
			i += 3;
			if (i < len) {
				if (s[i] == ':')
					i++;
				if ((zm = two(s, len, i)) < 0)
					return say(why, errlen, "a zone is Z or +HH:MM");
				i += 2;
			}
			if (zh > 23 || zm > 59)
				return say(why, errlen, "zone offset %02d:%02d is out of range", zh, zm);
			offset = sign * (zh * 3600 + zm * 60);
		}
		if (i != len)
			return say(why, errlen, "%s", example);
	}
	int64_t v = (secs - offset) * 1000 + frac_ms;
	if (v < TIMESTAMP_MIN_MS || v > TIMESTAMP_MAX_MS)
		return say(why, errlen, "the instant is outside the years 0001..9999");
	*ms = v;
	return 0;
}

size_t timestamp_format(int64_t ms, char out[TIMESTAMP_FORMAT_MAX])
{
	if (ms < TIMESTAMP_MIN_MS)
		ms = TIMESTAMP_MIN_MS;
	if (ms > TIMESTAMP_MAX_MS)
		ms = TIMESTAMP_MAX_MS;
	/* Floor division, so instants before 1970 fall on the right day. */
	int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int millis = (int)(ms - secs * 1000);
	int64_t day = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	int sod = (int)(secs - day * 86400);
	date_format((int32_t)day, out);
	int n = snprintf(out + 10, TIMESTAMP_FORMAT_MAX - 10, "T%02d:%02d:%02d", sod / 3600, sod / 60 % 60, sod % 60);
	size_t o = 10 + (size_t)n;
	if (millis != 0)
		o += (size_t)snprintf(out + o, TIMESTAMP_FORMAT_MAX - o, ".%03d", millis);
	out[o++] = 'Z';
	out[o] = '\0';
	return o;
}
