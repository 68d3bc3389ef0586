/*
 * FNV-1a (64-bit) for the digests by which fuzz targets compare two
 * readings of one input (whole and in chunks, say): equal readings give
 * equal digests. Header-only: each target is one translation unit.
 */
#ifndef RPCQ_FUZZ_HASH_H
#define RPCQ_FUZZ_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_HASH_INIT 14695981039346656037ull

/* h with p[0..n) mixed in. */
static inline uint64_t fuzz_hash(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h;
}

/* The same, then a separator byte, so that fields "ab","c" and "a","bc"
 * differ. */
static inline uint64_t fuzz_hash_field(uint64_t h, const void *p, size_t n)
{
	return fuzz_hash(fuzz_hash(h, p, n), "\xff", 1);
}

#endif
