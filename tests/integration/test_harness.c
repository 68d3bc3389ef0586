/*
 * The test harness itself: throwaway PostgreSQL clusters side by side, their
 * restart and outage, harness_run's capture, input, exit statuses and
 * timeout, rpcqd started on free ports and stopped, and the cleanup of what a
 * failed test leaves running. Every other integration test stands on these,
 * so the cluster and process parts are proved with psql and /bin/sh alone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"

#define PSQL_TIMEOUT_MS 30000

static const char *psql_path(void)
{
	static const char pg15[] = "/usr/lib/postgresql/15/bin/psql";
	return access(pg15, X_OK) == 0 ? pg15 : "psql";
}

/* Runs one SQL command through psql; returns its exit status, *out its rows. */
static int psql(const harness_pg *pg, const char *sql, char **out)
{
	const char *argv[] = {psql_path(), "-X",	 "-q", "-At", "-v", "ON_ERROR_STOP=1",
			      "-d",	   pg->conninfo, "-c", sql,   NULL};
	char *err = NULL;
	int rc = harness_run(argv, NULL, out, &err, PSQL_TIMEOUT_MS);
	free(err);
	return rc;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_two_clusters_run_side_by_side_and_are_removed_on_stop(void **state)
{
	harness_pg a, b;
	char *out = NULL;
	(void)state;

	harness_pg_start(&a);
	harness_pg_start(&b);
	assert_int_not_equal(a.port, b.port);
	assert_string_not_equal(a.dir, b.dir);
	assert_non_null(strstr(a.conninfo, a.dir));

	assert_int_equal(psql(&a, "SELECT current_user || ' ' || current_database()", &out), 0);
	assert_string_equal(out, "rpcq rpcq\n");
	free(out);
	assert_int_equal(psql(&a, "CREATE TABLE only_in_a (x int)", NULL), 0);
	assert_int_equal(psql(&b, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'", &out), 0);
	assert_string_equal(out, "0\n");
	free(out);
	assert_int_equal(psql(&b, "SHOW fsync", &out), 0);
	assert_string_equal(out, "off\n");
	free(out);

	char dir[sizeof(a.dir)];
	snprintf(dir, sizeof(dir), "%s", a.dir);
	harness_pg a_copy = a;
	harness_pg_stop(&a);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_not_equal(psql(&a_copy, "SELECT 1", NULL), 0);
	assert_int_equal(psql(&b, "SELECT 1", &out), 0);
	assert_string_equal(out, "1\n");
	free(out);
	harness_pg_stop(&b);
}

static void test_cluster_listens_on_loopback_tcp_too(void **state)
{
	harness_pg pg;
	char conninfo[128], *out = NULL;
	(void)state;

	harness_pg_start(&pg);
	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d user=rpcq dbname=rpcq", pg.port);
	const char *argv[] = {psql_path(), "-X", "-At", "-d", conninfo, "-c", "SELECT 42", NULL};
	assert_int_equal(harness_run(argv, NULL, &out, NULL, PSQL_TIMEOUT_MS), 0);
	assert_string_equal(out, "42\n");
	free(out);
	harness_pg_stop(&pg);
}

static void test_restart_and_resume_keep_the_conninfo_and_the_data(void **state)
{
	harness_pg pg;
	char *out = NULL;
	(void)state;

	harness_pg_start(&pg);
	char before[sizeof(pg.conninfo)];
	snprintf(before, sizeof(before), "%s", pg.conninfo);
	assert_int_equal(psql(&pg, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)", NULL), 0);

	harness_pg_restart(&pg);
	assert_string_equal(pg.conninfo, before);
	assert_int_equal(psql(&pg, "SELECT x FROM kept", &out), 0);
	assert_string_equal(out, "7\n");
	free(out);

	harness_pg_pause(&pg);
	assert_int_not_equal(psql(&pg, "SELECT 1", NULL), 0);
	harness_pg_resume(&pg);
	assert_string_equal(pg.conninfo, before);
	assert_int_equal(psql(&pg, "SELECT x FROM kept", &out), 0);
	assert_string_equal(out, "7\n");
	free(out);
	harness_pg_stop(&pg);
}

static void test_run_captures_stdout_stderr_and_exit_status(void **state)
{
	const char *argv[] = {"/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3", NULL};
	char *out = NULL, *err = NULL;
	(void)state;

	assert_int_equal(harness_run(argv, NULL, &out, &err, 10000), 3);
	assert_string_equal(out, "to-out\n");
	assert_string_equal(err, "to-err\n");
	free(out);
	free(err);
}

static void test_run_gives_empty_strings_for_silent_commands(void **state)
{
	const char *argv[] = {"true", NULL};
	char *out = NULL, *err = NULL;
	(void)state;

	assert_int_equal(harness_run(argv, NULL, &out, &err, 10000), 0);
	assert_string_equal(out, "");
	assert_string_equal(err, "");
	free(out);
	free(err);
}

static void test_run_feeds_stdin_and_moves_a_megabyte_each_way(void **state)
{
	size_t n = 1024 * 1024;
	char *in = malloc(n + 1);
	char *out = NULL;
	(void)state;

	assert_non_null(in);
	for (size_t i = 0; i < n; i++)
		in[i] = (char)('a' + i % 26);
	in[n] = '\0';
	/* cat writes while the harness still writes: a blocking harness would deadlock. */
	const char *argv[] = {"cat", NULL};
	assert_int_equal(harness_run(argv, in, &out, NULL, 30000), 0);
	assert_int_equal(strlen(out), n);
	assert_memory_equal(out, in, n);
	free(out);
	free(in);
}

static void test_run_reports_a_signal_as_128_plus_its_number(void **state)
{
	const char *argv[] = {"/bin/sh", "-c", "kill -TERM $$", NULL};
	(void)state;

	assert_int_equal(harness_run(argv, NULL, NULL, NULL, 10000), 128 + 15);
}

static void test_run_reports_a_missing_program_as_127(void **state)
{
	const char *argv[] = {"/nonexistent/rpcq-no-such-program", NULL};
	char *err = NULL;
	(void)state;

	assert_int_equal(harness_run(argv, NULL, NULL, &err, 10000), 127);
	assert_non_null(strstr(err, "rpcq-no-such-program"));
	free(err);
}

static void test_run_kills_a_command_at_its_timeout(void **state)
{
	/* The background sleep holds stdout open: the timeout must not wait for EOF. */
	const char *argv[] = {"/bin/sh", "-c", "sleep 30 & sleep 30", NULL};
	(void)state;

	int64_t t0 = now_ms();
	assert_int_equal(harness_run(argv, NULL, NULL, NULL, 300), 128 + 9);
	assert_true(now_ms() - t0 < 5000);
}

static void test_free_port_can_be_bound_on_loopback(void **state)
{
	(void)state;
	int port = harness_free_port();
	assert_in_range(port, 1, 65535);

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

static void test_paths_and_files_are_read_from_the_source_tree(void **state)
{
	char path[512];
	size_t len = 0;
	(void)state;

	harness_source_path("tests/harness/harness.h", path, sizeof(path));
	char *text = harness_read_file(path, &len);
	assert_true(len > 0);
	assert_int_equal(strlen(text), len);
	assert_non_null(strstr(text, "harness_pg_start"));
	free(text);
	assert_non_null(strstr(harness_shared_path("DESIGN.md", path, sizeof(path)), "/DESIGN.md"));
}

static void test_server_listens_on_free_ports_and_exits_cleanly_on_stop(void **state)
{
	harness_pg pg;
	harness_server srv;
	char *out = NULL;
	(void)state;

	harness_pg_start(&pg);
	assert_int_equal(harness_migrate(&pg), 0);
	harness_server_start(&srv, &pg, NULL);
	assert_true(srv.pid > 0);
	assert_non_null(strstr(srv.rpc_url, "tcp://127.0.0.1:"));
	assert_non_null(strstr(srv.pub_url, "tcp://127.0.0.1:"));
	assert_string_not_equal(srv.rpc_url, srv.pub_url);
	assert_non_null(strstr(srv.log_path, pg.dir));

	const char *health[] = {"health", NULL};
	assert_int_equal(harness_cli(srv.rpc_url, health, NULL, &out, NULL), 0);
	free(out);

	assert_int_equal(harness_server_stop(&srv), 0);
	assert_int_equal(srv.pid, 0);
	assert_int_equal(harness_server_stop(&srv), -1);
	harness_pg_stop(&pg);
}

static void test_teardown_stops_servers_and_destroys_clusters_left_running(void **state)
{
	harness_pg pg;
	harness_server srv;
	(void)state;

	/* What a test that failed half-way leaves behind. */
	harness_pg_start(&pg);
	assert_int_equal(harness_migrate(&pg), 0);
	harness_server_start(&srv, &pg, NULL);
	pid_t pid = srv.pid;

	assert_int_equal(harness_teardown(NULL), 0);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(access(pg.dir, F_OK), -1);
	assert_int_not_equal(psql(&pg, "SELECT 1", NULL), 0);
	/* Nothing is left to clean up a second time. */
	assert_int_equal(harness_teardown(NULL), 0);
}

static void test_a_cluster_left_running_is_destroyed_when_the_process_exits(void **state)
{
	int fds[2];
	char dir[sizeof(((harness_pg *)0)->dir)] = "";
	(void)state;

	assert_int_equal(pipe(fds), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* A test program that forgets its cluster, then exits. */
		harness_pg pg;
		close(fds[0]);
		harness_pg_start(&pg);
		ssize_t w = write(fds[1], pg.dir, strlen(pg.dir) + 1);
		exit(w > 0 ? 0 : 1);
	}
	close(fds[1]);
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(dir) && (n = read(fds[0], dir + got, sizeof(dir) - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	int status = 0;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(got > 1);
	/* Gone by the time the process has exited: its atexit handler did it. */
	assert_int_equal(access(dir, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_clusters_run_side_by_side_and_are_removed_on_stop),
		cmocka_unit_test(test_cluster_listens_on_loopback_tcp_too),
		cmocka_unit_test(test_restart_and_resume_keep_the_conninfo_and_the_data),
		cmocka_unit_test(test_run_captures_stdout_stderr_and_exit_status),
		cmocka_unit_test(test_run_gives_empty_strings_for_silent_commands),
		cmocka_unit_test(test_run_feeds_stdin_and_moves_a_megabyte_each_way),
		cmocka_unit_test(test_run_reports_a_signal_as_128_plus_its_number),
		cmocka_unit_test(test_run_reports_a_missing_program_as_127),
		cmocka_unit_test(test_run_kills_a_command_at_its_timeout),
		cmocka_unit_test(test_free_port_can_be_bound_on_loopback),
		cmocka_unit_test(test_paths_and_files_are_read_from_the_source_tree),
		cmocka_unit_test(test_server_listens_on_free_ports_and_exits_cleanly_on_stop),
		cmocka_unit_test(test_teardown_stops_servers_and_destroys_clusters_left_running),
		cmocka_unit_test(test_a_cluster_left_running_is_destroyed_when_the_process_exits),
	};
	return cmocka_run_group_tests(tests, NULL, harness_teardown);
}
