/*
 * Test harness: throwaway PostgreSQL clusters through scripts/pg, rpcqd
 * processes on free loopback ports, a bounded fork/exec with captured
 * output for every command a test runs (its stderr on a pipe, or on a
 * pseudo-terminal for what a command shows only on a terminal), and locks
 * held to make a server wait. A setup failure fails the running
 * cmocka test with a message that says what failed and shows the output of
 * the failing command, so a test body never checks the harness's results.
 *
 * Nothing started here outlives the test process, pass or fail. Every cluster,
 * rpcqd and log directory is recorded until the test stops it; what a failed
 * test left behind is stopped and removed by harness_teardown (a cmocka
 * teardown) or, at the latest, when the process exits (atexit). For a process
 * killed outright (a CTest timeout), children get PR_SET_PDEATHSIG and
 * clusters are started with RPCQ_PG_OWNER_PID, so that a watcher of
 * scripts/pg stops and removes them once the process is gone. The harness
 * allocates with plain malloc (the
 * contract of harness_run's output), not rpcq_alloc: tests that count or fail
 * rpcq allocations must not see the harness's.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "harness.h"

#define PG_TIMEOUT_MS 120000
#define MIGRATE_TIMEOUT_MS 120000
#define CLI_TIMEOUT_MS 60000
#define SERVER_START_TIMEOUT_MS 15000
#define SERVER_STOP_TIMEOUT_MS 10000
#define SERVER_START_ATTEMPTS 3
#define LOG_TAIL_LINES 40
#define REPORT_LINES 400
#define MAX_ARGS 64
#define CLEANUP_TERM_MS 5000
#define CLEANUP_RUN_MS 60000
#define MAX_LIVE 64

int64_t harness_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static const char *env_or_fail(const char *name)
{
	const char *v = getenv(name);
	if (v == NULL || v[0] == '\0')
		fail_msg("harness: environment variable %s is not set (run the test through ctest)", name);
	return v;
}

/* Growable output buffer of one child stream. */
struct sink {
	char *buf;
	size_t len;
	size_t cap;
};

static void sink_append(struct sink *s, const char *data, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (s->len + n + 1 > cap)
			cap *= 2;
		char *p = realloc(s->buf, cap);
		if (p == NULL)
			fail_msg("harness_run: out of memory capturing %zu bytes of output", s->len + n);
		s->buf = p;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

static char *sink_take(struct sink *s)
{
	if (s->buf == NULL)
		sink_append(s, "", 0);
	char *p = s->buf;
	s->buf = NULL;
	return p;
}

static int decode_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

/* Writes to a child that has exited must return EPIPE, not kill the test. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = 0;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

/* In the child between fork and exec: only async-signal-safe calls. The
 * child dies with the test process and gets back the default SIGPIPE (an
 * ignored signal would stay ignored across exec). */
static void child_prepare(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void child_exec_failed(const char *what)
{
	const char *msg = "harness: cannot execute ";
	ssize_t ignored = write(STDERR_FILENO, msg, strlen(msg));
	ignored = write(STDERR_FILENO, what, strlen(what));
	ignored = write(STDERR_FILENO, "\n", 1);
	(void)ignored;
	_exit(127);
}

static void set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);
	if (flags >= 0)
		fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

static void set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Kills the child's process group (a shell's children too) and reaps it. */
static int kill_and_reap(pid_t pid)
{
	int status = 0;
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return decode_status(status);
}

/*
 * What this process started and has not stopped yet: clusters (removed with
 * scripts/pg destroy), directories (removed) and rpcqd processes (SIGTERM,
 * then SIGKILL). Tests may call the harness from several threads, hence the
 * lock. Cleanup never fails a test: it runs in teardowns and at exit, where a
 * cmocka failure has nowhere to go; it does its best and says what it could
 * not do on stderr.
 */
enum live_kind { LIVE_NONE, LIVE_CLUSTER, LIVE_DIR, LIVE_PROCESS };

