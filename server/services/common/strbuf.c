/*
 * Growable byte buffer: doubling capacity, sticky failure flag.
 */
#include <stdint.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "strbuf.h"

int strbuf_reserve(strbuf *b, size_t n)
{
	if (b->failed)
		return -1;
	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX / 2 - b->len) {
		b->failed = 1;
		return -1;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n)
		cap *= 2;
	char *p = rpcq_realloc(b->data, cap);
	if (p == NULL) {
		b->failed = 1;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

void strbuf_append(strbuf *b, const void *data, size_t n)
{
	if (n == 0 || strbuf_reserve(b, n) != 0)
		return;
	memcpy(b->data + b->len, data, n);
	b->len += n;
}

void strbuf_putc(strbuf *b, char ch)
{
	if (b->len < b->cap && !b->failed) {
		b->data[b->len++] = ch;
		return;
	}
	strbuf_append(b, &ch, 1);
}

void strbuf_fini(strbuf *b)
{
	rpcq_free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
}
