/*
 * rpcqd's HTTP gateway (--http): every method of every service in the
 * Connect protocol's unary form (POST /rpc/<package.Service>/<Method>),
 * update streams as Server-Sent Events (GET /streams/<topic>), /healthz,
 * /readyz and a Prometheus /metrics. Calls enter the same worker pool and
 * call_run as nng's; a handler cannot tell the transports apart.
 *
 * HTTP/1.1 is served on nng's byte streams (tcp, and tls+tcp for https://)
 * with http-parser framing the requests, rather than with nng's HTTP
 * server: that one has no read timeout and no connection cap, answers an
 * oversized body 400, reads no chunked bodies and cannot stream a reply
 * without hijacking the connection (README, design notes).
 */
#ifndef RPCQ_GATEWAY_H
#define RPCQ_GATEWAY_H

#include <rpcq/error.h>

#include "server.h"

typedef struct gateway gateway;

/* Listens on every non-empty URL of cfg->http (no URL: *out = NULL and OK).
 * INVALID_ARGUMENT for a bad URL or TLS files, UNAVAILABLE when a port is
 * taken. Sets *out only on success. Blocks briefly (binding, TLS files). */
rpcq_status gateway_create(gateway **out, server *srv, rpcq_error *err) RPCQ_NODISCARD;

/* The server is draining: streams are closed (their clients reconnect to
 * another server with Last-Event-ID), /readyz answers 503, calls get
 * UNAVAILABLE from call_run. Connections stay open so replies reach their
 * callers. NULL is a no-op. Never blocks. */
void gateway_drain(gateway *gw);

/* Closes the listeners and every connection, frees. The workers must have
 * stopped (no gateway job can be running). NULL is a no-op. Blocks until
 * nng has finished with every connection. */
void gateway_destroy(gateway *gw);

/* Open connections and Server-Sent Events streams, for /metrics. */
void gateway_counts(gateway *gw, unsigned *connections, unsigned *streams);

/* The bound URLs (ports resolved), for the start-up log and tests. */
const char *gateway_url(gateway *gw, int i);

#endif
