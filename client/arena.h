/*
 * A bump arena: many small allocations freed at once. Each call gets one
 * (its request, its unpacked protobuf messages, its reply), so nothing a
 * handler allocates can leak past the call. arena_allocator() adapts it to
 * protobuf-c: messages unpacked with it are freed with the arena, never with
 * protobuf_c_message_free_unpacked. Not thread-safe: one arena, one thread.
 */
#ifndef RPCQ_ARENA_H
#define RPCQ_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include <rpcq/export.h>

typedef struct arena arena;

/* A new empty arena whose blocks are at least block_size bytes (0: 16 KiB).
 * Returns NULL when out of memory. */
arena *arena_create(size_t block_size);

/* Frees every allocation of the arena and the arena. NULL is a no-op. */
void arena_destroy(arena *a);

/* Frees every allocation but keeps the first block for reuse. */
void arena_reset(arena *a);

/* size bytes aligned for any type, or NULL when out of memory. Freed with the arena. */
void *arena_alloc(arena *a, size_t size);
void *arena_calloc(arena *a, size_t n, size_t size);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_strdup(arena *a, const char *s);
char *arena_printf(arena *a, const char *fmt, ...) RPCQ_PRINTF(2, 3);
char *arena_vprintf(arena *a, const char *fmt, va_list ap) RPCQ_PRINTF(2, 0);

/* Bytes handed out so far (for limits and tests). */
size_t arena_used(const arena *a);

/* A protobuf-c allocator backed by the arena; its free is a no-op. */
ProtobufCAllocator *arena_allocator(arena *a);

#endif
