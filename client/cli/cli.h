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
	size_t chunk_bytes;				/* cli_chunk_bytes, once asked */
} cli_globals;

/* How long a command waits for its first connection to the server before it
 * says nothing answers there (a wrong --server, rpcqd not started). */
#define CLI_CONNECT_TIMEOUT_MS 3000

/* The shared client, created on first use; on failure prints the error and
 * returns NULL. */
rpcq_client *cli_client(cli_globals *g);

/* How many server URLs client c has. */
int cli_server_count(const rpcq_client *c);

/* *out: a client of its own for the index'th (from 0) of all's servers
 * alone, with g's options, for calls that must all reach one process (a
 * vesting compute session lives in the memory of the rpcqd that opened
 * it). The caller destroys it. */
rpcq_status cli_client_of_server(const cli_globals *g, const rpcq_client *all, int index, rpcq_client **out,
				 rpcq_error *err);

/* The size of an upload's chunks: preferred, or less when the server's
 * message limit (rpcq.Health/Check's max_message_bytes, asked once) leaves
 * less room; a chunk and its call's envelope then fit one message, so a
 * server run with a small --max-message-bytes still takes the file.
 * preferred when the server does not say. */
size_t cli_chunk_bytes(cli_globals *g, size_t preferred);

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

/* cli_fail_status(RESOURCE_EXHAUSTED, "out of memory"). */
int cli_out_of_memory(void);

/* A time in milliseconds since the epoch as "2026-12-02T05:04:24Z", or "-"
 * when ms is 0 (not set). */
void cli_format_ms(int64_t ms, char *out, size_t len);

/* A decimal integer in min..max into *out; -1 (out unchanged) otherwise. */
int cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Paging: replaces *token (freed) with a copy of next, or NULL when next is
 * empty (the last page). 0, or the exit status when out of memory. */
int cli_next_page(char **token, const char *next);

/* One page of a listing: asks for the page after token ("" for the first),
 * shows it, and sets *next from the reply with cli_next_page. 0, or the
 * exit status. */
typedef int (*cli_page_fn)(void *arg, const char *token, char **next);

/* Every page of a listing, one after another, until the last or the first
 * that fails. 0, or the exit status. */
int cli_each_page(cli_page_fn page, void *arg);

/* The one positional argument of a command that takes "ARG [--json]" (what,
 * e.g. "billing status", and arg, e.g. "IMPORT_ID", name them in the usage
 * error). 0, or the exit status of the usage error. */
int cli_arg_and_json(int argc, char **argv, const char *what, const char *arg, const char **out, int *as_json);

/* The file an import sends, mapped whole (upload.c), so that a resumed
 * upload starts at any offset and a chunk is a slice of the mapping. */
typedef struct cli_file {
	const char *path; /* as given */
	const char *name; /* its base name: how the server and the rejections name it */
	int fd;
	const char *data; /* the mapping; NULL for an empty file */
	size_t size;
} cli_file;

/* Sets the path and name; nothing is opened. */
void cli_file_init(cli_file *f, const char *path);

/* Opens and maps a regular file; 0, or the exit status after the error
 * (INVALID_ARGUMENT naming the path). */
int cli_file_open(cli_file *f);

void cli_file_close(cli_file *f);

/* Each chunk of an upload travels through several message-sized buffers
 * (request, envelope, nng message). glibc would map and unmap them, or trim
 * them back to the kernel, for every chunk, and the page faults of refilling
 * them cost more than the copies: this keeps them on the heap for reuse. */
void cli_keep_buffers_on_heap(void);

/* A progress line on a terminal (upload.c): drawn on stderr over the line
 * before, only when stderr is a terminal and once the command has taken
 * CLI_PROGRESS_AFTER_MS, so a quick command draws nothing. */
#define CLI_PROGRESS_AFTER_MS 300

typedef struct cli_progress {
	int tty;
	int64_t start_ms;
	int64_t drawn_ms;
	int shown;
	size_t width; /* of the line drawn last */
	char last[512];
} cli_progress;

/* Starts the clock; the line is drawn if stderr is a terminal. */
void cli_progress_start(cli_progress *p);

/* Draws text, at most every 100 ms unless now (which still skips a line
 * equal to the one shown). */
void cli_progress_draw(cli_progress *p, const char *text, int now);

/* "[#####-----]  42% text": done of total as a bar (total 0: 100%). */
void cli_progress_bar(cli_progress *p, uint64_t done, uint64_t total, const char *text, int now);

/* Wipes the line, so that what is printed next starts on a clean one. */
void cli_progress_clear(cli_progress *p);

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
