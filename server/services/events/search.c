/*
 * Search, GetEvent and Changes. Search and GetEvent answer from this
 * process's in-memory index (follow.c): no database round trip, no wait on
 * the provider. Changes pages the events.changed log from PostgreSQL.
 */
#include <stdio.h>
#include <string.h>

#include "datetime.h"
#include "events_service.h"
#include "public_id.h"
#include "rpcq/stream.pb-c.h"
#include "services/streams/sql.h"

/* A page ends before this share of the message size limit. */
#define PAGE_BUDGET_NUM 3
#define PAGE_BUDGET_DEN 4
#define SEARCH_MAX_PAGE 100000
#define CHANGES_DEFAULT_LIMIT 1000

struct collect {
	call *c;
	call_emit_fn emit; /* NULL: collect messages in events */
	void *emit_arg;
	Rpcq__Events__Event **events;
	size_t n, cap;
	size_t bytes, budget;
	int oom;
	int full;			  /* stopped because the page is full */
	char last_start[20], last_id[37]; /* of the last event taken */
};

/* Event r as a message that points into it, for an emitter: valid while the
 * index's read lock is held, that is during the callback. */
static void view_of(const event_rec *r, Rpcq__Events__Event *v)
{
	rpcq__events__event__init(v);
	v->id = (char *)r->id;
	v->base_id = r->base_id;
	v->event_id = r->event_id;
	v->title = r->title;
	v->starts_at = (char *)r->starts_at;
	v->ends_at = (char *)r->ends_at;
	v->min_price = (char *)r->min_price;
	v->max_price = (char *)r->max_price;
	v->sold_out = r->sold_out;
	v->sell_from = (char *)r->sell_from;
	v->sell_to = (char *)r->sell_to;
	v->seq = r->seq;
}

/* An upper bound of m's packed size, for the page budget, cheaper than
 * protobuf_c_message_get_packed_size (which sizes every field again): the
 * fixed-size fields of the record at their sizes, the three others at
 * their lengths, and for each of the twelve fields a tag and a length (or
 * value) at their largest. */
static size_t packed_bound(const event_rec *r, const Rpcq__Events__Event *m)
{
	size_t fixed = sizeof(r->id) + sizeof(r->starts_at) + sizeof(r->ends_at) + sizeof(r->min_price) +
		       sizeof(r->max_price) + sizeof(r->sell_from) + sizeof(r->sell_to);
	return fixed + strlen(m->base_id) + strlen(m->event_id) + strlen(m->title) + 12 * (1 + 10);
}

static int collect_one(void *arg, const event_rec *r)
{
	struct collect *k = arg;
	if (k->n == k->cap || k->bytes >= k->budget) {
		k->full = 1;
		return 1;
	}
	Rpcq__Events__Event view, *m = &view;
	if (k->emit != NULL) {
		view_of(r, &view);
		if (k->emit(k->emit_arg, &view.base) != 0) {
			k->oom = 1;
			return 1;
		}
	} else if ((m = events_message_of(call_arena(k->c), r)) == NULL) {
		k->oom = 1;
		return 1;
	} else {
		k->events[k->n] = m;
	}
	k->n++;
	k->bytes += packed_bound(r, m) + 8;
	memcpy(k->last_start, r->starts_at, sizeof(k->last_start));
	memcpy(k->last_id, r->id, sizeof(k->last_id));
	return 0;
}

/* A search bound of the request (lower: starts_at), or "" for none. */
static rpcq_status bound(call *c, const char *field, int lower, const char *value, char out[20])
{
	out[0] = '\0';
	if (value == NULL || value[0] == '\0')
		return RPCQ_OK;
	char why[160];
	if ((lower ? datetime_lower_bound_parse : datetime_upper_bound_parse)(value, out, why, sizeof(why)) != 0)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "%s \"%.40s\": %s", field, value, why);
	return RPCQ_OK;
}

