/*
 * The one allocation seam of librpcq and rpcqd. Every allocation of the
 * project goes through rpcq_alloc/rpcq_free, so tests can count allocations
 * and make the Nth one fail (rpcq_alloc_fail_after).
 */
#ifndef RPCQ_ALLOC_H
#define RPCQ_ALLOC_H

#include <stddef.h>

#include <rpcq/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* malloc/calloc/realloc/free with the test hooks below. rpcq_alloc(0) returns
 * a unique pointer; rpcq_free(NULL) is a no-op. Thread-safe. */
RPCQ_API void *rpcq_alloc(size_t size);
RPCQ_API void *rpcq_calloc(size_t n, size_t size);
RPCQ_API void *rpcq_realloc(void *ptr, size_t size);
RPCQ_API void rpcq_free(void *ptr);
/* A copy of s (or of its first n bytes, NUL-terminated), or NULL when out of memory. */
RPCQ_API char *rpcq_strdup(const char *s);
RPCQ_API char *rpcq_strndup(const char *s, size_t n);

/* Testing: after n more successful allocations, every allocation fails until
 * reset with n < 0. Counts successful allocations since process start. */
RPCQ_API void rpcq_alloc_fail_after(long n);
RPCQ_API unsigned long rpcq_alloc_count(void);

#ifdef __cplusplus
}
#endif
#endif
