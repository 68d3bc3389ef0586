/*
 * Test harness for integration tests: real PostgreSQL clusters (scripts/pg in
 * a temp directory), real rpcqd processes on loopback, and the rpcq command.
 * Paths come from the environment CTest sets (RPCQ_SOURCE_DIR, RPCQD,
 * RPCQ_CLI, RPCQ_SHARED_DIR). Every function aborts the test (cmocka fail)
 * on a setup failure, so tests read straight.
 */
#ifndef RPCQ_HARNESS_H
#define RPCQ_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct harness_pg {
	char dir[256];	    /* cluster directory (removed on stop) */
	char conninfo[512]; /* "host=<dir> port=<port> dbname=rpcq user=rpcq" style */
	int port;
} harness_pg;

typedef struct harness_server {
	pid_t pid;
	char rpc_url[128];  /* tcp://127.0.0.1:<port> */
	char pub_url[128];  /* tcp://127.0.0.1:<port> (empty when the test gave its own --publish) */
	char http_url[128]; /* http://127.0.0.1:<port> (empty when the test gave its own --http) */
	char log_path[256]; /* its stderr */
} harness_server;

/* Starts a throwaway cluster (scripts/pg start) and creates the database. */
void harness_pg_start(harness_pg *pg);
void harness_pg_stop(harness_pg *pg);
/* pg_ctl restart, waiting until it accepts connections again. */
void harness_pg_restart(harness_pg *pg);
/* Stops the server process but keeps the directory (outage tests). */
void harness_pg_pause(harness_pg *pg);
void harness_pg_resume(harness_pg *pg);

/* Stops every rpcqd and destroys every cluster (and log directory) that this
 * process started through the harness and has not stopped yet, such as those
 * of a test that failed half-way. A cmocka teardown: per test
 * (cmocka_unit_test_teardown(t, harness_teardown)) where each test starts its
 * own, or as or within a group teardown. It also runs at exit, so nothing is
 * left behind either way. Never fails; returns 0. Blocks (seconds at most). */
int harness_teardown(void **state);

/* Runs `rpcqd migrate --database <conninfo>`; returns its exit status. */
int harness_migrate(const harness_pg *pg);

/* Starts rpcqd on free loopback ports against pg, with extra flags (NULL-
 * terminated, may be NULL), and waits (at most 15 s) until its RPC port
 * and its HTTP port accept TCP connections; stdout and stderr go to
 * log_path, in pg's directory. The HTTP URL is the harness's (http_url)
 * unless extra_args hold "--http URL" or "--http=URL" (then http_url is
 * empty and the test waits for its own). An early exit fails the test and
 * prints the end of the log. */
void harness_server_start(harness_server *s, const harness_pg *pg, const char *const *extra_args);
/* SIGTERM and wait (at most 10 s, then SIGKILL); returns its exit status. */
int harness_server_stop(harness_server *s);

/* Runs a command (argv NULL-terminated, argv[0] looked up in PATH) with
 * optional stdin text, capturing stdout and stderr into malloc'd strings the
 * caller frees (out/err may be NULL). Returns the exit status (or 128+signal).
 * Bounded by timeout_ms (then killed). The command runs in its own process
 * group, which is killed when it exits: nothing it started outlives it unless
 * it left the group (setsid, as pg_ctl does). */
int harness_run(const char *const *argv, const char *stdin_text, char **out, char **err, int timeout_ms);

/* The same with the command's stderr on a pseudo-terminal of 80 columns
 * (isatty(2) is true, as when a user runs it; stdin is empty, stdout a
 * pipe): *tty (may be NULL) receives every byte written to the terminal,
 * exactly as written, since the terminal's output processing is off ("\n"
 * stays "\n"; each "\r" is the command's). The terminal is not the child's
 * controlling one. Bounded by timeout_ms as harness_run. */
int harness_run_tty(const char *const *argv, char **out, char **tty, int timeout_ms);

