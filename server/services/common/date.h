/*
 * Calendar dates as the services' files and requests write them: strict
 * "YYYY-MM-DD" text to a day number (days since 1970-01-01, proleptic
 * Gregorian) and back. Only real dates are accepted: months 01..12, days that
 * exist in that month (leap years by the Gregorian rule: 2000 and 2024 have a
 * Feb 29, 1900 has not), years 0001..9999. Day numbers are what vesting sorts
 * events by and its ledger stores, and what billing's due dates and boleto
 * due-date factors are computed from. Pure functions, thread-safe.
 */
#ifndef RPCQ_DATE_H
#define RPCQ_DATE_H

#include <stddef.h>
#include <stdint.h>

/* Outcome of date_parse. */
typedef enum date_result {
	DATE_OK = 0,
	DATE_MALFORMED,	 /* not ten characters "DDDD-DD-DD" */
	DATE_IMPOSSIBLE, /* well-formed, but no such day (2021-02-29, month 13) */
} date_result;

/* Smallest and largest day numbers (0001-01-01 and 9999-12-31). */
#define DATE_DAY_MIN (-719162)
#define DATE_DAY_MAX 2932896

/* Parses exactly len bytes of s as YYYY-MM-DD into *day. */
date_result date_parse(const char *s, size_t len, int32_t *day);

/* The day number of a valid year/month/day (no checking). */
int32_t date_from_civil(int year, unsigned month, unsigned mday);

/* Writes the day as "YYYY-MM-DD" plus a NUL into out (11 bytes). day must be
 * within DATE_DAY_MIN..DATE_DAY_MAX. */
void date_format(int32_t day, char out[11]);

/* 1 for a Gregorian leap year. */
int date_is_leap(int year);

#endif
