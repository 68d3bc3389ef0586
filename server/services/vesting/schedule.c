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
	uint32_t *start; /* naward + 1 offsets into idx */
	uint32_t *idx;	 /* event indexes grouped by award, ordered */
	uint32_t *order; /* awards in output order */
	size_t naward;
};

typedef struct keyed {
	uint64_t key;
	uint32_t idx;
} keyed;

/* (day, VEST before CANCEL, line): what the CANCEL rule and the error
 * messages need. Days fit 22 bits above DATE_DAY_MIN. */
static uint64_t event_key(const vesting_event *e)
{
	return ((uint64_t)(uint32_t)(e->day - DATE_DAY_MIN) << 33) | ((uint64_t)e->action << 32) | e->line;
}

/* Equal keys (events already in a ledger, same day and action) keep their
 * store order, as the insertion sort does. */
static int cmp_keyed(const void *a, const void *b)
{
	const keyed *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
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
 * compares, so it needs none. The first eight bytes of each id, big-endian
 * and zero-padded, decide most comparisons without touching the strings
 * (ids hold no NUL, so padding orders a shorter id first, as bytes do). */
typedef struct award_ref {
	uint64_t emp_prefix;
	uint64_t award_prefix;
	const char *emp;
	const char *award;
	uint32_t emp_len;
	uint32_t award_len;
	uint32_t index;
} award_ref;

static uint64_t prefix8(const char *s, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < 8; i++)
		v = (v << 8) | (i < n ? (unsigned char)s[i] : 0);
	return v;
}

/* Compares two ids by their prefixes, then (when both are longer than the
 * prefix and it ties) by bytes. */
static int cmp_id(uint64_t pa, const char *a, size_t na, uint64_t pb, const char *b, size_t nb)
{
	if (pa != pb)
		return pa < pb ? -1 : 1;
	if (na <= 8 || nb <= 8)
		return na < nb ? -1 : na > nb;
	return cmp_bytes(a + 8, na - 8, b + 8, nb - 8);
}

static int cmp_award_ref(const void *pa, const void *pb)
{
	const award_ref *a = pa, *b = pb;
	int c = cmp_id(a->emp_prefix, a->emp, a->emp_len, b->emp_prefix, b->emp, b->emp_len);
	if (c != 0)
		return c;
	return cmp_id(a->award_prefix, a->award, a->award_len, b->award_prefix, b->award, b->award_len);
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
	uint64_t *last = NULL;
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
	last = rpcq_calloc(ev->naward ? ev->naward : 1, sizeof(*last));
	refs = rpcq_alloc((ev->naward ? ev->naward : 1) * sizeof(*refs));
	if (p->start == NULL || p->idx == NULL || p->order == NULL || last == NULL || refs == NULL)
		goto out;

	/* Counting sort by award: counts, prefix sums, scatter. Files and
	 * ledgers mostly come in date order, so the counting pass also notes
	 * which awards' events are not already in key order (last[a] becomes
	 * UINT64_MAX for good); only those groups are sorted afterwards. */
	for (size_t i = 0; i < ev->nev; i++) {
		const vesting_event *e = &ev->ev[i];
		uint64_t k = event_key(e);
		p->start[e->award + 1]++;
		last[e->award] = k < last[e->award] ? UINT64_MAX : k;
	}
	uint32_t biggest = 0;
	for (size_t a = 0; a < ev->naward; a++) {
		uint32_t n = p->start[a + 1];
		if (last[a] == UINT64_MAX && n > biggest)
			biggest = n;
		p->start[a + 1] += p->start[a];
	}
	uint32_t *fill = p->order; /* borrowed as the scatter cursor, rewritten below */
	memcpy(fill, p->start, ev->naward * sizeof(*fill));
	for (size_t i = 0; i < ev->nev; i++)
		p->idx[fill[ev->ev[i].award]++] = (uint32_t)i;
	if (biggest > 0 && (tmp = rpcq_alloc(biggest * sizeof(*tmp))) == NULL)
		goto out;
	for (size_t a = 0; a < ev->naward; a++) {
		if (last[a] != UINT64_MAX)
			continue;
		uint32_t *g = p->idx + p->start[a];
		uint32_t n = p->start[a + 1] - p->start[a];
		for (uint32_t k = 0; k < n; k++)
			tmp[k] = (keyed){event_key(&ev->ev[g[k]]), g[k]};
		sort_group(tmp, n);
		for (uint32_t k = 0; k < n; k++)
			g[k] = tmp[k].idx;
	}

	for (uint32_t a = 0; a < ev->naward; a++) {
		const vesting_award *aw = &ev->awards[a];
		const vesting_employee *em = &ev->employees[aw->employee];
		refs[a] = (award_ref){prefix8(em->id, em->id_len),
				      prefix8(aw->id, aw->id_len),
				      em->id,
				      aw->id,
				      em->id_len,
				      aw->id_len,
				      a};
	}
	qsort(refs, ev->naward, sizeof(*refs), cmp_award_ref);
	for (size_t a = 0; a < ev->naward; a++)
		p->order[a] = refs[a].index;
	*out = p;
	p = NULL;
	result = RPCQ_OK;
out:
	rpcq_free(refs);
	rpcq_free(last);
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
	date_format(e->day, date);
	vesting_qty_format(cancel, precision, cq);
	vesting_qty_format(vested, precision, vq);
	if (e->line == 0) {
		return rpcq_error_set(
			err, RPCQ_INVALID_ARGUMENT,
			"the CANCEL of %s on %s already recorded for award %s of employee %s would exceed "
			"the %s vested by then at precision %d",
			cq, date, award, emp, vq, precision);
	}
	return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
			      "line %u: CANCEL of %s exceeds the %s vested by %s for award %s of employee %s", e->line,
			      cq, vq, date, award, emp);
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

const uint32_t *vesting_plan_award_event_indexes(const vesting_plan *p, uint32_t a, uint32_t *n)
{
	*n = p->start[a + 1] - p->start[a];
	return p->idx + p->start[a];
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

void vesting_write_line(strbuf *b, const vesting_events *ev, uint32_t a, int64_t micro, int precision)
{
	const vesting_award *aw = &ev->awards[a];
	const vesting_employee *em = &ev->employees[aw->employee];
	char q[VESTING_QTY_FORMAT_MAX];
	size_t n = vesting_qty_format(micro, precision, q);
	csv_write_field(b, em->id, em->id_len);
	strbuf_putc(b, ',');
	csv_write_field(b, em->name, em->name_len);
	strbuf_putc(b, ',');
	csv_write_field(b, aw->id, aw->id_len);
	strbuf_putc(b, ',');
	strbuf_append(b, q, n);
}