/* Runs the rpcq CLI with --server url prepended; same as harness_run. */
int harness_cli(const char *url, const char *const *args, const char *stdin_text, char **out, char **err);
/* The same with its stderr on a pseudo-terminal, as harness_run_tty. */
int harness_cli_tty(const char *url, const char *const *args, char **out, char **tty);

/* Runs one SQL command on its own connection to conninfo, failing the test
 * if it does not succeed. */
void harness_sql(const char *conninfo, const char *sql);
/* Runs a query returning one row and column, an integer; fails the test
 * otherwise. */
long long harness_sql_scalar(const char *conninfo, const char *sql);

/* A lock held by the test to make a server wait, released once the server
 * has waited: harness_hold_start opens a connection of its own to conninfo,
 * BEGINs and runs lock_sql there (failing the test unless it succeeds), and
 * starts a thread that polls waiting_sql (a query answering one integer, on
 * another connection) until it is above 0, or timeout_ms pass, then keeps the
 * lock hold_ms more and commits. So whatever waits for the lock waits at
 * least hold_ms, however fast or slow the machine. harness_hold_finish joins
 * the thread and frees the hold (NULL: a no-op); it returns 1 when the
 * waiting was seen, 0 when the thread gave up at timeout_ms or its
 * connection failed (it printed why). Call it from the thread that started
 * the hold; neither call may overlap another on the same hold. */
typedef struct harness_hold harness_hold;
harness_hold *harness_hold_start(const char *conninfo, const char *lock_sql, const char *waiting_sql, int hold_ms,
				 int timeout_ms);
int harness_hold_finish(harness_hold *h);

/* A free TCP port on 127.0.0.1. */
int harness_free_port(void);

/* CLOCK_MONOTONIC in milliseconds, and a sleep that resumes after signals:
 * for polling with deadlines. */
int64_t harness_now_ms(void);
void harness_sleep_ms(int ms);

/* Path helpers: $RPCQ_SHARED_DIR/<rel>, $RPCQ_SOURCE_DIR/<rel> in a static
 * buffer per call site copy (caller copies if it needs several). */
const char *harness_shared_path(const char *rel, char *buf, size_t len);
const char *harness_source_path(const char *rel, char *buf, size_t len);

/* Reads a whole file into a malloc'd NUL-terminated buffer (*len optional). */
char *harness_read_file(const char *path, size_t *len);

/* n bytes as the rpcq command shows them (cli_human_bytes in
 * client/cli/common.c): "512 B", "12.5 KiB", "4.2 MiB". */
void harness_human_bytes(uint64_t n, char *out, size_t len);

/*
 * HTTP (harness_http.c). Nothing here fails the test because of what the
 * server answers (or that it does not answer): only when the harness itself
 * cannot work (out of memory, no socket). Every call is bounded in time.
 */

#define HARNESS_HTTP_TIMEOUT_MS 30000
#define HARNESS_HTTP_MAX_HEADERS 64

typedef struct harness_http_reply {
	long status; /* HTTP status of the final response; 0 when none came */
	char *head;  /* its header block as received (status line included) */
	char *body;  /* NUL-terminated after body_len bytes (may hold NULs) */
	size_t body_len;
	double seconds;	 /* the whole exchange */
	char error[512]; /* curl's reason when harness_http returned non-zero */
	int nheaders;
	const char *names[HARNESS_HTTP_MAX_HEADERS]; /* as sent; look up with harness_http_header */
	const char *values[HARNESS_HTTP_MAX_HEADERS];
	char *store; /* private */
} harness_http_reply;

/* One HTTP/1.1 request through libcurl on a connection of its own: method
 * ("GET", "POST", anything), url, request headers ("Name: value",
 * NULL-terminated, may be NULL; "Name:" removes one curl would send), and a
 * body (NULL: none; a POST without one sends an empty body). curl's own
 * Expect: 100-continue is not sent unless headers hold an Expect. Fills *out
 * (free with harness_http_reply_free, whatever the result) and returns 0
 * when a response came, else curl's error code with out->error set. At most
 * HARNESS_HTTP_TIMEOUT_MS, or timeout_ms for harness_http_timeout. */
