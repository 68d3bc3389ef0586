/*
 * Dates as day numbers. The conversions are Howard Hinnant's
 * days_from_civil/civil_from_days, exact for the whole proleptic Gregorian
 * calendar with integer arithmetic only; the parser accepts nothing but ten
 * ASCII characters in the form DDDD-DD-DD naming a day that exists.
 */
#include "date.h"

int date_is_leap(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static unsigned days_in_month(int year, unsigned month)
{
	static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (month == 2 && date_is_leap(year))
		return 29;
	return days[month - 1];
}

int32_t date_from_civil(int year, unsigned month, unsigned mday)
{
	int y = year - (month <= 2);
	int era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + mday - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int32_t)(era * 146097 + (int)doe - 719468);
}

static int digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(unsigned char)s[i] - '0';
		if (d > 9)
			return 0;
		v = v * 10 + d;
	}
	*out = v;
	return 1;
}

date_result date_parse(const char *s, size_t len, int32_t *day)
{
	unsigned year, month, mday;
	if (len != 10 || s[4] != '-' || s[7] != '-')
		return DATE_MALFORMED;
	if (!digits(s, 4, &year) || !digits(s + 5, 2, &month) || !digits(s + 8, 2, &mday))
		return DATE_MALFORMED;
	if (year == 0 || month < 1 || month > 12 || mday < 1 || mday > days_in_month((int)year, month))
		return DATE_IMPOSSIBLE;
	*day = date_from_civil((int)year, month, mday);
	return DATE_OK;
}

void date_format(int32_t day, char out[11])
{
	int z = day + 719468;
	int era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int y = (int)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += (m <= 2);
	unsigned uy = (unsigned)y;
	out[0] = (char)('0' + uy / 1000 % 10);
	out[1] = (char)('0' + uy / 100 % 10);
	out[2] = (char)('0' + uy / 10 % 10);
	out[3] = (char)('0' + uy % 10);
	out[4] = '-';
	out[5] = (char)('0' + m / 10);
	out[6] = (char)('0' + m % 10);
	out[7] = '-';
	out[8] = (char)('0' + d / 10);
	out[9] = (char)('0' + d % 10);
	out[10] = '\0';
}
