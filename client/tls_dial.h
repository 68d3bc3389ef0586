/*
 * TLS for the client's dialers (tls+tcp://, wss://): a configuration of
 * its own for each dialer, because the certificate is checked against the
 * host of that dialer's URL (nng checks the server name of the
 * configuration it is given, and one shared by several dialers has none).
 */
#ifndef RPCQ_TLS_DIAL_H
#define RPCQ_TLS_DIAL_H

#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include <rpcq/error.h>

/* The configurations made so far, freed together. */
typedef struct tls_dials {
	nng_tls_config **cfg;
	size_t n;
} tls_dials;

/* 1 for a URL nng dials over TLS. */
int tls_dial_url(const char *url);

/* *out: a new client configuration for url, kept in t. With ca_file, the
 * server's certificate must chain to it (and nothing else is trusted) and,
 * when url's host is a name, name that host; an address is checked against
 * the CA alone (mbedTLS 2.28, Debian 12's, matches only DNS names). Without
 * ca_file, no verification. The caller gives it to its dialer. */
rpcq_status tls_dials_add(tls_dials *t, const char *url, const char *ca_file, nng_tls_config **out, rpcq_error *err);

void tls_dials_free(tls_dials *t);

#endif
