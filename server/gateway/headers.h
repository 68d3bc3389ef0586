/*
 * From HTTP request headers to call metadata, the way Connect and gRPC's
 * HTTP mapping do it: every application header becomes a metadata pair
 * (name lower-case), protocol headers do not (Host, Content-*, Connection,
 * Accept*, Transfer-Encoding, Connect-*, ...), and Connect-Timeout-Ms
 * becomes the call's deadline. Pure: no allocation beyond the caller's arrays.
 */
#ifndef RPCQ_HEADERS_H
#define RPCQ_HEADERS_H

#include <stddef.h>
#include <stdint.h>

#include "http_parse.h"

/* At most this many metadata pairs per call, as the envelope allows. */
#define HEADERS_MAX_METADATA 64

typedef struct headers_metadata {
	const char *key[HEADERS_MAX_METADATA]; /* point into the request's headers */
	const char *value[HEADERS_MAX_METADATA];
	int n;
	uint64_t timeout_ms; /* from Connect-Timeout-Ms; 0 when not sent */
} headers_metadata;

/* Fills md from req's headers. Returns 0, or -1 with a message naming the
 * header in err (errlen bytes) when: Connect-Timeout-Ms is not 1 to 10
 * digits (as the Connect protocol says) or is 0; a value holds a control
 * character; more than HEADERS_MAX_METADATA pairs would result. */
int headers_to_metadata(const http_request *req, headers_metadata *md, char *err, size_t errlen);

/* 1 when the header name is a protocol header that does not become
 * metadata (name lower-case). */
int headers_is_protocol(const char *name);

#endif
