/*
 * API key format, scope patterns and the rate limiter (auth_token.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth_token.h"

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

auth_parse auth_parse_bearer(const char *value, char prefix[AUTH_PREFIX_LEN + 1], const char **key)
{
	if (value == NULL)
		return AUTH_PARSE_MISSING;
	const char *p = value;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return AUTH_PARSE_MISSING;
	if (strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return AUTH_PARSE_MALFORMED;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	const char *k = p;
	if (strncmp(k, "rpcq_", 5) != 0)
		return AUTH_PARSE_MALFORMED;
	for (int i = 0; i < AUTH_PREFIX_LEN; i++)
		if (!is_hex(k[5 + i]))
			return AUTH_PARSE_MALFORMED;
	if (k[5 + AUTH_PREFIX_LEN] != '_')
		return AUTH_PARSE_MALFORMED;
	for (int i = 0; i < AUTH_SECRET_LEN; i++)
		if (!is_b64url(k[5 + AUTH_PREFIX_LEN + 1 + i]))
			return AUTH_PARSE_MALFORMED;
	for (p = k + AUTH_KEY_LEN; *p == ' ' || *p == '\t'; p++)
		;
	if (*p != '\0')
		return AUTH_PARSE_MALFORMED;
	memcpy(prefix, k + 5, AUTH_PREFIX_LEN);
	prefix[AUTH_PREFIX_LEN] = '\0';
	*key = k;
	return AUTH_PARSE_OK;
}

uint32_t auth_prefix_value(const char *prefix)
{
	uint32_t v = 0;
	for (int i = 0; i < AUTH_PREFIX_LEN; i++) {
		char c = prefix[i];
		v = v << 4 | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return v;
}

static int name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

int auth_scope_valid(const char *scope, char *why, size_t n)
{
	size_t len = strlen(scope);
	if (strcmp(scope, "*") == 0 || strcmp(scope, "read") == 0)
		return 0;
	if (len == 0 || len > 200) {
		snprintf(why, n, "a scope is 1 to 200 characters");
		return -1;
	}
	const char *s = scope[0] == '/' ? scope + 1 : scope;
	int slashes = 0;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '*' && s[i + 1] == '\0')
			break;
		if (s[i] == '/') {
			if (++slashes > 1 || i == 0 || s[i + 1] == '\0') {
				snprintf(why, n, "scope \"%s\": a method is package.Service/Method", scope);
				return -1;
			}
			continue;
		}
		if (!name_char(s[i])) {
			snprintf(why, n,
				 "scope \"%s\": '%c' is not allowed (scopes are *, read, package.Service/Method, or a "
				 "prefix of one ending in *)",
				 scope, s[i]);
			return -1;
		}
	}
	if (s[0] == '*' || s[0] == '\0') {
		snprintf(why, n, "scope \"%s\": a prefix scope names at least a package", scope);
		return -1;
	}
	if (s[strlen(s) - 1] != '*' && slashes == 0) {
		snprintf(why, n, "scope \"%s\" names no method: write %s/Method, or %s* for all of it", scope, s, s);
		return -1;
	}
	return 0;
}

int auth_scope_matches(const char *scope, const char *method, int read)
{
	if (scope[0] == '*' && scope[1] == '\0')
		return 1;
	if (strcmp(scope, "read") == 0)
		return read;
	const char *s = scope[0] == '/' ? scope + 1 : scope;
	const char *m = method[0] == '/' ? method + 1 : method;
	size_t n = strlen(s);
	if (n > 0 && s[n - 1] == '*')
		return strncmp(s, m, n - 1) == 0;
	return strcmp(s, m) == 0;
}

/* The longest interval or tolerance the limiter keeps: about 31 years. */
#define LIMITER_MAX_NS 1e18

void auth_limiter_set(auth_limiter *l, double rate, long burst)
{
	if (!(rate > 0) || !isfinite(rate)) {
		atomic_store(&l->interval_ns, 0);
		return;
	}
	/* A rate so small that its interval would not fit 64 bits (keys made
	 * before rpcqd keys refused them) is one call a LIMITER_MAX_NS: a
	 * limit still, never the 0 that means none. */
	double interval = 1e9 / rate;
	if (interval < 1)
		interval = 1;
	if (interval > LIMITER_MAX_NS)
		interval = LIMITER_MAX_NS;
	if (burst < 1)
		burst = rate < 1 ? 1 : (long)ceil(rate);
	double tolerance = (double)(burst - 1) * interval;
	if (tolerance > LIMITER_MAX_NS)
		tolerance = LIMITER_MAX_NS;
	atomic_store(&l->tolerance_ns, (uint64_t)tolerance);
	atomic_store(&l->interval_ns, (uint64_t)interval);
}

int auth_limiter_take(auth_limiter *l, uint64_t now_ns, uint64_t *retry_ns)
{
	uint64_t interval = atomic_load_explicit(&l->interval_ns, memory_order_relaxed);
	if (interval == 0)
		return 1;
	uint64_t tolerance = atomic_load_explicit(&l->tolerance_ns, memory_order_relaxed);
	uint64_t tat = atomic_load_explicit(&l->tat_ns, memory_order_relaxed);
	for (;;) {
		uint64_t base = tat > now_ns ? tat : now_ns;
		if (base - now_ns > tolerance) {
			*retry_ns = base - now_ns - tolerance;
			return 0;
		}
		if (atomic_compare_exchange_weak_explicit(&l->tat_ns, &tat, base + interval, memory_order_relaxed,
							  memory_order_relaxed))
			return 1;
	}
}
