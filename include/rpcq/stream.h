/*
 * librpcq subscriptions to update streams.
 *
 * rpcqd publishes every change a service commits to a topic ("events.changed",
 * "billing.imports.42") on its PUB sockets, with a per-topic sequence number
 * that PostgreSQL hands out without gaps. nng PUB drops messages for a slow
 * subscriber, so a subscription repairs what the wire lost: it remembers the
 * last seq it delivered per topic, and when a frame arrives with a larger seq
 * than the next one, after a reconnect, or when a periodic check of the topics
 * shows messages it never saw, it fetches the missing ones with the unary
 * rpcq.Streams/Replay before delivering anything newer. The caller therefore
 * sees every message of a topic exactly once and in seq order. Different
 * topics are independent: their messages interleave in arrival order.
 *
 * A subscription needs only the server's RPC URL: it asks the server for its
 * publish URLs (rpcq.Streams/Endpoints). Several rpcqd processes sharing one
 * database each publish every message, so a subscription may dial more than
 * one of them; duplicates are dropped by seq.
 *
 * Threading: one subscription belongs to one thread at a time (it is not
 * locked); different subscriptions may run on different threads and share one
 * rpcq_client, which must outlive them.
 */
#ifndef RPCQ_STREAM_PUBLIC_H
#define RPCQ_STREAM_PUBLIC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include <rpcq/client.h>
#include <rpcq/error.h>
#include <rpcq/export.h>
#include <rpcq/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One delivered stream message. Allocated by librpcq as one block and
 * read-only for the caller, who frees it with rpcq_stream_message_free. */
typedef struct rpcq_stream_message {
	const char *topic;
	uint64_t seq;		/* per topic, from 1, without gaps */
	const char *type;	/* full message name of the payload, "rpcq.vesting.LedgerAppended" */
	const uint8_t *payload; /* the serialized message */
	size_t payload_len;
	int64_t published_at_ms; /* unix milliseconds when the change was written */
} rpcq_stream_message;

/* Frees a message. NULL is a no-op. */
RPCQ_API void rpcq_stream_message_free(rpcq_stream_message *m);

/* Unpacks the payload as its type, looked up in the registry of the messages
 * compiled into librpcq. On OK *out is allocated with alloc (NULL: default)
 * and freed with protobuf_c_message_free_unpacked(*out, alloc). NOT_FOUND for
 * a type librpcq does not know, INVALID_ARGUMENT for a payload that does not
 * decode. Thread-safe. */
RPCQ_API rpcq_status rpcq_stream_message_unpack(const rpcq_stream_message *m, ProtobufCAllocator *alloc,
						ProtobufCMessage **out, rpcq_error *err) RPCQ_NODISCARD;

typedef struct rpcq_subscription rpcq_subscription;

/* Where a topic starts: deliver its messages with seq > after_seq. */
typedef struct rpcq_topic_position {
	const char *topic;
	uint64_t after_seq;
} rpcq_topic_position;

typedef enum rpcq_subscribe_start {
	/* Only messages committed after the subscription was created. */
	RPCQ_SUBSCRIBE_FROM_NOW = 0,
	/* For every topic matching the prefixes when the subscription is
	 * created, every message with seq > after_seq (0: the whole retained
	 * history), replayed first. */
	RPCQ_SUBSCRIBE_AFTER_SEQ = 1,
} rpcq_subscribe_start;

