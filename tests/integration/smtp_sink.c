/* A real SMTP server on loopback for the billing tests (smtp_sink.h). */
#include "smtp_sink.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"

#define PYTHON "/usr/bin/python3"
#define MAX_ARGS 16

void smtp_sink_start(smtp_sink *s, const char *dir, int port_wanted, const char *scheme, const char *const *args)
{
	char script[512];
	harness_source_path("tests/integration/smtp_sink.py", script, sizeof(script));
	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	char log[400], ready[400];
	snprintf(log, sizeof(log), "%s/stderr", s->dir);
	snprintf(ready, sizeof(ready), "%s/ready", s->dir);
	for (int attempt = 0; attempt < (port_wanted > 0 ? 1 : 3); attempt++) {
		s->port = port_wanted > 0 ? port_wanted : harness_free_port();
		char port[16];
		snprintf(port, sizeof(port), "%d", s->port);
		const char *argv[MAX_ARGS + 7] = {PYTHON, script, "--port", port, "--dir", s->dir};
		int n = 6;
		for (; args && *args; args++) {
			assert_true(n < MAX_ARGS + 6);
			argv[n++] = *args;
		}
		argv[n] = NULL;
		unlink(ready);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			setpgid(0, 0);
			int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execv(PYTHON, (char *const *)argv);
			_exit(127);
		}
		setpgid(pid, pid);
		for (int64_t deadline = harness_now_ms() + 10000; harness_now_ms() < deadline; harness_sleep_ms(20)) {
			if (access(ready, F_OK) == 0) {
				s->pid = pid;
				snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d", scheme, s->port);
				return;
			}
			if (waitpid(pid, NULL, WNOHANG) == pid)
				break; /* exited: the port was taken, most likely */
		}
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	char *text = harness_read_file(log, NULL);
	fail_msg("smtp_sink.py did not start:\n%s", text ? text : "");
}

void smtp_sink_stop(smtp_sink *s)
{
	if (s->pid <= 0)
		return;
	kill(-s->pid, SIGTERM);
	for (int64_t deadline = harness_now_ms() + 5000; waitpid(s->pid, NULL, WNOHANG) != s->pid;
	     harness_sleep_ms(10)) {
		if (harness_now_ms() > deadline) {
			kill(-s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
			break;
		}
	}
	s->pid = 0;
}

size_t smtp_sink_log(const smtp_sink *s, smtp_sink_entry *out, size_t max)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/log", s->dir);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t n = 0;
	while (n < max && fscanf(f, "%d %d %127s %127s", &out[n].n, &out[n].client_port, out[n].from, out[n].to) == 4)
		n++;
	fclose(f);
	return n;
}
