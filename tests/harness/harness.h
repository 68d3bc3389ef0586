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
#include <sys/types.h>

typedef struct harness_pg {
	char dir[256];	    /* cluster directory (removed on stop) */
	char conninfo[512]; /* "host=<dir> port=<port> dbname=rpcq user=rpcq" style */
	int port;
} harness_pg;

typedef struct harness_server {
	pid_t pid;
	char rpc_url[128]; /* tcp://127.0.0.1:<port> */
	char pub_url[128];
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
 * accepts TCP connections; stdout and stderr go to log_path, in pg's
 * directory. An early exit fails the test and prints the end of the log. */
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

/* Runs the rpcq CLI with --server url prepended; same as harness_run. */
int harness_cli(const char *url, const char *const *args, const char *stdin_text, char **out, char **err);

/* Runs one SQL command on its own connection to conninfo, failing the test
 * if it does not succeed. */
void harness_sql(const char *conninfo, const char *sql);
/* Runs a query returning one row and column, an integer; fails the test
 * otherwise. */
long long harness_sql_scalar(const char *conninfo, const char *sql);

/* A free TCP port on 127.0.0.1. */
int harness_free_port(void);

/* Path helpers: $RPCQ_SHARED_DIR/<rel>, $RPCQ_SOURCE_DIR/<rel> in a static
 * buffer per call site copy (caller copies if it needs several). */
const char *harness_shared_path(const char *rel, char *buf, size_t len);
const char *harness_source_path(const char *rel, char *buf, size_t len);

/* Reads a whole file into a malloc'd NUL-terminated buffer (*len optional). */
char *harness_read_file(const char *path, size_t *len);

#endif
