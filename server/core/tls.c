/*
 * TLS configuration of listeners: reads the certificate and key PEM files and
 * hands them to nng (see tls.h).
 */
#include <string.h>

#include <rpcq/alloc.h>

#include "readall.h"
#include "tls.h"

int tls_url(const char *url)
{
	return strncmp(url, "tls+", 4) == 0 || strncmp(url, "wss", 3) == 0;
}

rpcq_status tls_server_config(const char *url, const rpcq_config *cfg, const char *client_ca, nng_tls_config **tls,
			      rpcq_error *err)
{
	if (!cfg->tls_cert || !*cfg->tls_cert || !cfg->tls_key || !*cfg->tls_key)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "URL \"%s\" needs --tls-cert and --tls-key", url);
	if (*tls == NULL) {
		char *cert = readall_pem("certificate", cfg->tls_cert, err);
		if (cert == NULL)
			return err->code;
		char *key = readall_pem("key", cfg->tls_key, err);
		if (key == NULL) {
			rpcq_free(cert);
			return err->code;
		}
		int rv = nng_tls_config_alloc(tls, NNG_TLS_MODE_SERVER);
		if (rv == 0 && (rv = nng_tls_config_own_cert(*tls, cert, key, NULL)) != 0) {
			nng_tls_config_free(*tls);
			*tls = NULL;
		}
		rpcq_free(cert);
		rpcq_free(key);
		if (rv != 0)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "TLS certificate %s with key %s: %s",
					      cfg->tls_cert, cfg->tls_key, nng_strerror(rv));
		if (client_ca && *client_ca) {
			if ((rv = nng_tls_config_ca_file(*tls, client_ca)) == 0)
				rv = nng_tls_config_auth_mode(*tls, NNG_TLS_AUTH_MODE_REQUIRED);
			if (rv != 0) {
				nng_tls_config_free(*tls);
				*tls = NULL;
				return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "TLS client CA %s: %s", client_ca,
						      nng_strerror(rv));
			}
		}
	}
	return RPCQ_OK;
}

rpcq_status tls_listener_setup(nng_listener l, const char *url, const rpcq_config *cfg, const char *client_ca,
			       nng_tls_config **tls, rpcq_error *err)
{
	rpcq_status st = tls_server_config(url, cfg, client_ca, tls, err);
	if (st != RPCQ_OK)
		return st;
	int rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, *tls);
	if (rv != 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "URL \"%s\": %s", url, nng_strerror(rv));
	return RPCQ_OK;
}
