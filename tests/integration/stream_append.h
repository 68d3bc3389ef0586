/*
 * Appending stream messages the way services do (stream_append in their
 * transaction), for the integration tests of streams and of the gateway's
 * Server-Sent Events.
 */
#ifndef RPCQ_TEST_STREAM_APPEND_H
#define RPCQ_TEST_STREAM_APPEND_H

#include <stdint.h>

#include "db/pool.h"

/* Appends n rpcq.EchoMessage messages with payload "<tag>-<i>" to topic in
 * one transaction, committed (commit != 0) or rolled back; returns the seq
 * of the last one. Fails the test on any error. */
uint64_t test_stream_append(pool *db, const char *topic, const char *tag, int n, int commit);

#endif
