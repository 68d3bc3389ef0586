/* Random bytes from the kernel, for what must not repeat across processes
 * or machines: access keys (auth.c), the tag in a bill's Message-ID
 * (billing). */
#ifndef RPCQ_ENTROPY_H
#define RPCQ_ENTROPY_H

#include <stddef.h>

/* Fills buf with n random bytes (getrandom(2), waiting for the pool at
 * boot); 0, or -1 when the system has none to give. Thread-safe. */
int entropy_bytes(void *buf, size_t n);

/* 2n lowercase hex digits of n random bytes and a NUL into out (2n + 1
 * bytes, n at most 32); 0, or -1 as entropy_bytes. */
int entropy_hex(char *out, size_t n);

#endif
