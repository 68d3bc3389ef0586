/* Reading a whole stream into memory (readall.h). */
#include <errno.h>

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
