/*
 * The pure parts of access control (auth.h): the API key format and the
 * Authorization header that carries it, scope patterns, and the per-key
 * rate limiter. No I/O, no allocation: unit tested and fuzzed.
 *
 * A key is "rpcq_<prefix>_<secret>": an 8-hex-digit public prefix that finds
 * the key and names it in logs, and 43 base64url characters of secret (256
 * random bits). Callers send "authorization: Bearer <key>".
 */
#ifndef RPCQ_AUTH_TOKEN_H
#define RPCQ_AUTH_TOKEN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_PREFIX_LEN 8
#define AUTH_SECRET_LEN 43
#define AUTH_KEY_LEN (5 + AUTH_PREFIX_LEN + 1 + AUTH_SECRET_LEN)

typedef enum auth_parse {
	AUTH_PARSE_OK,
	AUTH_PARSE_MISSING,   /* no header, or an empty one */
	AUTH_PARSE_MALFORMED, /* not "Bearer rpcq_<8 hex>_<43 base64url>" */
} auth_parse;

/* Reads an authorization value (NULL: none). On OK, *key points at the key
 * inside value (AUTH_KEY_LEN bytes) and prefix holds its prefix. The scheme
 * is case-insensitive (RFC 9110 11.1); spaces around the key are allowed. */
auth_parse auth_parse_bearer(const char *value, char prefix[AUTH_PREFIX_LEN + 1], const char **key);

/* The prefix as a number, for hashing: 8 hex digits (checked by the parse). */
uint32_t auth_prefix_value(const char *prefix);

/* A scope pattern is one of
 *   *                    every method
 *   read                 every method that changes nothing stored
 *   pkg.Service/Method   one method ("rpcq.vouchers.VoucherService/IssueVouchers")
 *   <name>*              every method whose "pkg.Service/Method" starts with
 *                        <name> ("rpcq.vesting.*", "rpcq.billing.BillingService/Get*")
 * Returns 0, or -1 with why (n bytes) saying what is wrong with it. */
int auth_scope_valid(const char *scope, char *why, size_t n);

/* 1 when scope (valid) covers method ("/pkg.Service/Method"); read says
 * whether the method is a read. */
int auth_scope_matches(const char *scope, const char *method, int read);

/* A token bucket as GCRA (the generic cell rate algorithm): one atomic
 * word per key, the time the bucket is next full, updated with a CAS, so
 * worker threads share a key's budget without a lock. rate calls per
 * second, bursts of up to burst calls. */
typedef struct auth_limiter {
	_Atomic uint64_t tat_ns;       /* theoretical arrival time */
	_Atomic uint64_t interval_ns;  /* 1/rate; 0: no limit */
	_Atomic uint64_t tolerance_ns; /* (burst - 1) * interval */
} auth_limiter;

/* Sets (or changes) the limits; rate <= 0 removes the limit. burst < 1 is
 * taken as the rate rounded up (at least 1). Safe while others take. */
void auth_limiter_set(auth_limiter *l, double rate, long burst);

/* Takes one call's token at now_ns (a monotonic clock). 1: allowed;
 * 0: refused, *retry_ns says when the next token is there. */
int auth_limiter_take(auth_limiter *l, uint64_t now_ns, uint64_t *retry_ns);

#endif
