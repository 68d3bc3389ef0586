/*
 * Browser origins (cors.h): an origin is "scheme://host[:port]" (RFC 6454),
 * a Host header "host[:port]" (RFC 9110), host an IPv6 literal in brackets
 * or a name or IPv4 address without a colon.
 */
#include <string.h>
#include <strings.h>

#include "cors.h"

#define ORIGIN_MAX 255

typedef struct authority {
	const char *host;
	size_t host_len;
	long port; /* -1: none given */
} authority;

static int bad_host_char(unsigned char c)
{
	return c <= 0x20 || c >= 0x7f || strchr("/?#@\\\"<>^`{|}", c) != NULL;
}

/* Splits s (len bytes) into host and port. Returns 0, or -1 when malformed. */
static int parse_authority(const char *s, size_t len, authority *out)
{
	size_t host_len;
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL || close == s + 1)
			return -1;
		host_len = (size_t)(close - s) + 1;
	} else {
		host_len = 0;
		while (host_len < len && s[host_len] != ':')
			host_len++;
	}
	if (host_len == 0)
		return -1;
	for (size_t i = 0; i < host_len; i++)
		if (bad_host_char((unsigned char)s[i]))
			return -1;
	out->host = s;
	out->host_len = host_len;
	out->port = -1;
	if (host_len == len)
		return 0;
	if (s[host_len] != ':' || len - host_len - 1 == 0 || len - host_len - 1 > 5)
		return -1;
	long port = 0;
	for (size_t i = host_len + 1; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		port = port * 10 + (s[i] - '0');
	}
	if (port > 65535)
		return -1;
	out->port = port;
	return 0;
}

/* The default port of origin's scheme, and its authority; -1 when origin
 * is not an http or https origin. */
static long parse_origin(const char *origin, authority *out)
{
	size_t len = strlen(origin);
	if (len > ORIGIN_MAX)
		return -1;
	long def;
	size_t skip;
	if (strncasecmp(origin, "http://", 7) == 0) {
		def = 80;
		skip = 7;
	} else if (strncasecmp(origin, "https://", 8) == 0) {
		def = 443;
		skip = 8;
	} else {
		return -1;
	}
	if (parse_authority(origin + skip, len - skip, out) != 0)
		return -1;
	return def;
}

int cors_origin_valid(const char *value)
{
	if (strcmp(value, "*") == 0 || strcmp(value, "null") == 0)
		return 1;
	authority a;
	return parse_origin(value, &a) >= 0;
}

int cors_same_origin(const char *origin, const char *host)
{
	authority o, h;
	long def = parse_origin(origin, &o);
	if (def < 0 || host == NULL || parse_authority(host, strlen(host), &h) != 0)
		return 0;
	long oport = o.port < 0 ? def : o.port, hport = h.port < 0 ? def : h.port;
	return oport == hport && o.host_len == h.host_len && strncasecmp(o.host, h.host, o.host_len) == 0;
}

int cors_allowed(const char *const *allowed, int n, const char *origin, const char *host)
{
	if (cors_same_origin(origin, host))
		return 1;
	for (int i = 0; i < n; i++)
		if (strcmp(allowed[i], "*") == 0 || strcasecmp(allowed[i], origin) == 0)
			return 1;
	return 0;
}

int cors_header_list_valid(const char *value)
{
	size_t len = strlen(value);
	if (len == 0 || len > 1024)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		int token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
		if (!token && c != ',' && c != ' ' && c != '\t')
			return 0;
	}
	return 1;
}
