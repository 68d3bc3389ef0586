/*
 * POST /billing/imports: a debts file uploaded over HTTP, for clients that
 * are not C programs, streamed into the same chunked import that
 * rpcq.billing.BillingService offers (StartImport, then ImportChunk at byte
 * offsets, the last chunk marked last), so memory is bounded by one chunk,
 * not by the file. The body is the CSV (text/csv and the like) or an HTML
 * form's multipart/form-data, whose file part is taken (multipart.h).
 * Query: name= (the file's name in rejections; else the form's filename,
 * else debts.csv) and key= (an import key: the same key again resumes, the
 * bytes the import already has being skipped). The answer is 201 with the
 * Import as JSON and Location: /billing/imports/<id>; GET there answers its
 * status as JSON, and /streams/billing.imports.<id> its progress.
 *
 * The connection reads the body only while the route wants more
 * (conn_body_locked): every UPLOAD_CHUNK bytes of file, reading pauses, a
 * worker job runs ImportChunk through call_run_message (the dispatch every
 * call takes), and reading goes on when it returns. Any failure answers the
 * error in Connect's shape with the gRPC-mapped HTTP status and closes the
 * connection (the rest of the body is not read).
 *
 * The import is started (StartImport) only with the first chunk in hand, so
 * a request refused before one (its Content-Type or query, an empty body or
 * file, a form without a file, a malformed form, a body cut or stalled
 * within its first chunk) stores nothing. A failure after it (a chunk that
 * ImportChunk refuses, the CSV's header row in the first one included; a
 * body malformed, cut short or stalled later) answers, next to Connect's
 * code and message, the import's "importId" and "receivedBytes" (what it
 * holds) and a Location header of its status. Sending the file again with
 * the same key= resumes it: the bytes it holds are skipped.
 *
 * POST /billing/imports/<id> resumes import <id> by its id, for an upload
 * made without key= (the id is in the failure's answer): the body is the
 * file again, whole, or from byte offset= on (offset at most what the
 * import holds, so receivedBytes is where to start); it goes to the import
 * in the same chunks (ImportChunk skips what it holds) and is answered 200
 * with the Import. Nothing is started for it: an id that names no import
 * is 404 and stores nothing. A client that hangs up gets no answer; its
 * import, if one was started, is found by its key.
 */
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>
#include <rpcq/json.h>

#include "call_internal.h"
#include "gateway_internal.h"
#include "multipart.h"
#include "query.h"
#include "rpcq/billing.pb-c.h"

#define UPLOAD_PREFIX "/billing/imports"
#define UPLOAD_CHUNK (1024 * 1024)
#define UPLOAD_NAME_MAX 200
#define UPLOAD_KEY_MAX 128

struct upload {
	char import_id[24]; /* once StartImport (or GetImport, to resume) has answered */
	char resume_id[24]; /* POST /billing/imports/<id>: the import to resume; "" for a new one */
	uint64_t received;  /* bytes of the file the import holds, as it last said */
	char name[UPLOAD_NAME_MAX + 1];
	char key[UPLOAD_KEY_MAX + 1];
	uint64_t offset; /* of chunk[0] in the file */
	char *chunk;
	size_t len;
	int multipart;
	multipart_parser mp;
	int in_file, file_seen, file_done;
	int last; /* the body has ended: the pending chunk is the last */
	char error[256];
};

const char *upload_import_of_path(const char *path)
{
	size_t n = strlen(UPLOAD_PREFIX "/");
	if (strncmp(path, UPLOAD_PREFIX "/", n) != 0 || path[n] == '\0' || strchr(path + n, '/') != NULL)
		return NULL;
	return path + n;
}

int upload_streams(const char *method, const char *path)
{
	return strcmp(method, "POST") == 0 && (strcmp(path, UPLOAD_PREFIX) == 0 || upload_import_of_path(path) != NULL);
}