rpcq_status events_search(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Events__SearchRequest *in = (const Rpcq__Events__SearchRequest *)msg;
	events_state *st = call_service_state(c);
	char from[20], to[20], after_start[20] = "", after_id[37] = "";
	rpcq_status s;
	if ((s = bound(c, "starts_at", 1, in->starts_at, from)) != RPCQ_OK ||
	    (s = bound(c, "ends_at", 0, in->ends_at, to)) != RPCQ_OK)
		return s;
	if (in->page_token && in->page_token[0]) {
		/* "<starts_at>/<id>" of the last event of the previous page. */
		const char *slash = strchr(in->page_token, '/');
		char start[20];
		if (slash == NULL || slash - in->page_token != 19)
			return call_fail(c, RPCQ_INVALID_ARGUMENT, "page_token \"%.60s\" is not one this server gave",
					 in->page_token);
		memcpy(start, in->page_token, 19);
		start[19] = '\0';
		if (datetime_local_parse(start, after_start) != 0 || !event_public_id_valid(slash + 1))
			return call_fail(c, RPCQ_INVALID_ARGUMENT, "page_token \"%.60s\" is not one this server gave",
					 in->page_token);
		snprintf(after_id, sizeof(after_id), "%s", slash + 1);
	}
	if (!events_follow_ready(st))
		return call_fail(c, RPCQ_UNAVAILABLE, "the events index of this server is still loading; retry");

	size_t limit = in->limit == 0 || in->limit > SEARCH_MAX_PAGE ? SEARCH_MAX_PAGE : in->limit;
	long maxb = server_config(call_server(c))->max_message_bytes;
	struct collect k = {.c = c, .cap = limit, .budget = (size_t)(maxb / PAGE_BUDGET_DEN * PAGE_BUDGET_NUM)};
	k.emit = call_emitter(c, &k.emit_arg);
	/* Emitted events need no array: one round takes the whole page. */
	size_t room = k.emit ? limit : limit < 1024 ? limit : 1024;
	if (k.emit == NULL && (k.events = arena_alloc(call_arena(c), room * sizeof(*k.events))) == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	/* The array grows as results come (a search of twenty events allocates
	 * for 1024 pointers at most); each round goes on after the last event
	 * collected. Seeing one event past the page (full) means another page
	 * follows. */
	for (;;) {
		k.cap = room;
		size_t before = k.n;
		event_index_search(st->index, from[0] ? from : NULL, to[0] ? to : NULL,
				   k.n ? k.last_start : (after_id[0] ? after_start : NULL),
				   k.n ? k.last_id : (after_id[0] ? after_id : NULL), 0, collect_one, &k);
		if (k.oom)
			return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		if (!k.full || k.bytes >= k.budget || k.n >= limit || k.n == before)
			break;
		size_t grow = room * 2 > limit ? limit : room * 2;
		Rpcq__Events__Event **bigger = arena_alloc(call_arena(c), grow * sizeof(*bigger));
		if (bigger == NULL)
			return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		memcpy(bigger, k.events, k.n * sizeof(*bigger));
		k.events = bigger;
		room = grow;
		k.full = 0;
	}
	Rpcq__Events__SearchResponse *r = arena_alloc(call_arena(c), sizeof(*r));
	if (r == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__events__search_response__init(r);
	r->events = k.events;
	r->n_events = k.emit ? 0 : k.n;
	r->next_page_token = "";
	if (k.full && k.n > 0) {
		r->next_page_token = arena_printf(call_arena(c), "%s/%s", k.last_start, k.last_id);
		if (r->next_page_token == NULL)
			return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	*out = &r->base;
	return RPCQ_OK;
}

struct got {
	call *c;
	Rpcq__Events__Event *m;
};

static void got_one(void *arg, const event_rec *r)
{
	struct got *g = arg;
	g->m = events_message_of(call_arena(g->c), r);
}

rpcq_status events_get(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Events__GetEventRequest *in = (const Rpcq__Events__GetEventRequest *)msg;
	events_state *st = call_service_state(c);
	if (!event_public_id_valid(in->id))
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "id \"%.60s\" is not a UUID", in->id);
	if (!events_follow_ready(st))
		return call_fail(c, RPCQ_UNAVAILABLE, "the events index of this server is still loading; retry");
	char id[37];
	for (int i = 0; i < 37; i++)
		id[i] = (char)((in->id[i] >= 'A' && in->id[i] <= 'F') ? in->id[i] - 'A' + 'a' : in->id[i]);
	struct got g = {.c = c};
	if (!event_index_get(st->index, id, got_one, &g))
		return call_fail(c, RPCQ_NOT_FOUND, "no event %s", id);
	if (g.m == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	*out = &g.m->base;
	return RPCQ_OK;
}

rpcq_status events_changes(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Events__ChangesRequest *in = (const Rpcq__Events__ChangesRequest *)msg;
	arena *a = call_arena(c);
	if (in->after_seq > (uint64_t)INT64_MAX)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "after_seq %llu is out of range",
				 (unsigned long long)in->after_seq);
	unsigned limit = in->limit == 0 || in->limit > CHANGES_DEFAULT_LIMIT ? CHANGES_DEFAULT_LIMIT : in->limit;
	long budget = server_config(call_server(c))->max_message_bytes / PAGE_BUDGET_DEN * PAGE_BUDGET_NUM;
	char after[24], lim[16], bud[24];
	snprintf(after, sizeof(after), "%llu", (unsigned long long)in->after_seq);
	snprintf(lim, sizeof(lim), "%u", limit);
	snprintf(bud, sizeof(bud), "%ld", budget);
	const char *values[4] = {EVENTS_TOPIC, after, lim, bud};
	PGresult *res = NULL;
	rpcq_status s = call_query(c, &streams_sql_replay, values, 1, &res);
	if (s != RPCQ_OK)
		return s;
	Rpcq__Events__ChangesResponse *r = arena_alloc(a, sizeof(*r));
	int n = PQntuples(res);
	Rpcq__Events__Change **changes = arena_alloc(a, (size_t)(n + 1) * sizeof(*changes));
	if (r == NULL || changes == NULL) {
		PQclear(res);
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	rpcq__events__changes_response__init(r);
	for (int i = 0; i < n; i++) {
		if (i == 0)
			r->last_seq = (uint64_t)db_int8(res, 0, 0);
		if (PQgetisnull(res, i, 2))
			continue;
		Rpcq__Events__Change *ch = arena_alloc(a, sizeof(*ch));
		if (ch == NULL) {
			PQclear(res);
			return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		}
		rpcq__events__change__init(ch);
		ch->seq = (uint64_t)db_int8(res, i, 2);
		ch->published_at_ms = db_int8(res, i, 5);
		ch->change = rpcq__events__event_changed__unpack(call_allocator(c), (size_t)PQgetlength(res, i, 4),
								 (const uint8_t *)PQgetvalue(res, i, 4));
		if (ch->change == NULL) {
			PQclear(res);
			return call_fail(c, RPCQ_INTERNAL, "change %llu of %s does not decode",
					 (unsigned long long)ch->seq, EVENTS_TOPIC);
		}
		if (ch->change->event)
			ch->change->event->seq = ch->seq;
		changes[r->n_changes++] = ch;
	}
	PQclear(res);
	r->changes = changes;
	*out = &r->base;
	return RPCQ_OK;
}