struct live {
	enum live_kind kind;
	pid_t pid;
	char path[256];
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct live live[MAX_LIVE];
static pid_t live_owner; /* a forked child of a test must not clean up its parent's things */
static int live_atexit;	 /* inherited across fork like the registration itself */

static void cleanup_at_exit(void);

static void live_add(enum live_kind kind, pid_t pid, const char *path)
{
	int i;
	pthread_mutex_lock(&live_lock);
	if (live_owner != getpid()) {
		/* First use, or first use in a forked child: what the parent
		 * started is the parent's to clean up. */
		memset(live, 0, sizeof(live));
		live_owner = getpid();
		if (!live_atexit && atexit(cleanup_at_exit) == 0)
			live_atexit = 1;
	}
	for (i = 0; i < MAX_LIVE && live[i].kind != LIVE_NONE; i++)
		;
	if (i < MAX_LIVE) {
		live[i].kind = kind;
		live[i].pid = pid;
		snprintf(live[i].path, sizeof(live[i].path), "%s", path ? path : "");
	}
	pthread_mutex_unlock(&live_lock);
	if (i == MAX_LIVE)
		fail_msg("harness: more than %d clusters, servers and directories alive at once", MAX_LIVE);
}

static void live_remove(enum live_kind kind, pid_t pid, const char *path)
{
	pthread_mutex_lock(&live_lock);
	for (int i = 0; i < MAX_LIVE; i++) {
		if (live[i].kind == kind && live[i].pid == pid && strcmp(live[i].path, path ? path : "") == 0) {
			live[i].kind = LIVE_NONE;
			break;
		}
	}
	pthread_mutex_unlock(&live_lock);
}

/* Takes one entry of the given kind out of the registry; 0 when none is left. */
static int live_take(enum live_kind kind, struct live *out)
{
	int found = 0;
	pthread_mutex_lock(&live_lock);
	for (int i = 0; i < MAX_LIVE && !found; i++) {
		if (live[i].kind == kind && live_owner == getpid()) {
			*out = live[i];
			live[i].kind = LIVE_NONE;
			found = 1;
		}
	}
	pthread_mutex_unlock(&live_lock);
	return found;
}

/* Runs a command with no input and no output, bounded; -1 if it could not
 * run or was killed at the deadline. Unlike harness_run it never fails the
 * test, so cleanup can use it anywhere. */
static int run_quietly(const char *const *argv, int timeout_ms)
{
	int status = 0;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		setpgid(0, 0);
		child_prepare();
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		execvp(argv[0], (char *const *)argv);
		child_exec_failed(argv[0]);
	}
	setpgid(pid, pid);
	int64_t deadline = harness_now_ms() + timeout_ms;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return decode_status(status);
		if (w < 0 && errno != EINTR)
			return -1;
		if (harness_now_ms() >= deadline) {
			kill_and_reap(pid);
			return -1;
		}
		harness_sleep_ms(10);
	}
}

/* SIGTERM, a bounded wait, then SIGKILL. */
static void stop_process(pid_t pid)
{
	int status;
	kill(pid, SIGTERM);
	int64_t deadline = harness_now_ms() + CLEANUP_TERM_MS;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			return;
		if (harness_now_ms() >= deadline)
			break;
		harness_sleep_ms(10);
	}
	fprintf(stderr, "harness: process %ld ignored SIGTERM for %d ms; killed\n", (long)pid, CLEANUP_TERM_MS);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

static void cleanup_all(void)
{
	struct live l;
	/* Servers first: they hold connections to the clusters. */
	while (live_take(LIVE_PROCESS, &l))
		stop_process(l.pid);
	while (live_take(LIVE_CLUSTER, &l)) {
		const char *src = getenv("RPCQ_SOURCE_DIR");
		char script[512];
		int rc = -1;
		if (src != NULL && (size_t)snprintf(script, sizeof(script), "%s/scripts/pg", src) < sizeof(script)) {
			const char *argv[] = {script, "destroy", l.path, NULL};
			rc = run_quietly(argv, CLEANUP_RUN_MS);
		}
		if (rc != 0)
			fprintf(stderr,
				"harness: could not destroy the cluster in %s (its watcher removes it at exit)\n",
				l.path);
	}
	while (live_take(LIVE_DIR, &l)) {
		const char *argv[] = {"rm", "-rf", "--", l.path, NULL};
		if (run_quietly(argv, CLEANUP_RUN_MS) != 0)
			fprintf(stderr, "harness: could not remove %s\n", l.path);
	}
}

static void cleanup_at_exit(void)
{
	cleanup_all();
}

int harness_teardown(void **state)
{
	(void)state;
	cleanup_all();
	return 0;
}

