/*
 * TLS for rpcqd's listeners (calls and streams): one server configuration per
 * socket, built from --tls-cert and --tls-key. nng's own
 * nng_tls_config_cert_key_file wants certificate and key in one file; rpcqd
 * takes them as two PEM files, as operators keep them, and loads both here.
 */
#ifndef RPCQ_TLS_H
#define RPCQ_TLS_H

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include <rpcq/error.h>

#include "config.h"

/* 1 for URLs that need a TLS configuration (tls+tcp://, wss://). */
int tls_url(const char *url);

/* The server TLS configuration of --tls-cert and --tls-key in *tls, created
 * on first use (the caller frees it with nng_tls_config_free once nothing
 * uses it). With client_ca (a PEM file; NULL or "": none) a client must show
 * a certificate that CA signed, or the handshake fails. url is for
 * messages. INVALID_ARGUMENT naming the files when they are missing or do
 * not load. Blocks (reads files). */
rpcq_status tls_server_config(const char *url, const rpcq_config *cfg, const char *client_ca, nng_tls_config **tls,
			      rpcq_error *err) RPCQ_NODISCARD;

/* Sets the TLS configuration on listener l for url, creating *tls on first
 * use (the caller frees it with nng_tls_config_free after closing the
 * socket); client_ca as above. INVALID_ARGUMENT naming the files when they
 * are missing or do not load. Blocks (reads files). */
rpcq_status tls_listener_setup(nng_listener l, const char *url, const rpcq_config *cfg, const char *client_ca,
			       nng_tls_config **tls, rpcq_error *err) RPCQ_NODISCARD;

#endif
