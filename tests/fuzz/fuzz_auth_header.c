/*
 * libFuzzer target for the Authorization value and scope patterns
 * (server/core/auth_token.h): whatever a caller sends as "authorization"
 * (nng metadata or an HTTP header), and whatever an operator types as a
 * scope. The input, up to its first NUL, is both. A parsed key must lie
 * inside the value, be exactly a key's length and shape, and give its
 * prefix back; a scope accepted as valid must match without reading past
 * its end, and one refused must say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	char prefix[AUTH_PREFIX_LEN + 1];
	const char *key = NULL;
	auth_parse r = auth_parse_bearer(s, prefix, &key);
	if (r == AUTH_PARSE_OK) {
		size_t len = strlen(s);
		if (key < s || key + AUTH_KEY_LEN > s + len || strncmp(key, "rpcq_", 5) != 0 ||
		    memcmp(key + 5, prefix, AUTH_PREFIX_LEN) != 0 || strlen(prefix) != AUTH_PREFIX_LEN)
			abort();
		(void)auth_prefix_value(prefix);
	} else if (r != AUTH_PARSE_MISSING && r != AUTH_PARSE_MALFORMED) {
		abort();
	}
	char why[256];
	why[0] = '\0';
	if (auth_scope_valid(s, why, sizeof(why)) == 0) {
		(void)auth_scope_matches(s, "/rpcq.vesting.VestingService/Compute", 1);
		(void)auth_scope_matches(s, "/x.Y/Z", 0);
	} else if (why[0] == '\0') {
		abort();
	}
	free(s);
	return 0;
}
