/*
 * Reading a whole stream into memory, for the few inputs that are small and
 * read at once: a request given to `rpcq call` (a file or stdin), the PEM
 * files of rpcqd's TLS listeners. Bulk inputs (vesting files) are read in
 * chunks instead.
 */
#ifndef RPCQ_READALL_H
#define RPCQ_READALL_H

#include <stddef.h>
#include <stdio.h>

/* Reads f to its end into a NUL-terminated buffer from rpcq_alloc (the
 * caller frees it with rpcq_free); *len gets the length without the NUL.
 * Returns NULL on a read error, when out of memory, or when the stream holds
 * more than max bytes (errno is then EFBIG). Blocks. */
char *readall_stream(FILE *f, size_t max, size_t *len);

#include <rpcq/error.h>

/* A whole PEM file of at most 1 MiB, NUL-terminated (freed with
 * rpcq_free), or NULL with err INVALID_ARGUMENT "TLS <what> <path>: why".
 * Blocks. */
char *readall_pem(const char *what, const char *path, rpcq_error *err);

#endif
