/*
 * A real SMTP server on loopback for the billing tests: smtp_sink.py
 * (aiosmtpd) in a process group of its own, keeping every message it
 * accepts in its directory (see the script for its log and the recipients
 * it refuses or delays).
 */
#ifndef RPCQ_TEST_SMTP_SINK_H
#define RPCQ_TEST_SMTP_SINK_H

#include <stddef.h>
#include <sys/types.h>

typedef struct smtp_sink {
	pid_t pid; /* 0: not running */
	int port;
	char dir[300];
	char url[64]; /* scheme://127.0.0.1:port */
} smtp_sink;

/* Starts the sink on port (0: a free one, another if that was taken
 * meanwhile) in dir, an existing directory, with the script's extra
 * arguments args (NULL-terminated; NULL: none), and waits until it is
 * ready; url gets scheme. Fails the test, with the script's stderr, if it
 * does not start. */
void smtp_sink_start(smtp_sink *s, const char *dir, int port, const char *scheme, const char *const *args);

/* Stops the sink (SIGTERM, then SIGKILL after 5 s); its directory stays. */
void smtp_sink_stop(smtp_sink *s);

/* A line of the sink's log: one per message it accepted, in order. */
typedef struct smtp_sink_entry {
	int n, client_port;
	char from[128], to[128]; /* to: the recipients, comma-separated */
} smtp_sink_entry;

/* The first max entries of the sink's log (none before its first message);
 * returns how many. */
size_t smtp_sink_log(const smtp_sink *s, smtp_sink_entry *out, size_t max);

#endif
