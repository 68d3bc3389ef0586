/*
 * rpcqd configuration: one table of knobs, read from (in rising precedence)
 * defaults, an optional config file, RPCQ_* environment variables and
 * command-line flags. Lists (--listen, --publish) given at a higher level
 * replace the lower level's list rather than adding to it, so an operator's
 * flag is never mixed with a forgotten environment variable.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "config.h"

enum knob_type { K_STR, K_INT, K_LONG, K_LIST };

struct knob {
	const char *name; /* flag without dashes, file key */
	const char *env;
	enum knob_type type;
	size_t offset;	     /* of the value in rpcq_config */
	size_t count_offset; /* K_LIST: of the count */
	const char *def;     /* default, as text */
	long min, max;	     /* K_INT, K_LONG */
	const char *help;
};

#define OFF(f) offsetof(rpcq_config, f)

static const struct knob knobs[] = {
	{"listen", "RPCQ_LISTEN", K_LIST, OFF(listen), OFF(nlisten), "tcp://127.0.0.1:7400", 0, 0,
	 "RPC listener URL (repeatable; tcp://, ipc://, ws://, tls+tcp://, wss://)"},
	{"publish", "RPCQ_PUBLISH", K_LIST, OFF(publish), OFF(npublish), "tcp://127.0.0.1:7401", 0, 0,
	 "stream publisher URL (repeatable)"},
	{"http", "RPCQ_HTTP", K_LIST, OFF(http), OFF(nhttp), "http://127.0.0.1:7480", 0, 0,
	 "HTTP gateway URL (repeatable; http:// or https:// with --tls-cert/--tls-key; empty: no HTTP)"},
	{"http-max-connections", "RPCQ_HTTP_MAX_CONNECTIONS", K_INT, OFF(http_max_connections), 0, "1024", 1, 1000000,
	 "open HTTP connections at most; one more is answered 503 and closed"},
	{"http-read-timeout-ms", "RPCQ_HTTP_READ_TIMEOUT_MS", K_INT, OFF(http_read_timeout_ms), 0, "10000", 1, INT_MAX,
	 "longest an HTTP client may take to send a whole request (then 408 and close)"},
	{"http-idle-timeout-ms", "RPCQ_HTTP_IDLE_TIMEOUT_MS", K_INT, OFF(http_idle_timeout_ms), 0, "60000", 1, INT_MAX,
	 "a kept-alive HTTP connection with no request for this long is closed"},
	{"http-heartbeat-ms", "RPCQ_HTTP_HEARTBEAT_MS", K_INT, OFF(http_heartbeat_ms), 0, "15000", 10, INT_MAX,
	 "a comment line on idle Server-Sent Events streams this often, for proxies"},
	{"http-allow-origin", "RPCQ_HTTP_ALLOW_ORIGIN", K_LIST, OFF(http_allow_origin), OFF(nhttp_allow_origin), "", 0,
	 0,
	 "a browser origin (https://host[:port]) whose pages may call the gateway, with CORS headers (repeatable; "
	 "*: any); a browser's request from another site is refused 403"},
	{"database", "RPCQ_DATABASE_URL", K_STR, OFF(database), 0, "", 0, 0,
	 "PostgreSQL conninfo or URI (empty: libpq's PG* environment)"},
	{"tls-cert", "RPCQ_TLS_CERT", K_STR, OFF(tls_cert), 0, "", 0, 0, "PEM certificate for tls+tcp:// and wss://"},
	{"tls-key", "RPCQ_TLS_KEY", K_STR, OFF(tls_key), 0, "", 0, 0, "PEM private key for tls+tcp:// and wss://"},
	{"publish-client-ca", "RPCQ_PUBLISH_CLIENT_CA", K_STR, OFF(publish_client_ca), 0, "", 0, 0,
	 "PEM CA: --publish listeners (then all tls+tcp:// or wss://) accept only subscribers with a certificate "
	 "it signed"},
	{"workers", "RPCQ_WORKERS", K_INT, OFF(workers), 0, "4", 1, 256,
	 "handler threads (handlers block on the database; CPU-bound work wants ~cores)"},
	{"contexts", "RPCQ_CONTEXTS", K_INT, OFF(contexts), 0, "128", 1, 65536,
	 "calls accepted from the wire at once (queued for the workers)"},
	{"max-message-bytes", "RPCQ_MAX_MESSAGE_BYTES", K_LONG, OFF(max_message_bytes), 0, "4194304", 1024, 1L << 30,
	 "largest request or reply"},
	{"default-deadline-ms", "RPCQ_DEFAULT_DEADLINE_MS", K_INT, OFF(default_deadline_ms), 0, "30000", 1, INT_MAX,
	 "deadline of calls that send none, and of each database step of the e-mail dispatcher"},
	{"drain-timeout-ms", "RPCQ_DRAIN_TIMEOUT_MS", K_INT, OFF(drain_timeout_ms), 0, "10000", 0, INT_MAX,
	 "on SIGTERM, how long queued calls may wait to run (then UNAVAILABLE; running ones finish)"},
	{"pool-min", "RPCQ_POOL_MIN", K_INT, OFF(pool_min), 0, "1", 0, 1000, "database connections kept open"},
	{"pool-max", "RPCQ_POOL_MAX", K_INT, OFF(pool_max), 0, "8", 1, 1000, "database connections at most"},
	{"pool-acquire-timeout-ms", "RPCQ_POOL_ACQUIRE_TIMEOUT_MS", K_INT, OFF(pool_acquire_timeout_ms), 0, "5000", 1,
	 INT_MAX, "longest wait for a database connection (also bounded by the call's deadline)"},
	{"stream-retention-days", "RPCQ_STREAM_RETENTION_DAYS", K_INT, OFF(stream_retention_days), 0, "7", 0, 36500,
	 "stream log messages older than this are trimmed (0: no age limit)"},
	{"stream-retention-count", "RPCQ_STREAM_RETENTION_COUNT", K_LONG, OFF(stream_retention_count), 0, "1000000", 0,
	 LONG_MAX, "at most this many messages kept per topic (0: no count limit)"},
	{"session-ttl-s", "RPCQ_SESSION_TTL_S", K_INT, OFF(session_ttl_s), 0, "300", 1, 86400,
	 "vesting compute sessions expire after this long unused"},
	{"session-max-bytes", "RPCQ_SESSION_MAX_BYTES", K_LONG, OFF(session_max_bytes), 0, "2147483648", 1024, LONG_MAX,
	 "memory all vesting compute sessions may hold together"},
	{"provider-url", "RPCQ_PROVIDER_URL", K_STR, OFF(provider_url), 0, "", 0, 0,
	 "events: the provider's feed (http:// or https://); empty: no fetching"},
	{"provider-interval-s", "RPCQ_PROVIDER_INTERVAL_S", K_INT, OFF(provider_interval_s), 0, "60", 0, 86400,
	 "events: fetch the feed this often, once between all rpcqd processes (0: only on Sync)"},
	{"provider-timeout-ms", "RPCQ_PROVIDER_TIMEOUT_MS", K_INT, OFF(provider_timeout_ms), 0, "10000", 100, 3600000,
	 "events: a fetch that takes longer applies nothing (connecting: at most 5 s of it)"},
	{"billing-schedule", "RPCQ_BILLING_SCHEDULE", K_INT, OFF(billing_schedule_s), 0, "5", 0, 86400,
	 "billing: every process also looks for bills and e-mails due this often, in seconds, besides being woken "
	 "by imports (0: this process bills and mails nothing)"},
	{"billing-batch", "RPCQ_BILLING_BATCH", K_INT, OFF(billing_batch), 0, "5000", 1, 100000,
	 "billing: debts billed per transaction"},
	{"smtp-url", "RPCQ_SMTP_URL", K_STR, OFF(smtp_url), 0, "", 0, 0,
	 "billing: send e-mails through this SMTP server: smtp://host:port (no TLS), smtp+starttls:// (STARTTLS "
	 "required) or smtps:// (TLS from the start), user:password@ for AUTH; empty: write them to --mail-spool"},
	{"smtp-ca-file", "RPCQ_SMTP_CA_FILE", K_STR, OFF(smtp_ca_file), 0, "", 0, 0,
	 "billing: PEM CA bundle that the SMTP server's certificate must chain to, instead of the system's "
	 "(empty: the system's)"},
	{"mail-spool", "RPCQ_MAIL_SPOOL", K_STR, OFF(mail_spool), 0, "", 0, 0,
	 "billing: without --smtp-url, write each e-mail as an RFC 5322 .eml file here (empty: no e-mails sent)"},
	{"mail-from", "RPCQ_MAIL_FROM", K_STR, OFF(mail_from), 0, "rpcq Billing <billing@localhost>", 0, 0,
	 "billing: the From of the e-mails (its domain also ends their Message-IDs)"},
	{"mail-max-attempts", "RPCQ_MAIL_MAX_ATTEMPTS", K_INT, OFF(mail_max_attempts), 0, "8", 1, 1000,
	 "billing: an e-mail that fails this many times is marked failed"},
	{"mail-retry-base-ms", "RPCQ_MAIL_RETRY_BASE_MS", K_INT, OFF(mail_retry_base_ms), 0, "2000", 1, 3600000,
	 "billing: the first retry waits about this long, each next one twice as long (with jitter, at most an hour)"},
	{"mail-lease-s", "RPCQ_MAIL_LEASE_S", K_INT, OFF(mail_lease_s), 0, "60", 1, 86400,
	 "billing: e-mails claimed by a process that died are sent by another after this long"},
	{"mail-timeout-ms", "RPCQ_MAIL_TIMEOUT_MS", K_INT, OFF(mail_timeout_ms), 0, "30000", 100, 3600000,
	 "billing: longest SMTP transaction (connecting: at most 10 s of it)"},
	{"auth", "RPCQ_AUTH", K_STR, OFF(auth), 0, "auto", 0, 0,
	 "API keys: on, off, or auto (on as soon as `rpcqd keys create` has made a key)"},
	{"log-level", "RPCQ_LOG_LEVEL", K_STR, OFF(log_level), 0, "info", 0, 0, "debug, info, warn or error"},
};

