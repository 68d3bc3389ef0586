/*
 * POST /rpc/<package.Service>/<Method>: the Connect protocol's unary form
 * (connectrpc.com/docs/protocol), so Connect clients and `buf curl` call
 * any method with base URL http://host:7480/rpc. No per-method code: the
 * request becomes an rpcq.Request (headers as metadata, Connect-Timeout-Ms
 * as the deadline) and goes through call_run on a worker, exactly as an
 * nng call does; the reply is the output message as proto3 JSON or
 * protobuf, or Connect's error JSON with the status's HTTP code.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <rpcq/alloc.h>
#include <rpcq/json.h>

#include "call_internal.h"
#include "gateway_internal.h"
#include "headers.h"

enum body_type { BODY_JSON, BODY_PROTO, BODY_OTHER };

/* application/json or application/proto, parameters (charset) allowed. */
static enum body_type body_type(const char *ct)
{
	if (ct == NULL)
		return BODY_OTHER;
	size_t n = strcspn(ct, "; \t");
	if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return BODY_JSON;
	if (n == 17 && strncasecmp(ct, "application/proto", 17) == 0)
		return BODY_PROTO;
	return BODY_OTHER;
}

/* The decode hook of call_run for JSON bodies. */
static rpcq_status decode_json(void *arg, const ProtobufCMessageDescriptor *desc, arena *ar, ProtobufCMessage **out,
			       const char **message)
{
	const http_request *req = arg;
	rpcq_error err;
	const char *body = req->body_len ? req->body : "{}";
	size_t len = req->body_len ? req->body_len : 2;
	rpcq_status st = rpcq_json_to_message(desc, body, len, arena_allocator(ar), out, &err);
	if (st != RPCQ_OK)
		*message = arena_strdup(ar, err.message);
	return st;
}

/* Response headers: the request id and the handler's trailers. */
static char *reply_headers(arena *ar, const call_result *res)
{
	size_t cap = 128;
	for (int i = 0; res->trailers && res->trailers[i]; i += 2)
		cap += strlen(res->trailers[i]) + strlen(res->trailers[i + 1]) + 16;
	char *h = arena_alloc(ar, cap);
	if (h == NULL)
		return NULL;
	size_t n = (size_t)snprintf(h, cap, "X-Request-Id: %s\r\n", res->request_id);
	for (int i = 0; res->trailers && res->trailers[i] && n < cap; i += 2) {
		/* A value with a line break would end the header early. */
		if (strpbrk(res->trailers[i], "\r\n:") || strpbrk(res->trailers[i + 1], "\r\n"))
			continue;
		n += (size_t)snprintf(h + n, cap - n, "Trailer-%s: %s\r\n", res->trailers[i], res->trailers[i + 1]);
	}
	return h;
}

static void respond_status(conn *c, arena *ar, const call_result *res, const char *headers)
{
	int http = res->unknown_method ? 404 : gateway_http_status(res->status);
	const char *code = gateway_connect_code(res->status);
	size_t mlen = strlen(res->message);
	size_t cap = mlen * 6 + 64;
	char *esc = arena_alloc(ar, cap);
	char *body = arena_alloc(ar, cap + 64);
	if (esc == NULL || body == NULL) {
		conn_respond_error(c, http, code, rpcq_status_describe(res->status));
		return;
	}
	gw_json_escape(esc, cap, res->message);
	int n = snprintf(body, cap + 64, "{\"code\":\"%s\",\"message\":\"%s\"}", code, esc);
	conn_respond(c, http, "application/json", headers, body, (size_t)n);
}

static void rpc_run(server_job *job, arena *ar)
{
	conn *c = conn_of_job(job);
	const http_request *req = c->req;
	enum body_type type = body_type(http_request_header(req, "content-type"));

	headers_metadata md;
	char why[256];
	if (headers_to_metadata(req, &md, why, sizeof(why)) != 0) {
		conn_respond_error(c, 400, "invalid_argument", why);
		goto out;
	}
	Rpcq__Request *r = arena_alloc(ar, sizeof(*r));
	Rpcq__Request__MetadataEntry *pairs = arena_alloc(ar, (size_t)(md.n + 1) * sizeof(*pairs));
	Rpcq__Request__MetadataEntry **entries = arena_alloc(ar, (size_t)(md.n + 1) * sizeof(*entries));
	if (r == NULL || pairs == NULL || entries == NULL) {
		conn_respond_error(c, 500, "resource_exhausted", "out of memory");
		goto out;
	}
	rpcq__request__init(r);
	r->method = (char *)req->path + 4; /* "/pkg.Service/Method" */
	r->deadline_ms = md.timeout_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)md.timeout_ms;
	for (int i = 0; i < md.n; i++) {
		rpcq__request__metadata_entry__init(&pairs[i]);
		pairs[i].key = (char *)md.key[i];
		pairs[i].value = (char *)md.value[i];
		entries[i] = &pairs[i];
	}
	r->n_metadata = (size_t)md.n;
	r->metadata = entries;
	call_origin from = gw_origin(c);
	call_request rq = {.req = r, .received = c->received, .received_ns = c->received_ns, .origin = &from};
	if (type == BODY_JSON) {
		rq.decode = decode_json;
		rq.decode_arg = (void *)req;
	} else {
		r->payload.data = (uint8_t *)req->body;
		r->payload.len = req->body_len;
	}
	call_result res;
	call_run(c->gw->srv, ar, &rq, &res);
	c->retry_after_ms = res.retry_after_ms;
	char *headers = reply_headers(ar, &res);
	if (res.status != RPCQ_OK) {
		respond_status(c, ar, &res, headers);
		goto out;
	}
	if (type == BODY_JSON) {
		char *json = rpcq_message_to_json(res.output, 0);
		if (json == NULL)
			conn_respond_error(c, 500, "internal", "the reply does not convert to JSON");
		else
			conn_respond(c, 200, "application/json", headers, json, strlen(json));
		rpcq_free(json);
	} else {
		size_t size = protobuf_c_message_get_packed_size(res.output);
		uint8_t *packed = arena_alloc(ar, size ? size : 1);
		if (packed == NULL) {
			conn_respond_error(c, 500, "resource_exhausted", "out of memory for the reply");
			goto out;
		}
		protobuf_c_message_pack(res.output, packed);
		conn_respond(c, 200, "application/proto", headers, packed, size);
	}
out:
	nng_mtx_lock(c->lock);
	conn_release_unlock(c);
}

void rpc_route(conn *c)
{
	const char *ct = http_request_header(c->req, "content-type");
	if (body_type(ct) == BODY_OTHER) {
		char msg[200];
		snprintf(msg, sizeof(msg),
			 "content type \"%.100s\" is not supported; send application/json or "
			 "application/proto",
			 ct ? ct : "");
		char esc[300], body[400];
		gw_json_escape(esc, sizeof(esc), msg);
		int n = snprintf(body, sizeof(body), "{\"code\":\"invalid_argument\",\"message\":\"%s\"}", esc);
		conn_respond(c, 415, "application/json", "Accept-Post: application/json, application/proto\r\n", body,
			     (size_t)n);
		return;
	}
	conn_submit(c, rpc_run);
}
