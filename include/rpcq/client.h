/*
 * librpcq client: unary calls to rpcqd over nng req/rep.
 *
 * One rpcq_client may be shared by any number of threads; every call opens
 * its own nng context, so calls from different threads run concurrently over
 * the same connections. A client connects to one or more server URLs
 * (requests are spread over them) and reconnects by itself.
 */
#ifndef RPCQ_CLIENT_H
#define RPCQ_CLIENT_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include <rpcq/error.h>
#include <rpcq/export.h>
#include <rpcq/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RPCQ_DEFAULT_SERVER "tcp://127.0.0.1:7400"
#define RPCQ_DEFAULT_MAX_MESSAGE (4L * 1024 * 1024)

typedef struct rpcq_client rpcq_client;

typedef struct rpcq_client_options {
	/* Server URLs separated by commas or spaces; NULL or "": $RPCQ_SERVER,
	 * else RPCQ_DEFAULT_SERVER. */
	const char *servers;
	int timeout_ms;		 /* default deadline per call; 0: 10000 */
	int max_retries;	 /* UNAVAILABLE retries of idempotent methods; 0: 3, <0: none */
	long max_message_bytes;	 /* 0: RPCQ_DEFAULT_MAX_MESSAGE */
	const char *tls_ca_file; /* PEM CA for tls+tcp:// and wss:// (NULL: no verification) */
	/* API key sent with every call as the metadata pair "authorization" =
	 * "Bearer <key>" (a call's own "authorization" pair wins). NULL:
	 * $RPCQ_API_KEY if set and non-empty; "": no key. Visible ASCII only.
	 * Copied by create; no message of librpcq ever contains it. */
	const char *api_key;
	/* Nonzero: send the key over plain text (tcp://, tcp4://, tcp6://,
	 * ws://) to hosts other than loopback too. 0 (default): create refuses
	 * such a server URL with INVALID_ARGUMENT, before dialing anything. */
	int allow_plaintext_key;
	/* Until the client's first connection, a call waits at most this long
	 * (from create) for one, then fails UNAVAILABLE without retrying: for
	 * a caller that would rather hear at once that nothing listens there
	 * (a wrong URL, a server not started). 0 (default): a call waits for a
	 * connection until its deadline. Once connected, a call made while the
	 * servers are away waits until its deadline either way. */
	int connect_timeout_ms;
} rpcq_client_options;

/* Creates a client (opts may be NULL for all defaults). Does not wait for the
 * servers: connecting happens in the background, and a call made while no
 * server is reachable waits for one until its deadline (then UNAVAILABLE).
 * INVALID_ARGUMENT for a bad server URL, and, when there is an API key, for a
 * server URL that is plain text to a host other than loopback (127.0.0.0/8,
 * ::1, localhost) or whose host cannot be read, unless allow_plaintext_key;
 * ipc://, inproc://, tls+tcp:// and wss:// are always fine. Sets *out only
 * on success. Thread-safe; does not block. */
RPCQ_API rpcq_status rpcq_client_create(rpcq_client **out, const rpcq_client_options *opts,
					rpcq_error *err) RPCQ_NODISCARD;

/* Closes the connections and frees the client. Calls still running in other
 * threads fail with CANCELLED (without retrying), and destroy returns once
 * they have returned; the caller must not start calls on it from another
 * thread once destroy has begun. NULL is a no-op. */
RPCQ_API void rpcq_client_destroy(rpcq_client *c);

/* The comma-separated server URLs the client uses. Owned by the client. */
RPCQ_API const char *rpcq_client_servers(const rpcq_client *c);

/* The largest reply the client takes (its max_message_bytes). */
RPCQ_API long rpcq_client_max_message_bytes(const rpcq_client *c);

typedef struct rpcq_call_options {
	int timeout_ms; /* 0: the client's default */
	/* Metadata pairs: {"x-request-id", "abc", "authorization", "...", NULL}.
	 * An "authorization" pair here replaces the client's API key for this
	 * call. At most 64 pairs, 63 when the client adds its key. */
	const char *const *metadata;
	/* Retry UNAVAILABLE? -1/0 (default): as the method's idempotency option
	 * in its .proto says; 1: always; 2: never. */
	int retry;
} rpcq_call_options;

/* A unary call with serialized input; on OK, *out (malloc'd, free with
 * rpcq_free) holds the serialized output and *out_len its length. On failure
 * err says why (the server's status and message, or the transport's:
 * DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED for an oversized
 * request). method: "/pkg.Service/Method" or "pkg.Service/Method".
 * Blocks until the reply or the deadline. Thread-safe. */
RPCQ_API rpcq_status rpcq_call_raw(rpcq_client *c, const char *method, const void *in, size_t in_len, void **out,
				   size_t *out_len, const rpcq_call_options *opts, rpcq_error *err) RPCQ_NODISCARD;

/* A unary call with messages. On OK, *out is the reply unpacked with the
 * default allocator: free it with protobuf_c_message_free_unpacked(*out, NULL).
 * out_desc must be the method's output type. Otherwise as rpcq_call_raw. */
RPCQ_API rpcq_status rpcq_call(rpcq_client *c, const char *method, const ProtobufCMessage *in,
			       const ProtobufCMessageDescriptor *out_desc, ProtobufCMessage **out,
			       const rpcq_call_options *opts, rpcq_error *err) RPCQ_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
