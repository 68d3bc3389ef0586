/*
 * GET /search?starts_at=&ends_at=: the events service's search in the shape
 * its users know (../shared/data/events/search-openapi.yaml):
 *
 *   {"data":{"events":[{"id":..,"title":..,"start_date":"2021-06-30",
 *     "start_time":"21:00:00","end_date":..,"end_time":..,"min_price":15.00,
 *     "max_price":30.00}]},"error":null}
 *
 * and {"data":null,"error":{"code":..,"message":..}} with 400 for a
 * malformed query, 500 for anything else. It is rpcq.events.EventService/
 * Search run through call_run, page after page until the last, so it is
 * served exactly as an RPC caller is (access control, deadline, logging,
 * counters), except that the events are not copied into the reply: Search
 * gives each one to emit_event as it finds it (call_emitter), which writes
 * its JSON from the index. Search answers from memory, so its first page
 * (a bounded one) runs on the thread that read the request; the pages of a
 * larger result follow on a worker. Prices go from the feed's decimal text
 * to JSON numbers without passing through a double.
 */
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "call_internal.h"
#include "gateway_internal.h"
#include "rpcq/events.pb-c.h"
#include "search_query.h"

struct out {
	char *p;
	size_t len, cap;
	int failed;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (o->len + n + 1 > o->cap) {
		/* 16 KB first: a search of thirty events, without growing. */
		size_t cap = o->cap ? o->cap * 2 : 16384;
		while (cap < o->len + n + 1)
			cap *= 2;
		char *p = rpcq_realloc(o->p, cap);
		if (p == NULL) {
			o->failed = 1;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

/* A string literal, its length known at compile time. */
#define PUT_LIT(o, lit) put(o, lit, sizeof(lit) - 1)

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_string(struct out *o, const char *s)
{
	put(o, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		put(o, run, (size_t)(s - run));
		char esc[8];
		int n = ch == '"'    ? snprintf(esc, sizeof(esc), "\\\"")
			: ch == '\\' ? snprintf(esc, sizeof(esc), "\\\\")
				     : snprintf(esc, sizeof(esc), "\\u%04x", ch);
		put(o, esc, (size_t)n);
		run = s + 1;
	}
	put(o, run, (size_t)(s - run));
	put(o, "\"", 1);
}

/* "2021-06-30T21:00:00" -> "start_date":"2021-06-30","start_time":"21:00:00"
 * (by hand: snprintf was an eighth of a request's CPU). */
static void put_when(struct out *o, const char *name, const char *t)
{
	size_t n = strlen(name);
	put(o, "\"", 1);
	put(o, name, n);
	if (strlen(t) != 19) {
		PUT_LIT(o, "_date\":null,\"");
		put(o, name, n);
		PUT_LIT(o, "_time\":null");
		return;
	}
	PUT_LIT(o, "_date\":\"");
	put(o, t, 10);
	PUT_LIT(o, "\",\"");
	put(o, name, n);
	PUT_LIT(o, "_time\":\"");
	put(o, t + 11, 8);
	put(o, "\"", 1);
}

static void put_price(struct out *o, const char *name, const char *v)
{
	put(o, ",\"", 2);
	puts_(o, name);
	put(o, "\":", 2);
	puts_(o, v[0] ? v : "null"); /* exact decimal text is a JSON number */
}

static void put_event(struct out *o, const Rpcq__Events__Event *e, int first)
{
	puts_(o, first ? "{\"id\":" : ",{\"id\":");
	put_string(o, e->id);
	puts_(o, ",\"title\":");
	put_string(o, e->title);
	put(o, ",", 1);
	put_when(o, "start", e->starts_at);
	put(o, ",", 1);
	put_when(o, "end", e->ends_at);
	put_price(o, "min_price", e->min_price);
	put_price(o, "max_price", e->max_price);
	put(o, "}", 1);
}

static void respond_error(conn *c, int status, const char *code, const char *message)
{
	struct out o = {0};
	puts_(&o, "{\"data\":null,\"error\":{\"code\":");
	put_string(&o, code);
	puts_(&o, ",\"message\":");
	put_string(&o, message);
	puts_(&o, "}}");
	if (o.failed)
		conn_respond(c, 500, "application/json", NULL, "", 0);
	else
		conn_respond(c, status, "application/json", NULL, o.p, o.len);
	rpcq_free(o.p);
}

/* The JSON being written and whether an event was written yet. */
struct emit {
	struct out *o;
	int first;
};

/* Search's emitter (call_emitter): each event straight from the index,
 * while Search holds its read lock; nothing is copied. */
static int emit_event(void *arg, const ProtobufCMessage *item)
{
	struct emit *e = arg;
	put_event(e->o, (const Rpcq__Events__Event *)item, e->first);
	e->first = 0;
	return e->o->failed ? -1 : 0;
}

/* The first page of a /search runs on the thread that read the request
 * when Search answers from memory (dispatch_entry.from_memory): at most
 * this many events, so that one of nng's few threads is never held for
 * long; the rest of a larger result follows on a worker, page by page. */
#define INLINE_EVENTS 256
/* A connection keeps its JSON buffer between searches up to this size. */
#define KEEP_BYTES (256 * 1024)

/* A /search in progress on a connection (c->search, made on first use,
 * freed with it): the JSON so far and where the next page starts. */
struct gw_search {
	struct out o;
	struct emit em;
	search_bounds b;
	char token[128];
	/* A failed page's answer (PAGE_FAILED), sent by search_finish. */
	int err_status;
	char err_code[40];
	char err_message[300];
};

void search_free(gw_search *s)
{
	if (s != NULL)
		rpcq_free(s->o.p);
	rpcq_free(s);
}

enum { PAGE_LAST, PAGE_MORE, PAGE_FAILED };

/* One page of Search (at most limit events; 0: the server's page), its
 * events appended to s->o. PAGE_MORE with s->token set when another page
 * follows; PAGE_FAILED when the call failed, its answer in s->err_*. */
static int search_page(conn *c, arena *ar, gw_search *s, uint32_t limit)
{
	Rpcq__Events__SearchRequest in = RPCQ__EVENTS__SEARCH_REQUEST__INIT;
	in.starts_at = s->b.starts_at;
	in.ends_at = s->b.ends_at;
	in.page_token = s->token;
	in.limit = limit;
	call_result res;
	gw_call_emitting(c, ar, "/rpcq.events.EventService/Search", 0, c->received, c->received_ns, &in.base,
			 emit_event, &s->em, &res);
	if (res.status != RPCQ_OK) {
		/* The spec's 400 and 500, and access control's 401, 403 and 429. */
		int mapped = res.status == RPCQ_INVALID_ARGUMENT || res.status == RPCQ_UNAUTHENTICATED ||
			     res.status == RPCQ_PERMISSION_DENIED ||
			     (res.status == RPCQ_RESOURCE_EXHAUSTED && res.retry_after_ms);
		s->err_status = mapped ? gateway_http_status(res.status) : 500;
		snprintf(s->err_code, sizeof(s->err_code), "%s", gateway_connect_code(res.status));
		snprintf(s->err_message, sizeof(s->err_message), "%s", res.message);
		return PAGE_FAILED;
	}
	/* The events went to emit_event; the reply says whether more follow. */
	const Rpcq__Events__SearchResponse *r = (const Rpcq__Events__SearchResponse *)res.output;
	if (r->next_page_token == NULL || r->next_page_token[0] == '\0' ||
	    strlen(r->next_page_token) >= sizeof(s->token))
		return PAGE_LAST;
	snprintf(s->token, sizeof(s->token), "%s", r->next_page_token);
	return PAGE_MORE;
}

/* The answer, after the last page (PAGE_LAST) or a failed one. It is the
 * last thing done with s and the connection's arena: once it is sent, the
 * connection's next request (pipelined) may start a search of its own on
 * another thread. The buffer stays with s for that one unless a large
 * result made it large; then it is taken and freed here. */
static void search_finish(conn *c, gw_search *s, int r)
{
	if (r == PAGE_LAST)
		puts_(&s->o, "]},\"error\":null}");
	struct out o = s->o;
	int taken = o.cap > KEEP_BYTES;
	if (taken)
		s->o = (struct out){0};
	if (r != PAGE_LAST) {
		/* respond_error has written its body from s->err_* before it
		 * answers, so they need no copy. */
		respond_error(c, s->err_status, s->err_code, s->err_message);
	} else if (o.failed) {
		respond_error(c, 500, "resource_exhausted", "out of memory writing the search result");
	} else {
		conn_respond(c, 200, "application/json", NULL, o.p, o.len);
	}
	if (taken)
		rpcq_free(o.p);
}

/* On a worker: the pages after the first (or all of them, when Search
 * does not answer from memory). */
static void search_run(server_job *job, arena *ar)
{
	conn *c = conn_of_job(job);
	gw_search *s = c->search;
	int r;
	while ((r = search_page(c, ar, s, 0)) == PAGE_MORE)
		arena_reset(ar); /* the page is written out; the next one starts afresh */
	search_finish(c, s, r);
	nng_mtx_lock(c->lock);
	conn_release_unlock(c);
}

void search_route(conn *c)
{
	char why[300];
	if (c->search == NULL && (c->search = rpcq_calloc(1, sizeof(*c->search))) == NULL) {
		respond_error(c, 500, "resource_exhausted", "out of memory");
		return;
	}
	gw_search *s = c->search;
	if (search_query_parse(c->req->query, &s->b, why, sizeof(why)) != 0) {
		respond_error(c, 400, "invalid_argument", why);
		return;
	}
	s->o.len = 0;
	s->o.failed = 0;
	s->token[0] = '\0';
	s->em = (struct emit){.o = &s->o, .first = 1};
	puts_(&s->o, "{\"data\":{\"events\":[");
	server *srv = c->gw->srv;
	const dispatch_entry *e = dispatch_find(server_dispatch(srv), "/rpcq.events.EventService/Search");
	if (e != NULL && e->from_memory) {
		if (c->arena == NULL && (c->arena = arena_create(16 * 1024)) == NULL) {
			respond_error(c, 500, "resource_exhausted", "out of memory");
			return;
		}
		server_inline_begin(srv);
		int r = search_page(c, c->arena, s, INLINE_EVENTS);
		arena_reset(c->arena);
		server_inline_end(srv);
		if (r != PAGE_MORE) {
			search_finish(c, s, r);
			return;
		}
	}
	conn_submit(c, search_run);
}
