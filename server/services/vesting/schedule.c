/*
 * Plans and totals. Grouping by award is a counting sort (two passes over the
 * events, no comparisons); within an award the few events (ten on average in
 * the workloads the spec names) are ordered by a packed 64-bit key, by
 * insertion sort for small groups and qsort for large ones. Totals are one
 * pass over the grouped events with overflow-checked int64 arithmetic.
 */
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "csv.h"
#include "date.h"
#include "qty.h"
#include "schedule.h"

struct vesting_plan {
	const vesting_events *ev;
	uint64_t version;
	uint32_t *start;             /* naward + 1 offsets into idx */
	uint32_t *idx;               /* event indexes grouped by award, ordered */
	uint32_t *order;             /* awards in output order */
	size_t naward;
};

typedef struct keyed {
	uint64_t key;
	uint32_t idx;
} keyed;

/* (day, VEST before CANCEL, line): what the CANCEL rule and the error
 * messages need. Days fit 22 bits above VESTING_DAY_MIN. */
static uint64_t event_key(const vesting_event *e)
{
	return ((uint64_t)(uint32_t)(e->day - VESTING_DAY_MIN) << 33) | ((uint64_t)e->action << 32) | e->line;
}

static int cmp_keyed(const void *a, const void *b)
{
	uint64_t x = ((const keyed *)a)->key, y = ((const keyed *)b)->key;
	return x < y ? -1 : x > y;
}

static void sort_group(keyed *k, size_t n)
{
	if (n > 24) {
		qsort(k, n, sizeof(*k), cmp_keyed);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		keyed x = k[i];
		size_t j = i;
		for (; j > 0 && k[j - 1].key > x.key; j--)
			k[j] = k[j - 1];
		k[j] = x;
	}
}

static int cmp_bytes(const char *a, size_t na, const char *b, size_t nb)
{
	int c = memcmp(a, b, na < nb ? na : nb);
	if (c != 0)
		return c;
	return na < nb ? -1 : na > nb;
}

/* qsort has no context argument; the order sort runs on a copy of what it
 * compares, so it needs none. */
typedef struct award_ref {
	const char *emp;
	const char *award;
	uint32_t emp_len;
	uint32_t award_len;
	uint32_t index;
} award_ref;

static int cmp_award_ref(const void *pa, const void *pb)
{
	const award_ref *a = pa, *b = pb;
	int c = cmp_bytes(a->emp, a->emp_len, b->emp, b->emp_len);
	if (c != 0)
		return c;
	return cmp_bytes(a->award, a->award_len, b->award, b->award_len);
}

void vesting_plan_destroy(vesting_plan *p)
{
	if (p == NULL)
		return;
	rpcq_free(p->start);
	rpcq_free(p->idx);
	rpcq_free(p->order);
	rpcq_free(p);
}

rpcq_status vesting_plan_create(vesting_plan **out, const vesting_events *ev, rpcq_error *err)
{
	rpcq_status result = RPCQ_RESOURCE_EXHAUSTED;
	keyed *tmp = NULL;
	award_ref *refs = NULL;
	vesting_plan *p = rpcq_calloc(1, sizeof(*p));
	if (p == NULL)
		goto out;
	p->ev = ev;
	p->version = ev->version;
	p->naward = ev->naward;
	p->start = rpcq_calloc((size_t)ev->naward + 1, sizeof(*p->start));
	p->idx = rpcq_alloc((ev->nev ? ev->nev : 1) * sizeof(*p->idx));
	p->order = rpcq_alloc((ev->naward ? ev->naward : 1) * sizeof(*p->order));
	tmp = rpcq_alloc((ev->nev ? ev->nev : 1) * sizeof(*tmp));
	refs = rpcq_alloc((ev->naward ? ev->naward : 1) * sizeof(*refs));
	if (p->start == NULL || p->idx == NULL || p->order == NULL || tmp == NULL || refs == NULL)
		goto out;

	/* Counting sort by award: counts, prefix sums, scatter. */
	for (size_t i = 0; i < ev->nev; i++)
		p->start[ev->ev[i].award + 1]++;
	for (size_t a = 0; a < ev->naward; a++)
		p->start[a + 1] += p->start[a];
	uint32_t *fill = p->order; /* borrowed as the scatter cursor, rewritten below */
	memcpy(fill, p->start, ev->naward * sizeof(*fill));
	for (size_t i = 0; i < ev->nev; i++) {
		const vesting_event *e = &ev->ev[i];
		tmp[fill[e->award]++] = (keyed){event_key(e), (uint32_t)i};
	}
	for (size_t a = 0; a < ev->naward; a++) {
		sort_group(tmp + p->start[a], p->start[a + 1] - p->start[a]);
	}
	for (size_t i = 0; i < ev->nev; i++)
		p->idx[i] = tmp[i].idx;

	for (uint32_t a = 0; a < ev->naward; a++) {
		const vesting_award *aw = &ev->awards[a];
		const vesting_employee *em = &ev->employees[aw->employee];
		refs[a] = (award_ref){em->id, aw->id, em->id_len, aw->id_len, a};
	}
	qsort(refs, ev->naward, sizeof(*refs), cmp_award_ref);
	for (size_t a = 0; a < ev->naward; a++)
		p->order[a] = refs[a].index;
	*out = p;
	p = NULL;
	result = RPCQ_OK;
out:
	rpcq_free(refs);
	rpcq_free(tmp);
	vesting_plan_destroy(p);
	if (result != RPCQ_OK)
		rpcq_error_set(err, result, "out of memory for the schedule of %zu events", ev->nev);
	return result;
}