/* A pseudo-terminal for a child's stderr, as a pipe pair: fds[0] the
 * master (the harness reads it), fds[1] the terminal. Output processing is
 * off, so the master reads the bytes exactly as written ("\n" stays "\n";
 * every "\r" is the command's own). 80 columns, as a default terminal. */
static void open_tty(int fds[2])
{
	struct winsize ws = {.ws_row = 24, .ws_col = 80};
	if (openpty(&fds[0], &fds[1], NULL, NULL, &ws) != 0)
		fail_msg("harness_run_tty: openpty: %s", strerror(errno));
	struct termios t;
	if (tcgetattr(fds[1], &t) != 0)
		fail_msg("harness_run_tty: tcgetattr: %s", strerror(errno));
	t.c_oflag &= ~(tcflag_t)OPOST;
	if (tcsetattr(fds[1], TCSANOW, &t) != 0)
		fail_msg("harness_run_tty: tcsetattr: %s", strerror(errno));
}

/* harness_run, with the child's stderr on a pseudo-terminal when err_tty.
 * A pipe's reader sees end of file once every writer is gone; a terminal's
 * master sees EIO instead, after the bytes still buffered: either ends the
 * stream. */
static int run_child(const char *const *argv, const char *stdin_text, char **out, char **err, int timeout_ms,
		     int err_tty)
{
	int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
	struct sink so = {0}, se = {0};
	const char *in_text = stdin_text ? stdin_text : "";
	size_t in_len = strlen(in_text), in_off = 0;
	int status = 0, result;

	if (argv == NULL || argv[0] == NULL)
		fail_msg("harness_run: empty argv");
	ignore_sigpipe();
	if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0)
		fail_msg("harness_run: pipe: %s", strerror(errno));
	if (err_tty)
		open_tty(err_pipe);
	else if (pipe(err_pipe) != 0)
		fail_msg("harness_run: pipe: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		set_cloexec(in_pipe[i]);
		set_cloexec(out_pipe[i]);
		set_cloexec(err_pipe[i]);
	}

	pid_t pid = fork();
	if (pid < 0)
		fail_msg("harness_run: fork for %s: %s", argv[0], strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		child_prepare();
		dup2(in_pipe[0], STDIN_FILENO);
		dup2(out_pipe[1], STDOUT_FILENO);
		dup2(err_pipe[1], STDERR_FILENO);
		execvp(argv[0], (char *const *)argv);
		child_exec_failed(argv[0]);
	}
	/* Also in the parent, so a kill of the group cannot race the child's setpgid. */
	setpgid(pid, pid);
	close_fd(&in_pipe[0]);
	close_fd(&out_pipe[1]);
	close_fd(&err_pipe[1]);
	set_nonblock(in_pipe[1]);
	set_nonblock(out_pipe[0]);
	set_nonblock(err_pipe[0]);
	if (in_len == 0)
		close_fd(&in_pipe[1]);

	int64_t deadline = harness_now_ms() + timeout_ms;
	int timed_out = 0;
	while (out_pipe[0] >= 0 || err_pipe[0] >= 0 || in_pipe[1] >= 0) {
		int64_t left = deadline - harness_now_ms();
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		struct pollfd pfd[3];
		int n = 0, io = -1, oo = -1, eo = -1;
		if (in_pipe[1] >= 0) {
			io = n;
			pfd[n++] = (struct pollfd){.fd = in_pipe[1], .events = POLLOUT};
		}
		if (out_pipe[0] >= 0) {
			oo = n;
			pfd[n++] = (struct pollfd){.fd = out_pipe[0], .events = POLLIN};
		}
		if (err_pipe[0] >= 0) {
			eo = n;
			pfd[n++] = (struct pollfd){.fd = err_pipe[0], .events = POLLIN};
		}
		int r = poll(pfd, (nfds_t)n, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_msg("harness_run: poll: %s", strerror(errno));
		if (io >= 0 && pfd[io].revents) {
			ssize_t w = write(in_pipe[1], in_text + in_off, in_len - in_off);
			if (w > 0)
				in_off += (size_t)w;
			/* EPIPE: the child does not read its input; that is its business. */
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len)
				close_fd(&in_pipe[1]);
		}
		int fds[2] = {oo, eo};
		int *pipes[2] = {&out_pipe[0], &err_pipe[0]};
		struct sink *sinks[2] = {&so, &se};
		for (int k = 0; k < 2; k++) {
			if (fds[k] < 0 || pfd[fds[k]].revents == 0)
				continue;
			char chunk[8192];
			ssize_t got = read(*pipes[k], chunk, sizeof(chunk));
			if (got > 0)
				sink_append(sinks[k], chunk, (size_t)got);
			else if (got == 0 || (errno != EAGAIN && errno != EINTR))
				close_fd(pipes[k]);
		}
	}

	/* The streams are closed; the child normally exits at once, but is
	 * still bounded by the same deadline. */
	while (!timed_out) {
		siginfo_t info;
		memset(&info, 0, sizeof(info));
		int w = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
		if (w == 0 && info.si_pid == pid)
			break;
		if (w < 0 && errno != EINTR)
			fail_msg("harness_run: waitid for %s: %s", argv[0], strerror(errno));
		if (harness_now_ms() >= deadline)
			timed_out = 1;
		else
			harness_sleep_ms(5);
	}
	if (timed_out) {
		result = kill_and_reap(pid);
		print_message("harness_run: %s did not finish within %d ms; killed\n", argv[0], timeout_ms);
	} else {
		/* Whatever the child left behind in its process group dies with it;
		 * the unreaped zombie keeps the group id from being reused meanwhile. */
		kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		result = decode_status(status);
	}
	close_fd(&in_pipe[1]);
	close_fd(&out_pipe[0]);
	close_fd(&err_pipe[0]);

	if (out)
		*out = sink_take(&so);
	if (err)
		*err = sink_take(&se);
	free(so.buf);
	free(se.buf);
	return result;
}