#define NKNOBS (sizeof(knobs) / sizeof(knobs[0]))

/* Text knobs that take one of a few words, checked where they are read so
 * that the message names the flag, variable or file line. */
static const struct {
	const char *name;
	const char *const words[5]; /* NULL-terminated */
	const char *said;	    /* for the message */
} choices[] = {
	{"auth", {"auto", "on", "off", NULL}, "auto, on or off"},
	{"log-level", {"debug", "info", "warn", "error", NULL}, "debug, info, warn or error"},
};

/* Where a value came from, for messages and for list replacement. */
enum level { L_DEFAULT, L_FILE, L_ENV, L_FLAG };

struct loader {
	rpcq_config *cfg;
	enum level list_level[NKNOBS];
};

static const struct knob *knob_find(const char *name, size_t len)
{
	for (size_t i = 0; i < NKNOBS; i++) {
		if (strlen(knobs[i].name) == len && strncmp(knobs[i].name, name, len) == 0)
			return &knobs[i];
	}
	return NULL;
}

static rpcq_status set_value(struct loader *ld, const struct knob *k, enum level lvl, const char *value,
			     const char *where, rpcq_error *err)
{
	char *base = (char *)ld->cfg;
	for (size_t c = 0; c < sizeof(choices) / sizeof(choices[0]); c++) {
		if (strcmp(choices[c].name, k->name) != 0)
			continue;
		size_t w = 0;
		while (choices[c].words[w] != NULL && strcmp(choices[c].words[w], value) != 0)
			w++;
		if (choices[c].words[w] == NULL)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "%s: %s must be %s, not \"%s\"", where,
					      k->name, choices[c].said, value);
	}
	switch (k->type) {
	case K_STR: {
		const char **slot = (const char **)(base + k->offset);
		char *copy = rpcq_strdup(value);
		if (copy == NULL)
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		rpcq_free((void *)*slot);
		*slot = copy;
		return RPCQ_OK;
	}
	case K_INT:
	case K_LONG: {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		if (errno || end == value || *end != '\0' || v < k->min || v > k->max)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					      "%s: %s must be an integer from %ld to %ld, not \"%s\"", where, k->name,
					      k->min, k->max, value);
		if (k->type == K_INT)
			*(int *)(base + k->offset) = (int)v;
		else
			*(long *)(base + k->offset) = v;
		return RPCQ_OK;
	}
	case K_LIST: {
		const char **list = (const char **)(base + k->offset);
		int *count = (int *)(base + k->count_offset);
		size_t idx = (size_t)(k - knobs);
		if (ld->list_level[idx] != lvl) {
			/* First value at a higher level replaces the list. */
			for (int i = 0; i < *count; i++)
				rpcq_free((void *)list[i]);
			*count = 0;
			ld->list_level[idx] = lvl;
		}
		if (*count >= CONFIG_MAX_URLS)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "%s: at most %d %s URLs", where,
					      CONFIG_MAX_URLS, k->name);
		/* The environment may carry several, separated by commas or spaces. */
		const char *p = value;
		while (*p) {
			size_t n = strcspn(p, ", ");
			if (n > 0) {
				if (*count >= CONFIG_MAX_URLS)
					return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "%s: at most %d %s URLs",
							      where, CONFIG_MAX_URLS, k->name);
				char *copy = rpcq_strndup(p, n);
				if (copy == NULL)
					return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
				list[(*count)++] = copy;
			}
			p += n;
			p += strspn(p, ", ");
		}
		return RPCQ_OK;
	}
	}
	return RPCQ_INTERNAL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static rpcq_status load_file(struct loader *ld, const char *path, rpcq_error *err)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "config file %s: %s", path, strerror(errno));
	char line[4096];
	int lineno = 0;
	rpcq_status st = RPCQ_OK;
	while (st == RPCQ_OK && fgets(line, sizeof(line), f)) {
		lineno++;
		/* A comment starts a line or follows a blank: "se#cret" is a value. */
		for (char *h = strchr(line, '#'); h != NULL; h = strchr(h + 1, '#')) {
			if (h == line || isspace((unsigned char)h[-1])) {
				*h = '\0';
				break;
			}
		}
		char *s = trim(line);
		if (*s == '\0')
			continue;
		char where[300];
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			st = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "%s: expected key = value", where);
			break;
		}
		*eq = '\0';
		char *key = trim(s);
		const struct knob *k = knob_find(key, strlen(key));
		if (k == NULL) {
			st = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "%s: unknown setting \"%s\"", where, key);
			break;
		}
		st = set_value(ld, k, L_FILE, trim(eq + 1), where, err);
	}
	fclose(f);
	return st;
}

