/*
 * rpcqd configuration. Every knob is one row of the table in config.c, which
 * gives its flag, its RPCQ_* environment variable, its config-file key, its
 * default and its --help line. Precedence: flag > environment > file > default.
 * The config file has one "key = value" per line, '#' comments; keys are the
 * flag names without dashes ("database", "listen").
 */
#ifndef RPCQ_CONFIG_H
#define RPCQ_CONFIG_H

#include <stdio.h>

#include <rpcq/status.h>

#include <rpcq/error.h>

#define CONFIG_MAX_URLS 8

typedef struct rpcq_config {
	const char *listen[CONFIG_MAX_URLS]; /* RPC listeners (req/rep) */
	int nlisten;
	const char *publish[CONFIG_MAX_URLS]; /* stream listeners (pub/sub) */
	int npublish;
	const char *http[CONFIG_MAX_URLS]; /* HTTP gateway listeners; "" entries are skipped */
	int nhttp;
	int http_max_connections;
	int http_read_timeout_ms;
	int http_idle_timeout_ms;
	int http_heartbeat_ms;
	const char *http_allow_origin[CONFIG_MAX_URLS]; /* browser origins beside the gateway's own; "*": any */
	int nhttp_allow_origin;
	const char *database; /* libpq conninfo or URI */
	const char *tls_cert; /* PEM, for tls+tcp:// and wss:// */
	const char *tls_key;
	const char *publish_client_ca; /* PEM: TLS --publish listeners want client certificates it signed */
	int workers;		       /* handler threads */
	int contexts;		       /* outstanding calls on the wire */
	long max_message_bytes;
	int default_deadline_ms;
	int drain_timeout_ms;
	int pool_min;
	int pool_max;
	int pool_acquire_timeout_ms;
	int stream_retention_days;   /* 0: keep by count only */
	long stream_retention_count; /* per topic; 0: keep by age only */
	int session_ttl_s;	     /* vesting compute sessions */
	long session_max_bytes;	     /* all compute sessions together */
	const char *provider_url;    /* events: the provider's feed */
	int provider_interval_s;
	int provider_timeout_ms;
	int billing_schedule_s;	  /* billing: sweep for due work this often (0: no background work) */
	int billing_batch;	  /* billing: debts billed per transaction */
	const char *smtp_url;	  /* billing: smtp://, smtp+starttls:// or smtps://; empty: the spool */
	const char *smtp_ca_file; /* billing: PEM CAs that verify the SMTP server; empty: the system's */
	const char *mail_spool;	  /* billing: .eml files here when no SMTP */
	const char *mail_from;
	int mail_max_attempts;
	int mail_retry_base_ms;
	int mail_lease_s;
	int mail_timeout_ms;
	const char *auth; /* auto, on, off */
	const char *log_level;
	const char *config_file;
} rpcq_config;

/* Parses argv (after the subcommand) over env over file over defaults into
 * *cfg. Returns OK, or INVALID_ARGUMENT with a message naming the flag,
 * variable or file line. "--help" and "--version" are handled by the caller. */
rpcq_status config_load(rpcq_config *cfg, int argc, char **argv, rpcq_error *err) RPCQ_NODISCARD;

/* Frees the strings config_load copied. */
void config_fini(rpcq_config *cfg);

/* Prints every knob with flag, variable, default and meaning. */
void config_print_help(FILE *out);

#endif
