/*
 * The stream publisher of one rpcqd process: binds the PUB sockets of
 * cfg->publish and publishes every message committed to the stream log, once,
 * in seq order per topic, whichever process made the change. Woken by
 * LISTEN/NOTIFY, with a periodic poll as a safety net. Runs on its own thread
 * with its own database connection (not from the pool).
 */
#ifndef RPCQ_PUBLISHER_H
#define RPCQ_PUBLISHER_H

#include <rpcq/error.h>

#include "config.h"
#include "rpcq/stream.pb-c.h"

typedef struct publisher publisher;

/* An in-process follower of the log (the gateway's Server-Sent Events, a
 * service's in-memory index): called on the publisher thread with every
 * message this process publishes, in seq order per topic, once. A listener
 * added late starts late, so a listener that sees a seq jump (or needs the
 * past) reads the gap with Streams/Replay. m and everything in it are valid
 * only during the call. Must not block: every subscriber waits on it. */
typedef void (*publisher_listener_fn)(void *arg, const Rpcq__StreamMessage *m);

#define PUBLISHER_MAX_LISTENERS 8

/* Adds a listener; -1 when PUBLISHER_MAX_LISTENERS are there already. Any thread. */
int publisher_add_listener(publisher *p, publisher_listener_fn fn, void *arg);

/* Removes it; once this returns, fn is not running and will not be called
 * again. Any thread but the publisher's own (from inside fn it deadlocks). */
void publisher_remove_listener(publisher *p, publisher_listener_fn fn, void *arg);

/* Asks for a cycle soon, for an append this process committed without a
 * NOTIFY (the migrations' stream_append(..., false), as IssueVouchers does:
 * a NOTIFY in the committing transaction is made under the topic's row lock,
 * which every append to the topic waits for). The cycle publishes it here
 * and then NOTIFYs rpcq_stream once, for every kick since the cycle before,
 * so the other processes' publishers publish it too. A process that dies
 * between its commit and the kick leaves the others to find the message at
 * their next poll (PUBLISHER_POLL_MS). Never blocks; any thread; NULL is a
 * no-op. */
void publisher_kick(publisher *p);

/* Messages published since start, and SUB connections now. Any thread. */
void publisher_get_stats(publisher *p, uint64_t *published, unsigned *subscribers);

/* Binds the PUB listeners of cfg->publish and starts the thread, which
 * connects to cfg->database by itself (a database that is down is retried in
 * the background, not an error here). Copies what it needs from cfg.
 * INVALID_ARGUMENT for a bad URL or TLS files, UNAVAILABLE when a URL cannot
 * be bound ("Address in use"). Sets *out only on success. Does not block on
 * the database. */
rpcq_status publisher_create(publisher **out, const rpcq_config *cfg, rpcq_error *err) RPCQ_NODISCARD;

/* Stops the thread (interrupting any statement it waits for), closes the
 * sockets, frees. NULL is a no-op. Blocks until the thread has ended. */
void publisher_destroy(publisher *p);

/* The publish URLs as subscribers should dial them (bound ports resolved;
 * wildcard hosts are left for the client to replace). Owned by the
 * publisher, never changed after create: any thread may read them until
 * publisher_destroy. */
const char *const *publisher_urls(publisher *p, int *n);

#endif
