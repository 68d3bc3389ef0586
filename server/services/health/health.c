/*
 * rpcq.Health and rpcq.Reflection. Check reports the process's serving state
 * and whether the database answers (a down database is reported, not failed:
 * the process itself is alive). Echo returns its payload, for probes and
 * benchmarks. ListServices describes the dispatch table.
 */
#include <string.h>

#include <rpcq/registry.h>

#include "db/db.h"
#include "health.h"
#include "rpcq/health.pb-c.h"
#include "server.h"

static const db_stmt stmt_ping = {"health_ping", "SELECT 1", 0};

static rpcq_status check(call *c, const Rpcq__CheckRequest *in, Rpcq__CheckResponse **out)
{
	Rpcq__CheckResponse *r = arena_alloc(call_arena(c), sizeof(*r));
	if (r == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__check_response__init(r);
	server *srv = call_server(c);
	r->status = server_draining(srv) ? RPCQ__CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
					 : RPCQ__CHECK_RESPONSE__SERVING_STATUS__SERVING;
	r->version = RPCQ_VERSION;
	r->uptime_ms = server_uptime_ms(srv);

	/* A connection of the check's own, not the call's: the check answers
	 * OK with the database's state, and a failure's message (libpq's
	 * reason: no such socket, refused, authentication) is what it reports. */
	dbconn *db = NULL;
	rpcq_error err;
	rpcq_status st = pool_acquire(server_pool(srv), call_deadline(c), &db, &err);
	if (st == RPCQ_OK) {
		dbconn_set_deadline(db, call_deadline(c));
		PGresult *res = NULL;
		st = db_exec(db, &stmt_ping, NULL, &res, &err);
		PQclear(res);
		pool_release(server_pool(srv), db);
	}
	if (st != RPCQ_OK)
		r->database_message = arena_strdup(call_arena(c), err.message);
	r->database_ok = st == RPCQ_OK;
	pool_stats ps;
	pool_get_stats(server_pool(srv), &ps);
	r->pool_in_use = ps.in_use;
	r->pool_idle = ps.idle;
	server_stats ss;
	server_get_stats(srv, &ss);
	r->calls = ss.calls;
	r->calls_failed = ss.failed;
	r->replies_dropped = ss.replies_dropped;
	r->in_flight = ss.in_flight;
	r->max_message_bytes = (uint64_t)server_config(srv)->max_message_bytes;
	*out = r;
	return RPCQ_OK;
}

/* Echo's reply with the call's metadata as the server saw it. */
static rpcq_status echo_metadata(call *c, Rpcq__EchoMessage *r, Rpcq__EchoMessage **out)
{
	size_t n = call_metadata_count(c);
	int has_id = call_metadata(c, "x-request-id") != NULL;
	size_t total = n + (has_id ? 0 : 1);
	Rpcq__EchoMessage__MetadataEntry **entries = arena_alloc(call_arena(c), (total + 1) * sizeof(*entries));
	Rpcq__EchoMessage__MetadataEntry *pairs = arena_alloc(call_arena(c), (total + 1) * sizeof(*pairs));
	if (entries == NULL || pairs == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < n; i++) {
		rpcq__echo_message__metadata_entry__init(&pairs[i]);
		const char *k, *v;
		call_metadata_at(c, i, &k, &v);
		pairs[i].key = (char *)k;
		pairs[i].value = (char *)v;
		entries[i] = &pairs[i];
	}
	if (!has_id) {
		rpcq__echo_message__metadata_entry__init(&pairs[n]);
		pairs[n].key = "x-request-id";
		/* The id lives in the call, not its arena: the reply outlives the call. */
		pairs[n].value = arena_strdup(call_arena(c), call_request_id(c));
		if (pairs[n].value == NULL)
			return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		entries[n] = &pairs[n];
	}
	r->n_metadata = total;
	r->metadata = entries;
	r->echo_metadata = 0;
	*out = r;
	return RPCQ_OK;
}

static rpcq_status echo(call *c, const Rpcq__EchoMessage *in, Rpcq__EchoMessage **out)
{
	if (in->delay_ms > 0) {
		nng_time until = nng_clock() + (in->delay_ms > 60000 ? 60000 : in->delay_ms);
		if (until >= call_deadline(c)) {
			nng_time now = nng_clock();
			if (call_deadline(c) > now)
				nng_msleep((nng_duration)(call_deadline(c) - now));
			return call_fail(c, RPCQ_DEADLINE_EXCEEDED, "deadline expired during a delay of %u ms",
					 in->delay_ms);
		}
		nng_time now = nng_clock();
		if (until > now)
			nng_msleep((nng_duration)(until - now));
	}
	if (in->fail_code != 0) {
		if (in->fail_code > RPCQ_UNAUTHENTICATED)
			return call_fail(c, RPCQ_INVALID_ARGUMENT, "fail_code %u is not a status (1..16)",
					 in->fail_code);
		return call_fail(c, (rpcq_status)in->fail_code, "%s",
				 in->fail_message && *in->fail_message
					 ? in->fail_message
					 : rpcq_status_describe((rpcq_status)in->fail_code));
	}
	for (size_t i = 0; i < in->n_trailers; i++)
		call_set_trailer(c, in->trailers[i]->key, in->trailers[i]->value);
	/* The input lives in the call arena until the reply is packed. */
	Rpcq__EchoMessage *r = (Rpcq__EchoMessage *)in;
	if (in->echo_metadata)
		return echo_metadata(c, r, out);
	*out = r;
	return RPCQ_OK;
}

static rpcq_status list_services(call *c, const Rpcq__ListServicesRequest *in, Rpcq__ListServicesResponse **out)
{
	arena *a = call_arena(c);
	size_t n;
	const dispatch_entry *e = dispatch_entries(server_dispatch(call_server(c)), &n);
	Rpcq__ListServicesResponse *r = arena_alloc(a, sizeof(*r));
	Rpcq__ServiceInfo **svcs = arena_calloc(a, n ? n : 1, sizeof(*svcs));
	if (r == NULL || svcs == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq__list_services_response__init(r);
	r->services = svcs;
	/* Entries are sorted by full name, so a service's methods are adjacent. */
	for (size_t i = 0; i < n; i++) {
		const char *svc = e[i].service->descriptor->name;
		Rpcq__ServiceInfo *si = r->n_services ? r->services[r->n_services - 1] : NULL;
		if (si == NULL || strcmp(si->name, svc) != 0) {
			si = arena_alloc(a, sizeof(*si));
			Rpcq__MethodInfo **ms = arena_calloc(a, e[i].service->descriptor->n_methods, sizeof(*ms));
			if (si == NULL || ms == NULL)
				return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
			rpcq__service_info__init(si);
			si->name = (char *)svc;
			si->methods = ms;
			r->services[r->n_services++] = si;
		}
		Rpcq__MethodInfo *mi = arena_alloc(a, sizeof(*mi));
		if (mi == NULL)
			return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		rpcq__method_info__init(mi);
		mi->name = (char *)e[i].method->name;
		mi->full_name = e[i].full_name;
		mi->input_type = (char *)e[i].method->input->name;
		mi->output_type = (char *)e[i].method->output->name;
		const rpcq_method_info *reg = rpcq_method_find(e[i].full_name);
		mi->idempotent = reg && reg->idempotent;
		si->methods[si->n_methods++] = mi;
	}
	*out = r;
	return RPCQ_OK;
}

RPCQ_HANDLER(check, Rpcq__CheckRequest, Rpcq__CheckResponse)
RPCQ_HANDLER(echo, Rpcq__EchoMessage, Rpcq__EchoMessage)
RPCQ_HANDLER(list_services, Rpcq__ListServicesRequest, Rpcq__ListServicesResponse)

static const method_def health_methods[] = {
	{"Check", check_handler},
	{"Echo", echo_handler},
	{NULL, NULL},
};

static const method_def reflection_methods[] = {
	{"ListServices", list_services_handler},
	{NULL, NULL},
};

const service_def health_service = {
	.descriptor = &rpcq__health__descriptor,
	.methods = health_methods,
};

const service_def reflection_service = {
	.descriptor = &rpcq__reflection__descriptor,
	.methods = reflection_methods,
};
