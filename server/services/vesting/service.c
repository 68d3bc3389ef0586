/*
 * The vesting service's definition (its method table and the start/stop
 * hooks that own the compute-session store) and the request checks and
 * reply building that its handlers share, so that Compute and Schedule
 * validate and page identically.
 */
#include <string.h>

#include "arena.h"
#include "config.h"
#include "date.h"
#include "qty.h"
#include "vesting.h"

rpcq_status vesting_add_events(vesting_events *ev, const Rpcq__Vesting__Events *m, uint64_t first_line, rpcq_error *err)
{
	if (m == NULL)
		return RPCQ_OK;
	if (first_line == 0)
		first_line = m->first_line ? m->first_line : 1;
	if (m->csv.len > 0 && m->n_rows > 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "events: give csv or rows, not both");
	if (m->csv.len > 0)
		return vesting_events_add_csv(ev, (char *)m->csv.data, m->csv.len, first_line, err);
	for (size_t i = 0; i < m->n_rows; i++) {
		const Rpcq__Vesting__Event *r = m->rows[i];
		const char *action = r->action == RPCQ__VESTING__ACTION__VEST	  ? "VEST"
				     : r->action == RPCQ__VESTING__ACTION__CANCEL ? "CANCEL"
										  : "";
		vesting_row row = {action,	     strlen(action),	       r->employee_id, strlen(r->employee_id),
				   r->employee_name, strlen(r->employee_name), r->award_id,    strlen(r->award_id),
				   r->date,	     strlen(r->date),	       r->quantity,    strlen(r->quantity)};
		rpcq_status st = vesting_events_add_row(ev, &row, first_line + i, err);
		if (st != RPCQ_OK)
			return st;
	}
	return RPCQ_OK;
}

rpcq_status vesting_check_query(const char *target_date, uint32_t precision, int32_t *day, rpcq_error *err)
{
	char q[48];
	if (precision > VESTING_PRECISION_MAX)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "precision %u is outside 0..%d", precision,
				      VESTING_PRECISION_MAX);
	vesting_quote_for_message(target_date, strlen(target_date), q);
	switch (date_parse(target_date, strlen(target_date), day)) {
	case DATE_OK:
		return RPCQ_OK;
	case DATE_MALFORMED:
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "target date %s is not a date YYYY-MM-DD", q);
	case DATE_IMPOSSIBLE:
	default:
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "target date %s does not exist", q);
	}
}

uint32_t vesting_page_size(uint32_t requested)
{
	if (requested == 0)
		return VESTING_PAGE_DEFAULT;
	return requested > VESTING_PAGE_MAX ? VESTING_PAGE_MAX : requested;
}

rpcq_status vesting_page_init(vesting_page *pg, call *c, size_t cap)
{
	arena *a = call_arena(c);
	pg->resp = arena_alloc(a, sizeof(*pg->resp));
	pg->cap = cap;
	if (pg->resp == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the schedule");
	rpcq__vesting__schedule_response__init(pg->resp);
	pg->resp->entries = arena_alloc(a, (cap ? cap : 1) * sizeof(*pg->resp->entries));
	if (pg->resp->entries == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the schedule");
	/* Stay well under the transport's limit: the envelope and the next
	 * page token come on top of the entries. */
	long limit = server_config(call_server(c))->max_message_bytes;
	pg->max_bytes = (size_t)(limit > 0 ? limit : 4L * 1024 * 1024) / 4 * 3;
	pg->bytes = 0;
	return RPCQ_OK;
}

int vesting_page_has_room(const vesting_page *pg)
{
	return pg->resp->n_entries < pg->cap && pg->bytes < pg->max_bytes;
}

rpcq_status vesting_page_add(vesting_page *pg, call *c, const char *employee_id, size_t employee_id_len,
			     const char *name, size_t name_len, const char *award_id, size_t award_id_len,
			     int64_t micro, int precision)
{
	arena *a = call_arena(c);
	char qty[VESTING_QTY_FORMAT_MAX];
	size_t qlen = vesting_qty_format(micro, precision, qty);
	Rpcq__Vesting__ScheduleEntry *e = arena_alloc(a, sizeof(*e));
	if (e == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the schedule");
	rpcq__vesting__schedule_entry__init(e);
	e->employee_id = arena_strndup(a, employee_id, employee_id_len);
	e->employee_name = arena_strndup(a, name, name_len);
	e->award_id = arena_strndup(a, award_id, award_id_len);
	e->quantity = arena_strndup(a, qty, qlen);
	if (e->employee_id == NULL || e->employee_name == NULL || e->award_id == NULL || e->quantity == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the schedule");
	pg->resp->entries[pg->resp->n_entries++] = e;
	/* Four length-delimited fields, the entry's own tag and length. */
	pg->bytes += employee_id_len + name_len + award_id_len + qlen + 16;
	return RPCQ_OK;
}

static rpcq_status start(server *srv, void **state, rpcq_error *err)
{
	const rpcq_config *cfg = server_config(srv);
	vesting_sessions *s;
	rpcq_status st = vesting_sessions_create(&s, cfg->session_ttl_s, cfg->session_max_bytes, err);
	if (st == RPCQ_OK)
		*state = s;
	return st;
}

static void stop(void *state)
{
	vesting_sessions_destroy(state);
}

static const method_def vesting_methods[] = {
	{"Compute", vesting_compute},
	{"Upload", vesting_upload},
	{"CloseSession", vesting_close_session},
	{"AppendEvents", vesting_append_events},
	{"Schedule", vesting_schedule},
	{"ListLedgers", vesting_list_ledgers},
	{NULL, NULL},
};

/* A schedule of a file of any size is a read, and its upload with it. */
static const char *const vesting_reads[] = {"Upload", "CloseSession", NULL};

const service_def vesting_service = {
	.descriptor = &rpcq__vesting__vesting_service__descriptor,
	.methods = vesting_methods,
	.reads = vesting_reads,
	.start = start,
	.stop = stop,
};