int harness_run(const char *const *argv, const char *stdin_text, char **out, char **err, int timeout_ms)
{
	return run_child(argv, stdin_text, out, err, timeout_ms, 0);
}

int harness_run_tty(const char *const *argv, char **out, char **tty, int timeout_ms)
{
	return run_child(argv, NULL, out, tty, timeout_ms, 1);
}

/* argv of the rpcq CLI with --server url and args, in argv[MAX_ARGS]. */
static void cli_argv(const char **argv, const char *url, const char *const *args)
{
	int n = 0;
	argv[n++] = env_or_fail("RPCQ_CLI");
	argv[n++] = "--server";
	argv[n++] = url;
	for (int i = 0; args != NULL && args[i] != NULL; i++) {
		if (n >= MAX_ARGS - 1)
			fail_msg("harness_cli: more than %d arguments", MAX_ARGS - 4);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
}

int harness_cli(const char *url, const char *const *args, const char *stdin_text, char **out, char **err)
{
	const char *argv[MAX_ARGS];
	cli_argv(argv, url, args);
	return harness_run(argv, stdin_text, out, err, CLI_TIMEOUT_MS);
}

int harness_cli_tty(const char *url, const char *const *args, char **out, char **tty)
{
	const char *argv[MAX_ARGS];
	cli_argv(argv, url, args);
	return harness_run_tty(argv, out, tty, CLI_TIMEOUT_MS);
}

/* A socket bound to 127.0.0.1:<free port>; *port receives the port. */
static int bind_free_port(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		fail_msg("harness_free_port: socket: %s", strerror(errno));
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	socklen_t len = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		int e = errno;
		close(fd);
		fail_msg("harness_free_port: bind 127.0.0.1:0: %s", strerror(e));
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

int harness_free_port(void)
{
	int port;
	close(bind_free_port(&port));
	return port;
}

/* Whether something accepts TCP connections on 127.0.0.1:port. */
static int port_accepts(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static const char *join_path(const char *env, const char *rel, char *buf, size_t len)
{
	const char *base = env_or_fail(env);
	int n = snprintf(buf, len, "%s/%s", base, rel);
	if (n < 0 || (size_t)n >= len)
		fail_msg("harness: path %s/%s does not fit in %zu bytes", base, rel, len);
	return buf;
}

const char *harness_shared_path(const char *rel, char *buf, size_t len)
{
	return join_path("RPCQ_SHARED_DIR", rel, buf, len);
}

const char *harness_source_path(const char *rel, char *buf, size_t len)
{
	return join_path("RPCQ_SOURCE_DIR", rel, buf, len);
}

/* The file's contents, or NULL (errno set) when it cannot be read. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	struct sink s = {0};
	char chunk[8192];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		sink_append(&s, chunk, got);
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(s.buf);
		errno = EIO;
		return NULL;
	}
	if (len)
		*len = s.len;
	return sink_take(&s);
}

char *harness_read_file(const char *path, size_t *len)
{
	char *p = read_file(path, len);
	if (p == NULL)
		fail_msg("harness_read_file: cannot read %s: %s", path, strerror(errno));
	return p;
}

/* Where a sanitizer's report begins in a log, or NULL. */
static char *sanitizer_report(char *text)
{
	static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
					    "runtime error:", "WARNING: ThreadSanitizer"};
	char *first = NULL;
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		char *m = strstr(text, marks[i]);
		if (m != NULL && (first == NULL || m < first))
			first = m;
	}
	while (first != NULL && first > text && first[-1] != '\n')
		first--;
	return first;
}

/* Prints a log for a failure message: a sanitizer's report whole (up to
 * REPORT_LINES lines), else the last LOG_TAIL_LINES lines. */
static void print_log_tail(const char *path)
{
	char *text = read_file(path, NULL);
	if (text == NULL) {
		print_error("(no log at %s)\n", path);
		return;
	}
	size_t n = strlen(text);
	const char *what = "end";
	char *start = sanitizer_report(text);
	if (start != NULL) {
		what = "sanitizer report";
		char *end = start;
		for (int lines = 0; *end != '\0' && lines < REPORT_LINES; end++)
			lines += *end == '\n';
		*end = '\0';
		n = (size_t)(end - text);
	} else {
		start = text + n;
		int lines = 0;
		while (start > text && lines <= LOG_TAIL_LINES) {
			start--;
			if (*start == '\n' && start + 1 < text + n)
				lines++;
		}
		if (lines > LOG_TAIL_LINES)
			start++;
	}
	print_error("---- %s of %s ----\n%s%s---- end ----\n", what, path, start,
		    n > 0 && text[n - 1] != '\n' ? "\n" : "");
	free(text);
}

/* Runs scripts/pg <cmd> <dir>; on failure fails the test with its stderr.
 * Returns its stdout (trimmed), malloc'd. */
static char *run_pg_script(const char *cmd, const char *dir)
{
	char script[512], owner[32];
	harness_source_path("scripts/pg", script, sizeof(script));
	snprintf(owner, sizeof(owner), "RPCQ_PG_OWNER_PID=%ld", (long)getpid());
	const char *argv[] = {"env", owner, script, cmd, dir, NULL};
	char *out = NULL, *err = NULL;
	int rc = harness_run(argv, NULL, &out, &err, PG_TIMEOUT_MS);
	if (rc != 0) {
		print_error("%s", err);
		free(out);
		free(err);
		fail_msg("harness: scripts/pg %s %s exited with status %d", cmd, dir, rc);
	}
	free(err);
	size_t n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		out[--n] = '\0';
	return out;
}

static void pg_set_conninfo(harness_pg *pg, const char *conninfo)
{
	const char *p = strstr(conninfo, "port=");
	char *end = NULL;
	long port = p ? strtol(p + 5, &end, 10) : 0;
	if (p == NULL || end == p + 5 || port <= 0 || port > 65535)
		fail_msg("harness: scripts/pg printed no port in its conninfo: \"%s\"", conninfo);
	if (strlen(conninfo) >= sizeof(pg->conninfo))
		fail_msg("harness: conninfo \"%s\" is too long", conninfo);
	snprintf(pg->conninfo, sizeof(pg->conninfo), "%s", conninfo);
	pg->port = (int)port;
}

void harness_pg_start(harness_pg *pg)
{
	const char *tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	memset(pg, 0, sizeof(*pg));
	int n = snprintf(pg->dir, sizeof(pg->dir), "%s/rpcq-pg-XXXXXX", tmp);
	if (n < 0 || (size_t)n >= sizeof(pg->dir))
		fail_msg("harness_pg_start: TMPDIR %s is too long", tmp);
	if (mkdtemp(pg->dir) == NULL)
		fail_msg("harness_pg_start: mkdtemp %s: %s", pg->dir, strerror(errno));
	/* Recorded first, so that a start that fails half-way is cleaned up too. */
	live_add(LIVE_CLUSTER, 0, pg->dir);
	char *conninfo = run_pg_script("start", pg->dir);
	pg_set_conninfo(pg, conninfo);
	free(conninfo);
}

void harness_pg_stop(harness_pg *pg)
{
	if (pg->dir[0] == '\0')
		return;
	/* Immediate shutdown and removal: the cluster is thrown away. */
	free(run_pg_script("destroy", pg->dir));
	live_remove(LIVE_CLUSTER, 0, pg->dir);
	pg->dir[0] = '\0';
	pg->conninfo[0] = '\0';
	pg->port = 0;
}

/* After a restart or resume, clients hold the old conninfo: it must not change. */
static void pg_expect_same(harness_pg *pg, const char *cmd, const char *conninfo)
{
	if (strcmp(conninfo, pg->conninfo) != 0) {
		print_error("before: %s\nafter:  %s\n", pg->conninfo, conninfo);
		fail_msg("harness: scripts/pg %s %s came back with another conninfo", cmd, pg->dir);
	}
}

void harness_pg_restart(harness_pg *pg)
{
	char *conninfo = run_pg_script("restart", pg->dir);
	pg_expect_same(pg, "restart", conninfo);
	free(conninfo);
}

void harness_pg_pause(harness_pg *pg)
{
	free(run_pg_script("stop", pg->dir));
}

void harness_pg_resume(harness_pg *pg)
{
	char *conninfo = run_pg_script("start", pg->dir);
	pg_expect_same(pg, "start", conninfo);
	free(conninfo);
}

int harness_migrate(const harness_pg *pg)
{
	const char *argv[] = {env_or_fail("RPCQD"), "migrate", "--database", pg->conninfo, NULL};
	char *out = NULL, *err = NULL;
	int rc = harness_run(argv, NULL, &out, &err, MIGRATE_TIMEOUT_MS);
	if (rc != 0)
		print_message("rpcqd migrate exited with status %d:\n%s%s", rc, out, err);
	free(out);
	free(err);
	return rc;
}

/* Starts rpcqd once. Returns 0 when it listens, 1 when it exited early
 * because a port was taken (worth another try), and fails the test otherwise. */
/* Whether args hold flag as "--flag URL" or "--flag=URL" (so "--http" is
 * not "--http-read-timeout-ms"). */
static int gives_flag(const char *const *args, const char *flag)
{
	size_t n = strlen(flag);
	for (int i = 0; args != NULL && args[i] != NULL; i++)
		if (strncmp(args[i], flag, n) == 0 && (args[i][n] == '\0' || args[i][n] == '='))
			return 1;
	return 0;
}

static int server_try_start(harness_server *s, const harness_pg *pg, const char *const *extra_args, const char *log_dir)
{
	const char *rpcqd = env_or_fail("RPCQD");
	int rpc_port, pub_port, http_port;
	/* The sockets bound at once so the ports differ. */
	int fd1 = bind_free_port(&rpc_port);
	int fd2 = bind_free_port(&pub_port);
	int fd3 = bind_free_port(&http_port);
	close(fd1);
	close(fd2);
	close(fd3);

	memset(s, 0, sizeof(*s));
	snprintf(s->rpc_url, sizeof(s->rpc_url), "tcp://127.0.0.1:%d", rpc_port);
	snprintf(s->pub_url, sizeof(s->pub_url), "tcp://127.0.0.1:%d", pub_port);
	snprintf(s->http_url, sizeof(s->http_url), "http://127.0.0.1:%d", http_port);
	int n = snprintf(s->log_path, sizeof(s->log_path), "%s/rpcqd-%d.log", log_dir, rpc_port);
	if (n < 0 || (size_t)n >= sizeof(s->log_path))
		fail_msg("harness_server_start: log path in %s is too long", log_dir);

	const char *argv[MAX_ARGS];
	int argc = 0;
	argv[argc++] = rpcqd;
	argv[argc++] = "--listen";
	argv[argc++] = s->rpc_url;
	/* The harness's own --publish and --http, unless the test gives its own. */
	if (!gives_flag(extra_args, "--publish")) {
		argv[argc++] = "--publish";
		argv[argc++] = s->pub_url;
	} else {
		s->pub_url[0] = '\0';
	}
	int own_http = !gives_flag(extra_args, "--http");
	if (own_http) {
		argv[argc++] = "--http";
		argv[argc++] = s->http_url;
	} else {
		s->http_url[0] = '\0';
	}
	if (pg != NULL) {
		argv[argc++] = "--database";
		argv[argc++] = pg->conninfo;
	}
	for (int i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
		if (argc >= MAX_ARGS - 1)
			fail_msg("harness_server_start: more than %d extra arguments", MAX_ARGS - 8);
		argv[argc++] = extra_args[i];
	}
	argv[argc] = NULL;

	int logfd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0)
		fail_msg("harness_server_start: cannot create %s: %s", s->log_path, strerror(errno));
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0)
		fail_msg("harness_server_start: /dev/null: %s", strerror(errno));

	pid_t pid = fork();
	if (pid < 0)
		fail_msg("harness_server_start: fork: %s", strerror(errno));
	if (pid == 0) {
		child_prepare();
		dup2(nullfd, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		execv(rpcqd, (char *const *)argv);
		child_exec_failed(rpcqd);
	}
	close(logfd);
	close(nullfd);
	s->pid = pid;
	live_add(LIVE_PROCESS, pid, NULL);

	int64_t deadline = harness_now_ms() + SERVER_START_TIMEOUT_MS;
	for (;;) {
		int status;
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			s->pid = 0;
			live_remove(LIVE_PROCESS, pid, NULL);
			char *log = read_file(s->log_path, NULL);
			int in_use =
				log != NULL && (strstr(log, "in use") != NULL || strstr(log, "EADDRINUSE") != NULL);
			free(log);
			if (in_use)
				return 1;
			print_log_tail(s->log_path);
			fail_msg("harness_server_start: rpcqd exited with status %d before listening on %s",
				 decode_status(status), s->rpc_url);
		}
		/* The HTTP listener may open after the RPC one: tests of the
		 * gateway must not race it. */
		if (port_accepts(rpc_port) && (!own_http || port_accepts(http_port)))
			return 0;
		if (harness_now_ms() >= deadline) {
			kill_and_reap(pid);
			s->pid = 0;
			live_remove(LIVE_PROCESS, pid, NULL);
			print_log_tail(s->log_path);
			fail_msg("harness_server_start: rpcqd did not listen on %s%s%s within %d ms", s->rpc_url,
				 own_http ? " and " : "", own_http ? s->http_url : "", SERVER_START_TIMEOUT_MS);
		}
		harness_sleep_ms(20);
	}
}

