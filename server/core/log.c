/*
 * Logging: one line per event on stderr, "<UTC time> <LEVEL> [req=<id>] <message>".
 * A line is formatted into a stack buffer and written with one write(2), so
 * lines of concurrent threads never interleave (stderr is unbuffered, and a
 * write of up to PIPE_BUF bytes to a pipe is atomic). Control characters in
 * the message (a PostgreSQL error's newlines, say) become spaces so that one
 * event stays one line. The level is a process-wide atomic; the request id is
 * thread-local, set by the worker running a call.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Longer lines are cut (and end in "..."): a log line is not a data channel. */
#define LOG_LINE_MAX 4096

static atomic_int log_level_now = LOG_INFO;
static _Thread_local const char *log_request_id;

static const char *const level_names[] = {
	[LOG_DEBUG] = "debug",
	[LOG_INFO] = "info",
	[LOG_WARN] = "warn",
	[LOG_ERROR] = "error",
};

/* Padded to one width so that messages line up. */
static const char *const level_labels[] = {
	[LOG_DEBUG] = "DEBUG",
	[LOG_INFO] = "INFO ",
	[LOG_WARN] = "WARN ",
	[LOG_ERROR] = "ERROR",
};

void log_set_level(log_level level)
{
	if (level < LOG_DEBUG || level > LOG_ERROR)
		level = LOG_INFO;
	atomic_store_explicit(&log_level_now, (int)level, memory_order_relaxed);
}

log_level log_get_level(void)
{
	return (log_level)atomic_load_explicit(&log_level_now, memory_order_relaxed);
}

int log_parse_level(const char *name, log_level *out)
{
	if (name == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_set_request_id(const char *request_id)
{
	log_request_id = request_id;
}

/* Writes all of buf, retrying on EINTR and short writes. A failing stderr
 * is ignored: there is nowhere left to report it. */
static void write_all(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* Appends at most the room left; returns the new length (never past cap). */
static size_t append_text(char *line, size_t len, size_t cap, const char *text)
{
	size_t n = strlen(text);
	if (n > cap - len)
		n = cap - len;
	memcpy(line + len, text, n);
	return len + n;
}

void log_msg(log_level level, const char *fmt, ...)
{
	if (level < LOG_DEBUG || level > LOG_ERROR)
		level = LOG_ERROR;
	if ((int)level < atomic_load_explicit(&log_level_now, memory_order_relaxed))
		return;

	int saved_errno = errno;
	char line[LOG_LINE_MAX];
	/* One byte kept back for the newline. */
	size_t cap = sizeof(line) - 1;
	size_t len;

	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	len = strftime(line, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	int n = snprintf(line + len, cap - len, ".%03ldZ %s ", ts.tv_nsec / 1000000L, level_labels[level]);
	if (n > 0)
		len += (size_t)n < cap - len ? (size_t)n : cap - len;

	size_t start = len;
	const char *rid = log_request_id;
	if (rid != NULL && *rid != '\0') {
		len = append_text(line, len, cap, "[req=");
		len = append_text(line, len, cap, rid);
		len = append_text(line, len, cap, "] ");
	}

	va_list ap;
	va_start(ap, fmt);
	n = vsnprintf(line + len, cap - len + 1, fmt, ap);
	va_end(ap);
	if (n > 0) {
		if ((size_t)n > cap - len) {
			len = cap;
			memcpy(line + cap - 3, "...", 3);
		} else {
			len += (size_t)n;
		}
	}
	/* One event, one line: the request id may come from a client, and a
	 * message may quote a multi-line error. */
	for (size_t i = start; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 0x20 || ch == 0x7f)
			line[i] = ' ';
	}
	while (len > start && line[len - 1] == ' ')
		len--;
	line[len++] = '\n';
	write_all(line, len);
	errno = saved_errno;
}
