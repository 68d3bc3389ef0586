/* Client TLS configurations, one per dialer (tls_dial.h). */
#include <string.h>

#include <rpcq/alloc.h>

#include "tls_dial.h"
#include "url_check.h"

int tls_dial_url(const char *url)
{
	return strncmp(url, "tls+", 4) == 0 || strncmp(url, "wss", 3) == 0;
}

rpcq_status tls_dials_add(tls_dials *t, const char *url, const char *ca_file, nng_tls_config **out, rpcq_error *err)
{
	nng_tls_config **grown = rpcq_realloc(t->cfg, (t->n + 1) * sizeof(*t->cfg));
	if (grown == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	t->cfg = grown;
	nng_tls_config *cfg;
	int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
	if (rv != 0)
		return rpcq_error_set(err, RPCQ_INTERNAL, "TLS: %s", nng_strerror(rv));
	t->cfg[t->n++] = cfg;
	if (ca_file == NULL) {
		nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE);
		*out = cfg;
		return RPCQ_OK;
	}
	if ((rv = nng_tls_config_ca_file(cfg, ca_file)) != 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "TLS CA file %s: %s", ca_file, nng_strerror(rv));
	nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
	char host[256];
	if (url_host(url, host, sizeof(host)) < 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "server URL \"%s\": no host to check its certificate against", url);
	if (!url_host_is_address(host) && (rv = nng_tls_config_server_name(cfg, host)) != 0)
		return rpcq_error_set(err, RPCQ_INTERNAL, "TLS server name %s: %s", host, nng_strerror(rv));
	*out = cfg;
	return RPCQ_OK;
}

void tls_dials_free(tls_dials *t)
{
	for (size_t i = 0; i < t->n; i++)
		nng_tls_config_free(t->cfg[i]);
	rpcq_free(t->cfg);
	t->cfg = NULL;
	t->n = 0;
}