/* The value of --config (flag beats environment), or NULL. */
static const char *find_config_file(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
	}
	const char *env = getenv("RPCQ_CONFIG");
	return env && *env ? env : NULL;
}

rpcq_status config_load(rpcq_config *cfg, int argc, char **argv, rpcq_error *err)
{
	struct loader ld = {.cfg = cfg};
	rpcq_status st;
	memset(cfg, 0, sizeof(*cfg));

	for (size_t i = 0; i < NKNOBS; i++) {
		st = set_value(&ld, &knobs[i], L_DEFAULT, knobs[i].def, "default", err);
		if (st != RPCQ_OK)
			return st;
	}
	const char *file = find_config_file(argc, argv);
	if (file) {
		cfg->config_file = rpcq_strdup(file);
		if ((st = load_file(&ld, file, err)) != RPCQ_OK)
			return st;
	}
	for (size_t i = 0; i < NKNOBS; i++) {
		/* Empty is unset for a number, and "none" for a string or a
		 * list, as the flag's "" is (RPCQ_HTTP= serves no HTTP). */
		const char *v = getenv(knobs[i].env);
		if (v == NULL || (*v == '\0' && (knobs[i].type == K_INT || knobs[i].type == K_LONG)))
			continue;
		if ((st = set_value(&ld, &knobs[i], L_ENV, v, knobs[i].env, err)) != RPCQ_OK)
			return st;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "unexpected argument \"%s\"", a);
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		if (len == 6 && strncmp(name, "config", 6) == 0) {
			if (!eq && ++i >= argc)
				return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "option --config needs a value");
			continue;
		}
		const struct knob *k = knob_find(name, len);
		if (k == NULL)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "unknown option \"--%.*s\" (see --help)",
					      (int)len, name);
		const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (value == NULL)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "option --%s needs a value", k->name);
		char where[80];
		snprintf(where, sizeof(where), "--%s", k->name);
		if ((st = set_value(&ld, k, L_FLAG, value, where, err)) != RPCQ_OK)
			return st;
	}
	if (cfg->pool_min > cfg->pool_max)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "pool-min (%d) exceeds pool-max (%d)", cfg->pool_min,
				      cfg->pool_max);
	if (cfg->nlisten == 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "at least one --listen URL is needed");
	return RPCQ_OK;
}

void config_fini(rpcq_config *cfg)
{
	char *base = (char *)cfg;
	for (size_t i = 0; i < NKNOBS; i++) {
		const struct knob *k = &knobs[i];
		if (k->type == K_STR) {
			rpcq_free(*(char **)(base + k->offset));
		} else if (k->type == K_LIST) {
			const char **list = (const char **)(base + k->offset);
			int *count = (int *)(base + k->count_offset);
			for (int j = 0; j < *count; j++)
				rpcq_free((void *)list[j]);
			*count = 0;
		}
	}
	rpcq_free((void *)cfg->config_file);
	memset(cfg, 0, sizeof(*cfg));
}

void config_print_help(FILE *out)
{
	fprintf(out, "Options (flag > environment > config file > default):\n");
	fprintf(out, "  --config FILE  (RPCQ_CONFIG)\n      \"key = value\" lines; keys are the option names\n");
	for (size_t i = 0; i < NKNOBS; i++) {
		const struct knob *k = &knobs[i];
		fprintf(out, "  --%s %s  (%s; default: %s)\n      %s\n", k->name,
			k->type == K_STR || k->type == K_LIST ? "TEXT" : "N", k->env, *k->def ? k->def : "\"\"",
			k->help);
	}
}
