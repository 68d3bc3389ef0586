/*
 * Envelope codec. Packing goes straight into the nng message body (one copy
 * of the payload); parsing unpacks with the arena allocator, so a request's
 * every byte is freed with its call.
 */
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "envelope.h"

int envelope_method_name(const char *name, char *buf, size_t len)
{
	if (name == NULL || *name == '\0')
		return -1;
	const char *p = name[0] == '/' ? name + 1 : name;
	const char *slash = strchr(p, '/');
	if (slash == NULL || slash == p || slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
		return -1;
	if (memchr(p, '.', (size_t)(slash - p)) == NULL)
		return -1;
	size_t n = strlen(p);
	if (n + 2 > len)
		return -1;
	buf[0] = '/';
	memcpy(buf + 1, p, n + 1);
	return 0;
}

/* Map entries from NULL-terminated key/value pairs, in the arena-free way:
 * entries point at the caller's strings, valid for the duration of packing. */
static size_t count_pairs(const char *const *kv)
{
	size_t n = 0;
	while (kv && kv[2 * n] && kv[2 * n + 1])
		n++;
	return n;
}

rpcq_status envelope_pack_request(nng_msg **out, const char *method, const void *payload, size_t len,
				  uint32_t deadline_ms, const char *const *metadata, long max_bytes, rpcq_error *err)
{
	Rpcq__Request req = RPCQ__REQUEST__INIT;
	size_t nmeta = count_pairs(metadata);
	if (nmeta > ENVELOPE_MAX_PAIRS)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "%zu metadata pairs; at most %d are allowed", nmeta,
				      ENVELOPE_MAX_PAIRS);
	Rpcq__Request__MetadataEntry entries[ENVELOPE_MAX_PAIRS];
	Rpcq__Request__MetadataEntry *ptrs[ENVELOPE_MAX_PAIRS];
	for (size_t i = 0; i < nmeta; i++) {
		rpcq__request__metadata_entry__init(&entries[i]);
		entries[i].key = (char *)metadata[2 * i];
		entries[i].value = (char *)metadata[2 * i + 1];
		ptrs[i] = &entries[i];
	}
	req.method = (char *)method;
	req.payload.data = (uint8_t *)payload;
	req.payload.len = len;
	req.deadline_ms = deadline_ms;
	req.n_metadata = nmeta;
	req.metadata = ptrs;

	size_t size = rpcq__request__get_packed_size(&req);
	if (max_bytes > 0 && size > (size_t)max_bytes)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED,
				      "request of %zu bytes exceeds the message size limit of %ld bytes", size,
				      max_bytes);
	nng_msg *msg;
	if (nng_msg_alloc(&msg, size) != 0)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte request", size);
	rpcq__request__pack(&req, nng_msg_body(msg));
	*out = msg;
	return RPCQ_OK;
}

rpcq_status envelope_parse_request(arena *a, const void *data, size_t len, Rpcq__Request **out, rpcq_error *err)
{
	Rpcq__Request *req = rpcq__request__unpack(arena_allocator(a), len, data);
	if (req == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "request envelope does not decode as rpcq.Request");
	if (req->method == NULL || req->method[0] == '\0')
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "request names no method");
	/* Metadata keys are case-insensitive, as HTTP's header names and
	 * gRPC's keys: lowercase from here on, so "Authorization" is the key
	 * and "X-Request-Id" the request id, as they are over HTTP. */
	for (size_t i = 0; i < req->n_metadata; i++)
		for (char *k = req->metadata[i]->key; *k; k++)
			if (*k >= 'A' && *k <= 'Z')
				*k = (char)(*k - 'A' + 'a');
	*out = req;
	return RPCQ_OK;
}

rpcq_status envelope_pack_response(nng_msg **out, rpcq_status code, const char *message, const void *payload,
				   size_t len, const char *const *trailers, rpcq_error *err)
{
	Rpcq__Response resp = RPCQ__RESPONSE__INIT;
	size_t ntr = count_pairs(trailers);
	if (ntr > ENVELOPE_MAX_PAIRS)
		return rpcq_error_set(err, RPCQ_INTERNAL, "%zu trailers; at most %d are allowed", ntr,
				      ENVELOPE_MAX_PAIRS);
	Rpcq__Response__TrailersEntry entries[ENVELOPE_MAX_PAIRS];
	Rpcq__Response__TrailersEntry *ptrs[ENVELOPE_MAX_PAIRS];
	for (size_t i = 0; i < ntr; i++) {
		rpcq__response__trailers_entry__init(&entries[i]);
		entries[i].key = (char *)trailers[2 * i];
		entries[i].value = (char *)trailers[2 * i + 1];
		ptrs[i] = &entries[i];
	}
	resp.code = (Rpcq__StatusCode)code;
	resp.message = (char *)(message ? message : "");
	resp.payload.data = (uint8_t *)payload;
	resp.payload.len = len;
	resp.n_trailers = ntr;
	resp.trailers = ptrs;

	size_t size = rpcq__response__get_packed_size(&resp);
	nng_msg *msg;
	if (nng_msg_alloc(&msg, size) != 0)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte reply", size);
	rpcq__response__pack(&resp, nng_msg_body(msg));
	*out = msg;
	return RPCQ_OK;
}

rpcq_status envelope_parse_response(arena *a, const void *data, size_t len, Rpcq__Response **out, rpcq_error *err)
{
	Rpcq__Response *resp = rpcq__response__unpack(a ? arena_allocator(a) : NULL, len, data);
	if (resp == NULL)
		return rpcq_error_set(err, RPCQ_INTERNAL, "reply envelope does not decode as rpcq.Response");
	/* A server of a later version may know codes we do not. */
	if ((unsigned)resp->code >= RPCQ_STATUS_COUNT)
		resp->code = (Rpcq__StatusCode)RPCQ_UNKNOWN;
	*out = resp;
	return RPCQ_OK;
}
