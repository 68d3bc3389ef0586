/*
 * A growable byte buffer for building output (schedule CSV text, array
 * literals for SQL). Memory comes from rpcq_alloc; the owner frees it with
 * vesting_buf_fini. Not thread-safe: one buffer, one thread.
 */
#ifndef RPCQ_VESTING_BUF_H
#define RPCQ_VESTING_BUF_H

#include <stddef.h>

#include <rpcq/export.h>

typedef struct vesting_buf {
	char *data; /* not NUL-terminated unless the writer adds one */
	size_t len;
	size_t cap;
	int failed; /* an allocation failed; the contents are incomplete */
} vesting_buf;

#define VESTING_BUF_INIT      \
	{                     \
		NULL, 0, 0, 0 \
	}

/* Makes room for n more bytes; 0 on success, -1 (and failed set) when out of
 * memory. */
int vesting_buf_reserve(vesting_buf *b, size_t n) RPCQ_NODISCARD;

/* Appends bytes. On allocation failure nothing is appended and b->failed is
 * set, so a writer appends freely and checks b->failed once at the end. */
void vesting_buf_append(vesting_buf *b, const void *data, size_t n);
void vesting_buf_putc(vesting_buf *b, char ch);

/* Frees the memory and resets the buffer to empty. */
void vesting_buf_fini(vesting_buf *b);

#endif
