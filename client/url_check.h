/*
 * Server URLs sorted by what they would do to a secret sent over them: kept
 * on this host, encrypted, plain text to loopback, or plain text over the
 * network. rpcq_client_create asks this of every server URL before it opens
 * a socket, so that an API key is never offered in plain text to another
 * machine unless the caller allowed it. Pure: no resolver, no sockets.
 */
#ifndef RPCQ_URL_CHECK_H
#define RPCQ_URL_CHECK_H

#include <stddef.h>

typedef enum url_class {
	/* No scheme nng knows, or a network URL whose host cannot be read
	 * (empty, unbalanced brackets, a bare IPv6 address, a bad port). */
	URL_INVALID = 0,
	/* ipc://, unix://, abstract:// and inproc://: never leaves the host. */
	URL_LOCAL,
	/* tls+tcp://, tls+tcp4://, tls+tcp6://, wss://, wss4://, wss6://. */
	URL_ENCRYPTED,
	/* tcp://, tcp4://, tcp6://, ws://, ws4://, ws6:// to 127.0.0.0/8, ::1,
	 * ::ffff:127.0.0.0/104 or "localhost". */
	URL_PLAIN_LOOPBACK,
	/* Plain text to any other host, names included: a name other than
	 * "localhost" is not resolved, so it counts as another machine. */
	URL_PLAIN_REMOTE,
} url_class;

/* The class of url (scheme case-insensitive, as nng reads it). NULL is
 * URL_INVALID. Thread-safe, does not block. */
url_class url_classify(const char *url);

/* The host of a network URL into host (cap bytes; an IPv6 address without
 * its brackets): 1, or 2 when it was bracketed; -1 when the URL has none
 * that can be read. */
int url_host(const char *url, char *host, size_t cap);

/* 1 when host is an IPv4 or IPv6 address rather than a name. */
int url_host_is_address(const char *host);

#endif
