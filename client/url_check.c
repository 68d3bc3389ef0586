/*
 * Server URL classification (see url_check.h). The host is read the way nng
 * reads it: after "scheme://", up to the first '/', '?' or '#'; an IPv6
 * address in brackets; then an optional ":port". Anything this cannot read
 * is URL_INVALID rather than a guess, because a guess would be "remote" or
 * "loopback" and only one of them is safe.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "url_check.h"

/* Longest host we read (a DNS name is at most 253 characters). */
#define HOST_MAX 256

struct scheme {
	const char *name;
	url_class cls; /* URL_PLAIN_REMOTE: plain text, decided by the host */
	int network;   /* has a host to read */
};

static const struct scheme schemes[] = {
	{"inproc", URL_LOCAL, 0},      {"ipc", URL_LOCAL, 0},	       {"unix", URL_LOCAL, 0},
	{"abstract", URL_LOCAL, 0},    {"ipc+abstract", URL_LOCAL, 0}, {"unix+abstract", URL_LOCAL, 0},
	{"tls+tcp", URL_ENCRYPTED, 1}, {"tls+tcp4", URL_ENCRYPTED, 1}, {"tls+tcp6", URL_ENCRYPTED, 1},
	{"wss", URL_ENCRYPTED, 1},     {"wss4", URL_ENCRYPTED, 1},     {"wss6", URL_ENCRYPTED, 1},
	{"tcp", URL_PLAIN_REMOTE, 1},  {"tcp4", URL_PLAIN_REMOTE, 1},  {"tcp6", URL_PLAIN_REMOTE, 1},
	{"ws", URL_PLAIN_REMOTE, 1},   {"ws4", URL_PLAIN_REMOTE, 1},   {"ws6", URL_PLAIN_REMOTE, 1},
};

static const struct scheme *find_scheme(const char *url, size_t n)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strlen(schemes[i].name) == n && strncasecmp(url, schemes[i].name, n) == 0)
			return &schemes[i];
	}
	return NULL;
}

/* 1 for ":1".."65535" (or nothing at all), 0 otherwise. */
static int valid_port(const char *p, size_t n)
{
	if (n == 0)
		return 1;
	if (p[0] != ':' || n < 2 || n > 6)
		return 0;
	unsigned long v = 0;
	for (size_t i = 1; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

static int ipv6_is_loopback(const unsigned char a[16])
{
	static const unsigned char one[16] = {[15] = 1};
	static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
	return memcmp(a, one, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
}

/* A DNS name or an IPv4 address: letters, digits, '-', '.', '_'. */
static int valid_name(const char *h)
{
	for (; *h; h++) {
		char ch = *h;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '.' || ch == '_'))
			return 0;
	}
	return 1;
}

/* The host of an authority (host and port, no path) into host (without
 * IPv6's brackets); 0, or -1 when it cannot be read. *bracketed: it was. */
static int read_host(const char *auth, size_t n, char host[HOST_MAX], int *bracketed_out)
{
	const char *end = auth + n;
	/* User information ("user:secret@host") goes before the last '@'. */
	for (const char *p = auth; p < end; p++) {
		if (*p == '@')
			auth = p + 1;
	}
	const char *rest;
	size_t hlen;
	int bracketed = auth < end && auth[0] == '[';
	if (bracketed) {
		const char *close = memchr(auth, ']', (size_t)(end - auth));
		if (close == NULL)
			return -1;
		auth++;
		hlen = (size_t)(close - auth);
		rest = close + 1;
	} else {
		/* A second ':' is a bare IPv6 address, which nng cannot read either. */
		const char *colon = memchr(auth, ':', (size_t)(end - auth));
		hlen = colon ? (size_t)(colon - auth) : (size_t)(end - auth);
		rest = auth + hlen;
	}
	if (hlen == 0 || hlen >= HOST_MAX || !valid_port(rest, (size_t)(end - rest)))
		return -1;
	memcpy(host, auth, hlen);
	host[hlen] = '\0';
	*bracketed_out = bracketed;
	return 0;
}

/* The class of a plain-text URL's authority (host and port, no path). */
static url_class classify_host(const char *auth, size_t n)
{
	char host[HOST_MAX];
	int bracketed;
	if (read_host(auth, n, host, &bracketed) != 0)
		return URL_INVALID;
	if (bracketed) {
		unsigned char a6[16];
		if (inet_pton(AF_INET6, host, a6) == 1)
			return ipv6_is_loopback(a6) ? URL_PLAIN_LOOPBACK : URL_PLAIN_REMOTE;
		/* A link-local address with its zone ("fe80::1%eth0") is another machine. */
		return strchr(host, '%') != NULL ? URL_PLAIN_REMOTE : URL_INVALID;
	}
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127 ? URL_PLAIN_LOOPBACK : URL_PLAIN_REMOTE;
	if (strcasecmp(host, "localhost") == 0)
		return URL_PLAIN_LOOPBACK;
	return valid_name(host) ? URL_PLAIN_REMOTE : URL_INVALID;
}

int url_host(const char *url, char *host, size_t cap)
{
	const char *sep = url ? strstr(url, "://") : NULL;
	if (sep == NULL)
		return -1;
	const struct scheme *s = find_scheme(url, (size_t)(sep - url));
	if (s == NULL || !s->network)
		return -1;
	const char *auth = sep + 3;
	char h[HOST_MAX];
	int bracketed;
	if (read_host(auth, strcspn(auth, "/?#"), h, &bracketed) != 0 || strlen(h) >= cap)
		return -1;
	memcpy(host, h, strlen(h) + 1);
	return bracketed ? 2 : 1;
}

int url_host_is_address(const char *host)
{
	unsigned char a[16];
	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

url_class url_classify(const char *url)
{
	if (url == NULL)
		return URL_INVALID;
	const char *sep = strstr(url, "://");
	if (sep == NULL)
		return URL_INVALID;
	const struct scheme *s = find_scheme(url, (size_t)(sep - url));
	if (s == NULL)
		return URL_INVALID;
	if (!s->network)
		return sep[3] != '\0' ? s->cls : URL_INVALID;
	const char *auth = sep + 3;
	url_class host = classify_host(auth, strcspn(auth, "/?#"));
	if (host != URL_INVALID && s->cls == URL_ENCRYPTED)
		return URL_ENCRYPTED;
	return host;
}
