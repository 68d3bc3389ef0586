/*
 * Date-times of the events service (datetime.h). Both parsers check fixed
 * positions of ASCII digits and then the calendar: a month has the days it
 * has in that year (leap years: divisible by 4, not by 100 unless by 400),
 * so 2021-09-31 and 2021-02-29 never reach the store or a search.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "datetime.h"

static const char bound_example[] = "expected a date-time such as 2021-07-21T17:32:28Z";

static int is_leap(unsigned year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static unsigned days_in_month(unsigned year, unsigned month)
{
	static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (month == 2 && is_leap(year))
		return 29;
	return days[month - 1];
}

/* The n ASCII digits at s as a number; -1 when one is not a digit (or the
 * string ends first: NUL is not a digit). */
static long digits(const char *s, size_t n)
{
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(unsigned char)s[i] - '0';
		if (d > 9)
			return -1;
		v = v * 10 + (long)d;
	}
	return v;
}

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

/* "YYYY-MM-DD" at s: 0 when it names a day that exists, -1 with why. */
static int parse_date(const char *s, char *why, size_t errlen)
{
	long y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
	if (y < 0 || s[4] != '-' || m < 0 || s[7] != '-' || d < 0)
		return say(why, errlen, "%s", bound_example);
	if (y == 0)
		return say(why, errlen, "year %04u is out of range", (unsigned)y);
	if (m < 1 || m > 12)
		return say(why, errlen, "month %u is out of range", (unsigned)m);
	if (d < 1 || (unsigned)d > days_in_month((unsigned)y, (unsigned)m))
		return say(why, errlen, "day %u is out of range in %.7s", (unsigned)d, s);
	return 0;
}

/* "HH:MM" at s, and ":SS" when seconds is set: 0 or -1 with why. */
static int parse_time(const char *s, int seconds, char *why, size_t errlen)
{
	long h = digits(s, 2), mi = digits(s + 3, 2), se = seconds ? digits(s + 6, 2) : 0;
	if (h < 0 || s[2] != ':' || mi < 0 || (seconds && (s[5] != ':' || se < 0)))
		return say(why, errlen, "%s", bound_example);
	if (h > 23)
		return say(why, errlen, "hour %u is out of range", (unsigned)h);
	if (mi > 59)
		return say(why, errlen, "minute %u is out of range", (unsigned)mi);
	if (se > 59)
		return say(why, errlen, "second %u is out of range", (unsigned)se);
	return 0;
}

int datetime_local_parse(const char *s, char out[20])
{
	if (strlen(s) != 19 || s[10] != 'T')
		return -1;
	if (parse_date(s, NULL, 0) != 0 || parse_time(s + 11, 1, NULL, 0) != 0)
		return -1;
	memcpy(out, s, 20);
	return 0;
}

/* A zone suffix at s: "", "Z", "z", "+HH", "+HH:MM", "+HHMM" (or '-').
 * A space for the '+' is taken as the '+': a query string's unencoded '+'
 * ("...T21:00:00+02:00", as curl and browsers send it) decodes to one. */
static int parse_zone(const char *s, char *why, size_t errlen)
{
	if (s[0] == '\0' || ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0'))
		return 0;
	if (s[0] != '+' && s[0] != '-' && s[0] != ' ')
		goto shape;
	long h = digits(s + 1, 2), m = 0;
	const char *rest = s + 3;
	if (h < 0)
		goto shape;
	if (*rest == ':')
		rest++;
	if (*rest != '\0') {
		m = digits(rest, 2);
		if (m < 0 || rest[2] != '\0')
			goto shape;
	} else if (rest != s + 3) {
		goto shape; /* "+02:" */
	}
	if (h > 23 || m > 59)
		return say(why, errlen, "zone offset %c%02u:%02u is out of range", s[0] == '-' ? '-' : '+', (unsigned)h,
			   (unsigned)m);
	return 0;
shape:
	return say(why, errlen, "%s", bound_example);
}

int datetime_bound_parse(const char *s, char out[20], char *why, size_t errlen)
{
	char tmp[20];
	if (why != NULL && errlen > 0)
		why[0] = '\0';
	/* Every check below reads only bytes before the first NUL. */
	if (strnlen(s, 10) < 10)
		return say(why, errlen, "%s", bound_example);
	if (parse_date(s, why, errlen) != 0)
		return -1;
	memcpy(tmp, s, 10);
	memcpy(tmp + 10, "T00:00:00", 10);
	if (s[10] == '\0') {
		memcpy(out, tmp, 20);
		return 0;
	}
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return say(why, errlen, "%s", bound_example);
	const char *t = s + 11;
	int seconds = strnlen(t, 6) >= 6 && t[5] == ':';
	if (strnlen(t, 5) < 5)
		return say(why, errlen, "%s", bound_example);
	if (parse_time(t, seconds, why, errlen) != 0)
		return -1;
	memcpy(tmp + 11, t, seconds ? 8 : 5);
	const char *rest = t + (seconds ? 8 : 5);
	if (seconds && *rest == '.') {
		const char *f = rest + 1;
		while (*f >= '0' && *f <= '9')
			f++;
		if (f == rest + 1)
			return say(why, errlen, "%s", bound_example);
		rest = f;
	}
	if (parse_zone(rest, why, errlen) != 0)
		return -1;
	memcpy(out, tmp, 20);
	return 0;
}

/* b ("YYYY-MM-DDTHH:MM:SS", valid) one second later; the last second of
 * 9999 stays as it is. */
static void next_second(char b[20])
{
	unsigned y, mo, d, h, mi, se;
	if (sscanf(b, "%4u-%2u-%2uT%2u:%2u:%2u", &y, &mo, &d, &h, &mi, &se) != 6)
		return;
	if (++se == 60 && (se = 0, ++mi == 60) && (mi = 0, ++h == 24) && (h = 0, ++d > days_in_month(y, mo)) &&
	    (d = 1, ++mo == 13) && (mo = 1, ++y > 9999))
		return;
	snprintf(b, 20, "%04u-%02u-%02uT%02u:%02u:%02u", y, mo, d, h, mi, se);
}

int datetime_upper_bound_parse(const char *s, char out[20], char *why, size_t errlen)
{
	if (datetime_bound_parse(s, out, why, errlen) != 0)
		return -1;
	if (s[10] == '\0')
		memcpy(out + 10, "T23:59:59", 10);
	return 0;
}

int datetime_lower_bound_parse(const char *s, char out[20], char *why, size_t errlen)
{
	if (datetime_bound_parse(s, out, why, errlen) != 0)
		return -1;
	/* A fraction stands at s[19] only after seconds ("...T17:32:28.5"). */
	if (strnlen(s, 20) == 20 && s[16] == ':' && s[19] == '.') {
		for (const char *f = s + 20; *f >= '0' && *f <= '9'; f++) {
			if (*f != '0') {
				next_second(out);
				break;
			}
		}
	}
	return 0;
}
