/*
 * The simulator's HTTP side, on nng's HTTP server: GET /feed (and GET /)
 * answers the next provider response in the current failure mode,
 * POST /control changes the mode, GET /stats counts what was served.
 *
 * DESIGN. nng calls the handlers on its own threads, which must never wait:
 * a handler only decides (under the one mutex) what this request gets and
 * moves it on. Errors and garbage are answered at once. Feeds are made by
 * one worker thread of our own, in arrival order, because rendering an
 * 86 MB response takes a while and because response k+1 is made by
 * stepping the model from response k. A slow answer first waits on an nng
 * sleep aio (a timer, not a thread), then goes to the worker. A hung
 * request is hijacked from the server: we hold the connection and read
 * from it until the client gives up, so nothing waits on it. Only complete
 * feeds (ok, slow) consume a response number; a truncated answer is the
 * next response cut short, which the next good answer then serves whole.
 */
#ifndef PROVIDER_SIM_SERVE_H
#define PROVIDER_SIM_SERVE_H

#include <stddef.h>

#include "feed.h"

typedef enum serve_mode {
	SERVE_OK,	 /* the next response */
	SERVE_SLOW,	 /* the next response, after delay_ms */
	SERVE_ERROR,	 /* HTTP 500, a short text body */
	SERVE_TRUNCATED, /* HTTP 200, the next response cut inside an element */
	SERVE_GARBAGE,	 /* HTTP 200, bytes that are not XML */
	SERVE_HANG,	 /* no answer until the client hangs up */
	SERVE_MODES,
} serve_mode;

#define SERVE_DEFAULT_DELAY_MS 5000u
#define SERVE_MAX_DELAY_MS 3600000u

/* "ok", "slow", ...; NULL for an out-of-range value. */
const char *serve_mode_name(serve_mode m);
/* 0 with *out set, or -1 for an unknown name. */
int serve_mode_parse(const char *name, serve_mode *out) __attribute__((warn_unused_result));

typedef struct serve_config {
	const char *listen; /* http://host:port */
	/* Exactly one source: a generated feed (borrowed; only the server's
	 * worker touches it until serve_destroy returns) or files' contents
	 * (borrowed, read-only), served in order, then the last one again. */
	feed *feed;
	const feed_buf *files;
	size_t nfiles;
	serve_mode mode;   /* at start, until changed */
	unsigned delay_ms; /* for slow */
} serve_config;

typedef struct serve serve;

/* Starts serving on cfg->listen. Sets *out only on success; returns 0 or an
 * nng error code (NNG_EADDRINUSE, NNG_EADDRINVAL, NNG_ENOMEM, ...). */
int serve_create(serve **out, const serve_config *cfg) __attribute__((warn_unused_result));

/* Stops: later requests are dropped, slow ones are cut short, hung
 * connections are closed, the worker finishes, the listener closes. Blocks
 * until then (not long: no request waits on anything but a timer or the
 * worker). Not from an nng callback. NULL is a no-op. */
void serve_destroy(serve *s);

#endif
