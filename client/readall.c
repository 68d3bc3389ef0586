/* Reading a whole stream into memory (readall.h). */
#include <errno.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "readall.h"

char *readall_stream(FILE *f, size_t max, size_t *len)
{
	size_t cap = 16 * 1024, n = 0;
	char *buf = rpcq_alloc(cap);
	if (buf == NULL)
		return NULL;
	for (;;) {
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (n > max) {
			rpcq_free(buf);
			errno = EFBIG;
			return NULL;
		}
		if (got == 0)
			break;
		if (n + 1 == cap) {
			char *bigger = rpcq_realloc(buf, cap * 2);
			if (bigger == NULL) {
				rpcq_free(buf);
				return NULL;
			}
			buf = bigger;
			cap *= 2;
		}
	}
	if (ferror(f)) {
		rpcq_free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

char *readall_pem(const char *what, const char *path, rpcq_error *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "TLS %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	size_t len;
	char *pem = readall_stream(f, 1024 * 1024, &len);
	if (pem == NULL)
		rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "TLS %s %s: %s", what, path,
			       errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
	fclose(f);
	return pem;
}