void upload_free(upload *u)
{
	if (u == NULL)
		return;
	rpcq_free(u->chunk);
	rpcq_free(u);
}

/* Answers a failure and closes the connection once it is written. Once
 * the import exists, its id and received bytes go with the error, so the
 * client knows what is stored and where to look (c->lock held). */
static void fail_http_locked(conn *c, int status, const char *code, const char *message)
{
	const upload *u = c->up;
	c->close_after = 1;
	c->linger = 1; /* the body may still be arriving */
	c->state = CONN_BUSY;
	if (u == NULL || u->import_id[0] == '\0') {
		conn_respond_error_locked(c, status, code, message);
		return;
	}
	char esc[1024], body[1300], headers[96];
	gw_json_escape(esc, sizeof(esc), message);
	int n = snprintf(body, sizeof(body),
			 "{\"code\":\"%s\",\"message\":\"%s\",\"importId\":\"%s\",\"receivedBytes\":\"%llu\"}", code,
			 esc, u->import_id, (unsigned long long)u->received);
	if (n < 0 || (size_t)n >= sizeof(body))
		n = snprintf(body, sizeof(body), "{\"code\":\"%s\",\"importId\":\"%s\"}", code, u->import_id);
	snprintf(headers, sizeof(headers), "Location: " UPLOAD_PREFIX "/%s\r\n", u->import_id);
	conn_respond_locked(c, status, "application/json", headers, body, (size_t)n);
}

static void fail_locked(conn *c, rpcq_status st, const char *message)
{
	fail_http_locked(c, gateway_http_status(st), gateway_connect_code(st), message);
}

static void append(upload *u, const char *data, size_t n)
{
	memcpy(u->chunk + u->len, data, n);
	u->len += n;
}

/* multipart.h callbacks: the first file part's data goes to the chunk. */
static int on_part(void *arg, const multipart_part *part)
{
	upload *u = arg;
	u->in_file = !u->file_seen && multipart_is_file(part);
	if (u->in_file) {
		u->file_seen = 1;
		if (u->name[0] == '\0' && part->filename && part->filename[0])
			snprintf(u->name, sizeof(u->name), "%s", part->filename);
	}
	return 0;
}

static int on_data(void *arg, const char *data, size_t len)
{
	upload *u = arg;
	if (u->in_file)
		append(u, data, len);
	return 0;
}

static int on_part_end(void *arg, const multipart_part *part)
{
	(void)part;
	upload *u = arg;
	if (u->in_file)
		u->file_done = 1;
	u->in_file = 0;
	return 0;
}

static const multipart_callbacks parts = {on_part, on_data, on_part_end};

/* The reader's sink: body bytes as they arrive (c->lock held). At most one
 * read buffer arrives per feed, so the chunk holds UPLOAD_CHUNK plus that. */
static int sink(void *arg, const char *data, size_t len)
{
	conn *c = arg;
	upload *u = c->up;
	if (u->multipart) {
		if (multipart_feed(&u->mp, data, len, &parts, u) != MULTIPART_OK) {
			snprintf(u->error, sizeof(u->error), "%s", multipart_error(&u->mp, NULL));
			return 1;
		}
	} else {
		append(u, data, len);
	}
	if (u->len >= UPLOAD_CHUNK)
		c->body_paused = 1;
	return 0;
}

static void flush_run(server_job *job, arena *ar);

/* Reading paused (a full piece) or the body ended: send what is pending. */
void upload_paused_locked(conn *c)
{
	conn_submit_locked(c, flush_run);
}

