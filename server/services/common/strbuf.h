/*
 * A growable byte buffer for building output (CSV text, COPY data). Memory comes from rpcq_alloc; the owner frees it with
 * strbuf_fini. Not thread-safe: one buffer, one thread.
 */
#ifndef RPCQ_STRBUF_H
#define RPCQ_STRBUF_H

#include <stddef.h>

#include <rpcq/export.h>

typedef struct strbuf {
	char *data; /* not NUL-terminated unless the writer adds one */
	size_t len;
	size_t cap;
	int failed; /* an allocation failed; the contents are incomplete */
} strbuf;

#define STRBUF_INIT           \
	{                     \
		NULL, 0, 0, 0 \
	}

/* Makes room for n more bytes; 0 on success, -1 (and failed set) when out of
 * memory. */
int strbuf_reserve(strbuf *b, size_t n) RPCQ_NODISCARD;

/* Appends bytes. On allocation failure nothing is appended and b->failed is
 * set, so a writer appends freely and checks b->failed once at the end. */
void strbuf_append(strbuf *b, const void *data, size_t n);
void strbuf_putc(strbuf *b, char ch);

/* Frees the memory and resets the buffer to empty. */
void strbuf_fini(strbuf *b);

#endif
