/*
 * HTTP request headers to call metadata (headers.h). The list of protocol
 * headers is what HTTP itself, the Connect protocol and gRPC's HTTP mapping
 * use on the wire; whatever else a caller sends is the application's and is
 * passed on, as Connect servers do.
 */
#include <stdio.h>
#include <string.h>

#include "headers.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* Headers of HTTP and of the Connect protocol that are consumed by the
 * gateway (or by the connection) rather than passed to the handler. */
static const char *const protocol_names[] = {
	"host",
	"connection",
	"keep-alive",
	"proxy-connection",
	"transfer-encoding",
	"te",
	"trailer",
	"upgrade",
	"expect",
	"user-agent",
	"content-length",
	"content-type",
	"http2-settings",
	/* What browsers add to every request. */
	"origin",
	"referer",
	"priority",
	"cache-control",
	"pragma",
};

/* Whole families: Content-*, Accept*, Connect-*, gRPC's reserved grpc-*, and
 * browsers' Sec-* (Sec-Fetch-*, client hints) and CORS preflight headers. */
static const char *const protocol_prefixes[] = {"content-", "accept", "connect-", "grpc-", "sec-", "access-control-"};

int headers_is_protocol(const char *name)
{
	for (size_t i = 0; i < sizeof protocol_names / sizeof protocol_names[0]; i++)
		if (strcmp(name, protocol_names[i]) == 0)
			return 1;
	for (size_t i = 0; i < sizeof protocol_prefixes / sizeof protocol_prefixes[0]; i++)
		if (strncmp(name, protocol_prefixes[i], strlen(protocol_prefixes[i])) == 0)
			return 1;
	return 0;
}

static int has_control_char(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			return 1;
	}
	return 0;
}

/* Connect-Timeout-Ms: 1 to 10 ASCII digits, not 0 (the Connect protocol).
 * Ten digits fit a uint64_t with room to spare. */
static int parse_timeout(const char *s, uint64_t *ms)
{
	size_t n = strlen(s);
	if (n < 1 || n > 10)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*ms = v;
	return 0;
}

static int fail(char *err, size_t errlen, const char *name, const char *why)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "header %s: %s", name, why);
	return -1;
}

int headers_to_metadata(const http_request *req, headers_metadata *md, char *err, size_t errlen)
{
	md->n = 0;
	md->timeout_ms = 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	int have_timeout = 0;
	for (int i = 0; i < req->nheaders; i++) {
		const http_header *h = &req->headers[i];
		/* Every value is checked, protocol headers' too: none of them has a
		 * use for a control character, and the gateway reads some of them. */
		if (has_control_char(h->value))
			return fail(err, errlen, h->name, "control character in value");
		if (strcmp(h->name, "connect-timeout-ms") == 0) {
			uint64_t ms;
			if (parse_timeout(h->value, &ms) != 0)
				return fail(err, errlen, h->name, "must be 1 to 10 digits");
			if (ms == 0)
				return fail(err, errlen, h->name, "must not be 0");
			/* As http_request_header: the first one counts. */
			if (!have_timeout)
				md->timeout_ms = ms;
			have_timeout = 1;
			continue;
		}
		if (headers_is_protocol(h->name))
			continue;
		if (md->n == HEADERS_MAX_METADATA) {
			md->n = 0;
			return fail(err, errlen, h->name,
				    "more than " STRINGIFY(HEADERS_MAX_METADATA) " metadata pairs");
		}
		md->key[md->n] = h->name;
		md->value[md->n] = h->value;
		md->n++;
	}
	return 0;
}
