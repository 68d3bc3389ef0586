/*
 * Text checks for what services store as PostgreSQL text (a server encoding
 * of UTF-8 refuses anything else, and would fail a whole COPY for one bad
 * byte). Pure function.
 */
#ifndef RPCQ_UTF8_H
#define RPCQ_UTF8_H

#include <stddef.h>

/* 1 if text[0..n) is valid UTF-8 (no overlongs, no surrogates, at most
 * U+10FFFF), else 0. NUL bytes are valid UTF-8; callers that store text
 * refuse them themselves. */
int utf8_valid(const void *text, size_t n);

#endif