void harness_server_start(harness_server *s, const harness_pg *pg, const char *const *extra_args)
{
	char tmpl[256];
	const char *log_dir;
	if (pg != NULL && pg->dir[0] != '\0') {
		log_dir = pg->dir;
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(tmpl, sizeof(tmpl), "%s/rpcqd-log-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
		if (mkdtemp(tmpl) == NULL)
			fail_msg("harness_server_start: mkdtemp %s: %s", tmpl, strerror(errno));
		live_add(LIVE_DIR, 0, tmpl);
		log_dir = tmpl;
	}
	/* A port picked free can be taken before rpcqd binds it: try again. */
	for (int attempt = 1;; attempt++) {
		if (server_try_start(s, pg, extra_args, log_dir) == 0)
			return;
		if (attempt == SERVER_START_ATTEMPTS) {
			print_log_tail(s->log_path);
			fail_msg("harness_server_start: rpcqd found its ports taken %d times", attempt);
		}
	}
}

int harness_server_stop(harness_server *s)
{
	if (s->pid <= 0)
		return -1;
	pid_t pid = s->pid;
	int status = 0;
	live_remove(LIVE_PROCESS, pid, NULL);
	kill(pid, SIGTERM);
	int64_t deadline = harness_now_ms() + SERVER_STOP_TIMEOUT_MS;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			s->pid = 0;
			fail_msg("harness_server_stop: waitpid %ld: %s", (long)pid, strerror(errno));
		}
		if (harness_now_ms() >= deadline) {
			print_message("harness_server_stop: rpcqd (pid %ld) ignored SIGTERM for %d ms; killed\n",
				      (long)pid, SERVER_STOP_TIMEOUT_MS);
			s->pid = 0;
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return decode_status(status);
		}
		harness_sleep_ms(10);
	}
	s->pid = 0;
	int rc = decode_status(status);
	if (rc != 0) {
		print_message("harness_server_stop: rpcqd (pid %ld) exited with status %d\n", (long)pid, rc);
		print_log_tail(s->log_path);
	}
	return rc;
}

