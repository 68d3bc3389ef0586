/*
 * Bump arena: a list of blocks; a request larger than a quarter block gets a
 * block of its own so big payloads do not waste the tail of a shared block.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "arena.h"

#define ARENA_ALIGN 16

struct block {
	struct block *next;
	size_t size;
	size_t used;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena {
	struct block *head;
	size_t block_size;
	size_t total;
	ProtobufCAllocator pb;
};

static void *pb_alloc(void *data, size_t size)
{
	return arena_alloc(data, size);
}

static void pb_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr;
}

arena *arena_create(size_t block_size)
{
	arena *a = rpcq_calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->block_size = block_size ? block_size : 16 * 1024;
	a->pb.alloc = pb_alloc;
	a->pb.free = pb_free;
	a->pb.allocator_data = a;
	return a;
}

void arena_destroy(arena *a)
{
	if (a == NULL)
		return;
	arena_reset(a);
	rpcq_free(a->head);
	rpcq_free(a);
}

void arena_reset(arena *a)
{
	struct block *b = a->head;
	struct block *keep = NULL;
	while (b) {
		struct block *next = b->next;
		if (next == NULL && b->size == a->block_size) {
			keep = b;
		} else {
			rpcq_free(b);
		}
		b = next;
	}
	if (keep)
		keep->used = 0;
	a->head = keep;
	a->total = 0;
}

static struct block *block_new(size_t size)
{
	struct block *b = rpcq_alloc(sizeof(*b) + size);
	if (b == NULL)
		return NULL;
	b->size = size;
	b->used = 0;
	b->next = NULL;
	return b;
}

void *arena_alloc(arena *a, size_t size)
{
	if (size > SIZE_MAX / 2)
		return NULL;
	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (size == 0)
		size = ARENA_ALIGN;
	struct block *b = a->head;
	if (b == NULL || b->size - b->used < size) {
		if (size > a->block_size / 4) {
			/* A dedicated block, linked behind the current one so the
			 * current block's free tail stays usable. */
			struct block *big = block_new(size);
			if (big == NULL)
				return NULL;
			big->used = size;
			if (b) {
				big->next = b->next;
				b->next = big;
			} else {
				a->head = big;
			}
			a->total += size;
			return big->data;
		}
		b = block_new(a->block_size);
		if (b == NULL)
			return NULL;
		b->next = a->head;
		a->head = b;
	}
	void *p = b->data + b->used;
	b->used += size;
	a->total += size;
	return p;
}

void *arena_calloc(arena *a, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = arena_alloc(a, n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arena_strdup(arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *arena_vprintf(arena *a, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	int n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0)
		return NULL;
	char *p = arena_alloc(a, (size_t)n + 1);
	if (p)
		vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *arena_printf(arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

size_t arena_used(const arena *a)
{
	return a->total;
}

ProtobufCAllocator *arena_allocator(arena *a)
{
	return &a->pb;
}
