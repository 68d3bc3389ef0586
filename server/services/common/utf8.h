/*
 * Text checks for what services store as PostgreSQL text (a server encoding
 * of UTF-8 refuses anything else, and would fail a whole COPY for one bad
 * byte), and quoting text for messages. Pure functions.
 */
#ifndef RPCQ_UTF8_H
#define RPCQ_UTF8_H

#include <stddef.h>

/* 1 if text[0..n) is valid UTF-8 (no overlongs, no surrogates, at most
 * U+10FFFF), else 0. NUL bytes are valid UTF-8; callers that store text
 * refuse them themselves. */
int utf8_valid(const void *text, size_t n);

/* Renders s[0..n) for a message: quoted, quotes and backslashes escaped,
 * control characters and (in text that is not UTF-8) bytes over 0x7f
 * written \xNN, cut at about 40 bytes but never inside a UTF-8 sequence.
 * out holds out_len bytes, at least 64 (else nothing is written). */
void utf8_quote(const char *s, size_t n, char *out, size_t out_len);

/* The no-break spaces that count as whitespace around a field: U+00A0
 * NO-BREAK SPACE, U+2007 FIGURE SPACE and U+202F NARROW NO-BREAK SPACE
 * (what spreadsheets and locales put around and inside numbers). The byte
 * length of one starting at p (before end), or ending just before e (after
 * start); 0 when there is none. */
size_t utf8_nbsp_at(const char *p, const char *end);
size_t utf8_nbsp_before(const char *start, const char *e);

#endif
