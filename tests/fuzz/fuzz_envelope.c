/*
 * libFuzzer target for the rpcq/1 envelope codec (client/envelope.h): any
 * bytes a peer may send are parsed as an rpcq.Request (what rpcqd does with
 * every message) and as an rpcq.Response (what librpcq does with every
 * reply). Whatever decodes is packed again and parsed again, and must come
 * back with the same fields; the method name of a request goes through the
 * normalizer as the dispatcher's lookup does. Run under ASan+UBSan:
 * crashes, leaks and undefined behaviour are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "arena.h"
#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Key/value pairs of parsed map entries as the NULL-terminated list the
 * packers take; entries point into the arena. NULL when out of memory. */
static const char **pairs_of(arena *a, size_t n, char *(*key)(void *, size_t), char *(*val)(void *, size_t),
			     void *entries)
{
	const char **kv = arena_calloc(a, 2 * n + 1, sizeof *kv);
	if (kv == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		kv[2 * i] = key(entries, i);
		kv[2 * i + 1] = val(entries, i);
	}
	return kv;
}

static char *req_key(void *e, size_t i)
{
	return ((Rpcq__Request__MetadataEntry **)e)[i]->key;
}

static char *req_val(void *e, size_t i)
{
	return ((Rpcq__Request__MetadataEntry **)e)[i]->value;
}

static char *resp_key(void *e, size_t i)
{
	return ((Rpcq__Response__TrailersEntry **)e)[i]->key;
}

static char *resp_val(void *e, size_t i)
{
	return ((Rpcq__Response__TrailersEntry **)e)[i]->value;
}

/* The number of pairs the packers will send: they stop at the first NULL. */
static size_t sendable_pairs(const char **kv, size_t n)
{
	size_t i = 0;
	while (i < n && kv[2 * i] != NULL && kv[2 * i + 1] != NULL)
		i++;
	return i;
}

static void fuzz_request(const uint8_t *data, size_t size)
{
	arena *a = arena_create(0);
	if (a == NULL)
		return;
	Rpcq__Request *req = NULL;
	rpcq_error err;
	if (envelope_parse_request(a, data, size, &req, &err) != RPCQ_OK) {
		if (err.code != RPCQ_INVALID_ARGUMENT || err.message[0] == '\0')
			abort();
		goto out;
	}
	char name[256];
	(void)envelope_method_name(req->method, name, sizeof name);

	const char **md = pairs_of(a, req->n_metadata, req_key, req_val, req->metadata);
	if (md == NULL)
		goto out;
	nng_msg *msg = NULL;
	if (envelope_pack_request(&msg, req->method, req->payload.data, req->payload.len, req->deadline_ms, md, 0,
				  &err) != RPCQ_OK)
		goto out;
	Rpcq__Request *again = NULL;
	if (envelope_parse_request(a, nng_msg_body(msg), nng_msg_len(msg), &again, &err) != RPCQ_OK)
		abort();
	size_t n = sendable_pairs(md, req->n_metadata);
	if (strcmp(again->method, req->method) != 0 || again->deadline_ms != req->deadline_ms ||
	    again->payload.len != req->payload.len || again->n_metadata != n)
		abort();
	if (req->payload.len > 0 && memcmp(again->payload.data, req->payload.data, req->payload.len) != 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if (strcmp(again->metadata[i]->key, md[2 * i]) != 0 ||
		    strcmp(again->metadata[i]->value, md[2 * i + 1]) != 0)
			abort();
	nng_msg_free(msg);
out:
	arena_destroy(a);
}

static void fuzz_response(const uint8_t *data, size_t size)
{
	/* Without an arena, as a caller that keeps the reply past its call. */
	Rpcq__Response *plain = NULL;
	int plain_ok = envelope_parse_response(NULL, data, size, &plain, NULL) == RPCQ_OK;
	if (plain_ok)
		rpcq__response__free_unpacked(plain, NULL);

	arena *a = arena_create(0);
	if (a == NULL)
		return;
	Rpcq__Response *resp = NULL;
	rpcq_error err;
	if (envelope_parse_response(a, data, size, &resp, &err) != RPCQ_OK) {
		if (err.code != RPCQ_INTERNAL || plain_ok)
			abort();
		goto out;
	}
	if (!plain_ok)
		abort();
	const char **tr = pairs_of(a, resp->n_trailers, resp_key, resp_val, resp->trailers);
	if (tr == NULL)
		goto out;
	nng_msg *msg = NULL;
	if (envelope_pack_response(&msg, (rpcq_status)resp->code, resp->message, resp->payload.data, resp->payload.len,
				   tr, &err) != RPCQ_OK)
		goto out;
	Rpcq__Response *again = NULL;
	if (envelope_parse_response(a, nng_msg_body(msg), nng_msg_len(msg), &again, &err) != RPCQ_OK)
		abort();
	size_t n = sendable_pairs(tr, resp->n_trailers);
	if (again->code != resp->code || strcmp(again->message, resp->message) != 0 ||
	    again->payload.len != resp->payload.len || again->n_trailers != n)
		abort();
	if (resp->payload.len > 0 && memcmp(again->payload.data, resp->payload.data, resp->payload.len) != 0)
		abort();
	nng_msg_free(msg);
out:
	arena_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_request(data, size);
	fuzz_response(data, size);
	return 0;
}
