/*
 * libFuzzer target for query strings and percent-encoding
 * (server/gateway/query.h): any query a client may put in a GET call's URL.
 * The input, up to its first NUL, is the query: a few names are looked up,
 * with buffers of several sizes that must agree, and the names are checked
 * against a list. All the input's bytes are decoded in both modes, which
 * must agree on what is malformed. Encoding is checked as the inverse of
 * decoding: decode(encode(x)) == x, or the target aborts. The input is
 * also read as a number (query_uint), which must agree with strtoull on
 * what it takes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"message", "encoding", "base64", "compression", "connect", "a", NULL};

static void check_get(const char *query, const char *key)
{
	char big[8192], small[4];
	int rc = query_get(query, key, big, sizeof big);
	if (rc < -1 || rc > 1)
		abort();
	int rc_small = query_get(query, key, small, sizeof small);
	if (rc == 1) {
		size_t n = strlen(big);
		if (n < sizeof small ? (rc_small != 1 || strcmp(small, big) != 0) : rc_small != -1)
			abort();
	} else if (rc_small != rc || small[0] != '\0' || big[0] != '\0') {
		abort();
	}
}

/* query_uint takes 1-19 digits up to INT64_MAX, the value strtoull reads. */
static void check_uint(const char *s)
{
	uint64_t v = 0;
	int rc = query_uint(s, &v);
	size_t n = strlen(s), digits = strspn(s, "0123456789");
	int want = n >= 1 && n <= 19 && digits == n && strtoull(s, NULL, 10) <= (unsigned long long)INT64_MAX;
	if (rc != (want ? 0 : -1) || (want && v != strtoull(s, NULL, 10)))
		abort();
}

/* decode(encode(s)) must give s back, whichever mode decodes. */
static void check_round_trip(const char *s)
{
	size_t n = query_encode(s, NULL, 0);
	char *enc = malloc(n + 1), *dec = malloc(strlen(s) + 1);
	if (enc == NULL || dec == NULL)
		abort();
	if (query_encode(s, enc, n + 1) != n || strlen(enc) != n)
		abort();
	for (int plus = 0; plus <= 1; plus++)
		if (query_decode(enc, n, dec, strlen(s) + 1, plus) != (long)strlen(s) || strcmp(dec, s) != 0)
			abort();
	/* A cut encoding is a prefix that still decodes. */
	char cut[8];
	size_t m = query_encode(s, cut, sizeof cut);
	if (m != n || strncmp(cut, enc, strlen(cut)) != 0 || query_decode(cut, strlen(cut), dec, strlen(s) + 1, 0) < 0)
		abort();
	free(enc);
	free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *query = malloc(size + 1);
	char *out = malloc(size + 1), *out_plus = malloc(size + 1);
	if (query == NULL || out == NULL || out_plus == NULL)
		abort();
	memcpy(query, data, size);
	query[size] = '\0';

	check_get(query, "message");
	check_get(query, "a");
	check_get(query, "a b");
	check_get(query, "");

	char bad[16];
	if (query_check_names(query, names, bad, sizeof bad) != 0 && strlen(bad) >= sizeof bad)
		abort();

	long n = query_decode((const char *)data, size, out, size + 1, 0);
	long n_plus = query_decode((const char *)data, size, out_plus, size + 1, 1);
	if (n != n_plus || n > (long)size)
		abort();
	if (n >= 0) {
		if ((long)strlen(out) != n)
			abort();
		check_round_trip(out);
	}
	check_round_trip(query);
	check_uint(query);

	free(query);
	free(out);
	free(out_plus);
	return 0;
}
