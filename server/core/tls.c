/*
 * TLS configuration of listeners: reads the certificate and key PEM files and
 * hands them to nng (see tls.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "tls.h"

int tls_url(const char *url)
{
	return strncmp(url, "tls+", 4) == 0 || strncmp(url, "wss", 3) == 0;
}

/* A whole PEM file, NUL-terminated, or NULL with err set. */
static char *read_pem(const char *what, const char *path, rpcq_error *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "TLS %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	size_t cap = 16384, n = 0;
	char *buf = rpcq_alloc(cap);
	while (buf != NULL) {
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
		if (n + 1 == cap) {
			if (cap >= 1024 * 1024) {
				rpcq_free(buf);
				buf = NULL;
				rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "TLS %s %s: larger than 1 MiB", what, path);
				fclose(f);
				return NULL;
			}
			char *bigger = rpcq_realloc(buf, cap * 2);
			if (bigger == NULL) {
				rpcq_free(buf);
				buf = NULL;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf == NULL) {
		rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory reading %s", path);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

rpcq_status tls_listener_setup(nng_listener l, const char *url, const rpcq_config *cfg, nng_tls_config **tls,
			       rpcq_error *err)
{
	if (!cfg->tls_cert || !*cfg->tls_cert || !cfg->tls_key || !*cfg->tls_key)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "URL \"%s\" needs --tls-cert and --tls-key", url);
	if (*tls == NULL) {
		char *cert = read_pem("certificate", cfg->tls_cert, err);
		if (cert == NULL)
			return err->code;
		char *key = read_pem("key", cfg->tls_key, err);
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
	}
	int rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, *tls);
	if (rv != 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "URL \"%s\": %s", url, nng_strerror(rv));
	return RPCQ_OK;
}