typedef struct rpcq_subscribe_options {
	rpcq_subscribe_start start; /* default: RPCQ_SUBSCRIBE_FROM_NOW */
	uint64_t after_seq;	    /* with RPCQ_SUBSCRIBE_AFTER_SEQ */
	/* Per-topic starting points that override `start` (a subscriber that
	 * resumes several topics passes each one's last delivered seq). Each
	 * topic must match one of the prefixes. Copied by create. */
	const rpcq_topic_position *positions;
	size_t npositions;
	/* Publish URLs to dial, NULL-terminated; NULL: ask the server
	 * (rpcq.Streams/Endpoints). A wildcard host in a URL the server gives
	 * (0.0.0.0, ::, *) is replaced by the host of the client's first server. */
	const char *const *publish_urls;
	/* How often the topics' last seqs are checked for messages lost at the
	 * tail of a stream (no later frame reveals that gap); 0: 1000 ms. */
	int poll_interval_ms;
	long max_message_bytes;	 /* largest frame accepted; 0: RPCQ_DEFAULT_MAX_MESSAGE */
	const char *tls_ca_file; /* PEM CA for tls+tcp:// and wss:// (NULL: no verification) */
	/* PEM certificate and key shown to a publisher that asks for one
	 * (rpcqd --publish-client-ca); NULL: none. */
	const char *tls_cert_file;
	const char *tls_key_file;
	/* Metadata pairs sent with the subscription's calls (Endpoints, Topics,
	 * Replay), as rpcq_call_options.metadata: an "authorization" pair
	 * there is the key of those calls. NULL: none. Copied by create. */
	const char *const *metadata;
} rpcq_subscribe_options;

/* Subscribes to every topic starting with one of topic_prefixes ("" matches
 * every topic). Asks the server for its publish URLs and the topics' current
 * seqs (Streams/Endpoints and Streams/Topics through c), then dials and
 * subscribes; dialing goes on in the background if a publisher is not up yet.
 * opts may be NULL for all defaults. Sets *out only on success.
 * INVALID_ARGUMENT for a prefix or position that cannot name a topic; the
 * status of a failed call otherwise (UNAVAILABLE, DEADLINE_EXCEEDED).
 * Blocks for those calls. c must outlive the subscription. */
RPCQ_API rpcq_status rpcq_subscription_create(rpcq_subscription **out, rpcq_client *c,
					      const char *const *topic_prefixes, int nprefixes,
					      const rpcq_subscribe_options *opts, rpcq_error *err) RPCQ_NODISCARD;

/* The next message, in seq order per topic, each exactly once.
 * Returns OK with *out set (free it with rpcq_stream_message_free), or OK with
 * *out NULL when no message came within timeout_ms (<0: wait indefinitely).
 * timeout_ms bounds the wait for frames; catching up on a gap calls Replay,
 * each call bounded by the client's call timeout.
 * Failures leave the subscription usable; the next call retries:
 *   DATA_LOSS   retention trimmed messages this subscription had not seen
 *               (err names the topic and seqs); delivery continues after them
 *   UNAVAILABLE, DEADLINE_EXCEEDED   a Replay or Topics call failed
 * Blocks. */
RPCQ_API rpcq_status rpcq_subscription_next(rpcq_subscription *s, int timeout_ms, rpcq_stream_message **out,
					    rpcq_error *err) RPCQ_NODISCARD;

/* The last seq delivered (or skipped as lost) for topic; 0 if none yet.
 * What to pass as after_seq to resume after a restart. */
RPCQ_API uint64_t rpcq_subscription_position(const rpcq_subscription *s, const char *topic);

typedef struct rpcq_subscription_stats {
	uint64_t frames;     /* frames received from publishers */
	uint64_t duplicates; /* frames dropped as already delivered */
	uint64_t gaps;	     /* times a gap was found (frame, reconnect, or poll) */
	uint64_t replayed;   /* messages delivered from Replay */
	uint64_t lost;	     /* messages trimmed before they could be delivered */
	uint64_t bad_frames; /* frames that did not decode (dropped) */
} rpcq_subscription_stats;

RPCQ_API void rpcq_subscription_get_stats(const rpcq_subscription *s, rpcq_subscription_stats *out);

/* Closes the sockets and frees the subscription and the messages it has
 * not delivered. NULL is a no-op. */
RPCQ_API void rpcq_subscription_destroy(rpcq_subscription *s);

#ifdef __cplusplus
}
#endif
#endif