static void respond_result(conn *c, const call_result *res, int created)
{
	if (res->status != RPCQ_OK) {
		nng_mtx_lock(c->lock);
		fail_locked(c, res->status, res->message);
		nng_mtx_unlock(c->lock);
		return;
	}
	char *json = rpcq_message_to_json(res->output, 0);
	if (json == NULL) {
		nng_mtx_lock(c->lock);
		fail_http_locked(c, 500, "internal", "the reply does not convert to JSON");
		nng_mtx_unlock(c->lock);
		return;
	}
	const Rpcq__Billing__Import *imp = (const Rpcq__Billing__Import *)res->output;
	char headers[128];
	snprintf(headers, sizeof(headers), "Location: " UPLOAD_PREFIX "/%s\r\n", imp->import_id);
	conn_respond(c, created ? 201 : 200, "application/json", created ? headers : NULL, json, strlen(json));
	rpcq_free(json);
}

/* The import the body goes to, once the first chunk is in hand: StartImport
 * (the name is known by then: a form's file part names it), or GetImport
 * of the one to resume, which must exist (nothing is started for it). */
static int open_import(conn *c, upload *u, arena *ar, call_result *res)
{
	Rpcq__Billing__StartImportRequest start = RPCQ__BILLING__START_IMPORT_REQUEST__INIT;
	Rpcq__Billing__GetImportRequest get = RPCQ__BILLING__GET_IMPORT_REQUEST__INIT;
	start.key = u->key;
	start.name = u->name;
	get.import_id = u->resume_id;
	if (u->resume_id[0] == '\0')
		gw_call(c, ar, "/rpcq.billing.BillingService/StartImport", 0, c->received, c->received_ns, &start.base,
			res);
	else
		gw_call(c, ar, "/rpcq.billing.BillingService/GetImport", 0, c->received, c->received_ns, &get.base,
			res);
	if (res->status != RPCQ_OK)
		return -1;
	const Rpcq__Billing__Import *imp = (const Rpcq__Billing__Import *)res->output;
	snprintf(u->import_id, sizeof(u->import_id), "%s", imp->import_id);
	u->received = imp->received_bytes;
	return 0;
}

static void flush_run(server_job *job, arena *ar)
{
	conn *c = conn_of_job(job);
	upload *u = c->up;
	call_result res;
	int created = u->resume_id[0] == '\0';
	if (u->import_id[0] == '\0' && open_import(c, u, ar, &res) != 0) {
		respond_result(c, &res, created);
		nng_mtx_lock(c->lock);
		conn_release_unlock(c);
		return;
	}
	Rpcq__Billing__ImportChunkRequest in = RPCQ__BILLING__IMPORT_CHUNK_REQUEST__INIT;
	in.import_id = u->import_id;
	in.offset = u->offset;
	in.data.data = (uint8_t *)u->chunk;
	in.data.len = u->len;
	in.last = u->last;
	gw_call(c, ar, "/rpcq.billing.BillingService/ImportChunk", 0, c->received, c->received_ns, &in.base, &res);
	if (res.status == RPCQ_OK)
		u->received = ((const Rpcq__Billing__Import *)res.output)->received_bytes;
	if (res.status != RPCQ_OK || u->last) {
		respond_result(c, &res, created);
		nng_mtx_lock(c->lock);
		conn_release_unlock(c);
		return;
	}
	u->offset += u->len;
	u->len = 0;
	nng_mtx_lock(c->lock);
	c->body_paused = 0;
	c->state = CONN_UPLOAD;
	conn_body_locked(c);
	conn_release_unlock(c);
}

void upload_body_done_locked(conn *c)
{
	upload *u = c->up;
	if (u->multipart) {
		if (multipart_finish(&u->mp) != 0) {
			fail_locked(c, RPCQ_INVALID_ARGUMENT, multipart_error(&u->mp, NULL));
			return;
		}
		if (!u->file_done) {
			fail_locked(c, RPCQ_INVALID_ARGUMENT, "the form has no file part (a field with a filename)");
			return;
		}
	}
	if (u->import_id[0] == '\0' && u->offset == 0 && u->len == 0) {
		/* Nothing to import: no import is made for it. */
		fail_locked(c, RPCQ_INVALID_ARGUMENT,
			    u->multipart ? "the form's file is empty (a CSV file with its header row is expected)"
					 : "the body is empty (a CSV file with its header row is expected)");
		return;
	}
	u->last = 1;
	c->body_paused = 1;
	c->state = CONN_UPLOAD;
	upload_paused_locked(c);
}

