/*
 * The rpcq/1 envelope codec: rpcq.Request and rpcq.Response to and from nng
 * messages. Used by the client (pack request, parse response) and by rpcqd
 * (parse request, pack response). Parsed envelopes live in the caller's arena;
 * their payload points into the arena copy, never into the nng message.
 */
#ifndef RPCQ_ENVELOPE_H
#define RPCQ_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include <rpcq/error.h>

#include "arena.h"
#include "rpcq/rpc.pb-c.h"

/* Most metadata pairs in a request, and trailers in a reply. */
#define ENVELOPE_MAX_PAIRS 64

/* Normalizes a method name to its full form "/pkg.Service/Method" in buf.
 * Returns 0, or -1 if the name is not of the form [/]pkg.Service/Method. */
int envelope_method_name(const char *name, char *buf, size_t len);

/* A new nng message holding the packed Request. metadata: NULL-terminated
 * key/value pairs (may be NULL), at most ENVELOPE_MAX_PAIRS (else
 * INVALID_ARGUMENT). RESOURCE_EXHAUSTED when the packed size exceeds max_bytes. On OK the caller owns *out. */
rpcq_status envelope_pack_request(nng_msg **out, const char *method, const void *payload, size_t len,
				  uint32_t deadline_ms, const char *const *metadata, long max_bytes,
				  rpcq_error *err) RPCQ_NODISCARD;

/* Parses a Request into the arena. INVALID_ARGUMENT when it does not decode
 * or names no method. */
rpcq_status envelope_parse_request(arena *a, const void *data, size_t len, Rpcq__Request **out,
				   rpcq_error *err) RPCQ_NODISCARD;

/* A new nng message holding the packed Response. trailers: NULL-terminated
 * key/value pairs (may be NULL). */
rpcq_status envelope_pack_response(nng_msg **out, rpcq_status code, const char *message, const void *payload,
				   size_t len, const char *const *trailers, rpcq_error *err) RPCQ_NODISCARD;

/* Parses a Response into the arena (NULL arena: default allocator; free with
 * rpcq__response__free_unpacked(*out, NULL)). INTERNAL when it does not decode.
 * A code outside the status table reads as RPCQ_UNKNOWN. */
rpcq_status envelope_parse_response(arena *a, const void *data, size_t len, Rpcq__Response **out,
				    rpcq_error *err) RPCQ_NODISCARD;

#endif
