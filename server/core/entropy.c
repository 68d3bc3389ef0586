/* Random bytes from the kernel (entropy.h). */
#include "entropy.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

int entropy_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

int entropy_hex(char *out, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t raw[32];
	if (n > sizeof(raw) || entropy_bytes(raw, n) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[raw[i] >> 4];
		out[2 * i + 1] = digits[raw[i] & 15];
	}
	out[2 * n] = '\0';
	return 0;
}