/* One admin connection per statement: tests call these rarely, and a fresh
 * connection never inherits a state a test left behind. */
static PGconn *admin_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("admin connection to %s: %s", conninfo, PQerrorMessage(c));
	return c;
}

void harness_sql(const char *conninfo, const char *sql)
{
	PGconn *c = admin_connect(conninfo);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("admin command %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

long long harness_sql_scalar(const char *conninfo, const char *sql)
{
	PGconn *c = admin_connect(conninfo);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 1)
		fail_msg("admin query %s: %s", sql, PQerrorMessage(c));
	long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return v;
}

/* The hold's thread never fails the test (cmocka's failures belong to the
 * test's thread): it notes what went wrong in why, for harness_hold_finish. */
struct harness_hold {
	PGconn *db; /* the held transaction; the thread's once started */
	char conninfo[512];
	char waiting_sql[1024];
	int hold_ms, timeout_ms;
	pthread_t thread;
	int seen;
	char why[2048];
};

/* waiting_sql's answer on c, or -1 (why set). */
static long long hold_poll(harness_hold *h, PGconn *c)
{
	PGresult *r = PQexec(c, h->waiting_sql);
	long long v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1)
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else
		snprintf(h->why, sizeof(h->why), "%.1023s: %.900s", h->waiting_sql, PQerrorMessage(c));
	PQclear(r);
	return v;
}

