/*
 * Access control: who may call what, and how often.
 *
 * Every call that reaches a handler passes auth_check first, in call_run,
 * whatever its transport (nng, the gateway's Connect calls, its own routes).
 * The key comes as "authorization: Bearer rpcq_<prefix>_<secret>"
 * (auth_token.h); the server keeps SHA-256 hashes only, in api_keys
 * (db/migrations/0006_auth.sql).
 *
 * The keys live in memory, in an immutable snapshot that a refresh thread
 * replaces whenever the table changes (LISTEN rpcq_api_keys, notified by a
 * trigger): a check costs a hash and a table lookup, no database round trip
 * and no lock. Readers announce the snapshot they use in a hazard pointer of
 * their thread, so the thread frees a replaced snapshot only once no reader
 * holds it.
 *
 * Outcomes: no key, a malformed one, an unknown, revoked or expired one, or
 * a wrong secret: UNAUTHENTICATED, with one message for the last four so
 * that nobody learns whether a key exists (and the same work for each: an
 * unknown prefix is hashed and compared against a dummy). A good key whose
 * scopes do not cover the method: PERMISSION_DENIED. Over its rate:
 * RESOURCE_EXHAUSTED with the time until its next token. /rpcq.Health/Check
 * (liveness, readiness) needs no key.
 */
#ifndef RPCQ_AUTH_H
#define RPCQ_AUTH_H

#include <stdint.h>

#include <rpcq/error.h>

#include "auth_token.h"
#include "config.h"
#include "dispatch.h"

typedef struct auth auth;

typedef enum auth_mode {
	AUTH_AUTO, /* enforced when api_keys has any row, revoked ones included */
	AUTH_ON,
	AUTH_OFF,
} auth_mode;

/* "auto", "on" or "off": 0 and *out, or -1. */
int auth_parse_mode(const char *s, auth_mode *out);

/* Loads the keys from cfg->database (once, before serving: a server must not
 * answer a single call with keys it has not read) and starts the refresh
 * thread. With --auth off nothing is loaded and *out is NULL, which
 * auth_check accepts. UNAVAILABLE when the keys cannot be read. Blocks. */
rpcq_status auth_create(auth **out, const rpcq_config *cfg, const dispatch *d, rpcq_error *err) RPCQ_NODISCARD;

/* Stops the thread and frees everything; no check may run any more. NULL is
 * a no-op. */
void auth_destroy(auth *a);

typedef struct auth_verdict {
	rpcq_status status;		  /* OK, UNAUTHENTICATED, PERMISSION_DENIED or RESOURCE_EXHAUSTED */
	char message[200];		  /* for the caller; never the key */
	const char *reason;		  /* for the audit line: "unknown key", "revoked", ... */
	char prefix[AUTH_PREFIX_LEN + 1]; /* of the key presented, "" without one */
	uint64_t retry_after_ms;	  /* RESOURCE_EXHAUSTED */
	int quiet;			  /* a refusal folded into a later audit line */
	uint64_t folded;		  /* rate-limit refusals of this key not logged since the last line */
} auth_verdict;

/* Checks a call of method ("/pkg.Service/Method"; e its dispatch entry, or
 * NULL when no such method is served: then only the key is checked) with the
 * caller's authorization value (NULL: none). charge: take a token of the
 * key's rate limit (0: a check on behalf of calls that will be charged
 * themselves, or of a stream already granted). Fills *v; OK when the call
 * may run. a NULL (auth off): always OK. Thread-safe; no lock, no I/O. */
void auth_check(auth *a, const char *method, const dispatch_entry *e, const char *authorization, int charge,
		auth_verdict *v);

/* A new key for `rpcqd keys create`: the text shown once to the operator
 * (AUTH_KEY_LEN characters and a NUL), its prefix and the SHA-256 to store.
 * 0, or -1 when the system has no randomness to give. */
int auth_key_generate(char key[AUTH_KEY_LEN + 1], char prefix[AUTH_PREFIX_LEN + 1], uint8_t hash[32]);

#endif