void upload_body_failed_locked(conn *c, int status, const char *message)
{
	upload *u = c->up;
	if (status == 499 && u != NULL && u->error[0]) /* our sink refused it */
		fail_locked(c, RPCQ_INVALID_ARGUMENT, u->error);
	else if (status == 408) /* the client's delay: 408, as for any request read too slowly */
		fail_http_locked(c, 408, "deadline_exceeded", message);
	else
		fail_locked(c, RPCQ_INVALID_ARGUMENT, message);
}

/* The media type of a Content-Type, lower-cased, without parameters. */
static void media_type(const char *ct, char *out, size_t cap)
{
	size_t n = 0;
	for (; ct && *ct && *ct != ';' && n + 1 < cap; ct++)
		if (*ct != ' ' && *ct != '\t')
			out[n++] = (char)(*ct >= 'A' && *ct <= 'Z' ? *ct - 'A' + 'a' : *ct);
	out[n] = '\0';
}

/* The resuming route's id and offset= (the byte of the file the body
 * starts at); a new import takes no offset=, which would read a file's
 * middle as its start. name= and key= belong to the import as it was
 * started: refused here rather than ignored. 0, or -1 answered. */
static int resume_query_locked(conn *c, upload *u, const char *resume)
{
	char val[32], msg[200];
	int q = query_get(c->req->query, "offset", val, sizeof(val));
	if (resume == NULL) {
		if (q == 0)
			return 0;
		fail_locked(c, RPCQ_INVALID_ARGUMENT,
			    "offset= resumes an import: POST the rest of the file to " UPLOAD_PREFIX
			    "/<id>?offset=N, N the bytes the import holds (GET " UPLOAD_PREFIX "/<id>)");
		return -1;
	}
	if (strlen(resume) >= sizeof(u->resume_id)) {
		snprintf(msg, sizeof(msg), "import_id \"%.40s\" is not an import id (a number)", resume);
		fail_locked(c, RPCQ_INVALID_ARGUMENT, msg);
		return -1;
	}
	snprintf(u->resume_id, sizeof(u->resume_id), "%s", resume);
	if (u->name[0] || u->key[0]) {
		snprintf(msg, sizeof(msg),
			 "import %s keeps the name and key it was started with: send offset= alone, or nothing",
			 resume);
		fail_locked(c, RPCQ_INVALID_ARGUMENT, msg);
		return -1;
	}
	if (q < 0 || (q == 1 && query_uint(val, &u->offset) != 0)) {
		snprintf(msg, sizeof(msg), "offset \"%.40s\" is not a byte offset (a number)", q < 0 ? "" : val);
		fail_locked(c, RPCQ_INVALID_ARGUMENT, msg);
		return -1;
	}
	return 0;
}