static void *hold_main(void *arg)
{
	harness_hold *h = arg;
	PGconn *c = PQconnectdb(h->conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(h->why, sizeof(h->why), "connection to %.511s: %.900s", h->conninfo, PQerrorMessage(c));
	} else {
		int64_t deadline = harness_now_ms() + h->timeout_ms;
		long long v;
		while ((v = hold_poll(h, c)) == 0 && harness_now_ms() < deadline)
			harness_sleep_ms(5);
		if (v > 0) {
			h->seen = 1;
			harness_sleep_ms(h->hold_ms);
		} else if (v == 0) {
			snprintf(h->why, sizeof(h->why), "nothing waited within %d ms: %.1023s", h->timeout_ms,
				 h->waiting_sql);
		}
	}
	PQfinish(c);
	/* Released whatever happened, so that the command goes on. */
	PGresult *r = PQexec(h->db, "COMMIT");
	PQclear(r);
	PQfinish(h->db);
	h->db = NULL;
	return NULL;
}

harness_hold *harness_hold_start(const char *conninfo, const char *lock_sql, const char *waiting_sql, int hold_ms,
				 int timeout_ms)
{
	harness_hold *h = calloc(1, sizeof(*h));
	if (h == NULL)
		fail_msg("harness_hold_start: out of memory");
	if (strlen(conninfo) >= sizeof(h->conninfo) || strlen(waiting_sql) >= sizeof(h->waiting_sql))
		fail_msg("harness_hold_start: conninfo or waiting_sql too long");
	snprintf(h->conninfo, sizeof(h->conninfo), "%s", conninfo);
	snprintf(h->waiting_sql, sizeof(h->waiting_sql), "%s", waiting_sql);
	h->hold_ms = hold_ms;
	h->timeout_ms = timeout_ms;
	h->db = admin_connect(conninfo);
	PGresult *r = PQexec(h->db, "BEGIN");
	PQclear(r);
	r = PQexec(h->db, lock_sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("harness_hold_start: %s: %s", lock_sql, PQerrorMessage(h->db));
	PQclear(r);
	if (pthread_create(&h->thread, NULL, hold_main, h) != 0)
		fail_msg("harness_hold_start: pthread_create failed");
	return h;
}

int harness_hold_finish(harness_hold *h)
{
	if (h == NULL)
		return 0;
	pthread_join(h->thread, NULL);
	int seen = h->seen;
	if (h->why[0] != '\0')
		print_message("harness_hold: %s\n", h->why);
	free(h);
	return seen;
}

void harness_human_bytes(uint64_t n, char *out, size_t len)
{
	if (n < 10 * 1024)
		snprintf(out, len, "%llu B", (unsigned long long)n);
	else if (n < 1024 * 1024)
		snprintf(out, len, "%.1f KiB", (double)n / 1024);
	else
		snprintf(out, len, "%.1f MiB", (double)n / (1024 * 1024));
}