uint64_t vesting_plan_version(const vesting_plan *p)
{
	return p->version;
}

const uint32_t *vesting_plan_order(const vesting_plan *p, size_t *n)
{
	*n = p->naward;
	return p->order;
}

/* "award ISO-001 of employee E001", quoted for a message. */
static void award_words(const vesting_events *ev, uint32_t a, char award[48], char emp[48])
{
	const vesting_award *aw = &ev->awards[a];
	const vesting_employee *em = &ev->employees[aw->employee];
	vesting_quote_for_message(aw->id, aw->id_len, award);
	vesting_quote_for_message(em->id, em->id_len, emp);
}

static rpcq_status excessive_cancel(const vesting_events *ev, const vesting_event *e, int64_t cancel, int64_t vested,
				    int precision, rpcq_error *err)
{
	char award[48], emp[48], date[11], cq[VESTING_QTY_FORMAT_MAX], vq[VESTING_QTY_FORMAT_MAX];
	award_words(ev, e->award, award, emp);
	vesting_date_format(e->day, date);
	vesting_qty_format(cancel, precision, cq);
	vesting_qty_format(vested, precision, vq);
	if (e->line == 0) {
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "the CANCEL of %s on %s already recorded for award %s of employee %s would exceed "
				      "the %s vested by then at precision %d",
				      cq, date, award, emp, vq, precision);
	}
	return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
			      "line %u: CANCEL of %s exceeds the %s vested by %s for award %s of employee %s", e->line, cq,
			      vq, date, award, emp);
}

static rpcq_status overflow(const vesting_events *ev, const vesting_event *e, rpcq_error *err)
{
	char award[48], emp[48];
	award_words(ev, e->award, award, emp);
	if (e->line == 0) {
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "the vested total of award %s of employee %s exceeds %s shares", award, emp,
				      VESTING_QTY_MAX_TEXT);
	}
	return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
			      "line %u: the vested total of award %s of employee %s exceeds %s shares", e->line, award,
			      emp, VESTING_QTY_MAX_TEXT);
}

rpcq_status vesting_plan_compute(const vesting_plan *p, int precision, const int32_t *target_day, int64_t *totals,
				 rpcq_error *err)
{
	const vesting_events *ev = p->ev;
	int64_t unit = vesting_qty_unit(precision);
	for (size_t a = 0; a < p->naward; a++) {
		int64_t net = 0;
		int64_t at_target = 0;
		int passed = 0;
		for (uint32_t k = p->start[a]; k < p->start[a + 1]; k++) {
			const vesting_event *e = &ev->ev[p->idx[k]];
			if (target_day && !passed && e->day > *target_day) {
				at_target = net;
				passed = 1;
			}
			int64_t q = e->qty - e->qty % unit;
			if (e->action == VESTING_VEST) {
				if (__builtin_add_overflow(net, q, &net))
					return overflow(ev, e, err);
			} else {
				if (q > net)
					return excessive_cancel(ev, e, q, net, precision, err);
				net -= q;
			}
		}
		if (target_day)
			totals[a] = passed ? at_target : net;
	}
	return RPCQ_OK;
}

uint32_t vesting_plan_award_events(const vesting_plan *p, uint32_t a)
{
	return p->start[a + 1] - p->start[a];
}

size_t vesting_plan_award_days(const vesting_plan *p, uint32_t a, int32_t *days, int64_t *cum)
{
	const vesting_events *ev = p->ev;
	uint32_t first = p->start[a], n = p->start[a + 1] - first;
	size_t ndays = 0;
	for (uint32_t k = 0; k < n; k++) {
		int32_t day = ev->ev[p->idx[first + k]].day;
		if (ndays == 0 || days[ndays - 1] != day)
			days[ndays++] = day;
	}
	for (int prec = 0; prec <= VESTING_PRECISION_MAX; prec++) {
		int64_t unit = vesting_qty_unit(prec), net = 0;
		size_t d = 0;
		for (uint32_t k = 0; k < n; k++) {
			const vesting_event *e = &ev->ev[p->idx[first + k]];
			int64_t q = e->qty - e->qty % unit;
			net += e->action == VESTING_VEST ? q : -q;
			if (k + 1 == n || ev->ev[p->idx[first + k + 1]].day != e->day)
				cum[(size_t)prec * ndays + d++] = net;
		}
	}
	return ndays;
}

void vesting_write_line(vesting_buf *b, const vesting_events *ev, uint32_t a, int64_t micro, int precision)
{
	const vesting_award *aw = &ev->awards[a];
	const vesting_employee *em = &ev->employees[aw->employee];
	char q[VESTING_QTY_FORMAT_MAX];
	size_t n = vesting_qty_format(micro, precision, q);
	vesting_csv_write_field(b, em->id, em->id_len);
	vesting_buf_putc(b, ',');
	vesting_csv_write_field(b, em->name, em->name_len);
	vesting_buf_putc(b, ',');
	vesting_csv_write_field(b, aw->id, aw->id_len);
	vesting_buf_putc(b, ',');
	vesting_buf_append(b, q, n);
}