int harness_http(const char *method, const char *url, const char *const *headers, const void *body, size_t len,
		 harness_http_reply *out);
int harness_http_timeout(const char *method, const char *url, const char *const *headers, const void *body, size_t len,
			 int timeout_ms, harness_http_reply *out);
/* The value of a response header (name case-insensitive, the first when
 * sent twice), or NULL; valid until the reply is freed. */
const char *harness_http_header(const harness_http_reply *r, const char *name);
void harness_http_reply_free(harness_http_reply *r);

/* A Server-Sent Events reader: GET url with headers, read event by event
 * with a deadline, closed (hanging up) whenever the test likes. One thread
 * at a time per reader. */
typedef struct harness_sse harness_sse;

typedef struct harness_sse_event {
	char id[64];	 /* "" when the event had no id: line */
	char event[256]; /* "" when it had no event: line */
	char *data;	 /* data: lines joined by '\n'; malloc'd, harness_sse_event_free */
} harness_sse_event;

/* Starts the request and waits up to timeout_ms for the response head.
 * Never NULL; harness_sse_status is 0 when no head came. Close with
 * harness_sse_close. */
harness_sse *harness_sse_open(const char *url, const char *const *headers, int timeout_ms);
long harness_sse_status(const harness_sse *s);
const char *harness_sse_header(const harness_sse *s, const char *name);
/* The next event (a block that had an id, event or data line), reading for
 * up to timeout_ms: 1 with *ev filled, 0 when none came in time, -1 when the
 * stream ended (harness_sse_error says how). Comment lines are counted,
 * retry: lines remembered, neither is an event. */
int harness_sse_next(harness_sse *s, int timeout_ms, harness_sse_event *ev);
void harness_sse_event_free(harness_sse_event *ev);
/* Reads an idle stream until it has shown n comment lines (": keepalive")
 * in all or timeout_ms pass; returns how many it has shown. Fails the test
 * if an event comes meanwhile. */
int harness_sse_wait_comments(harness_sse *s, int n, int timeout_ms);
int harness_sse_comments(const harness_sse *s);
/* The first line of the body (NULL before one came), the last retry: value
 * (-1: none, -2: not a number), every body byte so far, why it ended. */
const char *harness_sse_first_line(const harness_sse *s);
long harness_sse_retry(const harness_sse *s);
const char *harness_sse_text(const harness_sse *s, size_t *len);
const char *harness_sse_error(const harness_sse *s);
/* Hangs up and frees; NULL is a no-op. */
void harness_sse_close(harness_sse *s);

/* Raw TCP for what no HTTP client sends. The port of "http://host:port". */
int harness_url_port(const char *url);
/* A connected socket to 127.0.0.1:<url's port>, TCP_NODELAY; fails the test
 * when the connection is refused. The caller closes it. */
int harness_raw_connect(const char *url);
/* Sends every byte (within HARNESS_HTTP_TIMEOUT_MS); 0, or -1 when the peer
 * closed or reset the connection first. Never raises SIGPIPE. */
int harness_raw_send(int fd, const void *data, size_t len);
/* Reads what comes for up to timeout_ms: until the peer closes (or resets)
 * the connection, or, with until_response, until one whole response (head
 * and Content-Length body) is in. Returns the bytes, malloc'd and
 * NUL-terminated (*len without the NUL); *closed (may be NULL) is 1 when
 * the peer closed. */
char *harness_raw_read(int fd, int timeout_ms, int until_response, size_t *len, int *closed);
/* Connects, sends req, reads until close or timeout_ms, closes. */
char *harness_raw_exchange(const char *url, const void *req, size_t req_len, int timeout_ms, size_t *len, int *closed);

#endif
