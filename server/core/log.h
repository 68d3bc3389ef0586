/*
 * Logging: one line per event on stderr,
 *   2026-11-23T10:00:00.123Z INFO  [req=abc123] message
 * with the calling thread's request id (set by the worker for the duration of
 * a call) on every line. Thread-safe; each line is one write(2).
 */
#ifndef RPCQ_LOG_H
#define RPCQ_LOG_H

#include <rpcq/export.h>

typedef enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
} log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
/* "debug", "info", "warn", "error": returns 0 and sets *out, or -1. */
int log_parse_level(const char *name, log_level *out);

/* The request id printed on this thread's lines; NULL clears it. The string
 * must stay valid until cleared. */
void log_set_request_id(const char *request_id);

void log_msg(log_level level, const char *fmt, ...) RPCQ_PRINTF(2, 3);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