void upload_begin(conn *c)
{
	c->route = METRICS_ROUTE_OTHER;
	const http_request *req = c->req;
	upload *u = rpcq_calloc(1, sizeof(*u));
	char *chunk = rpcq_alloc(UPLOAD_CHUNK + GW_RXBUF + MULTIPART_BOUNDARY_MAX + 16);
	nng_mtx_lock(c->lock);
	upload_free(c->up); /* an earlier upload on this connection */
	c->up = NULL;
	if (u == NULL || chunk == NULL) {
		rpcq_free(u);
		rpcq_free(chunk);
		fail_locked(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		nng_mtx_unlock(c->lock);
		return;
	}
	u->chunk = chunk;
	c->up = u;
	char type[64], why[200];
	if (gw_origin_check(c, why, sizeof(why)) != 0) {
		fail_locked(c, RPCQ_PERMISSION_DENIED, why);
		nng_mtx_unlock(c->lock);
		return;
	}
	const char *resume = upload_import_of_path(req->path);
	/* The key before the body: a caller who may not import sends no byte
	 * of it (StartImport or GetImport and each ImportChunk are checked,
	 * and charged, again). */
	uint64_t retry = 0;
	call_origin from = gw_origin(c);
	rpcq_status st = call_authorize(c->gw->srv,
					resume ? "/rpcq.billing.BillingService/ImportChunk"
					       : "/rpcq.billing.BillingService/StartImport",
					&from, 0, why, sizeof(why), &retry);
	if (st != RPCQ_OK) {
		fail_locked(c, st, why);
		nng_mtx_unlock(c->lock);
		return;
	}
	media_type(http_request_header(req, "content-type"), type, sizeof(type));
	static const char *const once[] = {"name", "key", "offset"};
	for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++) {
		if (query_count(req->query, once[i]) > 1) {
			char msg[64];
			snprintf(msg, sizeof(msg), "%s= is given more than once", once[i]);
			fail_locked(c, RPCQ_INVALID_ARGUMENT, msg);
			nng_mtx_unlock(c->lock);
			return;
		}
	}
	if (query_get(req->query, "name", u->name, sizeof(u->name)) < 0 ||
	    query_get(req->query, "key", u->key, sizeof(u->key)) < 0) {
		fail_locked(c, RPCQ_INVALID_ARGUMENT,
			    "the query's name and key are percent-encoded, at most 200 and 128 bytes");
		nng_mtx_unlock(c->lock);
		return;
	}
	if (resume_query_locked(c, u, resume) != 0) {
		nng_mtx_unlock(c->lock);
		return;
	}
	if (strcmp(type, "multipart/form-data") == 0) {
		char boundary[MULTIPART_BOUNDARY_MAX + 1];
		const char *bad = NULL;
		if (multipart_boundary(http_request_header(req, "content-type"), boundary, sizeof(boundary), why,
				       sizeof(why)) != 0)
			bad = why;
		else if (multipart_init(&u->mp, boundary) != 0)
			bad = multipart_error(&u->mp, NULL);
		if (bad != NULL) {
			fail_locked(c, RPCQ_INVALID_ARGUMENT, bad);
			nng_mtx_unlock(c->lock);
			return;
		}
		u->multipart = 1;
	} else if (strcmp(type, "text/csv") != 0 && strcmp(type, "application/csv") != 0 &&
		   strcmp(type, "text/plain") != 0 && strcmp(type, "application/octet-stream") != 0 && type[0]) {
		snprintf(why, sizeof(why),
			 "content type \"%.60s\" is not supported; send text/csv, or multipart/form-data with the file",
			 type);
		fail_http_locked(c, 415, "invalid_argument", why);
		nng_mtx_unlock(c->lock);
		return;
	}
	if (req->expect_continue) {
		static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
		conn_write_locked(c, go_on, sizeof(go_on) - 1, 1);
	}
	/* The body, as it comes; the first chunk (or the end) starts the import. */
	http_reader_set_sink(&c->reader, sink, c);
	c->body_paused = 0;
	conn_body_locked(c);
	nng_mtx_unlock(c->lock);
}

/* GET /billing/imports/<id>: GetImport as JSON. */
static void status_run(server_job *job, arena *ar)
{
	conn *c = conn_of_job(job);
	Rpcq__Billing__GetImportRequest in = RPCQ__BILLING__GET_IMPORT_REQUEST__INIT;
	in.import_id = (char *)upload_import_of_path(c->req->path);
	call_result res;
	gw_call(c, ar, "/rpcq.billing.BillingService/GetImport", 0, c->received, c->received_ns, &in.base, &res);
	gw_respond_json(c, &res);
	nng_mtx_lock(c->lock);
	conn_release_unlock(c);
}

void upload_status_route(conn *c)
{
	conn_submit(c, status_run);
}
