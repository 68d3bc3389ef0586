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

typedef struct publisher publisher;

/* Binds the PUB listeners and starts the thread. Sets *out on success. */
rpcq_status publisher_create(publisher **out, const rpcq_config *cfg, rpcq_error *err) RPCQ_NODISCARD;

/* Stops the thread, closes the sockets, frees. NULL is a no-op. */
void publisher_destroy(publisher *p);

/* The publish URLs as subscribers should dial them (bound ports resolved).
 * Owned by the publisher; valid until publisher_destroy. */
const char *const *publisher_urls(publisher *p, int *n);

#endif
