/*
 * Shared pieces of the rpcq command: global options, the client, and the
 * one-line error convention (status name and message on stderr, non-zero
 * exit). Each command group lives in its own file and has the signature
 *   int cli_<group>(int argc, char **argv, cli_globals *g);
 * where argv[0] is the group's name and the return value is the exit status.
 */
#ifndef RPCQ_CLI_H
#define RPCQ_CLI_H

#include <stdint.h>
#include <stdio.h>

#include <rpcq/rpcq.h>

#define CLI_MAX_METADATA 32

typedef struct cli_globals {
	const char *server;				/* --server, else $RPCQ_SERVER, else default */
	int timeout_ms;					/* --timeout (0: client default) */
	const char *metadata[2 * CLI_MAX_METADATA + 1]; /* --header K=V pairs, NULL-terminated */
	const char *api_key;				/* --api-key (NULL: librpcq reads $RPCQ_API_KEY) */
	int allow_plaintext_key;			/* --allow-plaintext-key */
	const char *tls_ca;				/* --tls-ca, else $RPCQ_TLS_CA, else NULL */
	const char *client_cert, *client_key;		/* --client-cert, --client-key (streams) */
	rpcq_client *client;				/* created on first cli_client() */
} cli_globals;

/* The shared client, created on first use; on failure prints the error and
 * returns NULL. */
rpcq_client *cli_client(cli_globals *g);

/* Call options carrying the global timeout and metadata. */
rpcq_call_options cli_call_options(const cli_globals *g);

/* Prints "rpcq: STATUS_NAME: message" on stderr; returns the exit status for
 * it (1 for any failure, 2 for usage errors via cli_usage_error). */
int cli_fail(const rpcq_error *err);

/* Prints "rpcq: <message>" and a hint to use --help; returns 2. */
int cli_usage_error(const char *fmt, ...) RPCQ_PRINTF(1, 2);

/* 1 if argv has -h or --help at position i.. */
int cli_wants_help(int argc, char **argv);

/* The value of "--name V" or "--name=V" at argv[*i] (advancing *i past V),
 * or NULL when argv[*i] is not that option; *missing is set when it is but
 * has no value. */
const char *cli_option(int argc, char **argv, int *i, const char *name, int *missing);

/* cli_fail of an error made here (code, printf-style message): prints it and
 * returns 1. */
int cli_fail_status(rpcq_status code, const char *fmt, ...) RPCQ_PRINTF(2, 3);

/* One message as proto3 JSON (every field present) and a newline on stdout,
 * pretty (indented) for a message printed alone; 0, or the exit status. */
int cli_print_json(const ProtobufCMessage *m, int pretty);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t cli_now_ms(void);

/* n as "812 B", "3.4 KiB", "12.0 MiB" or "1.02 GiB". */
void cli_human_bytes(uint64_t n, char *out, size_t len);

/* Command groups. */
int cli_call(int argc, char **argv, cli_globals *g);
int cli_list(int argc, char **argv, cli_globals *g);
int cli_health(int argc, char **argv, cli_globals *g);
int cli_subscribe(int argc, char **argv, cli_globals *g);
int cli_vesting(int argc, char **argv, cli_globals *g);
int cli_events(int argc, char **argv, cli_globals *g);
int cli_vouchers(int argc, char **argv, cli_globals *g);
int cli_billing(int argc, char **argv, cli_globals *g);

#endif
