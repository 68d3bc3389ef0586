/*
 * Which browser origins may call the gateway (the Fetch standard's CORS).
 * A request without Origin (curl, librpcq, any program) is not a browser's
 * cross-site request and is always served. With Origin, it is served when
 * the origin is the gateway's own (its host and port are the Host header's)
 * or listed in --http-allow-origin ("*": any); otherwise it is refused, so
 * that a page on another site cannot make a browser post to the gateway
 * (a form's multipart POST needs no preflight). Pure functions.
 */
#ifndef RPCQ_CORS_H
#define RPCQ_CORS_H

#include <stddef.h>

/* 1 when value may be given to --http-allow-origin: "*", "null", or an
 * origin as browsers send it: http:// or https://, a host, an optional
 * :port, nothing after it (no path, not even "/"). */
int cors_origin_valid(const char *value);

/* 1 when origin names the host and port of host (a Host header), 80 or
 * 443 being the default port of http or https. */
int cors_same_origin(const char *origin, const char *host);

/* 1 when origin may call: its own (cors_same_origin), or one of the n
 * entries of allowed (compared without regard to case), or any when an
 * entry is "*". */
int cors_allowed(const char *const *allowed, int n, const char *origin, const char *host);

/* 1 when value is a list of header names (tokens) separated by commas and
 * blanks, as Access-Control-Request-Headers is: safe to echo back. */
int cors_header_list_valid(const char *value);

#endif
